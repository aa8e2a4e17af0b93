"""The tus 1.0.0 upload server (https://tus.io/protocols/resumable-upload).

Extensions: creation, creation-defer-length, termination, expiration, checksum (sha256).
Signed-in session auth; PATCH/POST/DELETE need the X-CSRFToken header like any unsafe request
(Django's CsrfViewMiddleware). Bytes are encrypted as they arrive and only ciphertext is
staged (see relisten/recordings/actions.py for the crash-safety ordering).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.cache import never_cache

from relisten import access
from relisten.access import Act, get_session_for_user
from relisten.accounts.models import User
from relisten.recordings import actions
from relisten.recordings.models import Kind, Upload

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-defer-length,termination,expiration,checksum"
PATCH_CONTENT_TYPE = "application/offset+octet-stream"
READ_PIECE = 256 * 1024
_NUMBER = re.compile(r"^[0-9]{1,19}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Not part of tus: which recording an upload makes, so the session page's capture panel can
# follow it to READY (relisten/recordings/capture.py: capture_status). Same origin only.
RECORDING_HEADER = "Relisten-Recording"

View = Callable[..., HttpResponse]


def _plain(status: int, message: str = "") -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Tus-Resumable"] = TUS_VERSION
    return response


def _options() -> HttpResponse:
    response = _plain(204)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = EXTENSIONS
    response["Tus-Max-Size"] = str(settings.UPLOAD_MAX_BYTES)
    response["Tus-Checksum-Algorithm"] = "sha256"
    return response


def _precheck(request: HttpRequest) -> HttpResponse | None:
    """Version and sign-in checks every non-OPTIONS request shares."""
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        response = _plain(412, "This server speaks tus 1.0.0 (send Tus-Resumable: 1.0.0).")
        response["Tus-Version"] = TUS_VERSION
        return response
    if not request.user.is_authenticated:
        return _plain(401, "Please sign in to upload recordings.")
    return None


def _number(request: HttpRequest, header: str) -> int | None:
    raw = request.headers.get(header)
    if raw is None:
        return None
    if not _NUMBER.match(raw.strip()):
        raise actions.UploadRefused(f"{header} must be a whole number of bytes.")
    return int(raw.strip())


def parse_metadata(raw: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64value` pairs (the value may be absent)."""
    found: dict[str, str] = {}
    for pair in (part.strip() for part in raw.split(",")):
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or key in found or " " in value.strip():
            raise actions.UploadRefused("Upload-Metadata is not valid tus metadata.")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise actions.UploadRefused(
                f"Upload-Metadata value for {key!r} is not base64 text.") from None
    return found


def _encode_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in values.items() if value)


def _checksum(request: HttpRequest) -> bytes | None:
    raw = request.headers.get("Upload-Checksum")
    if raw is None:
        return None
    algorithm, _, value = raw.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise actions.UploadRefused("Only sha256 checksums are supported.")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise actions.UploadRefused("Upload-Checksum is not base64.") from None
    if len(digest) != 32:
        raise actions.UploadRefused("Upload-Checksum is not a sha256 digest.")
    return digest


def _refused(error: actions.UploadRefused) -> HttpResponse:
    return _plain(error.status, error.message)


def tus_endpoint(view: View) -> View:
    """OPTIONS answered for everyone; the rest prechecked, refusals turned into statuses."""
    @never_cache
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "OPTIONS":
            return _options()
        problem = _precheck(request)
        if problem is not None:
            return problem
        try:
            return view(request, *args, **kwargs)
        except actions.UploadRefused as error:
            return _refused(error)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _upload_url(request: HttpRequest, upload: Upload) -> str:
    return request.build_absolute_uri(reverse("recordings:upload", args=[upload.public_id]))


@tus_endpoint
def upload_create(request: HttpRequest) -> HttpResponse:
    """POST: create an upload for a therapy session the user treats, with the client's consent."""
    if request.method != "POST":
        return _plain(405, "Use POST to start an upload.")
    user = request.user
    assert isinstance(user, User)
    length = _number(request, "Upload-Length")
    deferred = request.headers.get("Upload-Defer-Length")
    if (length is None) == (deferred is None) or (deferred is not None and deferred != "1"):
        raise actions.UploadRefused(
            "Send either Upload-Length or Upload-Defer-Length: 1 (exactly one).")
    if length is not None and length > settings.UPLOAD_MAX_BYTES:
        raise actions.TooLarge(actions._too_large_message())
    metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
    kind = metadata.get("kind", "")
    if kind not in Kind.values:
        raise actions.UploadRefused("Upload-Metadata must name kind: audio or video.")
    expected = metadata.get("sha256", "").lower()
    if expected and not _SHA256_HEX.match(expected):
        raise actions.UploadRefused("The sha256 metadata must be 64 hexadecimal digits.")
    # Foreign or unknown sessions: Http404, audited as authz.denied by the access policy.
    session = get_session_for_user(user, metadata.get("session", ""), Act.TREAT)
    upload = actions.create_upload(actor=user, session=session, kind=kind, length=length,
                                   expected_sha256=expected)
    if length == 0:
        # Nothing will ever be PATCHed: complete it now (it will fail the media check kindly).
        actions.append_upload(actor=user, upload=upload, offset=0, body=iter(()),
                              body_length=0, checksum=None, new_length=None)
    response = _plain(201)
    response["Location"] = _upload_url(request, upload)
    response[RECORDING_HEADER] = str(upload.recording.public_id)
    response["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    return response


def _state_headers(response: HttpResponse, upload: Upload) -> HttpResponse:
    response["Upload-Offset"] = str(upload.offset)
    if upload.length is None:
        response["Upload-Defer-Length"] = "1"
    else:
        response["Upload-Length"] = str(upload.length)
    response["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    response[RECORDING_HEADER] = str(upload.recording.public_id)
    response["Cache-Control"] = "no-store"
    return response


@tus_endpoint
def upload(request: HttpRequest, upload_id: uuid.UUID) -> HttpResponse:
    """HEAD: how much arrived. PATCH: more bytes. DELETE: give up and remove everything."""
    method = request.method or ""
    override = request.headers.get("X-HTTP-Method-Override", "").upper()
    if method == "POST" and override in {"PATCH", "DELETE"}:
        method = override  # POST already passed the CSRF check PATCH/DELETE need
    user = request.user
    assert isinstance(user, User)
    if method == "HEAD":
        found = actions.resync_upload(access.get_upload_for_user(user, upload_id))
        recording = found.recording
        response = _state_headers(_plain(200), found)
        response["Upload-Metadata"] = _encode_metadata({
            "session": str(recording.session.public_id), "kind": recording.kind,
            "sha256": found.expected_sha256,
        })
        return response
    if method == "PATCH":
        return _patch(request, user, upload_id)
    if method == "DELETE":
        actions.terminate_upload(actor=user, upload=access.get_upload_for_user(user, upload_id))
        return _plain(204)
    return _plain(405, "Use HEAD, PATCH or DELETE on an upload.")


def _patch(request: HttpRequest, user: User, upload_id: uuid.UUID) -> HttpResponse:
    if request.content_type != PATCH_CONTENT_TYPE:
        return _plain(415, f"PATCH bodies must be sent as {PATCH_CONTENT_TYPE}.")
    offset = _number(request, "Upload-Offset")
    if offset is None:
        raise actions.UploadRefused("Upload-Offset is required.")
    found = access.get_upload_for_user(user, upload_id)
    body_length = _number(request, "Content-Length")
    result = actions.append_upload(
        actor=user, upload=found, offset=offset, body=_body(request),
        body_length=body_length, checksum=_checksum(request),
        new_length=_number(request, "Upload-Length"),
    )
    return _state_headers(_plain(204), result.upload)


def _body(request: HttpRequest) -> Iterator[bytes]:
    """The request body in pieces (never all of it in memory). A client that disconnects midway
    ends the body early; what did arrive is kept unless a checksum says otherwise."""
    while True:
        try:
            piece = request.read(READ_PIECE)
        except OSError:  # includes Django's UnreadablePostError and gunicorn's NoMoreData
            return
        if not piece:
            return
        yield piece
