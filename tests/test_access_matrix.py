"""The access-policy matrix: every route that takes an object id, for every persona.

Routes are discovered from the URL resolver, so a new id-taking route fails
`test_every_id_route_has_rows` until someone writes down who may use it. For each row and
persona the exact status is asserted: 200 (or the action's redirect) where allowed, 403 where
the persona may see but not change, 404 for anything foreign — byte-for-byte the same answer
as for an id that does not exist, and with an `authz.denied` audit row — and the sign-in
redirect (API: 401) for anonymous visitors.

The demo cast is built once for this module inside a transaction; every test runs in its own
savepoint (pytest-django's `db`), so the POST rows cannot leak into each other.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from django.db import transaction
from django.test import Client as HttpClient
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter, UUIDConverter

from relisten.accounts.models import Membership, Role, User
from relisten.audit.models import AuditEvent
from relisten.consent.models import ConsentText, Purpose
from relisten.core.personas import Cast, build_cast
from relisten.lib.vault.keys import new_keyring, save_keyring
from relisten.recordings import actions as recording_actions
from relisten.recordings import vault
from relisten.recordings.models import Kind, Recording, Upload
from relisten.review.models import Comment
from relisten.transcripts.models import Transcript
from tests.conftest import PASSWORD, sign_in
from tests.test_media_playback import make_recording
from tests.test_transcript_search import make_transcript

ANON = "anonymous"
PERSONAS = (
    "therapist_a", "therapist_b", "supervisor", "trainee", "client_user_a", "client_user_b",
    "researcher", "admin", "other_clinic_therapist", ANON,
)
SIGN_IN = "/accounts/sign-in/"
DENIAL_EVENTS = {"authz.denied", "authz.forbidden"}
# Namespaces whose pages show a client's clinical record (the portal is the client's own).
CLINICAL = {"clients", "api", "recordings", "transcripts", "review"}
# What a look at clinical content leaves in the client's access log (playing a recording is one,
# downloading a transcript another).
READ_EVENTS = {"record.viewed", "recording.played", "transcript.exported"}
CLIENTS = {"cora": "client_a", "colin": "client_b", "tomas": "trainee_client"}


# ---- discovering the routes ------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name", what reverse() takes
    route: str  # the full pattern, for messages
    converters: dict[str, Any]


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(part for part in (namespace, pattern.namespace or "") if part)
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            key = f"{namespace}:{pattern.name}" if namespace else str(pattern.name)
            yield Route(key, prefix + str(pattern.pattern), dict(pattern.pattern.converters))


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns))


def takes_object_id(route: Route) -> bool:
    return any(
        isinstance(conv, UUIDConverter | IntConverter) or name == "id" or name.endswith("_id")
        for name, conv in route.converters.items()
    )


def id_routes() -> dict[str, Route]:
    return {route.key: route for route in all_routes() if takes_object_id(route)}


# ---- the expectation table -------------------------------------------------------------------

Kwargs = Callable[[Cast], dict[str, Any]]
Data = Callable[[Cast], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    route: str  # "namespace:name"
    target: str  # whose object, for test ids
    kwargs: Kwargs
    expect: dict[str, int]
    method: str = "GET"  # also HEAD, PATCH, DELETE (tus)
    data: Data = field(default=lambda cast: {})
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = ""  # PATCH: data() must then hold {"body": bytes}

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api:")


def expect(
    allowed: dict[str, int], *, api: bool = False, anon: int | None = None
) -> dict[str, int]:
    """Everyone not named gets 404; anonymous visitors are sent to sign in (API: 401)."""
    unknown = set(allowed) - set(PERSONAS)
    assert not unknown, unknown
    table = {persona: allowed.get(persona, 404) for persona in PERSONAS}
    table[ANON] = anon if anon is not None else (401 if api else 302)
    return table


def _cora(cast: Cast) -> dict[str, Any]:
    return {"client_id": cast.client_a.public_id}


def _colin(cast: Cast) -> dict[str, Any]:
    return {"client_id": cast.client_b.public_id}


def _tomas(cast: Cast) -> dict[str, Any]:
    return {"client_id": cast.trainee_client.public_id}


def _episode(cast: Cast, which: str) -> dict[str, Any]:
    client = cast.client_a if which == "a" else cast.client_b
    return {"episode_id": client.episodes.get().public_id}


def _session(cast: Cast, which: str) -> dict[str, Any]:
    client = cast.client_a if which == "a" else cast.client_b
    return {"session_id": client.episodes.get().sessions.get(number=1).public_id}


def _record(cast: Cast, which: str) -> dict[str, Any]:
    return {"record_id": (cast.client_a if which == "a" else cast.client_b).public_id}


def _membership(cast: Cast, which: str) -> dict[str, Any]:
    if which == "demo":
        found = Membership.objects.get(user=cast.researcher, clinic=cast.clinic)
    else:
        found = Membership.objects.get(user=cast.other_clinic_therapist, clinic=cast.other_clinic,
                                       role=Role.THERAPIST)
    return {"membership_id": found.public_id}


def _text(cast: Cast, which: str) -> dict[str, Any]:
    clinic = cast.clinic if which == "demo" else cast.other_clinic
    text = ConsentText.objects.get(clinic=clinic, purpose=Purpose.RESEARCH, version=1)
    return {"text_id": text.public_id}


def _clinic(cast: Cast, which: str) -> dict[str, Any]:
    return {"clinic_id": (cast.clinic if which == "demo" else cast.other_clinic).public_id}


def _pick(by: Callable[[Cast, str], dict[str, Any]], which: str) -> Kwargs:
    return lambda cast: by(cast, which)


TODAY = dt.date.today().isoformat()
LATER = (dt.datetime.now() + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
NEW_PASSWORD = "a-long-enough-passphrase-42"

# Who may look at (VIEW) or change (TREAT) Cora's record: her therapist; her supervisor may look.
A_VIEW = expect({"therapist_a": 200, "supervisor": 200})
A_TREAT = expect({"therapist_a": 200, "supervisor": 403})
A_TREAT_POST = expect({"therapist_a": 302, "supervisor": 403})
# Colin's therapist has no supervisor on the episode, so only Ben sees it.
B_VIEW = expect({"therapist_b": 200})
B_TREAT = expect({"therapist_b": 200})


def _clinical_rows() -> list[Row]:
    rows: list[Row] = []
    view_routes: list[tuple[str, Callable[[Cast, str], dict[str, Any]] | None]] = [
        ("clients:detail", None), ("clients:consent", None), ("clients:access_log", None),
        ("clients:episode", _episode), ("clients:session", _session),
    ]
    treat_routes: list[tuple[str, Callable[[Cast, str], dict[str, Any]] | None]] = [
        ("clients:edit", None), ("clients:episode_new", None), ("clients:discharge", _episode),
        ("clients:session_new", _episode), ("clients:session_edit", _session),
    ]
    for routes, a_expect, b_expect in ((view_routes, A_VIEW, B_VIEW),
                                       (treat_routes, A_TREAT, B_TREAT)):
        for name, by in routes:
            rows.append(Row(name, "cora", _pick(by, "a") if by else _cora, a_expect))
            rows.append(Row(name, "colin", _pick(by, "b") if by else _colin, b_expect))
    # Cora can already sign in, so her therapist is sent back to her page; Tomas cannot yet.
    rows += [
        Row("clients:portal_access", "cora", _cora,
            expect({"therapist_a": 302, "supervisor": 403})),
        Row("clients:portal_access", "tomas", _tomas,
            expect({"trainee": 200, "supervisor": 403})),
        Row("clients:portal_access", "tomas", _tomas, expect({"trainee": 302, "supervisor": 403}),
            method="POST", data=lambda c: {"username": "tomas.client", "password": NEW_PASSWORD}),
    ]
    # The writes themselves: the supervisor may look but never change.
    rows += [
        Row("clients:edit", "cora", _cora, A_TREAT_POST, method="POST",
            data=lambda c: {"given_name": "Cora", "family_name": "Client", "reference": "R-1"}),
        Row("clients:consent", "cora", _cora, A_TREAT_POST, method="POST",
            data=lambda c: {"purpose": Purpose.RESEARCH, "decision": "refuse",
                            "text_version": 1, "paper_form_signed": "on"}),
        Row("clients:episode_new", "cora", _cora, A_TREAT_POST, method="POST",
            data=lambda c: {"start_date": TODAY}),
        Row("clients:discharge", "cora", lambda c: _episode(c, "a"), A_TREAT_POST,
            method="POST", data=lambda c: {"end_date": TODAY}),
        Row("clients:session_new", "cora", lambda c: _episode(c, "a"), A_TREAT_POST,
            method="POST", data=lambda c: {"scheduled_at": LATER, "modality": "telehealth"}),
        Row("clients:session_edit", "cora", lambda c: _session(c, "a"), A_TREAT_POST,
            method="POST", data=lambda c: {"scheduled_at": LATER, "modality": "in_person",
                                           "attendance": "attended"}),
    ]
    return rows


def _admin_rows() -> list[Row]:
    rows: list[Row] = []
    # Otto is admin (and therapist) of the other clinic: each admin sees only their own clinic.
    for which, admin in (("demo", "admin"), ("other", "other_clinic_therapist")):
        def clinic(c: Cast, which: str = which) -> dict[str, Any]:
            return _clinic(c, which)

        def text(c: Cast, which: str = which) -> dict[str, Any]:
            return _text(c, which)

        def membership(c: Cast, which: str = which) -> dict[str, Any]:
            return _membership(c, which)

        rows += [
            Row("accounts:clinic_people", which, clinic, expect({admin: 200})),
            Row("accounts:clinic_people", which, clinic, expect({admin: 302}), method="POST",
                data=lambda c: {"username": "nina.new", "display_name": "Nina New",
                                "roles": ["therapist"], "password": NEW_PASSWORD}),
            Row("accounts:consent_texts", which, clinic, expect({admin: 200})),
            Row("accounts:consent_text_edit", which, text, expect({admin: 200})),
            Row("accounts:consent_text_edit", which, text, expect({admin: 302}), method="POST",
                data=lambda c: {"body": "New wording for research use, version two."}),
            Row("accounts:membership_revoke", which, membership, expect({admin: 302}),
                method="POST"),
            Row("accounts:membership_add_role", which, membership, expect({admin: 302}),
                method="POST", data=lambda c: {"role": "trainee"}),
        ]
    # A client's portal role is not the admin's to see or change: it says who is in therapy.
    def client_role(c: Cast) -> dict[str, Any]:
        found = Membership.objects.get(user=c.client_user_a, role=Role.CLIENT)
        return {"membership_id": found.public_id}

    rows += [
        Row("accounts:membership_revoke", "cora-client-role", client_role, expect({}),
            method="POST"),
        Row("accounts:membership_add_role", "cora-client-role", client_role, expect({}),
            method="POST", data=lambda c: {"role": "therapist"}),
    ]
    return rows


def _portal_rows() -> list[Row]:
    rows: list[Row] = []
    for which, me in (("a", "client_user_a"), ("b", "client_user_b")):
        def record(c: Cast, which: str = which) -> dict[str, Any]:
            return _record(c, which)

        def decide(c: Cast, which: str = which) -> dict[str, Any]:
            return {**_record(c, which), "purpose": Purpose.RESEARCH.value}

        target = "cora" if which == "a" else "colin"
        rows += [
            Row("portal:record", target, record, expect({me: 200})),
            Row("portal:consent", target, record, expect({me: 200})),
            Row("portal:access_log", target, record, expect({me: 200})),
            Row("portal:consent_decide", target, decide, expect({me: 302}), method="POST",
                data=lambda c: {"decision": "grant", "text_version": 1}),
        ]
    return rows


def _api_rows() -> list[Row]:
    return [
        Row("api:get_client", "cora", _cora, expect({"therapist_a": 200, "supervisor": 200},
                                                    api=True)),
        Row("api:get_client", "colin", _colin, expect({"therapist_b": 200}, api=True)),
        Row("api:get_client_consent", "cora", _cora,
            expect({"therapist_a": 200, "supervisor": 200}, api=True)),
        Row("api:get_client_consent", "colin", _colin, expect({"therapist_b": 200}, api=True)),
        Row("api:get_session", "cora", lambda c: _session(c, "a"),
            expect({"therapist_a": 200, "supervisor": 200}, api=True)),
        Row("api:get_session", "colin", lambda c: _session(c, "b"),
            expect({"therapist_b": 200}, api=True)),
    ]


def _recording(cast: Cast, which: str) -> dict[str, Any]:
    client = cast.client_a if which == "a" else cast.client_b
    found = Recording.objects.get(session__episode__client=client, state="ready")
    return {"recording_id": found.public_id}


def _upload(cast: Cast, which: str) -> dict[str, Any]:
    client = cast.client_a if which == "a" else cast.client_b
    return {"upload_id": Upload.objects.get(recording__session__episode__client=client).public_id}


TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = "application/offset+octet-stream"


def _recording_rows() -> list[Row]:
    # Cora has consented to supervision review and to seeing her own recordings; Colin has not.
    a_play = expect({"therapist_a": 200, "supervisor": 200, "client_user_a": 200})
    a_erase = expect({"therapist_a": 200, "supervisor": 403, "client_user_a": 403})
    a_erase_post = expect({"therapist_a": 302, "supervisor": 403, "client_user_a": 403})
    # Uploads belong to the therapist who started them; the tus server answers 401, not a
    # sign-in redirect, to a visitor who is not signed in.
    a_upload = expect({"therapist_a": 200}, anon=401)
    a_upload_changed = expect({"therapist_a": 204}, anon=401)
    return [
        Row("recordings:media", "cora", _pick(_recording, "a"), a_play),
        Row("recordings:media", "colin", _pick(_recording, "b"), expect({"therapist_b": 200})),
        Row("recordings:erase", "cora", _pick(_recording, "a"), a_erase),
        Row("recordings:erase", "colin", _pick(_recording, "b"), expect({"therapist_b": 200})),
        Row(
            "recordings:erase",
            "cora",
            _pick(_recording, "a"),
            a_erase_post,
            method="POST",
            data=lambda c: {"confirm": "on"},
        ),
        Row("recordings:upload", "cora", _pick(_upload, "a"), a_upload, method="HEAD", headers=TUS),
        # capture panel (issue 5): the states of one's own uploads to a session one treats.
        Row("recordings:capture_status", "cora", lambda c: _session(c, "a"),
            expect({"therapist_a": 200, "supervisor": 403})),
        Row("recordings:capture_status", "colin", lambda c: _session(c, "b"),
            expect({"therapist_b": 200})),
        Row(
            "recordings:upload",
            "colin",
            _pick(_upload, "b"),
            expect({"therapist_b": 200}, anon=401),
            method="HEAD",
            headers=TUS,
        ),
        Row(
            "recordings:upload",
            "cora",
            _pick(_upload, "a"),
            a_upload_changed,
            method="PATCH",
            headers={**TUS, "Upload-Offset": "0"},
            content_type=PATCH_TYPE,
            data=lambda c: {"body": b"first bytes of a recording"},
        ),
        Row(
            "recordings:upload",
            "cora",
            _pick(_upload, "a"),
            a_upload_changed,
            method="DELETE",
            headers=TUS,
        ),
    ]


def _transcript(cast: Cast, which: str) -> Transcript:
    client = cast.client_a if which == "a" else cast.client_b
    return Transcript.objects.get(recording__session__episode__client=client)


def _transcript_kwargs(which: str, **extra: str) -> Kwargs:
    return lambda cast: {"transcript_id": _transcript(cast, which).public_id, **extra}


def _segment(which: str) -> Kwargs:
    def kwargs(cast: Cast) -> dict[str, Any]:
        transcript = _transcript(cast, which)
        return {"transcript_id": transcript.public_id,
                "segment_id": transcript.segments.get(index=1).public_id}

    return kwargs


def _speaker(which: str) -> Kwargs:
    def kwargs(cast: Cast) -> dict[str, Any]:
        transcript = _transcript(cast, which)
        return {"transcript_id": transcript.public_id,
                "speaker_id": transcript.speakers.get(label="S2").public_id}

    return kwargs


def _correction(which: str) -> Data:
    def data(cast: Cast) -> dict[str, Any]:
        segment = _transcript(cast, which).segments.get(index=1)
        speaker = segment.speaker
        return {"text": "A corrected line.",
                "speaker": str(speaker.public_id) if speaker else ""}

    return data


def _transcript_rows() -> list[Row]:
    # A transcript is visible exactly when its recording is: Cora's to her therapist, her
    # supervisor (supervision consent) and herself (client access consent); only her
    # therapist may correct it. Colin gave neither consent, so only Ben sees his.
    a_read = expect({"therapist_a": 200, "supervisor": 200, "client_user_a": 200})
    a_change = expect({"therapist_a": 302, "supervisor": 403, "client_user_a": 403})
    b_read = expect({"therapist_b": 200})
    b_change = expect({"therapist_b": 302})
    rows: list[Row] = []
    for which, target, read, change in (("a", "cora", a_read, a_change),
                                        ("b", "colin", b_read, b_change)):
        rows += [
            Row("transcripts:page", target, _pick(_recording, which), read),
            Row("transcripts:export", target, _transcript_kwargs(which, fmt="txt"), read),
            Row("transcripts:export", target, _transcript_kwargs(which, fmt="docx"), read),
            Row("api:get_transcription_status", target, _pick(_recording, which),
                expect({p: 200 for p, code in read.items() if code == 200}, api=True)),
            Row("transcripts:edit_segment", target, _segment(which), change, method="POST",
                data=_correction(which)),
            Row("transcripts:rename_speaker", target, _speaker(which), change, method="POST",
                data=lambda c: {"name": "Speaker two"}),
        ]
    return rows


def _sharing_rows() -> list[Row]:
    # Sharing a session (issue 5): only its treating therapist; the supervisor may look at the
    # session but not share it. Colin's episode has no supervisor, so his row shares with him.
    def demo(c: Cast) -> dict[str, Any]:
        return _clinic(c, "demo")

    return [
        Row("clients:session_sharing", "cora", lambda c: _session(c, "a"),
            expect({"therapist_a": 302, "supervisor": 403}), method="POST",
            data=lambda c: {"target": "supervision", "shared": "1"}),
        Row("clients:session_sharing", "colin", lambda c: _session(c, "b"),
            expect({"therapist_b": 302}), method="POST",
            data=lambda c: {"target": "client", "shared": "1"}),
        Row("accounts:clinic_sharing_default", "demo", demo, expect({"admin": 302}),
            method="POST", data=lambda c: {"share_by_default": "on"}),
    ]


# ---- time-stamped comments (issue 5, comments helper) ----------------------------------------

def _a_comment(which: str, scope: str) -> Kwargs:
    """A fresh comment by the treating therapist on the session's recording (each test runs in
    its own savepoint, so it exists for that test only)."""
    def kwargs(cast: Cast) -> dict[str, Any]:
        client = cast.client_a if which == "a" else cast.client_b
        author = cast.therapist_a if which == "a" else cast.therapist_b
        recording = Recording.objects.get(session__episode__client=client, state="ready")
        comment = Comment.objects.create(recording=recording, author=author, start=1.0,
                                         body="A remark about this moment.", scope=scope)
        return {"comment_id": comment.public_id}

    return kwargs


def _comment_rows() -> list[Row]:
    # The comments panel follows the recording (Cora: her therapist, her supervisor with her
    # supervision consent, herself as the session is shared with her). Within it, each
    # comment's scope decides: a care-team comment is not the client's to read or answer, a
    # private one is its author's alone; only the author edits or deletes.
    a_read = expect({"therapist_a": 200, "supervisor": 200, "client_user_a": 200})
    a_write = expect({"therapist_a": 302, "supervisor": 302, "client_user_a": 302})
    a_own = expect({"therapist_a": 302, "supervisor": 403, "client_user_a": 403})
    reply = {"body": "Thank you, noted."}
    note = {"at": "0:01", "body": "A note for later.", "scope": "private"}
    return [
        Row("review:comments", "cora", _pick(_recording, "a"), a_read),
        Row("review:comments", "colin", _pick(_recording, "b"), expect({"therapist_b": 200})),
        Row("review:comments", "cora", _pick(_recording, "a"), a_write, method="POST",
            data=lambda c: note),
        Row("review:comments", "colin", _pick(_recording, "b"), expect({"therapist_b": 302}),
            method="POST", data=lambda c: note),
        Row("review:comment_reply", "cora", _a_comment("a", "client"), a_write, method="POST",
            data=lambda c: reply),
        Row("review:comment_reply", "cora", _a_comment("a", "care_team"),
            expect({"therapist_a": 302, "supervisor": 302}), method="POST",
            data=lambda c: reply),
        Row("review:comment_reply", "cora", _a_comment("a", "private"),
            expect({"therapist_a": 302}), method="POST", data=lambda c: reply),
        Row("review:comment_reply", "colin", _a_comment("b", "client"),
            expect({"therapist_b": 302}), method="POST", data=lambda c: reply),
        Row("review:comment_edit", "cora", _a_comment("a", "client"), a_own, method="POST",
            data=lambda c: {"body": "A remark, reworded.", "tags": "rupture"}),
        Row("review:comment_edit", "cora", _a_comment("a", "care_team"),
            expect({"therapist_a": 302, "supervisor": 403}), method="POST",
            data=lambda c: {"body": "A remark, reworded."}),
        Row("review:comment_delete", "cora", _a_comment("a", "client"), a_own, method="POST"),
        Row("review:comment_delete", "colin", _a_comment("b", "care_team"),
            expect({"therapist_b": 302}), method="POST"),
    ]


# ---- supervision: assignments and sign-off (issue 6, supervision helper) ---------------------

def _supervised_session(which: str, *, signed_off: bool = False) -> Kwargs:
    """Session 1, shared for supervision (and maybe signed off) for this test only."""
    def kwargs(cast: Cast) -> dict[str, Any]:
        from relisten.supervision.models import SessionSignOff

        client = cast.client_a if which == "a" else cast.client_b
        session = client.episodes.get().sessions.get(number=1)
        session.shared_for_supervision = True
        session.save(update_fields=["shared_for_supervision"])
        if signed_off:
            SessionSignOff.objects.create(session=session, supervisor=cast.supervisor)
        return {"session_id": session.public_id}

    return kwargs


def _assignment(cast: Cast) -> dict[str, Any]:
    from relisten.supervision.models import SupervisionAssignment

    found = SupervisionAssignment.objects.get(supervisor=cast.supervisor,
                                              supervisee=cast.therapist_a)
    return {"assignment_id": found.public_id}


def _supervision_rows() -> list[Row]:
    # Assignments are the clinic admin's (no clinical content), each admin their own clinic's.
    # Only the episode's assigned supervisor signs a session off or reopens it; its therapist
    # can see the session, so is told no (403); everyone else gets the 404.
    def demo(c: Cast) -> dict[str, Any]:
        return _clinic(c, "demo")

    def other(c: Cast) -> dict[str, Any]:
        return _clinic(c, "other")

    return [
        Row("supervision:assignments", "demo", demo, expect({"admin": 200})),
        Row("supervision:assignments", "other", other, expect({"other_clinic_therapist": 200})),
        Row("supervision:assignments", "demo", demo, expect({"admin": 302}), method="POST",
            data=lambda c: {"supervisor": str(c.supervisor.public_id),
                            "supervisee": str(c.therapist_b.public_id)}),
        Row("supervision:assignment_end", "demo", _assignment, expect({"admin": 302}),
            method="POST"),
        Row("supervision:sign_off", "cora", _supervised_session("a"),
            expect({"supervisor": 302, "therapist_a": 403}), method="POST",
            data=lambda c: {"note": "Good use of reflections."}),
        Row("supervision:reopen", "cora", _supervised_session("a", signed_off=True),
            expect({"supervisor": 302, "therapist_a": 403}), method="POST"),
    ]


# ---- fidelity ratings (issue 6, rating helper) ----------------------------------------------

def _matrix_scale(cast: Cast) -> Any:
    """A small clinic scale (two Likert items), made once per test's savepoint."""
    from relisten.fidelity.models import Scale
    from relisten.lib.fidelity.scale import load_scale, to_definition

    document = to_definition(load_scale(
        "slug: matrix-scale\nname: Matrix scale\ncitation: tests\nlicence: CC0\n"
        "main_score: total\nsubscales: [{id: total, name: Total}]\nitems:\n"
        "  - {id: agenda, text: Sets an agenda, range: [0, 6], subscale: total}\n"
        "  - {id: warmth, text: Shows warmth, range: [0, 6], subscale: total}\n", "yaml"))
    scale, _ = Scale.objects.get_or_create(
        clinic=cast.clinic, slug="matrix-scale", version=1,
        defaults={"name": "Matrix scale", "definition": document, "source_sha256": "0" * 64})
    return scale


def _a_rating(which: str, rater: str, *, complete: bool = False,
              evidence: bool = False) -> Kwargs:
    """A rating of the session's recording by `rater`, every item answered (complete, or a
    draft ready to complete), or with `evidence` a piece of evidence on it; for this test only."""
    def kwargs(cast: Cast) -> dict[str, Any]:
        from relisten.fidelity.models import Evidence, Rating

        client = cast.client_a if which == "a" else cast.client_b
        recording = Recording.objects.get(session__episode__client=client, state="ready")
        rating = Rating.objects.create(
            session=recording.session, recording=recording, scale=_matrix_scale(cast),
            rater=getattr(cast, rater), role="supervisor" if rater == "supervisor" else "self",
            state="complete" if complete else "draft",
            answers={"agenda": 3, "warmth": 4})
        if evidence:
            found = Evidence.objects.create(rating=rating, item="agenda", start=1.0)
            return {"evidence_id": found.public_id}
        return {"rating_id": rating.public_id}

    return kwargs


def _rating_rows() -> list[Row]:
    # Rating follows the recording: the treating therapist rates themselves, the supervisor
    # (with Cora's supervision consent) rates as supervisor; Cora can play the recording but
    # ratings are not hers (403 on starting one, 404 on every rating). A draft is its rater's
    # alone; a complete rating is readable by the other rater (its page leads on to the
    # comparison) but changeable only by its rater (403).
    def scale(c: Cast) -> dict[str, Any]:
        return {"scale": str(_matrix_scale(c).public_id)}

    own_draft_a = _a_rating("a", "therapist_a")
    answer = {"item": "agenda", "value": "5"}
    return [
        Row("fidelity:rating_start", "cora", _pick(_recording, "a"),
            expect({"therapist_a": 302, "supervisor": 302, "client_user_a": 403}),
            method="POST", data=scale),
        Row("fidelity:rating_start", "colin", _pick(_recording, "b"),
            expect({"therapist_b": 302}), method="POST", data=scale),
        Row("fidelity:rating", "cora", own_draft_a, expect({"therapist_a": 200})),
        Row("fidelity:rating", "cora", _a_rating("a", "supervisor", complete=True),
            expect({"supervisor": 200, "therapist_a": 302})),
        Row("fidelity:rating", "cora", own_draft_a, expect({"therapist_a": 302}),
            method="POST", data=lambda c: {"item-agenda": "6", "complete": "1"}),
        Row("fidelity:rating_answer", "cora", own_draft_a, expect({"therapist_a": 200}),
            method="POST", data=lambda c: answer),
        Row("fidelity:rating_answer", "cora", _a_rating("a", "supervisor", complete=True),
            expect({"therapist_a": 403, "supervisor": 409}), method="POST",
            data=lambda c: answer),
        Row("fidelity:rating_answer", "colin", _a_rating("b", "therapist_b"),
            expect({"therapist_b": 200}), method="POST", data=lambda c: answer),
        Row("fidelity:rating_evidence", "cora", _a_rating("a", "supervisor"),
            expect({"supervisor": 302}), method="POST",
            data=lambda c: {"item": "agenda", "at": "0:01"}),
        Row("fidelity:rating_complete", "cora", own_draft_a, expect({"therapist_a": 302}),
            method="POST"),
        Row("fidelity:rating_reopen", "cora", _a_rating("a", "supervisor", complete=True),
            expect({"supervisor": 302, "therapist_a": 403}), method="POST"),
        Row("fidelity:evidence_delete", "cora", _a_rating("a", "therapist_a", evidence=True),
            expect({"therapist_a": 302}), method="POST"),
        Row("fidelity:compare", "cora", _pick(_session, "a"),
            expect({"therapist_a": 200, "supervisor": 200})),
        Row("fidelity:compare", "colin", _pick(_session, "b"), expect({"therapist_b": 200})),
    ]


# ---- fidelity scales (issue 6, SCALES) -------------------------------------------------------

def _shipped_scale(cast: Cast) -> dict[str, Any]:
    from relisten.fidelity.models import Scale

    found = Scale.objects.filter(clinic=None, slug="ctrs").order_by("-version").first()
    assert found is not None
    return {"scale_id": found.public_id}


def _demo_scale(cast: Cast) -> dict[str, Any]:
    """A fresh scale of the demo clinic (each test runs in its own savepoint)."""
    from relisten.fidelity.actions import save_scale_document
    from tests.test_fidelity_scales import SMALL

    scale, _ = save_scale_document(actor=cast.admin, clinic=cast.clinic, text=SMALL, fmt="yaml")
    return {"scale_id": scale.public_id}


def _scale_edit(cast: Cast) -> dict[str, Any]:
    from relisten.fidelity.builder import post_data_for
    from relisten.lib.fidelity.scale import load_scale
    from tests.test_fidelity_scales import SMALL

    return post_data_for(load_scale(SMALL, "yaml")) | {"name": "A small scale, reworded"}


def _as_file(kwargs: Kwargs, fmt: str) -> Kwargs:
    return lambda cast: kwargs(cast) | {"fmt": fmt}


def _scale_rows() -> list[Row]:
    # Scales hold no clinical content. Shipped ones: every clinic's staff (not researchers or
    # clients) may read and export them, nobody changes them (403). A clinic's own scale: its
    # staff read it, its admins and supervisors change it, other clinics get 404.
    staff = ("therapist_a", "therapist_b", "supervisor", "trainee", "admin")
    shipped_view = expect({**dict.fromkeys(staff, 200), "other_clinic_therapist": 200})
    shipped_change = expect({**dict.fromkeys(staff, 403), "other_clinic_therapist": 403})
    demo_view = expect(dict.fromkeys(staff, 200))
    demo_edit = expect({**dict.fromkeys(staff, 403), "admin": 200, "supervisor": 200})
    demo_change = expect({**dict.fromkeys(staff, 403), "admin": 302, "supervisor": 302})
    rows: list[Row] = []
    for target, kwargs, view in (("shipped-ctrs", _shipped_scale, shipped_view),
                                 ("demo-clinic", _demo_scale, demo_view)):
        rows += [
            Row("fidelity:scale", target, kwargs, view),
            Row("fidelity:scale_export", target, _as_file(kwargs, "yaml"), view),
            Row("fidelity:scale_export", target, _as_file(kwargs, "json"), view),
        ]
    rows += [
        Row("fidelity:scale_edit", "shipped-ctrs", _shipped_scale, shipped_change),
        Row("fidelity:scale_retire", "shipped-ctrs", _shipped_scale, shipped_change,
            method="POST", data=lambda c: {"retired": "1"}),
        Row("fidelity:scale_edit", "demo-clinic", _demo_scale, demo_edit),
        Row("fidelity:scale_edit", "demo-clinic", _demo_scale, demo_change, method="POST",
            data=_scale_edit),
        Row("fidelity:scale_retire", "demo-clinic", _demo_scale, demo_change, method="POST",
            data=lambda c: {"retired": "1"}),
    ]
    return rows


# ---- end fidelity scales ----


# ---- fidelity reports: calibration, fidelity over time (issue 6, STATS) ----------------------

def _report_rows() -> list[Row]:
    # Calibration compares a clinic's raters: its supervisors and admins (Otto administers the
    # other clinic), nobody else. Fidelity over time: an episode's page follows the episode
    # (its therapist, its assigned supervisor); a person's page is theirs and their assigned
    # supervisor's (Sam supervises Tess and Tara; Ben has no supervisor).
    def calibration(which: str, scale: Callable[[Cast], dict[str, Any]]) -> Kwargs:
        return lambda c: _clinic(c, which) | scale(c)

    def person(attr: str) -> Kwargs:
        return lambda c: {"user_id": getattr(c, attr).public_id}

    demo_staff = expect({"admin": 200, "supervisor": 200})
    other_admin = expect({"other_clinic_therapist": 200})
    rows = [
        Row("fidelity:calibration_index", "demo", _pick(_clinic, "demo"), demo_staff),
        Row("fidelity:calibration_index", "other", _pick(_clinic, "other"), other_admin),
        Row("fidelity:calibration", "demo-shipped", calibration("demo", _shipped_scale),
            demo_staff),
        Row("fidelity:calibration", "demo-own", calibration("demo", _demo_scale), demo_staff),
        Row("fidelity:calibration", "other-shipped", calibration("other", _shipped_scale),
            other_admin),
        Row("fidelity:calibration_reference", "demo-shipped",
            calibration("demo", _shipped_scale), demo_staff),
        Row("fidelity:calibration_reference", "other-shipped",
            calibration("other", _shipped_scale), other_admin),
    ]
    for name in ("fidelity:episode_trend", "fidelity:episode_trend_csv"):
        rows += [Row(name, "cora", _pick(_episode, "a"), A_VIEW),
                 Row(name, "colin", _pick(_episode, "b"), B_VIEW)]
    for name in ("fidelity:person_trend", "fidelity:person_trend_csv"):
        rows += [
            Row(name, "tess", person("therapist_a"),
                expect({"therapist_a": 200, "supervisor": 200})),
            Row(name, "ben", person("therapist_b"), expect({"therapist_b": 200})),
            Row(name, "tara", person("trainee"), expect({"trainee": 200, "supervisor": 200})),
        ]
    return rows


# ---- end fidelity reports ----


def _outcome_schedule_rows() -> list[Row]:
    """Questionnaire schedules (outcomes, SCHEDULE): the treating therapist sets an episode's
    plan, the supervisor may not; a client turns their own questionnaires off and on."""
    plan = {"every_n_sessions": "1", "reminder_days": "0, 3, 7", "link_valid_days": "14",
            "at_intake": "on", "at_end": "on", "follow_up_months": ["1", "3"]}
    rows = [
        Row("outcomes:episode_plan", "cora", lambda c: _episode(c, "a"), A_TREAT),
        Row("outcomes:episode_plan", "colin", lambda c: _episode(c, "b"), B_TREAT),
        Row("outcomes:episode_plan", "cora", lambda c: _episode(c, "a"), A_TREAT_POST,
            method="POST", data=lambda c: plan),
    ]
    for which, me in (("a", "client_user_a"), ("b", "client_user_b")):
        def record(c: Cast, which: str = which) -> dict[str, Any]:
            return _record(c, which)

        target = "cora" if which == "a" else "colin"
        rows += [
            Row("outcomes:opt_out_portal", target, record, expect({me: 200})),
            Row("outcomes:opt_out_portal", target, record, expect({me: 302}), method="POST",
                data=lambda c: {"choice": "stop"}),
        ]
    return rows


# ---- outcomes: answering questionnaires, alerts (issue 7, ANSWER) ----

PHQ9_ITEMS = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
              "44253-3", "44260-8")


def _due(cast: Cast, which: str) -> Any:
    """A PHQ-9 waiting for Cora or Colin, made inside the row's own savepoint."""
    from relisten.outcomes.builtin import load_builtin_instruments
    from relisten.outcomes.models import Due, Instrument

    load_builtin_instruments()
    client = cast.client_a if which == "a" else cast.client_b
    due, _ = Due.objects.get_or_create(
        episode=client.episodes.get(), instrument=Instrument.objects.get(code="phq-9",
                                                                          clinic=None),
        time_point="intake", session=None,
        defaults={"due_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)})
    return due


def _own_due(cast: Cast, which: str) -> dict[str, Any]:
    return {**_record(cast, which), "due_id": _due(cast, which).public_id}


def _alert(cast: Cast, which: str) -> dict[str, Any]:
    """A risk alert on Cora's or Colin's PHQ-9 (rows only, no audit: not the row's request)."""
    from relisten.outcomes.models import Alert, Response

    due = _due(cast, which)
    response, _ = Response.objects.get_or_create(
        due=due, defaults={"episode": due.episode, "instrument": due.instrument,
                           "time_point": "intake", "source": "link", "total": 1,
                           "band": "Minimal", "answered_at": dt.datetime.now(dt.UTC)})
    for link_id in PHQ9_ITEMS:
        response.items.get_or_create(link_id=link_id,
                                     defaults={"value": int(link_id == PHQ9_ITEMS[-1])})
    alert, _ = Alert.objects.get_or_create(response=response, kind="risk_item",
                                           defaults={"episode": due.episode})
    return {"alert_id": alert.public_id}


def _outcome_answer_rows() -> list[Row]:
    """The client answers only their own questionnaires; alerts follow the episode: its
    therapist sees and acknowledges, its supervisor sees but may not acknowledge."""
    every_answer = {link_id: "0" for link_id in PHQ9_ITEMS}
    rows = [
        Row("outcomes:alert", "cora", _pick(_alert, "a"), A_VIEW),
        Row("outcomes:alert", "colin", _pick(_alert, "b"), B_VIEW),
        Row("outcomes:alert", "cora", _pick(_alert, "a"), A_TREAT_POST, method="POST"),
        Row("outcomes:alert", "colin", _pick(_alert, "b"), expect({"therapist_b": 302}),
            method="POST"),
    ]
    for which, me in (("a", "client_user_a"), ("b", "client_user_b")):
        target = "cora" if which == "a" else "colin"
        rows += [
            Row("outcomes:portal_answer", target, _pick(_own_due, which), expect({me: 200})),
            Row("outcomes:portal_answer", target, _pick(_own_due, which), expect({me: 302}),
                method="POST", data=lambda c: every_answer),
            Row("outcomes:portal_draft", target, _pick(_own_due, which), expect({me: 200}),
                method="POST", data=lambda c: {PHQ9_ITEMS[0]: "1"}),
        ]
    return rows

# ---- end outcomes answering ----


# ---- outcomes: FHIR export and import (issue 7, FHIRWEB) ----

GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
GAD7_QR = {"resourceType": "QuestionnaireResponse", "status": "completed",
           "questionnaire": "http://loinc.org/q/69737-5", "authored": "2026-01-05T10:00:00Z",
           "item": [{"linkId": link_id, "answer": [{"valueInteger": 1}]}
                    for link_id in GAD7_ITEMS]}


def _response(cast: Cast, which: str) -> dict[str, Any]:
    """A stored PHQ-9 response of Cora's or Colin's (rows only, made in the row's savepoint)."""
    from relisten.outcomes.models import Response

    due = _due(cast, which)
    response, _ = Response.objects.get_or_create(
        due=due, defaults={"episode": due.episode, "instrument": due.instrument,
                           "time_point": "intake", "source": "link", "total": 0,
                           "band": "Minimal", "answered_at": dt.datetime.now(dt.UTC)})
    for link_id in PHQ9_ITEMS:
        response.items.get_or_create(link_id=link_id, defaults={"value": 0})
    return {"response_id": response.public_id}


def _outcome_fhir_rows() -> list[Row]:
    """Downloads follow the episode (therapist and supervisor); importing answers changes the
    record, so only the treating therapist (the supervisor sees the page but is refused)."""
    import json

    return [
        Row("outcomes:response_fhir", "cora", _pick(_response, "a"), A_VIEW),
        Row("outcomes:response_fhir", "colin", _pick(_response, "b"), B_VIEW),
        Row("outcomes:episode_fhir", "cora", _pick(_episode, "a"), A_VIEW),
        Row("outcomes:episode_fhir", "colin", _pick(_episode, "b"), B_VIEW),
        Row("outcomes:fhir_import", "cora", _pick(_episode, "a"), A_TREAT),
        Row("outcomes:fhir_import", "colin", _pick(_episode, "b"), B_TREAT),
        Row("outcomes:fhir_import", "cora", _pick(_episode, "a"), A_TREAT_POST, method="POST",
            data=lambda c: {"text": json.dumps(GAD7_QR), "time_point": "intake"}),
    ]

# ---- end outcomes FHIR ----


# ---- outcomes: questionnaire definitions (issue 7, INSTRUMENTS) ----

def _builtin_instrument(cast: Cast) -> dict[str, Any]:
    from relisten.outcomes.builtin import load_builtin_instruments
    from relisten.outcomes.models import Instrument

    load_builtin_instruments()
    found = Instrument.objects.filter(clinic=None, code="phq-9").order_by("-version").first()
    assert found is not None
    return {"instrument_id": found.public_id}


def _clinic_instrument(cast: Cast) -> dict[str, Any]:
    """The demo clinic's own questionnaire, imported inside the row's savepoint."""
    from relisten.outcomes.actions import import_instrument
    from tests.test_outcome_instruments import small_questionnaire

    result = import_instrument(actor=cast.admin, clinic=cast.clinic,
                               questionnaire=small_questionnaire(), scoring=None)
    return {"instrument_id": result.instrument.public_id}


def _outcome_instrument_rows() -> list[Row]:
    # Definitions hold no clinical content: built-in ones for every clinic's clinical staff and
    # admins (not researchers or clients); a clinic's own for its staff only, 404 elsewhere.
    staff = ("therapist_a", "therapist_b", "supervisor", "trainee", "admin")
    return [
        Row("outcomes:instrument", "builtin-phq-9", _builtin_instrument,
            expect({**dict.fromkeys(staff, 200), "other_clinic_therapist": 200})),
        Row("outcomes:instrument", "demo-clinic", _clinic_instrument,
            expect(dict.fromkeys(staff, 200))),
    ]

# ---- end outcomes questionnaire definitions ----


ROWS = (_clinical_rows() + _admin_rows() + _portal_rows() + _api_rows() + _recording_rows()
        + _transcript_rows() + _sharing_rows() + _comment_rows() + _supervision_rows()
        + _rating_rows() + _scale_rows() + _report_rows()
        + _outcome_schedule_rows() + _outcome_answer_rows()
        + _outcome_fhir_rows() + _outcome_instrument_rows())


def _row_id(row: Row) -> str:
    return f"{row.method}-{row.route}-{row.target}"


# ---- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def module_cast(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cast]:
    """The cast, once per module; rolled back at the end so other modules start clean.

    With a vault of its own: one READY recording and one upload in progress for Cora's and
    for Colin's first session.
    """
    root = tmp_path_factory.mktemp("matrix-vault")
    (root / "keys").mkdir()
    save_keyring(new_keyring(), root / "keys" / "kek.json")
    vault_settings = override_settings(
        MEDIA_STORAGE="local",
        MEDIA_DIR=root / "media",
        KEK_FILE=root / "keys" / "kek.json",
        KEK_TEXT=None,
        UPLOAD_DIR=root / "uploads",
    )
    with django_db_blocker.unblock(), vault_settings, transaction.atomic():
        vault.store.cache_clear()
        cast = build_cast(PASSWORD)
        for client, therapist in (
            (cast.client_a, cast.therapist_a),
            (cast.client_b, cast.therapist_b),
        ):
            session = client.episodes.get().sessions.get(number=1)
            recording = make_recording(session, b"recorded session " * 4000,
                                       created_by=therapist, scratch=root)
            make_transcript(recording, [("S1", "How was the week?"),
                                        ("S2", "Quieter than the one before.")])
            # Sharing (issue 5): Cora's therapist shared this session with her; Colin's did not.
            session.shared_with_client = client == cast.client_a
            session.save(update_fields=["shared_with_client"])
            recording_actions.create_upload(
                actor=therapist, session=session, kind=Kind.AUDIO, length=100_000
            )
        yield cast
        transaction.set_rollback(True)
    vault.store.cache_clear()


def _http(cast: Cast, persona: str) -> HttpClient:
    if persona == ANON:
        return HttpClient()
    user = getattr(cast, persona)
    assert isinstance(user, User)
    return sign_in(HttpClient(), user)


def _send(http: HttpClient, row: Row, url: str, cast: Cast) -> Any:
    if row.method == "POST":
        return http.post(url, row.data(cast), headers=row.headers)
    if row.method == "HEAD":
        return http.head(url, headers=row.headers)
    if row.method == "PATCH":
        return http.patch(
            url, row.data(cast)["body"], content_type=row.content_type, headers=row.headers
        )
    if row.method == "DELETE":
        return http.delete(url, headers=row.headers)
    return http.get(url, headers=row.headers)


def _swap_ids(kwargs: dict[str, Any], route: Route) -> dict[str, Any]:
    """The same URL with every object id replaced by one that exists nowhere."""
    return {
        name: uuid.uuid4() if isinstance(route.converters.get(name), UUIDConverter) else value
        for name, value in kwargs.items()
    }


_PER_RESPONSE = re.compile(rb'(name="csrfmiddlewaretoken" value=|nonce=)"[^"]*"')


def _comparable(body: bytes) -> bytes:
    """The page minus what differs on every response anyway (CSRF mask, CSP nonce)."""
    return _PER_RESPONSE.sub(rb'\1"-"', body)


def _events_after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def _last_seq() -> int:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    return last or 0


# ---- the matrix ------------------------------------------------------------------------------

@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_matrix(row: Row, persona: str, module_cast: Cast, db: None) -> None:
    cast = module_cast
    route = id_routes()[row.route]
    kwargs = row.kwargs(cast)
    url = reverse(row.route, kwargs=kwargs)
    wanted = row.expect[persona]
    http = _http(cast, persona)
    before = _last_seq()

    response = _send(http, row, url, cast)

    assert response.status_code == wanted, (
        f"{row.method} {route.route} as {persona}: {response.status_code}, expected {wanted}"
    )
    new_events = _events_after(before)
    if persona == ANON:
        if row.is_api:
            assert response.json() == {"detail": "Unauthorized"}
        elif wanted == 302:
            assert response["Location"] == f"{SIGN_IN}?next={quote(url)}"
        assert new_events == [], "an anonymous request changed or read something"
        return
    if wanted in (403, 404):
        # Refused before anything was read or written, and the refusal is on record.
        assert {e.event_type for e in new_events} <= DENIAL_EVENTS, new_events
        event_type = "authz.denied" if wanted == 404 else "authz.forbidden"
        user = getattr(cast, persona)
        ids = {str(value) for value in kwargs.values()}
        assert any(
            e.event_type == event_type and e.actor_id == user.public_id
            and e.changes.get("object_id") in ids
            for e in new_events
        ), f"no {event_type} audit row for {persona} on {route.route}"
    if wanted == 404:
        missing = _send(http, row, reverse(row.route, kwargs=_swap_ids(kwargs, route)), cast)
        assert missing.status_code == 404
        assert _comparable(missing.content) == _comparable(response.content), (
            "foreign and missing objects differ"
        )
    if wanted == 302:
        assert not response["Location"].startswith(SIGN_IN)
    if wanted == 200 and row.method == "GET" and row.route.split(":")[0] in CLINICAL:
        # Every look at a clinical record shows up in the client's own access log.
        client = getattr(cast, CLIENTS[row.target])
        assert any(
            e.event_type in READ_EVENTS
            and e.actor_id == getattr(cast, persona).public_id
            and e.client_id == client.public_id
            for e in new_events
        ), f"{persona} read {route.route} and left no record.viewed row"
    # (Appending bytes with PATCH is progress, not a change on record; its start and end are.)
    # (An autosaved answer is a draft in progress, not a change on record either; starting and
    # completing the rating are.)
    if (wanted in (200, 204, 302) and row.method in {"POST", "DELETE"}
            and row.route != "fidelity:rating_answer"):
        assert new_events and not ({e.event_type for e in new_events} & DENIAL_EVENTS), (
            f"allowed {row.method} to {route.route} as {persona} wrote {new_events}"
        )


# ---- the table itself stays complete ---------------------------------------------------------

def test_every_id_route_has_rows() -> None:
    discovered = id_routes()
    covered = {row.route for row in ROWS}
    missing = sorted(f"{key} ({discovered[key].route})" for key in set(discovered) - covered)
    assert not missing, f"routes taking an object id with no row in the access matrix: {missing}"
    stale = sorted(covered - set(discovered))
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"
    for row in ROWS:
        assert set(row.expect) == set(PERSONAS), row


def test_matrix_is_not_vacuous() -> None:
    # The discovery must see the known routes; an empty resolver walk would pass everything.
    discovered = id_routes()
    assert {
        "clients:detail",
        "portal:record",
        "accounts:clinic_people",
        "api:get_client",
        "recordings:media",
        "recordings:upload",
        "transcripts:page",
        "transcripts:export",
        "transcripts:edit_segment",
        "transcripts:rename_speaker",
        "api:get_transcription_status",
    } <= set(discovered)
    allowed = [
        row for row in ROWS if {200, 204, 302} & {row.expect[p] for p in PERSONAS if p != ANON}
    ]
    # Rows that allow nobody on purpose: the client-role rows, changes to a shipped scale, and
    # answers to a completed rating (even its rater must reopen it first: 409).
    on_purpose = [row for row in ROWS
                  if (row.target in {"cora-client-role", "shipped-ctrs"}
                      or (row.route == "fidelity:rating_answer" and 409 in row.expect.values()))
                  and row not in allowed]
    assert len(on_purpose) == 5
    assert len(allowed) >= len(ROWS) - len(on_purpose)


def test_object_urls_take_uuids_only() -> None:
    for route in all_routes():
        for name, converter in route.converters.items():
            assert not isinstance(converter, IntConverter), f"{route.route} takes an integer id"
            if name == "id" or name.endswith("_id"):
                assert isinstance(converter, UUIDConverter), (
                    f"{route.route}: {name} is not declared as a UUID"
                )


# ---- role-specific checks beyond the matrix --------------------------------------------------

def test_admin_without_clinical_role_sees_no_client_pages(
    module_cast: Cast, db: None
) -> None:
    cast = module_cast
    http = _http(cast, "admin")
    assert not Membership.objects.filter(
        user=cast.admin, role__in=[Role.THERAPIST, Role.TRAINEE, Role.SUPERVISOR]
    ).exists()
    for client in (cast.client_a, cast.client_b, cast.trainee_client):
        assert http.get(f"/clients/{client.public_id}/").status_code == 404
        assert http.get(f"/api/v1/clients/{client.public_id}").status_code == 404
    listing = http.get("/clients/")
    assert listing.status_code == 200
    for name in (b"Cora", b"Colin", b"Tomas"):
        assert name not in listing.content
    home = http.get("/")
    assert home.status_code == 200 and b"Cora" not in home.content
    # ...yet manages people and consent wording.
    assert http.get(f"/clinics/{cast.clinic.public_id}/people/").status_code == 200
    assert http.get(f"/clinics/{cast.clinic.public_id}/consent-texts/").status_code == 200


def test_other_clinic_gets_404_on_demo_admin_pages(module_cast: Cast, db: None) -> None:
    cast = module_cast
    http = _http(cast, "other_clinic_therapist")
    demo = cast.clinic.public_id
    for path in (f"/clinics/{demo}/people/", f"/clinics/{demo}/consent-texts/"):
        assert http.get(path).status_code == 404
    # Their own clinic works, so the 404 above is about the clinic, not the person.
    assert http.get(f"/clinics/{cast.other_clinic.public_id}/people/").status_code == 200


def test_client_portal_own_record_only(module_cast: Cast, db: None) -> None:
    cast = module_cast
    http = _http(cast, "client_user_a")
    own, other = cast.client_a.public_id, cast.client_b.public_id
    home = http.get("/me/")
    assert home.status_code == 302 and home["Location"] == f"/me/{own}/"
    for suffix in ("", "consent/", "access/"):
        mine = http.get(f"/me/{own}/{suffix}")
        # The portal shows no name, only "my care at <clinic>" and links to the record.
        assert mine.status_code == 200 and str(own).encode() in mine.content
        theirs = http.get(f"/me/{other}/{suffix}")
        assert theirs.status_code == 404 and str(other).encode() not in theirs.content
