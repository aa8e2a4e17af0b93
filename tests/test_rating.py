"""Rating a session: the panel beside the player, autosave, evidence, completion with stored
scores, reopening, who may rate and see which rating, and the side-by-side comparison."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from relisten.audit.models import AuditEvent
from relisten.consent.actions import current_text, record_decision
from relisten.consent.models import Method, Purpose
from relisten.core.personas import Cast
from relisten.fidelity.models import Evidence, RaterRole, Rating, RatingState, Scale
from relisten.fidelity.rating import differs, rating_context, scale_definition
from relisten.lib.fidelity.scale import Item, load_scale, to_definition
from relisten.recordings.models import Recording
from relisten.review.models import Comment, Scope
from tests.test_media_playback import VaultEnv, vault_env_fixture
from tests.test_transcript_search import recording_for

__all__ = ["vault_env_fixture"]  # registers the `vault_env` fixture here

SMALL_SCALE = """
schema: relisten-scale/1
slug: tiny-fidelity
name: Tiny fidelity scale
citation: Made up for the tests.
licence: CC0
main_score: total
items:
  - id: agenda
    text: Sets an agenda
    kind: likert
    range: [0, 6]
    anchors: {0: "Not done", 6: "Excellent"}
    subscale: total
  - id: warmth
    text: Shows warmth
    kind: likert
    range: [0, 6]
    subscale: total
  - id: homework
    text: Sets homework
    kind: yes_no
  - id: questions
    text: Questions
    kind: count
  - id: reflections
    text: Reflections
    kind: count
subscales:
  - id: total
    name: Total
    method: sum
formulas:
  - id: r_to_q
    name: Reflections per question
    expr: reflections / questions
thresholds:
  - score: total
    op: ">="
    value: 8
    label: Competent
"""


@pytest.fixture
def scale(cast: Cast) -> Scale:
    definition = to_definition(load_scale(SMALL_SCALE, "yaml"))
    return Scale.objects.create(
        clinic=cast.clinic, slug="tiny-fidelity", version=1, name="Tiny fidelity scale",
        definition=definition, source_sha256=hashlib.sha256(SMALL_SCALE.encode()).hexdigest())


@pytest.fixture
def recording(cast: Cast, vault_env: VaultEnv, tmp_path: Path) -> Recording:
    made = recording_for(cast, "a", tmp_path)
    Recording.objects.filter(pk=made.pk).update(duration_s=600)
    made.refresh_from_db()
    return made


def start(http: Any, recording: Recording, scale: Scale) -> Rating:
    response = http.post(f"/fidelity/recordings/{recording.public_id}/ratings/start",
                         {"scale": str(scale.public_id)})
    assert response.status_code == 302, response.content[:300]
    return Rating.objects.get(session=recording.session, scale=scale,
                              rater=response.wsgi_request.user)


def answer(http: Any, rating: Rating, item: str, value: str) -> Any:
    return http.post(f"/fidelity/ratings/{rating.public_id}/answer",
                     {"item": item, "value": value})


def rate_all(http: Any, rating: Rating, values: dict[str, str]) -> None:
    for item, value in values.items():
        assert answer(http, rating, item, value).status_code == 200


# ---- starting, answering -----------------------------------------------------------------

def test_therapist_starts_a_self_rating_and_sees_every_item_with_anchors(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    page = http.get(f"/recordings/{recording.public_id}/transcript/").content.decode()
    assert "Rate this session" in page and "Start rating" in page
    assert f'<option value="{scale.public_id}">Tiny fidelity scale (version 1)' in page
    rating = start(http, recording, scale)
    assert rating.role == RaterRole.SELF and rating.state == RatingState.DRAFT
    assert AuditEvent.objects.filter(event_type="rating.started").count() == 1
    page = http.get(f"/recordings/{recording.public_id}/transcript/").content.decode()
    # Likert: one radio per point, anchors beside their points; yes/no; counts with tally keys.
    assert len(re.findall(r'name="item-agenda" value="\d"', page)) == 7
    assert '<span class="point-n">0</span> <span class="anchor">Not done</span>' in page
    assert '<span class="point-n">6</span> <span class="anchor">Excellent</span>' in page
    assert 'name="item-homework" value="1"' in page and '<span class="anchor">Yes</span>' in page
    assert 'data-tally="Digit1"' in page and 'data-tally="Digit2"' in page
    assert "<kbd>1</kbd> Questions" in page and "<kbd>2</kbd> Reflections" in page
    assert "0 of 3 items rated" in re.sub(r"<[^>]+>", "", page)
    assert '<script type="module" src="/static/relisten/rating.js">' in page
    # Starting again on the same scale goes back to the same rating.
    assert start(http, recording, scale).pk == rating.pk
    assert Rating.objects.count() == 1


def test_autosave_is_idempotent_and_checks_values(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    rating = start(http, recording, scale)
    first = answer(http, rating, "agenda", "4")
    assert first.status_code == 200
    assert first.json() == {"saved": True, "changed": True, "rated": 1, "to_rate": 3}
    again = answer(http, rating, "agenda", "4")
    assert again.json()["changed"] is False  # the same save twice changes nothing
    assert answer(http, rating, "questions", "12").json()["rated"] == 1  # counts never hold up
    rating.refresh_from_db()
    assert rating.answers == {"agenda": 4, "questions": 12}
    # Out of range, not a number, not an item: refused with words, nothing saved.
    too_high = answer(http, rating, "agenda", "7")
    assert too_high.status_code == 400 and "0–6" in too_high.json()["error"]
    assert answer(http, rating, "homework", "2").status_code == 400
    assert answer(http, rating, "agenda", "four").status_code == 400
    assert answer(http, rating, "nonsense", "1").status_code == 400
    assert answer(http, rating, "agenda", "").json()["rated"] == 0  # empty clears it
    rating.refresh_from_db()
    assert rating.answers == {"questions": 12}
    # Autosaves leave no audit rows (counts would bury the trail); starting did.
    assert set(AuditEvent.objects.filter(event_type__startswith="rating.")
               .values_list("event_type", flat=True)) == {"rating.started"}


def test_completion_needs_every_item_then_stores_scores(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    rating = start(http, recording, scale)
    rate_all(http, rating, {"agenda": "5", "reflections": "6", "questions": "4"})
    refused = http.post(f"/fidelity/ratings/{rating.public_id}/complete", follow=True)
    text = refused.content.decode()
    assert "2 items still need a rating" in text and "Shows warmth" in text
    rating.refresh_from_db()
    assert rating.state == RatingState.DRAFT and rating.scores == {}
    rate_all(http, rating, {"warmth": "4", "homework": "1"})
    done = http.post(f"/fidelity/ratings/{rating.public_id}/complete", follow=True)
    rating.refresh_from_db()
    assert rating.state == RatingState.COMPLETE and rating.completed_at is not None
    assert rating.total == 9.0
    assert rating.scores["values"] == {"total": 9.0, "r_to_q": 1.5}
    assert rating.scores["thresholds"][0]["met"] is True
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", done.content.decode()))
    assert "Rating complete" in page
    assert "Reflections per question 1.5" in page
    assert "Met : Competent (Total ≥ 8)" in page
    # A complete rating no longer takes answers until it is reopened.
    assert answer(http, rating, "agenda", "1").status_code == 409
    assert AuditEvent.objects.filter(event_type="rating.completed").count() == 1


def test_unrated_counts_complete_as_zero_and_reopen_clears_scores(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    rating = start(http, recording, scale)
    rate_all(http, rating, {"agenda": "2", "warmth": "3", "homework": "0"})
    http.post(f"/fidelity/ratings/{rating.public_id}/complete")
    rating.refresh_from_db()
    assert rating.answers == {"agenda": 2, "warmth": 3, "homework": 0,
                              "questions": 0, "reflections": 0}
    assert rating.scores["values"]["r_to_q"] is None  # 0 / 0: not defined, and says why
    assert "zero" in rating.scores["not_defined"]["r_to_q"]
    assert rating.scores["thresholds"][0]["met"] is False
    http.post(f"/fidelity/ratings/{rating.public_id}/reopen")
    rating.refresh_from_db()
    assert rating.state == RatingState.DRAFT and rating.scores == {} and rating.total is None
    assert answer(http, rating, "agenda", "6").status_code == 200
    assert AuditEvent.objects.filter(event_type="rating.reopened").count() == 1


def test_plain_form_posts_every_answer_at_once(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    """Without JavaScript: one form, every answer, and "Complete" in the same post."""
    http = signed_in(cast.therapist_a)
    rating = start(http, recording, scale)
    back = f"/recordings/{recording.public_id}/transcript/"
    response = http.post(f"/fidelity/ratings/{rating.public_id}/complete", {
        "next": back, "item-agenda": "6", "item-warmth": "6", "item-homework": "1",
        "item-questions": "3", "item-reflections": "", "complete": "1",
    })
    assert response.status_code == 302 and response["Location"] == f"{back}#rating"
    rating.refresh_from_db()
    assert rating.state == RatingState.COMPLETE
    assert rating.answers == {"agenda": 6, "warmth": 6, "homework": 1, "questions": 3,
                              "reflections": 0}
    # The rating's own page (GET) shows the rater the same panel.
    page = http.get(f"/fidelity/ratings/{rating.public_id}/").content.decode()
    assert "Reopen to change it" in page


# ---- evidence ----------------------------------------------------------------------------

def test_evidence_at_times_and_from_a_comment(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.supervisor)
    rating = start(http, recording, scale)
    assert rating.role == RaterRole.SUPERVISOR
    url = f"/fidelity/ratings/{rating.public_id}/evidence"
    assert http.post(url, {"item": "agenda", "at": "1:05"}).status_code == 302
    assert http.post(url, {"item": "agenda", "at": "130.5", "until": "2:20",
                           "note": "sets the agenda"}).status_code == 302
    comment = Comment.objects.create(recording=recording, author=cast.supervisor, start=42.0,
                                     end=50.0, body="Warm here", scope=Scope.CARE_TEAM)
    assert http.post(url, {"item": "warmth", "comment": str(comment.public_id)}
                     ).status_code == 302
    found = list(Evidence.objects.filter(rating=rating).order_by("start"))
    assert [(e.item, e.start, e.end, e.comment_id) for e in found] == [
        ("warmth", 42.0, 50.0, comment.pk), ("agenda", 65.0, None, None),
        ("agenda", 130.5, 140.0, None)]
    # Refused: after the end of the recording, an end before the start, another's private note.
    bad = http.post(url, {"item": "agenda", "at": "11:00"}, follow=True).content.decode()
    assert "after the end of the recording (10:00)" in bad
    bad = http.post(url, {"item": "agenda", "at": "2:00", "until": "1:00"},
                    follow=True).content.decode()
    assert "is before the start" in bad
    private = Comment.objects.create(recording=recording, author=cast.therapist_a, start=1.0,
                                     body="Tess's own note", scope=Scope.PRIVATE)
    bad = http.post(url, {"item": "agenda", "comment": str(private.public_id)},
                    follow=True).content.decode()
    assert "That comment is no longer there" in bad
    assert Evidence.objects.filter(rating=rating).count() == 3
    # The panel shows chips that seek (and, without script, open the page at the moment).
    page = http.get(f"/recordings/{recording.public_id}/transcript/").content.decode()
    assert 'data-seek="65.00"' in page and "?t=65.00" in page
    assert "2:10–2:20" in page and "sets the agenda" in page
    assert "0:42–0:50 · Warm here" in page  # the comment can be linked from the panel
    # The audit rows say which item and what shape, never the note.
    added = AuditEvent.objects.filter(event_type="rating.evidence_added").order_by("seq")
    assert [row.changes["item_id"] for row in added] == ["agenda", "agenda", "warmth"]
    assert [row.changes["range"] for row in added] == [False, True, True]
    assert all("sets the agenda" not in json.dumps(row.changes) for row in added)
    # Removing evidence: own only.
    first = found[1]
    other = signed_in(cast.therapist_a)
    assert other.post(f"/fidelity/evidence/{first.public_id}/delete").status_code == 404
    assert http.post(f"/fidelity/evidence/{first.public_id}/delete").status_code == 302
    assert not Evidence.objects.filter(pk=first.pk).exists()


def test_fragment_answers_return_the_panel(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    rating = start(http, recording, scale)
    response = http.post(f"/fidelity/ratings/{rating.public_id}/evidence",
                         {"item": "warmth", "at": "0:30"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith("<link") and "data-rating-panel" in body
    assert "Evidence added." in body and 'data-seek="30.00"' in body
    assert "<html" not in body


# ---- who may rate, who sees which rating -------------------------------------------------

def test_only_the_therapist_and_the_supervisor_may_rate(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    start_url = f"/fidelity/recordings/{recording.public_id}/ratings/start"
    data = {"scale": str(scale.public_id)}
    assert signed_in(cast.therapist_b).post(start_url, data).status_code == 404
    assert signed_in(cast.other_clinic_therapist).post(start_url, data).status_code == 404
    # The client can play the shared recording, but ratings are not theirs.
    session = recording.session
    session.shared_with_client = True
    session.save(update_fields=["shared_with_client"])
    client_http = signed_in(cast.client_user_a)
    assert client_http.post(start_url, data).status_code == 403
    page = client_http.get(f"/recordings/{recording.public_id}/transcript/").content.decode()
    assert "Rate this session" not in page and "rating.js" not in page
    # A scale of another clinic is not offered.
    foreign = Scale.objects.create(clinic=cast.other_clinic, slug="theirs", version=1,
                                   name="Their scale", definition=scale.definition,
                                   source_sha256="0" * 64)
    response = signed_in(cast.therapist_a).post(start_url, {"scale": str(foreign.public_id)},
                                                follow=True)
    assert "Please choose a scale from the list." in response.content.decode()
    assert not Rating.objects.exists()


def test_supervisor_may_give_a_reference_rating_and_the_therapist_may_not(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    """A reference rating is the calibration reports' gold standard: only the supervisor's
    rating can be one; a therapist asking for it still gets a self-rating."""
    start_url = f"/fidelity/recordings/{recording.public_id}/ratings/start"
    data = {"scale": str(scale.public_id), "reference": "1"}
    page = signed_in(cast.supervisor).get(f"/recordings/{recording.public_id}/transcript/")
    assert 'name="reference"' in page.content.decode()
    signed_in(cast.supervisor).post(start_url, data)
    signed_in(cast.therapist_a).post(start_url, data)
    roles = dict(Rating.objects.values_list("rater__username", "role"))
    assert roles == {cast.supervisor.username: RaterRole.REFERENCE,
                     cast.therapist_a.username: RaterRole.SELF}
    own = signed_in(cast.therapist_a).get(f"/recordings/{recording.public_id}/transcript/")
    assert 'name="reference"' not in own.content.decode()


def test_supervisor_without_supervision_consent_gets_404(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.supervisor)
    rating = start(http, recording, scale)
    record_decision(actor=cast.therapist_a, client=cast.client_a,
                    purpose=Purpose.SUPERVISION_REVIEW, granted=False,
                    method=Method.PAPER_ATTESTED,
                    text=current_text(cast.clinic.pk, Purpose.SUPERVISION_REVIEW))
    assert answer(http, rating, "agenda", "3").status_code == 404
    assert http.get(f"/fidelity/ratings/{rating.public_id}/").status_code == 404
    assert http.get(f"/fidelity/sessions/{recording.session.public_id}/ratings/"
                    ).status_code == 404


def test_drafts_stay_private_complete_ratings_are_shared(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    supervisor = signed_in(cast.supervisor)
    therapist = signed_in(cast.therapist_a)
    theirs = start(supervisor, recording, scale)
    rate_all(supervisor, theirs, {"agenda": "1", "warmth": "5", "homework": "0"})
    compare_url = f"/fidelity/sessions/{recording.session.public_id}/ratings/"
    # A draft: the therapist cannot open it, and the comparison does not show it.
    assert therapist.get(f"/fidelity/ratings/{theirs.public_id}/").status_code == 404
    assert "Dr Sam Reyes" not in therapist.get(compare_url).content.decode()
    supervisor.post(f"/fidelity/ratings/{theirs.public_id}/complete")
    # Complete: readable (the rating's page leads to the comparison), never changeable.
    opened = therapist.get(f"/fidelity/ratings/{theirs.public_id}/")
    assert opened.status_code == 302 and opened["Location"].startswith(compare_url)
    assert answer(therapist, theirs, "agenda", "6").status_code == 403
    assert therapist.post(f"/fidelity/ratings/{theirs.public_id}/reopen").status_code == 403
    assert "Supervisor&#x27;s rating: Dr Sam Reyes" in therapist.get(compare_url
                                                                    ).content.decode()


# ---- the comparison ------------------------------------------------------------------------

def test_differences_rule() -> None:
    likert = Item("a", "A", "likert", 0, 6)
    yes_no = Item("b", "B", "yes_no", 0, 1)
    count = Item("c", "C", "count", 0, None)
    assert differs(likert, [2, 4]) and not differs(likert, [3, 4])
    assert differs(yes_no, [0, 1]) and not differs(yes_no, [1, 1])
    assert differs(count, [2, 5]) and not differs(count, [2, 4])
    assert not differs(likert, [None, 6])  # not rated is not a difference


def test_comparison_puts_self_and_supervisor_side_by_side(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    supervisor = signed_in(cast.supervisor)
    therapist = signed_in(cast.therapist_a)
    theirs = start(supervisor, recording, scale)
    rate_all(supervisor, theirs, {"agenda": "1", "warmth": "5", "homework": "0",
                                  "questions": "10", "reflections": "4"})
    supervisor.post(f"/fidelity/ratings/{theirs.public_id}/evidence",
                    {"item": "agenda", "at": "3:20"})
    supervisor.post(f"/fidelity/ratings/{theirs.public_id}/complete")
    mine = start(therapist, recording, scale)
    rate_all(therapist, mine, {"agenda": "5", "warmth": "4", "homework": "1",
                               "questions": "11", "reflections": "4"})
    page = therapist.get(f"/fidelity/sessions/{recording.session.public_id}/ratings/"
                         ).content.decode()
    headings = re.findall(r'<th scope="col">([^<]*)</th>', page)
    assert headings == ["Item", "Self-rating: You (in progress)",
                        "Supervisor&#x27;s rating: Dr Sam Reyes"]
    differing = re.findall(r'<tr class="differs" id="row-(\w+)">', page)
    assert differing == ["agenda", "homework"]  # 5 vs 1, yes vs no; warmth 4 vs 5 is close
    assert "differ by 2 or more points" in page and "2 items differ." in page
    # The supervisor's evidence links to the recording page at its moment.
    assert f'href="/recordings/{recording.public_id}/transcript/?t=200.00"' in page
    assert "Competent" in page and "Total ≥ 8" in page
    assert AuditEvent.objects.filter(event_type="record.viewed",
                                     target_type="therapysession").exists()


# ---- speed -------------------------------------------------------------------------------

def test_rating_context_takes_a_fixed_number_of_queries(
    cast: Cast, scale: Scale, recording: Recording, signed_in: Any
) -> None:
    http = signed_in(cast.supervisor)
    rating = start(http, recording, scale)
    url = f"/fidelity/ratings/{rating.public_id}/evidence"
    recording = Recording.objects.select_related("session__episode__client__clinic").get(
        pk=recording.pk)
    counts = []
    for _ in range(2):
        for n in range(10):
            http.post(url, {"item": "agenda", "at": str(n)})
        with CaptureQueriesContext(connection) as queries:
            # As the workspace asks: it knows whether the person treats, and the comments.
            panel = rating_context(cast.supervisor, recording, can_treat=False, comments=[])
        counts.append(len(queries))
        assert panel.rating is not None and panel.items
    assert counts[0] == counts[1] <= 4, counts
    # The definition is read once per scale version and kept.
    assert scale_definition(rating.scale) is scale_definition(rating.scale)
