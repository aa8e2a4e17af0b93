"""Playing recordings (with HTTP Range for seeking) and erasing them.

The media endpoint decrypts on the fly: every 64 KiB chunk is authenticated before any of its
bytes leave the server, and the response streams, so memory stays bounded whatever the size.
Refusals are the access policy's 404; nothing about the recording is revealed to a stranger.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.audit.log import record_event, record_read
from relisten.audit.models import AuditEvent, AuditHead
from relisten.lib.hashchain import GENESIS
from relisten.lib.vault.storage import ObjectMissing
from relisten.lib.vault.stream import IntegrityError, StreamReader
from relisten.recordings import vault
from relisten.recordings.erasure import erase_recording
from relisten.recordings.models import Recording
from relisten.web import signed_in_user as _user

logger = logging.getLogger(__name__)

# One "played" row per person and recording per quarter hour: a browser seeking through a
# session sends dozens of range requests, and the client's access log should read as one look.
PLAYED_EVENT = "recording.played"
PLAYED_WINDOW = dt.timedelta(minutes=15)

UNREADABLE = (
    "This recording cannot be played because it failed its integrity check. Nothing from it "
    "was shown. The problem has been written to the audit trail; please tell your clinic's "
    "administrator."
)



# ---- Range (RFC 9110 §14) --------------------------------------------------------------------

@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as Content-Range writes it

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The Range header is valid but no range in it overlaps the representation: 416."""


_SPEC = re.compile(r"^(\d*)-(\d*)$", re.ASCII)


def parse_range(header: str | None, length: int) -> ByteRange | None:
    """The one range to send, or None for the whole representation (200).

    A header that is absent, malformed or in another unit is ignored, as RFC 9110 requires.
    Several ranges are answered with the whole body (allowed, and far simpler than
    multipart/byteranges); Unsatisfiable is raised when no range overlaps the content.
    """
    if not header:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange | None] = []
    for raw in specs.split(","):
        match = _SPEC.match(raw.strip())
        if match is None or match.group(0) == "-":
            return None
        first, last = match.group(1), match.group(2)
        if first and last and int(last) < int(first):
            return None  # an invalid range-spec makes the whole header invalid
        ranges.append(_resolve(first, last, length))
    satisfiable = [found for found in ranges if found is not None]
    if not satisfiable:
        raise Unsatisfiable
    return satisfiable[0] if len(ranges) == 1 else None


def _resolve(first: str, last: str, length: int) -> ByteRange | None:
    """One range-spec against the content length, or None if it does not overlap it."""
    if not first:  # suffix: the last n bytes
        suffix = int(last)
        if suffix == 0 or length == 0:
            return None
        return ByteRange(max(0, length - suffix), length - 1)
    start = int(first)
    if start >= length:
        return None
    end = min(int(last), length - 1) if last else length - 1
    return ByteRange(start, end)


# ---- auditing a play -------------------------------------------------------------------------

def _recently_played(user: User, recording: Recording) -> bool:
    return AuditEvent.objects.filter(
        event_type=PLAYED_EVENT, actor_id=user.public_id, target_id=str(recording.public_id),
        at__gte=timezone.now() - PLAYED_WINDOW,
    ).exists()


def _audit_play(user: User, recording: Recording) -> None:
    """A `recording.played` row for the client's access log, at most once per window."""
    if _recently_played(user, recording):
        return  # the common case (a player seeking): a plain read, no write lock taken
    client = recording.session.episode.client
    with transaction.atomic():
        # Lock the audit head, then look again, so two range requests arriving together cannot
        # both write a row (SQLite's IMMEDIATE transactions queue on their own).
        AuditHead.objects.select_for_update().get_or_create(pk=1, defaults={"mac": GENESIS})
        if not _recently_played(user, recording):
            record_event(
                actor=user, event_type=PLAYED_EVENT, target=recording, client=client,
                clinic=client.clinic, actor_role=access.relationship_to(user, client),
            )


# ---- the media endpoint ----------------------------------------------------------------------

def _stream(reader: StreamReader, recording: Recording, start: int, end: int) -> Iterator[bytes]:
    """The plaintext of [start, end), chunk by verified chunk.

    A chunk that fails authentication is never sent: the failure is audited and the stream is
    aborted by re-raising, so the server drops the connection and the player sees a truncated
    response (the Content-Length promised more) instead of silently accepting a short file.
    """
    try:
        yield from reader.iter_range(start, end)
    except IntegrityError:
        vault.report_integrity_failure(recording, "chunk during playback")
        logger.error("recording %s: a chunk failed authentication during playback; "
                     "stream aborted", recording.public_id)
        raise


def _etag(recording: Recording) -> str:
    # A READY recording's bytes never change (erasing makes it unreachable), so its id is a
    # strong validator; it lets a player resume with If-Range.
    return f'"{recording.public_id}"'


def _unreadable() -> HttpResponse:
    return HttpResponse(UNREADABLE, status=500, content_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-store"})


@login_required
@require_http_methods(["GET", "HEAD"])
def media(request: HttpRequest, recording_id: str) -> HttpResponseBase:
    user = _user(request)
    recording = access.get_recording_for_user(user, recording_id)
    try:
        reader = vault.open_reader(recording)  # audits a wrapped-key or object failure itself
    except IntegrityError:
        return _unreadable()
    except ObjectMissing:
        vault.report_integrity_failure(recording, "object missing")
        logger.error("recording %s: its stored object is missing", recording.public_id)
        return _unreadable()
    length = reader.length
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        "ETag": _etag(recording),
        "Content-Disposition": "inline",  # never a file name: names often hold client names
    }
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != _etag(recording):
        range_header = None  # the client's copy is not this one: send it all
    try:
        wanted = parse_range(range_header, length)
    except Unsatisfiable:
        return HttpResponse(status=416, headers={**headers, "Content-Range": f"bytes */{length}"})
    if wanted is None:
        status, start, end = 200, 0, length
    else:
        status, start, end = 206, wanted.start, wanted.end + 1
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{length}"
    headers["Content-Length"] = str(end - start)
    content_type = recording.content_type or "application/octet-stream"
    if request.method == "HEAD":
        return HttpResponse(status=status, content_type=content_type, headers=headers)
    _audit_play(user, recording)
    return StreamingHttpResponse(_stream(reader, recording, start, end), status=status,
                                 content_type=content_type, headers=headers)


# ---- erasing ---------------------------------------------------------------------------------

class EraseForm(forms.Form):
    confirm = forms.BooleanField(
        required=True,
        label="I understand that this recording will be erased for good and cannot be recovered.",
        error_messages={"required": "Please tick the box to confirm you want to erase it."},
    )


@login_required
@require_http_methods(["GET", "POST"])
def erase(request: HttpRequest, recording_id: str) -> HttpResponse:
    user = _user(request)
    recording = access.get_recording_for_user(user, recording_id, Act.TREAT)
    session = recording.session
    if request.method == "GET":
        # The page names the client and session, so opening it is a look at the record.
        client = session.episode.client
        record_read(actor=user, client=client, target=recording,
                    role=access.relationship_to(user, client))
    form = EraseForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        erase_recording(actor=user, recording=recording)
        messages.success(request, "The recording was erased. Nobody can play it any more, and "
                                  "no backup of it can be decrypted.")
        return redirect("clients:session", session_id=session.public_id)
    return render(request, "recordings/erase.html",
                  {"recording": recording, "session": session, "form": form})
