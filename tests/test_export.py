"""Transcript exports, read back by parsers: WebVTT, SRT, plain text, JSON and DOCX."""

from __future__ import annotations

import io
import json
import re

import docx
import pytest

from relisten.lib.asr.export import (
    FORMATS,
    NO_SPEECH,
    export,
    to_docx,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
)
from relisten.lib.asr.types import LOW_CONFIDENCE, Segment, Transcript, Word

VTT_TIME = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"
SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"


def words(
    text: str, start: float, step: float = 0.4, low: tuple[int, ...] = ()
) -> tuple[Word, ...]:
    return tuple(
        Word(start + i * step, start + i * step + 0.3, f" {token}", 0.3 if i in low else 0.95)
        for i, token in enumerate(text.split())
    )


def sample() -> Transcript:
    return Transcript(
        segments=(
            Segment(1.23, 4.56, "How have you been since last week?",
                    words("How have you been since last week?", 1.23), "Therapist"),
            Segment(5.0, 7.5, "Better <mostly> & calmer",
                    words("Better <mostly> & calmer", 5.0, low=(1,)), "Client"),
            Segment(3723.4567, 3725.0, "Over an hour in.", words("Over an hour in.", 3723.4567)),
        ),
        language="en",
        duration_s=3726.0,
    )


def millis(match: tuple[str, ...]) -> int:
    hours, minutes, secs, ms = (int(part) for part in match)
    return ((hours * 60 + minutes) * 60 + secs) * 1000 + ms


def parse_vtt(text: str) -> list[tuple[int, int, str]]:
    """A minimal WebVTT reader: header, then cues of a timing line and one text line."""
    blocks = text.strip("\n").split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        timing, payload = block.split("\n")
        found = re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", timing)
        assert found, timing
        cues.append((millis(found.groups()[:4]), millis(found.groups()[4:]), payload))
    return cues


def test_vtt_has_cue_timings_voice_tags_and_escaping() -> None:
    cues = parse_vtt(to_vtt(sample()))

    assert [(start, end) for start, end, _ in cues] == [
        (1230, 4560), (5000, 7500), (3723457, 3725000)
    ]
    assert cues[0][2] == "<v Therapist>How have you been since last week?"
    assert cues[1][2] == "<v Client>Better &lt;mostly&gt; &amp; calmer"
    assert cues[2][2] == "Over an hour in.", "no voice tag without a speaker"
    assert "01:02:03.457 --> 01:02:05.000" in to_vtt(sample())


def test_vtt_escapes_speaker_names_and_keeps_cues_on_one_line() -> None:
    transcript = Transcript(
        (Segment(0.0, 1.0, "first line\n\nsecond line --> here", (), "A&B <x>"),), "en", 1.0
    )
    ((_, _, payload),) = parse_vtt(to_vtt(transcript))
    assert payload == "<v A&amp;B &lt;x&gt;>first line second line --&gt; here"


def test_timestamps_round_to_whole_milliseconds_without_a_60th_second() -> None:
    transcript = Transcript((Segment(59.9996, 119.9999, "x", ()),), "en", 120.0)
    assert "00:01:00.000 --> 00:02:00.000" in to_vtt(transcript)
    assert "00:01:00,000 --> 00:02:00,000" in to_srt(transcript)


def test_srt_numbers_cues_and_prefixes_speakers() -> None:
    blocks = to_srt(sample()).strip("\n").split("\n\n")
    assert len(blocks) == 3
    for number, block in enumerate(blocks, start=1):
        index, timing, text = block.split("\n")
        assert index == str(number)
        assert re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", timing)
    assert blocks[0].split("\n")[1] == "00:00:01,230 --> 00:00:04,560"
    assert blocks[1].split("\n")[2] == "Client: Better <mostly> & calmer"
    assert blocks[2].split("\n")[2] == "Over an hour in."


def test_txt_is_one_line_per_segment_with_time_and_speaker() -> None:
    assert to_txt(sample()).splitlines() == [
        "[00:00:01] Therapist: How have you been since last week?",
        "[00:00:05] Client: Better <mostly> & calmer",
        "[01:02:03] Over an hour in.",
    ]


def test_json_round_trips_segments_words_speakers_and_confidence() -> None:
    data = json.loads(to_json(sample()))

    assert data["language"] == "en" and data["duration_s"] == 3726.0
    assert data["low_confidence_below"] == LOW_CONFIDENCE
    assert [s["speaker"] for s in data["segments"]] == ["Therapist", "Client", None]
    client = data["segments"][1]
    assert client["text"] == "Better <mostly> & calmer"
    assert [w["text"] for w in client["words"]] == [" Better", " <mostly>", " &", " calmer"]
    assert [w["low_confidence"] for w in client["words"]] == [False, True, False, False]
    assert client["words"][1] == {
        "start": 5.4, "end": 5.7, "text": " <mostly>", "probability": 0.3, "low_confidence": True,
    }


def read_docx(data: bytes) -> docx.document.Document:
    return docx.Document(io.BytesIO(data))


def test_docx_has_title_and_a_paragraph_per_segment_with_bold_time_and_speaker() -> None:
    document = read_docx(to_docx(sample(), "Session 12 — review"))
    paragraphs = document.paragraphs

    assert paragraphs[0].text == "Session 12 — review"
    assert paragraphs[0].style is not None and paragraphs[0].style.name == "Heading 1"
    assert document.core_properties.title == "Session 12 — review"
    segments = [p for p in paragraphs if p.text.startswith("[")]
    assert [p.text for p in segments] == [
        "[00:00:01] Therapist: How have you been since last week?",
        "[00:00:05] Client: Better <mostly> & calmer",
        "[01:02:03] Over an hour in.",
    ]
    for paragraph in segments:
        label = paragraph.runs[0]
        assert label.bold and label.text.startswith("[")
        assert not any(run.bold for run in paragraph.runs[1:]), "only time and speaker are bold"


def test_docx_marks_low_confidence_words() -> None:
    document = read_docx(to_docx(sample(), "t"))
    client = next(p for p in document.paragraphs if "Client:" in p.text)
    marked = [run.text.strip() for run in client.runs[1:] if run.italic]
    assert marked == ["<mostly>"]
    assert any("unsure" in p.text for p in document.paragraphs), "the marking is explained"


def test_docx_does_not_mark_words_after_the_text_was_corrected() -> None:
    corrected = Segment(0.0, 2.0, "Better, mostly.", words("Better <mostly>", 0.0, low=(1,)), "C")
    document = read_docx(to_docx(Transcript((corrected,), "en", 2.0), "t"))
    paragraph = document.paragraphs[-1]
    assert paragraph.text == "[00:00:00] C: Better, mostly."
    assert not any(run.italic for run in paragraph.runs)


def test_empty_transcripts_export_cleanly() -> None:
    empty = Transcript((), "en", 12.0)
    assert to_vtt(empty).strip() == "WEBVTT"
    assert to_srt(empty) == "" and to_txt(empty) == ""
    assert json.loads(to_json(empty))["segments"] == []
    document = read_docx(to_docx(empty, "Silent"))
    assert [p.text for p in document.paragraphs] == ["Silent", NO_SPEECH]


def test_docx_survives_control_characters() -> None:
    odd = Transcript((Segment(0.0, 1.0, "bell\x07 here", (), "S\x001"),), "en", 1.0)
    document = read_docx(to_docx(odd, "title\x0b"))
    assert document.paragraphs[0].text == "title"
    assert document.paragraphs[-1].text == "[00:00:00] S1: bell here"


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_dispatches_every_format(fmt: str) -> None:
    data = export(sample(), fmt, title="Session")
    assert isinstance(data, bytes) and data
    if fmt == "docx":
        assert data[:2] == b"PK"
    else:
        assert "calmer" in data.decode("utf-8")


def test_export_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="vtt, srt, txt, json, docx"):
        export(sample(), "pdf")
