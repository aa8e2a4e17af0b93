"""Transcript exports: WebVTT, SRT, plain text, JSON and Word (DOCX).

Speakers come from each segment (diarization labels or roles such as "Therapist"), so a
speaker renamed in the app appears renamed in every format. Exports are built in memory;
writing them anywhere (a download, the CLI's output folder) is the caller's decision.

Time-stamped comments can go with the transcript (`comments=`): WebVTT carries them as NOTE
blocks at their moment, JSON as a `comments` list, SRT, text and Word as a "Comments" section
after the transcript. Which comments is the caller's decision (only those the person
downloading may read); this module only writes them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relisten.lib.asr.types import LOW_CONFIDENCE, Segment, Transcript

__all__ = ["FORMATS", "MEDIA_TYPES", "ExportComment", "ExportReply", "export", "to_docx",
           "to_json", "to_srt", "to_txt", "to_vtt"]

FORMATS = ("vtt", "srt", "txt", "json", "docx")
MEDIA_TYPES = {
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
NO_SPEECH = "No speech was detected in this recording."
_LOW_CONFIDENCE_NOTE = "Words the speech recogniser was unsure of are shown in grey italics."
# XML 1.0 forbids these control characters; python-docx refuses strings that contain them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ExportReply:
    author: str
    text: str
    written: str  # ISO 8601


@dataclass(frozen=True)
class ExportComment:
    """A time-stamped comment as exports write it: the author's name (or a role, such as
    "Client"), who could read it in words ("care team"), and its replies oldest first."""

    start: float
    end: float | None  # None: a single moment
    author: str
    scope: str
    text: str
    written: str  # ISO 8601
    tags: tuple[str, ...] = ()
    replies: tuple[ExportReply, ...] = ()


Comments = Sequence[ExportComment] | None
NO_COMMENTS = "No comments."


def export(t: Transcript, fmt: str, title: str = "Transcript",
           comments: Comments = None) -> bytes:
    """The transcript in ``fmt`` (one of FORMATS) as bytes, ready to write or download.
    ``comments``: also write these comments (None: leave comments out altogether)."""
    if fmt == "docx":
        return to_docx(t, title, comments)
    writers = {"vtt": to_vtt, "srt": to_srt, "txt": to_txt, "json": to_json}
    if fmt not in writers:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writers[fmt](t, comments).encode("utf-8")


def to_vtt(t: Transcript, comments: Comments = None) -> str:
    """WebVTT with ``<v Speaker>`` voice tags, which players show and screen readers announce.
    Comments are NOTE blocks placed before the first cue at or after their moment."""
    cues = ["WEBVTT", ""]
    pending = sorted(comments or (), key=lambda c: c.start)
    for segment in t.segments:
        while pending and pending[0].start <= segment.start:
            cues += [*_vtt_note(pending.pop(0)), ""]
        text = _vtt_escape(_one_line(segment.text))
        if segment.speaker:
            text = f"<v {_vtt_escape(_one_line(segment.speaker))}>{text}"
        cues += [f"{_clock(segment.start, '.')} --> {_clock(segment.end, '.')}", text, ""]
    for comment in pending:
        cues += [*_vtt_note(comment), ""]
    return "\n".join(cues)


def to_srt(t: Transcript, comments: Comments = None) -> str:
    blocks: list[str] = []
    for number, segment in enumerate(t.segments, start=1):
        blocks += [
            str(number),
            f"{_clock(segment.start, ',')} --> {_clock(segment.end, ',')}",
            _with_speaker(segment),
            "",
        ]
    if comments is not None:
        blocks += _comment_lines(comments)
    return "\n".join(blocks)


def to_txt(t: Transcript, comments: Comments = None) -> str:
    """One line per segment: ``[00:01:02] Therapist: text``."""
    text = "".join(f"[{_clock(s.start)}] {_with_speaker(s)}\n" for s in t.segments)
    if comments is not None:
        text += "\n" + "\n".join(_comment_lines(comments))
    return text


def to_json(t: Transcript, comments: Comments = None) -> str:
    """Everything we know: segments, speakers, words with times and probabilities."""
    data: dict[str, Any] = {
        "language": t.language,
        "duration_s": round(t.duration_s, 3),
        "low_confidence_below": LOW_CONFIDENCE,
        "segments": [
            {
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "speaker": s.speaker,
                "text": s.text,
                "words": [
                    {
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "text": w.text,
                        "probability": round(w.probability, 4),
                        "low_confidence": w.probability < LOW_CONFIDENCE,
                    }
                    for w in s.words
                ],
            }
            for s in t.segments
        ],
    }
    if comments is not None:
        data["comments"] = [
            {
                "start": round(c.start, 3),
                "end": round(c.end, 3) if c.end is not None else None,
                "author": c.author,
                "visible_to": c.scope,
                "tags": list(c.tags),
                "text": c.text,
                "written": c.written,
                "replies": [
                    {"author": r.author, "text": r.text, "written": r.written} for r in c.replies
                ],
            }
            for c in sorted(comments, key=lambda c: c.start)
        ]
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def to_docx(t: Transcript, title: str, comments: Comments = None) -> bytes:
    """A Word document: the title, then one paragraph per segment, time and speaker in bold."""
    import docx
    from docx.shared import RGBColor

    document = docx.Document()
    clean_title = _xml_safe(title) or "Transcript"
    document.core_properties.title = clean_title
    document.core_properties.author = "Relisten"  # not python-docx's placeholder
    document.add_heading(clean_title, level=1)
    if t.is_empty:
        document.add_paragraph(NO_SPEECH)
    elif any(_marked_words(s) for s in t.segments):
        document.add_paragraph().add_run(_LOW_CONFIDENCE_NOTE).italic = True
    grey = RGBColor(0x70, 0x70, 0x70)
    for segment in t.segments:
        paragraph = document.add_paragraph()
        label = f"[{_clock(segment.start)}]"
        if segment.speaker:
            label += f" {_xml_safe(_one_line(segment.speaker))}:"
        paragraph.add_run(label + " ").bold = True
        marked = _marked_words(segment)
        if not marked:
            paragraph.add_run(_xml_safe(_one_line(segment.text)))
            continue
        for index, word in enumerate(segment.words):
            text = _xml_safe(word.text.strip() if index == 0 else word.text)
            run = paragraph.add_run(text)
            if word.probability < LOW_CONFIDENCE:
                run.italic = True
                run.font.color.rgb = grey
    if comments is not None:
        _docx_comments(document, comments)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _docx_comments(document: Any, comments: Sequence[ExportComment]) -> None:
    from docx.shared import Cm

    document.add_heading("Comments", level=2)
    if not comments:
        document.add_paragraph(NO_COMMENTS)
    for comment in sorted(comments, key=lambda c: c.start):
        paragraph = document.add_paragraph()
        paragraph.add_run(_xml_safe(_comment_head(comment)) + " ").bold = True
        paragraph.add_run(_xml_safe(_one_line(comment.text)))
        for reply in comment.replies:
            answer = document.add_paragraph()
            answer.paragraph_format.left_indent = Cm(1)
            answer.add_run(_xml_safe(f"Reply from {_one_line(reply.author)}:") + " ").bold = True
            answer.add_run(_xml_safe(_one_line(reply.text)))


# ---- comments --------------------------------------------------------------------------------

def _span(comment: ExportComment) -> str:
    if comment.end is None:
        return _clock(comment.start)
    return f"{_clock(comment.start)}–{_clock(comment.end)}"


def _comment_head(comment: ExportComment) -> str:
    """``[00:12:34–00:13:00] Tess Morgan (care team) #rupture #homework:``"""
    tags = "".join(f" #{_one_line(tag)}" for tag in comment.tags)
    return f"[{_span(comment)}] {_one_line(comment.author)} ({comment.scope}){tags}:"


def _comment_lines(comments: Sequence[ExportComment]) -> list[str]:
    """The "Comments" section of the plain formats, one line per comment and per reply."""
    lines = ["Comments", ""]
    if not comments:
        return [*lines, NO_COMMENTS, ""]
    for comment in sorted(comments, key=lambda c: c.start):
        lines.append(f"{_comment_head(comment)} {_one_line(comment.text)}")
        lines += [f"    Reply from {_one_line(r.author)}: {_one_line(r.text)}"
                  for r in comment.replies]
    return [*lines, ""]


def _vtt_note(comment: ExportComment) -> list[str]:
    """A NOTE block: no blank line inside (it would end the block) and no "-->" (it would
    start a cue)."""
    lines = [f"NOTE Comment {_comment_head(comment)}", _one_line(comment.text)]
    lines += [f"Reply from {_one_line(r.author)}: {_one_line(r.text)}" for r in comment.replies]
    return [line.replace("-->", "->") for line in lines]


def _marked_words(segment: Segment) -> bool:
    """Mark words only when they still spell the text: after a correction the words are stale."""
    if not any(w.probability < LOW_CONFIDENCE for w in segment.words):
        return False
    return "".join(w.text for w in segment.words).strip() == segment.text.strip()


def _with_speaker(segment: Segment) -> str:
    text = _one_line(segment.text)
    return f"{_one_line(segment.speaker)}: {text}" if segment.speaker else text


def _clock(seconds: float, millis_separator: str | None = None) -> str:
    """``HH:MM:SS`` (plus ``.mmm`` or ``,mmm``), computed from whole milliseconds so 59.9996 s
    becomes 00:01:00.000 rather than 00:00:60.000."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    if millis_separator is None:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{millis_separator}{millis:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in VTT and SRT; a segment is always one line.
    return _WHITESPACE.sub(" ", text).strip()


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)
