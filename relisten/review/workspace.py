"""The review workspace: one recording's player, timeline, transcript and comments.

Both the staff session page and the recording page (the one clients and deep links use) show it,
built by `workspace_context`. A 50-minute session has about 700 passages and 7,000 words, so the
transcript is built here in a fixed number of queries (plain value rows, no model instances per
word) and its markup is written in Python with each piece escaped once, instead of thousands of
template-tag calls. Word timings travel beside it as one compact JSON array for the player
script; the browser never asks the server for anything per word.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.safestring import SafeString, mark_safe

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.audit.log import record_read
from relisten.clients.models import Client, TherapySession
from relisten.fidelity.rating import rating_context
from relisten.lib.asr import export as asr_export
from relisten.lib.asr.types import LOW_CONFIDENCE
from relisten.recordings.models import Kind, Recording
from relisten.review.comments import comments_context, transcript_of
from relisten.transcripts.models import (
    Correction,
    RunState,
    Segment,
    Speaker,
    Transcript,
    TranscriptRun,
    Word,
)
from relisten.transcripts.search import clock

ACTIVE_STATES = frozenset({RunState.QUEUED, RunState.RUNNING})
SPEEDS = ("0.75", "1", "1.25", "1.5", "1.75", "2")
# Distinct speaker colours (workspace.css .spk-0 … .spk-5), each at least 5.4:1 on the page's
# backgrounds; a seventh speaker reuses the first colour but keeps its name.
SPEAKER_COLOURS = 6
LOW_TITLE = "The recogniser was unsure of this word"
# Stands in for a passage's id in the correction form's address; the player script swaps it.
SEGMENT_PLACEHOLDER = uuid.UUID(int=0)
MAX_SECONDS = 10 * 3600


@dataclass(frozen=True)
class SpeakerChip:
    speaker: Speaker
    colour: int


@dataclass(frozen=True)
class Editing:
    """The correction form opened without JavaScript (`?edit=<passage>`)."""

    segment_id: str
    action: str
    text: str
    speaker_id: str
    clock: str


@dataclass(frozen=True)
class TranscriptMarkup:
    html: SafeString
    # For json_script: s = [start, end] per passage, w = word starts per passage (matching the
    # passage's word <span>s; empty once corrected), k = speaker position or -1,
    # speakers = speaker ids in that order.
    timings: dict[str, Any]
    segment_count: int
    word_count: int
    editing: Editing | None = None

    def timings_script(self) -> SafeString:
        """The timings as `<script id="ws-data" type="application/json">`, as json_script
        writes it but without the spaces after commas (about 14,000 of them in a 50-minute
        session)."""
        data = json.dumps(self.timings, separators=(",", ":"))
        # Only numbers and ids today; escaped anyway, as json_script does, so that no value
        # can ever close the script element.
        data = data.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
        return mark_safe(  # noqa: S308 - JSON with <, > and & escaped
            f'<script id="ws-data" type="application/json">{data}</script>')


@dataclass(frozen=True)
class Workspace:
    recording: Recording
    session: TherapySession
    client: Client
    is_client: bool
    can_treat: bool
    transcript: Transcript | None
    run: TranscriptRun | None
    active: bool
    media_url: str
    start_at: float | None
    duration: float
    status_url: str
    page_url: str
    here: str  # this page's address (with ?r= on the session page): links and forms return here
    speakers: list[SpeakerChip] = field(default_factory=list)
    markup: TranscriptMarkup | None = None
    edit_url: str = ""
    speeds: tuple[str, ...] = SPEEDS
    formats: tuple[str, ...] = tuple(asr_export.FORMATS)

    @property
    def duration_clock(self) -> str:
        return clock(self.duration)

    @property
    def duration_attr(self) -> str:
        """Seconds with a dot whatever the language, for data- and aria- attributes."""
        return f"{self.duration:.2f}"

    @property
    def is_video(self) -> bool:
        return self.recording.kind == Kind.VIDEO


def seconds_param(raw: str | None) -> float | None:
    """A `?t=` moment: a number of seconds within ten hours, anything else ignored."""
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return round(value, 2) if value is not None and 0 <= value < MAX_SECONDS else None


def workspace_context(
    request: HttpRequest, user: User, recording: Recording, *, here: str | None = None,
    relationship: str | None = None,
) -> dict[str, Any]:
    """Everything `review/_workspace.html` needs, in a fixed number of queries.

    `recording` must come through relisten.access. Showing it is a read of the client's record
    (the transcript's, once there is one), so it is audited here for both pages. `here` is the
    page's own address when it is not the request path (the session page adds `?r=`). A
    caller that prefetched `recording.runs` or selected `recording.transcript` spares those
    queries, and one that knows `access.relationship_to(user, client)` passes it.
    """
    session = recording.session
    client = session.episode.client
    relationship = relationship or access.relationship_to(user, client)
    transcript = transcript_of(recording)
    record_read(actor=user, client=client, target=transcript or recording, role=relationship)
    can_treat = access.recordings_for_user(user, Act.TREAT).filter(pk=recording.pk).exists()
    latest = recording.runs.first()
    page_url = reverse("transcripts:page", kwargs={"recording_id": recording.public_id})
    here = here or request.path
    start_at = seconds_param(request.GET.get("t"))
    media_url = reverse("recordings:media", kwargs={"recording_id": recording.public_id})
    if start_at is not None:
        media_url += f"#t={start_at}"  # a media fragment: the player starts at the moment
    speakers = list(transcript.speakers.all()) if transcript else []
    chips = [SpeakerChip(s, n % SPEAKER_COLOURS) for n, s in enumerate(speakers)]
    edit_url = ""
    if transcript and can_treat:
        edit_url = reverse("transcripts:edit_segment", kwargs={
            "transcript_id": transcript.public_id, "segment_id": SEGMENT_PLACEHOLDER})
    markup = (
        build_transcript(transcript, chips, here=here, can_treat=can_treat,
                         edit_url=edit_url, editing=request.GET.get("edit", ""))
        if transcript else None
    )
    workspace = Workspace(
        recording=recording, session=session, client=client,
        is_client=relationship == "client", can_treat=can_treat, transcript=transcript,
        run=latest, active=latest is not None and latest.state in ACTIVE_STATES,
        media_url=media_url, start_at=start_at,
        duration=float(recording.duration_s or (transcript.duration_s if transcript else 0)),
        status_url=reverse("api:get_transcription_status",
                           kwargs={"recording_id": recording.public_id}),
        page_url=page_url, here=here, speakers=chips, markup=markup, edit_url=edit_url,
    )
    comments = comments_context(user, recording)
    return {"ws": workspace, "recording": recording, "comments": comments,
            # The rating panel (issue 6): the comments it can link come from the panel above.
            "rating": rating_context(user, recording, can_treat=can_treat, back=here,
                                     comments=[t.root.comment for t in comments["threads"]])}


# ---- the transcript's markup -------------------------------------------------------------------

SegmentRow = tuple[int, uuid.UUID, int | None, float, float, str]
WordRow = tuple[int, float, str, float]


def _segment_rows(transcript: Transcript) -> list[SegmentRow]:
    return list(
        Segment.objects.filter(transcript=transcript).order_by("index")
        .values_list("id", "public_id", "speaker_id", "start", "end", "text")
    )


@dataclass(frozen=True)
class _PassageWords:
    """One passage's words: their text run together (to compare with the passage's text),
    their markup, and their starts."""

    text: str
    html: str
    starts: list[float]


def _words_by_segment(transcript: Transcript) -> dict[int, _PassageWords]:
    """Every word of the transcript in one query, made into markup as the rows arrive (one
    pass over 7,000 plain rows, no model instances and no grouping objects per word)."""
    rows: Iterable[WordRow] = (
        Word.objects.filter(segment__transcript=transcript).order_by("segment_id", "index")
        .values_list("segment_id", "start", "text", "probability")
    )
    markup = _WordMarkup()
    found: dict[int, _PassageWords] = {}
    current: int | None = None
    texts: list[str] = []
    pieces: list[str] = []
    starts: list[float] = []

    def close() -> None:
        if current is not None:
            # The first word's leading space goes: the passage starts with its first word.
            found[current] = _PassageWords("".join(texts), "".join(pieces).lstrip(), starts)

    for segment_id, start, text, probability in rows:
        if segment_id != current:
            close()
            current, texts, pieces, starts = segment_id, [], [], []
        texts.append(text)
        pieces.append(markup[text, probability < LOW_CONFIDENCE])
        starts.append(round(start, 2))
    close()
    return found


def _corrections_by_segment(transcript: Transcript) -> dict[int, list[Correction]]:
    found: dict[int, list[Correction]] = defaultdict(list)
    for correction in (Correction.objects.filter(segment__transcript=transcript)
                       .select_related("by").order_by("at", "id")):
        found[correction.segment_id].append(correction)
    return found


class _WordMarkup(dict[tuple[str, bool], str]):
    """Each distinct word's markup (its leading space, then the word in a <span>), escaped once:
    a session says the same few hundred words thousands of times."""

    def __missing__(self, key: tuple[str, bool]) -> str:
        raw, low = key
        word = raw.lstrip()
        space = raw[: len(raw) - len(word)]
        text = escape(word, quote=False)
        if low:
            made = f'{space}<span class="low" title="{LOW_TITLE}">{text}</span>'
        else:
            made = f"{space}<span>{text}</span>"
        self[key] = made
        return made


def _words_html(words: _PassageWords | None, text: str) -> tuple[str, list[float]]:
    """The passage's words as <span>s with their starts, doubtful ones flagged; or its plain
    text once corrected (the recogniser's words no longer spell it, and marking stale words
    would point at the wrong place)."""
    if words is None or words.text.strip() != text.strip():
        return escape(text, quote=False), []
    return words.html, words.starts


def _history_html(corrections: Sequence[Correction], names: dict[str, str]) -> str:
    """Corrections oldest first; speaker changes are stored as labels and shown as the
    speakers' current names, so a later rename reads consistently."""
    items = []
    for c in corrections:
        if c.field == "speaker":
            what = "speaker"
            old = names.get(c.old_value, c.old_value) or "no speaker"
            new = names.get(c.new_value, c.new_value) or "no speaker"
        else:
            what, old, new = "text", c.old_value, c.new_value
        when = format_date(timezone.localtime(c.at), "j M Y, H:i")
        items.append(
            f'<li><span class="muted">{when}, {escape(c.by.label())}, {what}:</span> '
            f"<del>{escape(old)}</del> → <ins>{escape(new)}</ins></li>"
        )
    count = len(corrections)
    plural = "" if count == 1 else "s"
    return (f'<details class="history"><summary>Corrected {count} time{plural}: show history'
            f'</summary><ol>{"".join(items)}</ol></details>')


def build_transcript(
    transcript: Transcript, chips: Sequence[SpeakerChip], *, here: str, can_treat: bool,
    edit_url: str, editing: str = "",
) -> TranscriptMarkup:
    """The passages as one block of <li> markup plus their timings, in three queries."""
    by_pk = {chip.speaker.pk: (n, chip) for n, chip in enumerate(chips)}
    names = {chip.speaker.label: chip.speaker.name for chip in chips}
    # Each speaker's label markup, made once rather than once per passage.
    who_of = {chip.speaker.pk: f'<span class="who spk-{chip.colour}">'
                                f"{escape(chip.speaker.name, quote=False)}</span>"
              for chip in chips}
    unknown = '<span class="who muted">Unknown speaker</span>'
    words = _words_by_segment(transcript)
    corrections = _corrections_by_segment(transcript)
    # Links stay on this page: `?t=` (and `?r=` on the session page, which shows one of several
    # recordings) relative to the current address.
    query = here.partition("?")[2]
    base = f"?{escape(query)}&amp;" if query else "?"
    html: list[str] = []
    spans: list[list[float]] = []
    words_starts: list[list[float]] = []
    speaker_of: list[int] = []
    opened: Editing | None = None
    total_words = 0
    # What every passage's markup shares, made once.
    time_link = f'<div class="seg-meta"><a class="seg-time" href="{base}t='
    edit_link = f' <a class="seg-edit" href="{base}edit='
    for pk, public_id, speaker_pk, start, end, text in _segment_rows(transcript):
        sid = str(public_id)
        position, chip = by_pk.get(speaker_pk, (-1, None)) if speaker_pk else (-1, None)
        who = who_of[chip.speaker.pk] if chip else unknown
        when = clock(start)
        edit = ""
        if can_treat:
            # Without JavaScript the link opens the page's one correction form for this passage;
            # with it, the player script moves that form here instead.
            edit = f'{edit_link}{sid}#correct-form">Correct</a>'
            if editing == sid:
                opened = Editing(sid, edit_url.replace(str(SEGMENT_PLACEHOLDER), sid), text,
                                 str(chip.speaker.public_id) if chip else "", when)
        body, starts = _words_html(words.get(pk), text)
        total_words += len(starts)
        history = _history_html(corrections[pk], names) if pk in corrections else ""
        colour = f" spk-{chip.colour}" if chip else ""
        html.append(
            f'<li class="seg{colour}" id="seg-{sid}">{time_link}{start:.2f}">{when}</a> '
            f'{who}{edit}</div><p class="seg-text">{body}</p>{history}</li>'
        )
        spans.append([round(start, 2), round(end, 2)])
        words_starts.append(starts)
        speaker_of.append(position)
    timings = {"s": spans, "w": words_starts, "k": speaker_of,
               "speakers": [str(chip.speaker.public_id) for chip in chips]}
    return TranscriptMarkup(html=mark_safe("".join(html)),  # noqa: S308 - every piece escaped
                            timings=timings, segment_count=len(spans), word_count=total_words,
                            editing=opened)


def session_page_address(session: TherapySession, recording: Recording) -> str:
    """The staff session page showing this recording."""
    url = reverse("clients:session", kwargs={"session_id": session.public_id})
    return f"{url}?{urlencode({'r': str(recording.public_id)})}"
