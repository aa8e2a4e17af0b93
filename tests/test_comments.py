"""Time-stamped comments: who reads which scope, replies, validation, audit, export, erasure,
and the panel's fixed number of queries."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import docx
import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relisten import access
from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.clients.actions import schedule_session
from relisten.clients.models import Modality, TherapySession
from relisten.consent.actions import record_decision, revoke
from relisten.consent.models import Method, Purpose
from relisten.consent.policy import current_text
from relisten.core.personas import Cast
from relisten.recordings.erasure import erase_recording
from relisten.recordings.models import Recording
from relisten.review import actions
from relisten.review.comments import comments_context, parse_tags, parse_time
from relisten.review.models import Comment, Scope
from tests.test_media_playback import VaultEnv, first_session, make_recording, vault_env_fixture
from tests.test_transcript_search import make_transcript

__all__ = ["vault_env_fixture"]  # the fixture is used by name

SignedIn = Callable[[User], HttpClient]
HX = {"HX-Request": "true"}
DURATION_S = 600.0


# ---- helpers ---------------------------------------------------------------------------------

def recording_for(session: TherapySession, author: User, *, shared: bool = True) -> Recording:
    session.shared_with_client = shared
    session.save(update_fields=["shared_with_client"])
    recording = make_recording(session, b"a session " * 2000, created_by=author)
    recording.duration_s = DURATION_S
    recording.save(update_fields=["duration_s"])
    return recording


def seen_by(user: User, recording_id: Any) -> Recording:
    """The recording as the access policy hands it to this user (as the views get it)."""
    return access.get_recording_for_user(user, recording_id)


def write(user: User, recording: Recording, body: str, scope: str, start: float = 10.0,
          end: float | None = None, tags: tuple[str, ...] = ()) -> Comment:
    return actions.create_comment(actor=user, recording=seen_by(user, recording.public_id),
                                  start=start, end=end, body=body, tags=tags, scope=scope)


def answer(user: User, comment: Comment, body: str) -> Comment:
    return actions.reply_to(actor=user, comment=access.get_comment_for_user(user,
                                                                            comment.public_id),
                            body=body)


def panel(http: HttpClient, recording: Recording) -> Any:
    return http.get(f"/recordings/{recording.public_id}/comments/", headers=HX)


def comment_events(after: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=after, event_type__startswith="comment"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


# ---- the scope matrix ------------------------------------------------------------------------

BODIES = {
    "t-private": "Therapist note to self: ask about the sister.",
    "t-care": "Therapist to the team: rupture here, what do you think?",
    "t-client": "Therapist to Cora: this is where you named the pattern.",
    "s-care": "Supervisor: good repair at this point.",
    "s-private": "Supervisor note to self: raise in group supervision.",
    "c-private": "Cora bookmark: the breathing exercise.",
    "c-share": "Cora to her therapist: I want to talk about this again.",
    "r-care": "Supervisor reply in the care-team thread.",
    "r-client": "Cora reply in the shared thread.",
    "r-share": "Therapist reply to Cora's shared comment.",
}
SEES = {
    "therapist_a": {"t-private", "t-care", "t-client", "s-care", "c-share", "r-care", "r-client",
                    "r-share"},
    "supervisor": {"t-care", "t-client", "s-care", "s-private", "c-share", "r-care", "r-client",
                   "r-share"},
    "client_user_a": {"t-client", "c-private", "c-share", "r-client", "r-share"},
}


@pytest.fixture
def cora(cast: Cast, vault_env: VaultEnv) -> Recording:
    """Cora's first session, shared with her, with comments in every scope by everyone."""
    recording = recording_for(first_session(cast, "a"), cast.therapist_a)
    t, s, c = cast.therapist_a, cast.supervisor, cast.client_user_a
    made = {
        "t-private": write(t, recording, BODIES["t-private"], Scope.PRIVATE, 5),
        "t-care": write(t, recording, BODIES["t-care"], Scope.CARE_TEAM, 20, 35, ("rupture",)),
        "t-client": write(t, recording, BODIES["t-client"], Scope.CLIENT, 40),
        "s-care": write(s, recording, BODIES["s-care"], Scope.CARE_TEAM, 50),
        "s-private": write(s, recording, BODIES["s-private"], Scope.PRIVATE, 60),
        "c-private": write(c, recording, BODIES["c-private"], Scope.PRIVATE, 70),
        "c-share": write(c, recording, BODIES["c-share"], Scope.CLIENT, 80),
    }
    answer(s, made["t-care"], BODIES["r-care"])
    answer(c, made["t-client"], BODIES["r-client"])
    answer(t, made["c-share"], BODIES["r-share"])
    return recording


@pytest.mark.parametrize("persona", sorted(SEES))
def test_each_person_reads_exactly_the_scopes_meant_for_them(
    persona: str, cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    user = getattr(cast, persona)
    response = panel(signed_in(user), cora)
    assert response.status_code == 200
    page = response.content.decode()
    shown = {key for key, body in BODIES.items() if body.replace("'", "&#x27;") in page}
    assert shown == SEES[persona]
    # The same answer from the policy itself, replies included.
    bodies = {c.body for c in access.comments_for_user(user, seen_by(user, cora.public_id))}
    assert bodies == {BODIES[key] for key in SEES[persona]}


@pytest.mark.parametrize("persona", ["client_user_b", "other_clinic_therapist", "trainee",
                                     "therapist_b", "researcher", "admin"])
def test_people_outside_the_recording_get_404_and_no_comment(
    persona: str, cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(getattr(cast, persona))
    response = panel(http, cora)
    assert response.status_code == 404
    assert not any(body in response.content.decode() for body in BODIES.values())
    root = Comment.objects.get(body=BODIES["t-client"])
    reply = http.post(f"/comments/{root.public_id}/reply", {"body": "Let me in."}, headers=HX)
    assert reply.status_code == 404
    assert not Comment.objects.filter(body="Let me in.").exists()


def test_supervisor_reads_comments_only_while_supervision_consent_holds(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(cast.supervisor)
    assert panel(http, cora).status_code == 200
    revoke(actor=cast.therapist_a, client=cast.client_a, purpose=Purpose.SUPERVISION_REVIEW,
           method=Method.PAPER_ATTESTED)
    assert panel(http, cora).status_code == 404
    own = Comment.objects.get(body=BODIES["s-private"])
    # Not even their own private note, nor an export with comments.
    assert http.post(f"/comments/{own.public_id}/edit", {"body": "x"}).status_code == 404
    transcript = make_transcript(cora, [("S1", "Hello.")])
    assert http.get(f"/transcripts/{transcript.public_id}/export.json?comments=1"
                    ).status_code == 404


def test_client_reads_nothing_once_the_session_is_no_longer_shared(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(cast.client_user_a)
    assert panel(http, cora).status_code == 200
    TherapySession.objects.filter(pk=cora.session_id).update(shared_with_client=False)
    assert panel(http, cora).status_code == 404
    own = Comment.objects.get(body=BODIES["c-private"])
    assert http.post(f"/comments/{own.public_id}/delete").status_code == 404
    assert Comment.objects.filter(pk=own.pk).exists()


def test_trainee_comments_reach_their_supervisor_not_other_therapists(
    cast: Cast, vault_env: VaultEnv, signed_in: SignedIn
) -> None:
    episode = cast.trainee_client.episodes.get()
    session = schedule_session(actor=cast.trainee, episode=episode, modality=Modality.IN_PERSON,
                               scheduled_at=timezone.now() - dt.timedelta(days=1))
    record_decision(actor=cast.trainee, client=cast.trainee_client,
                    purpose=Purpose.SUPERVISION_REVIEW, granted=True,
                    method=Method.PAPER_ATTESTED,
                    text=current_text(cast.clinic.pk, Purpose.SUPERVISION_REVIEW))
    recording = recording_for(session, cast.trainee, shared=False)
    question = write(cast.trainee, recording, "Trainee: was this too directive?", Scope.CARE_TEAM)
    answer(cast.supervisor, question, "Supervisor: a little; try a question instead.")
    for persona, status in (("trainee", 200), ("supervisor", 200), ("therapist_a", 404)):
        response = panel(signed_in(getattr(cast, persona)), recording)
        assert response.status_code == status, persona
        if status == 200:
            assert b"too directive" in response.content and b"try a question" in response.content


# ---- what clients may write, and how it is worded for them -----------------------------------

def test_client_chooses_only_me_or_share_with_my_therapist(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(cast.client_user_a)
    page = panel(http, cora).content.decode()
    assert "Only me" in page and "Share with my therapist" in page
    assert "Care team" not in page
    url = f"/recordings/{cora.public_id}/comments/"
    before = Comment.objects.count()
    refused = http.post(url, {"at": "1:00", "body": "For the team?", "scope": "care_team"},
                        headers=HX)
    assert refused.status_code == 200
    assert "Please choose who can see this comment from the list." in refused.content.decode()
    assert Comment.objects.count() == before
    # Even past the form, the action refuses it.
    with pytest.raises(actions.CommentRefused):
        write(cast.client_user_a, cora, "Sneaky", Scope.CARE_TEAM)
    made = http.post(url, {"at": "1:00", "body": "Please look at this.", "scope": "client"},
                     headers=HX)
    assert made.status_code == 200 and "Please look at this." in made.content.decode()
    shared = Comment.objects.get(body="Please look at this.")
    assert (shared.scope, shared.author, shared.start) == (Scope.CLIENT, cast.client_user_a,
                                                           60.0)
    # Her therapist sees it, with her first name marked as the client's.
    therapist_page = panel(signed_in(cast.therapist_a), cora).content.decode()
    assert "Please look at this." in therapist_page and "Cora (client)" in therapist_page


def test_staff_see_the_three_scopes_in_their_words(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    page = panel(signed_in(cast.supervisor), cora).content.decode()
    assert "Care team (therapist, supervisor, trainee)" in page
    assert "Care team and the client" in page and "Only me" in page
    assert "Share with my therapist" not in page


# ---- writing: create, reply, edit, delete ----------------------------------------------------

def test_adding_a_range_comment_with_tags_and_its_audit_row(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(cast.therapist_a)
    before = last_seq()
    back = f"/sessions/{cora.session.public_id}/?r={cora.public_id}"
    response = http.post(f"/recordings/{cora.public_id}/comments/", {
        "at": "2:05", "until": "2:40.5", "body": "Long silence after the question.",
        "tags": "Silence, #homework, silence, Key Moment", "scope": "care_team", "next": back,
    })
    assert response.status_code == 302
    assert response["Location"] == f"{back}#comments"
    comment = Comment.objects.get(body="Long silence after the question.")
    assert (comment.start, comment.end) == (125.0, 160.5)
    assert comment.tags == ["silence", "homework", "key-moment"]
    [event] = comment_events(before)
    assert event.event_type == "comment.created"
    assert event.target_id == str(comment.public_id)
    assert event.client_id == cast.client_a.public_id
    assert event.changes["scope"] == "care_team" and event.changes["range"] is True
    dumped = json.dumps(event.changes)
    assert "silence" not in dumped.lower() and "Long silence" not in dumped


def test_a_reply_takes_its_threads_scope_and_joins_the_root(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    root = Comment.objects.get(body=BODIES["t-client"])
    first_reply = Comment.objects.get(body=BODIES["r-client"])
    http = signed_in(cast.therapist_a)
    before = last_seq()
    # Answering a reply answers the thread.
    response = http.post(f"/comments/{first_reply.public_id}/reply",
                         {"body": "Glad it helped."}, headers=HX)
    assert response.status_code == 200
    reply = Comment.objects.get(body="Glad it helped.")
    assert reply.parent_id == root.pk and reply.scope == Scope.CLIENT
    assert (reply.start, reply.end) == (root.start, root.end)
    [event] = comment_events(before)
    assert event.event_type == "comment.replied" and "Glad" not in json.dumps(event.changes)
    # Cora reads it in the thread.
    assert "Glad it helped." in panel(signed_in(cast.client_user_a), cora).content.decode()


def test_the_author_edits_text_and_tags_but_not_who_can_see(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    comment = Comment.objects.get(body=BODIES["t-care"])
    http = signed_in(cast.therapist_a)
    before = last_seq()
    response = http.post(f"/comments/{comment.public_id}/edit",
                         {"body": "Rupture and repair here.", "tags": "rupture, repair",
                          "scope": "client"}, headers=HX)
    assert response.status_code == 200 and "Comment saved." in response.content.decode()
    comment.refresh_from_db()
    assert comment.body == "Rupture and repair here."
    assert comment.tags == ["rupture", "repair"] and comment.scope == Scope.CARE_TEAM
    assert comment.edited_at is not None
    [event] = comment_events(before)
    assert event.event_type == "comment.edited"
    assert event.changes["changed_fields"] == ["body", "tags"]
    # Saving it unchanged writes nothing.
    again = http.post(f"/comments/{comment.public_id}/edit",
                      {"body": "Rupture and repair here.", "tags": "rupture, repair"},
                      headers=HX)
    assert "Nothing had changed" in again.content.decode()
    assert len(comment_events(before)) == 1


def test_only_the_author_may_edit_or_delete(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    comment = Comment.objects.get(body=BODIES["t-client"])
    for persona in ("supervisor", "client_user_a"):
        http = signed_in(getattr(cast, persona))
        assert http.post(f"/comments/{comment.public_id}/edit", {"body": "Mine now"}
                         ).status_code == 403
        assert http.post(f"/comments/{comment.public_id}/delete").status_code == 403
    comment.refresh_from_db()
    assert comment.body == BODIES["t-client"]
    with pytest.raises(actions.CommentRefused):
        actions.edit_comment(actor=cast.supervisor, comment=comment, body="Mine now")


def test_a_comment_others_answered_stays_and_says_why(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    root = Comment.objects.get(body=BODIES["t-care"])  # the supervisor replied to it
    http = signed_in(cast.therapist_a)
    page = panel(http, cora).content.decode()
    assert "Others have replied, so this comment stays. You can edit it." in page
    response = http.post(f"/comments/{root.public_id}/delete", headers=HX)
    assert response.status_code == 200
    assert "Others have replied to this comment" in response.content.decode()
    assert Comment.objects.filter(pk=root.pk).exists()
    # A comment with no replies goes, with its audit row.
    lonely = Comment.objects.get(body=BODIES["t-private"])
    before = last_seq()
    gone = http.post(f"/comments/{lonely.public_id}/delete")
    assert gone.status_code == 302
    assert not Comment.objects.filter(pk=lonely.pk).exists()
    [event] = comment_events(before)
    assert event.event_type == "comment.deleted" and event.target_id == str(lonely.public_id)


# ---- validation: clear words, nothing changed ------------------------------------------------

BAD = [
    ({"at": "1:00", "body": "   "}, "Please write something: the comment is empty."),
    ({"at": "10:01", "body": "Late"}, "is after the end of the recording, which is 10:00 long"),
    ({"at": "2:00", "until": "1:30", "body": "Backwards"}, "The end (1:30) is before the start "
                                                           "(2:00)."),
    ({"at": "2:00", "until": "11:00", "body": "Too long"}, "The end time (11:00) is after"),
    ({"at": "soon", "body": "When?"}, "Please write the time as minutes:seconds"),
    ({"at": "", "body": "Where?"}, "Please say where in the recording the comment belongs"),
    ({"at": "1:00", "body": "Tags", "tags": "a, b, c, d, e, f"}, "Please use at most 5 tags; "
                                                                 "this has 6."),
    ({"at": "1:00", "body": "Tag", "tags": "x" * 25}, "Each tag can be at most 24 characters"),
    ({"at": "1:00", "body": "x" * 4001}, "Please keep a comment under 4000 characters"),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m[:30] for _, m in BAD])
def test_invalid_comments_are_refused_with_plain_words_and_change_nothing(
    data: dict[str, str], message: str, cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(cast.therapist_a)
    url = f"/recordings/{cora.public_id}/comments/"
    count, before = Comment.objects.count(), last_seq()
    fragment = http.post(url, {"scope": "care_team", **data}, headers=HX)
    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert message in html.replace("&#x27;", "'")
    assert 'aria-invalid="true"' in html
    # What was typed is still there to fix (long texts included).
    if data["body"].strip():
        assert data["body"] in html
    page = http.post(url, {"scope": "care_team", **data})  # no script: the form on its own page
    assert page.status_code == 422 and message in page.content.decode().replace("&#x27;", "'")
    assert "Nothing was saved yet." in page.content.decode()
    assert Comment.objects.count() == count
    assert AuditEvent.objects.filter(seq__gt=before).exclude(event_type="record.viewed"
                                                              ).count() == 0


def test_empty_reply_and_edit_are_refused_where_they_were_typed(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    root = Comment.objects.get(body=BODIES["t-client"])
    http = signed_in(cast.therapist_a)
    before = last_seq()
    reply = http.post(f"/comments/{root.public_id}/reply", {"body": "  "}, headers=HX)
    assert reply.status_code == 200
    assert f'id="reply-error-{root.public_id}"' in reply.content.decode()
    edit = http.post(f"/comments/{root.public_id}/edit", {"body": "", "tags": "a,b,c,d,e,f"},
                     headers=HX)
    html = edit.content.decode()
    assert f'id="edit-error-{root.public_id}"' in html and "at most 5 tags" in html
    root.refresh_from_db()
    assert root.body == BODIES["t-client"] and root.replies.count() == 1
    assert comment_events(before) == []


def test_parsing_times_and_tags() -> None:
    assert parse_time("12:34") == 754.0
    assert parse_time("1:02:03") == 3723.0
    assert parse_time("75:00") == 4500.0
    assert parse_time(" 90.257 ") == 90.26
    for bad in ("", "1:60", "1:61:00", "abc", "nan", "inf", "1:2:3:4"):
        assert parse_time(bad) is None, bad
    assert parse_tags("Rupture, #Home Work,,rupture ") == ["rupture", "home-work"]


def test_the_next_page_must_be_on_this_site(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    http = signed_in(cast.therapist_a)
    for away in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = http.post(f"/recordings/{cora.public_id}/comments/",
                             {"at": "0:10", "body": "Fine", "scope": "private", "next": away})
        assert response.status_code == 302
        assert response["Location"] == f"/recordings/{cora.public_id}/transcript/#comments"


# ---- the panel -------------------------------------------------------------------------------

def test_the_panel_lists_threads_in_time_order_with_seek_links_and_marker_labels(
    cast: Cast, cora: Recording
) -> None:
    request = RequestFactory().get("/")
    request.user = cast.therapist_a
    recording = seen_by(cast.therapist_a, cora.public_id)
    html = render_to_string("review/_comments.html",
                            {"comments": comments_context(cast.therapist_a, recording)},
                            request=request)
    positions = [html.index(BODIES[key].replace("'", "&#x27;"))
                 for key in ("t-private", "t-care", "t-client", "s-care", "c-share")]
    assert positions == sorted(positions)
    assert 'data-seek="20.00"' in html and 'data-start="20.00" data-end="35.00"' in html
    assert 'data-label="Comment at 0:20–0:35 by You"' in html
    assert 'data-label="Comment at 0:50 by Dr Sam Reyes"' in html
    assert f'href="/recordings/{cora.public_id}/transcript/?t=40.00"' in html
    assert ">Care team<" in html and ">Shared with the client<" in html
    assert "<li>rupture</li>" in html
    assert "Comment at <span data-at-label>0:00</span>" in html
    assert "comments.js" in html


def test_comment_markup_is_escaped_keeps_line_breaks_and_carries_a_token_in_every_form(
    cast: Cast, cora: Recording, signed_in: SignedIn
) -> None:
    # The thread list is written in Python (relisten/review/comments_html.py), not by the
    # template engine: it must escape, break lines and date as the template did.
    tricky = write(cast.therapist_a, cora, 'First <b>line</b> & "quotes"\r\nsecond line',
                   Scope.CARE_TEAM, 90, tags=("o'clock",))
    html = panel(signed_in(cast.therapist_a), cora).content.decode()
    assert ('<p class="comment-body">First &lt;b&gt;line&lt;/b&gt; &amp; &quot;quotes&quot;'
            "<br>second line</p>") in html
    assert "<li>o&#x27;clock</li>" in html and "<b>line</b>" not in html
    written = timezone.localtime(tricky.created_at)
    assert (f'<time class="muted" datetime="{written.isoformat()}">'
            f'{written.day} {written.strftime("%b %Y, %H:%M")}</time>') in html
    # Each of the therapist's own comments has an edit and a delete form, each thread a reply
    # form: every form posts with the CSRF token and comes back to the panel's page.
    forms = html.count('data-comments-form')
    assert forms == html.count('name="csrfmiddlewaretoken"') > 10
    assert f'action="/comments/{tricky.public_id}/edit"' in html
    assert f'action="/comments/{tricky.public_id}/reply"' in html
    assert f'action="/comments/{tricky.public_id}/delete"' in html


def test_the_panel_uses_the_same_few_queries_for_5_or_50_comments(
    cast: Cast, vault_env: VaultEnv
) -> None:
    recording = recording_for(first_session(cast, "a"), cast.therapist_a)
    seen = seen_by(cast.supervisor, recording.public_id)

    def queries() -> int:
        fresh = seen_by(cast.supervisor, recording.public_id)  # nothing remembered from before
        with CaptureQueriesContext(connection) as captured:
            context = comments_context(cast.supervisor, fresh)
            assert isinstance(context["threads"], list)
        return len(captured)

    authors = (cast.therapist_a, cast.supervisor)
    Comment.objects.bulk_create(
        Comment(recording=recording, author=authors[n % 2], start=n, body=f"c{n}",
                scope=Scope.CARE_TEAM) for n in range(5))
    few = queries()
    roots = list(Comment.objects.filter(recording=recording))
    Comment.objects.bulk_create(
        Comment(recording=recording, author=authors[n % 2], start=100 + n, body=f"c{n}",
                scope=Scope.CARE_TEAM) for n in range(45))
    Comment.objects.bulk_create(
        Comment(recording=recording, author=cast.supervisor, parent=roots[n % 5],
                start=roots[n % 5].start, body=f"r{n}", scope=Scope.CARE_TEAM)
        for n in range(30))
    many = queries()
    assert few == many <= 5
    assert len(comments_context(cast.supervisor, seen)["threads"]) == 50


# ---- export ----------------------------------------------------------------------------------

@pytest.fixture
def cora_transcript(cora: Recording) -> Any:
    return make_transcript(cora, [("S1", "How was the week?"), ("S2", "Quieter."),
                                  ("S1", "Tell me more.")] * 10)


def _export(http: HttpClient, transcript: Any, fmt: str, comments: bool = True) -> Any:
    suffix = "?comments=1" if comments else ""
    response = http.get(f"/transcripts/{transcript.public_id}/export.{fmt}{suffix}")
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("persona", sorted(SEES))
def test_exports_carry_exactly_the_comments_the_downloader_may_read(
    persona: str, cast: Cast, cora_transcript: Any, signed_in: SignedIn
) -> None:
    http = signed_in(getattr(cast, persona))
    wanted = {BODIES[key] for key in SEES[persona]}
    hidden = set(BODIES.values()) - wanted
    data = json.loads(_export(http, cora_transcript, "json").content)
    found = {c["text"] for c in data["comments"]} | {
        r["text"] for c in data["comments"] for r in c["replies"]}
    assert found == wanted
    for fmt in ("vtt", "srt", "txt"):
        text = _export(http, cora_transcript, fmt).content.decode()
        assert all(body in text for body in wanted), fmt
        assert not any(body in text for body in hidden), fmt
    document = docx.Document(io.BytesIO(_export(http, cora_transcript, "docx").content))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "Comments" in text and all(body in text for body in wanted)
    assert not any(body in text for body in hidden)


def test_export_formats_place_comments_as_each_format_allows(
    cast: Cast, cora_transcript: Any, signed_in: SignedIn
) -> None:
    http = signed_in(cast.therapist_a)
    vtt = _export(http, cora_transcript, "vtt").content.decode()
    assert vtt.startswith("WEBVTT\n")
    note = "NOTE Comment [00:00:20–00:00:35] Tess Morgan (care team) #rupture:"
    assert note + "\n" + BODIES["t-care"] + "\nReply from Dr Sam Reyes: " + BODIES["r-care"] in vtt
    # At its moment: after the cue at 15 s, before the cue at 20 s.
    assert vtt.index("00:00:15.000 -->") < vtt.index(note) < vtt.index("00:00:20.000 -->")
    assert "-->" not in "\n".join(line for line in vtt.split("\n\n") if line.startswith("NOTE"))
    # A client's comment names no client in a file that travels.
    assert f"Client (shared with the client):\n{BODIES['c-share']}" in vtt
    headers = [line for line in vtt.splitlines() if line.startswith(("NOTE", "Reply from"))]
    assert "Reply from Client: " + BODIES["r-client"] in headers
    authors = [line.split(" (")[0] if line.startswith("NOTE") else line.split(":")[0]
               for line in headers]
    assert "NOTE Comment [00:01:20] Client" in authors
    assert not any("Cora" in author for author in authors)
    txt = _export(http, cora_transcript, "txt").content.decode()
    assert "\nComments\n\n[00:00:05] Tess Morgan (private note): " + BODIES["t-private"] in txt
    assert f"    Reply from Dr Sam Reyes: {BODIES['r-care']}" in txt
    data = json.loads(_export(http, cora_transcript, "json").content)
    first = data["comments"][1]
    assert (first["start"], first["end"], first["visible_to"], first["tags"]) == (
        20.0, 35.0, "care team", ["rupture"])
    # The panel offers these downloads.
    page = panel(http, cora_transcript.recording).content.decode()
    assert f'href="/transcripts/{cora_transcript.public_id}/export.docx?comments=1"' in page
    # Without ?comments=1 the exports are as before: no comments at all.
    plain = _export(http, cora_transcript, "json", comments=False)
    assert "comments" not in json.loads(plain.content)
    assert "Comments" not in _export(http, cora_transcript, "txt", comments=False
                                     ).content.decode()


def test_export_with_comments_is_audited_with_a_count_only(
    cast: Cast, cora_transcript: Any, signed_in: SignedIn
) -> None:
    before = last_seq()
    _export(signed_in(cast.client_user_a), cora_transcript, "txt")
    event = AuditEvent.objects.get(seq__gt=before, event_type="transcript.exported")
    assert event.changes == {"format": "txt", "with_comments": len(
        [k for k in SEES["client_user_a"] if not k.startswith("r-")])}
    assert event.client_id == cast.client_a.public_id


# ---- erasure ---------------------------------------------------------------------------------

def test_erasing_the_recording_erases_its_comments(cast: Cast, cora: Recording) -> None:
    assert Comment.objects.filter(recording=cora).count() == 10
    before = last_seq()
    erase_recording(actor=cast.therapist_a, recording=cora)
    assert Comment.objects.filter(recording=cora).count() == 0
    event = AuditEvent.objects.get(seq__gt=before, event_type="comments.erased")
    assert event.changes == {"count": 10, "reason": "requested"}
    assert Recording.objects.filter(pk=cora.pk).exists()  # the row stays, crypto-shredded
