"""Transcript search: full-text on SQLite (FTS5) and PostgreSQL, under the one access policy.

Transcripts are written straight into the database for speed (`make_transcript`, shared with
the view and access-matrix tests) for READY recordings made with the real vault. Every test
here is vendor-neutral: `make test` runs it on SQLite and again on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient

from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.clients.actions import share_with_client
from relisten.consent.actions import revoke
from relisten.consent.models import Method, Purpose
from relisten.core.personas import Cast
from relisten.recordings.erasure import erase_recording
from relisten.recordings.models import Recording
from relisten.transcripts import search
from relisten.transcripts.models import Segment, Speaker, Transcript, Word
from relisten.transcripts.search import index_transcript, indexed_segment_ids, search_segments
from tests.test_media_playback import VaultEnv, first_session, make_recording, vault_env_fixture

__all__ = ["make_transcript", "recording_for", "vault_env_fixture"]

Line = tuple[str, str]  # (speaker label, text); words written "~like~ this" are low-confidence

NAMES = {"S1": "Therapist", "S2": "Client"}


def make_transcript(recording: Recording, lines: Sequence[Line], *, index: bool = True,
                    seconds_per_line: float = 5.0) -> Transcript:
    """A transcript as the pipeline leaves it: speakers, segments, words with probabilities."""
    transcript = Transcript.objects.create(
        recording=recording, language="en", duration_s=len(lines) * seconds_per_line,
        model_name="tiny.en", speaker_source="diarized",
    )
    speakers: dict[str, Speaker] = {}
    for number, (label, raw) in enumerate(lines):
        if label not in speakers:
            speakers[label] = Speaker.objects.create(
                transcript=transcript, label=label, name=NAMES.get(label, label),
                role=Speaker.Role.THERAPIST if label == "S1" else Speaker.Role.CLIENT,
            )
        start = number * seconds_per_line
        tokens = raw.split()
        words = [(token.strip("~"), token.startswith("~")) for token in tokens]
        text = " ".join(word for word, _ in words)
        segment = Segment.objects.create(
            transcript=transcript, index=number, speaker=speakers[label], start=start,
            end=start + seconds_per_line - 0.5, text=text,
        )
        step = (seconds_per_line - 0.5) / max(1, len(words))
        Word.objects.bulk_create(
            Word(segment=segment, index=i, start=start + i * step, end=start + (i + 1) * step,
                 text=" " + word, probability=0.3 if low else 0.92)
            for i, (word, low) in enumerate(words)
        )
    if index:
        index_transcript(transcript)
    return transcript


def recording_for(cast: Cast, which: str, scratch: Path) -> Recording:
    therapist = cast.therapist_a if which == "a" else cast.therapist_b
    return make_recording(first_session(cast, which), b"session audio " * 500,
                          created_by=therapist, scratch=scratch)


CORA_LINES: list[Line] = [
    ("S1", "How have you been since we last met?"),
    ("S2", "I have been worried about my mother and the garden."),
    ("S1", "Tell me more about the garden."),
    ("S2", "It feels like an anxious place <b>now</b> & I avoid it."),
]
COLIN_LINES: list[Line] = [
    ("S1", "What brings you here today?"),
    ("S2", "My brother and the lighthouse keep coming up."),
]


@pytest.fixture
def transcripts(cast: Cast, vault_env: VaultEnv, tmp_path: Path) -> dict[str, Transcript]:
    found = {
        "cora": make_transcript(recording_for(cast, "a", tmp_path), CORA_LINES),
        "colin": make_transcript(recording_for(cast, "b", tmp_path), COLIN_LINES),
    }
    # Both sessions shared with their clients (issue 5): only consent now tells them apart.
    for therapist, transcript in ((cast.therapist_a, found["cora"]),
                                  (cast.therapist_b, found["colin"])):
        share_with_client(actor=therapist, session=transcript.recording.session, shared=True)
    return found


def texts(user: User, query: str, limit: int = 50) -> list[str]:
    return [hit.segment.text for hit in search_segments(user, query, limit)]


# ---- finding words ---------------------------------------------------------------------------

def test_therapist_finds_own_clients_words_with_stemming(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    found = search_segments(cast.therapist_a, "worry mother")
    assert [hit.segment.text for hit in found] == [
        "I have been worried about my mother and the garden."
    ]
    hit = found[0]
    assert hit.transcript == transcripts["cora"]
    assert "<mark>worried</mark>" in hit.snippet_html
    assert "<mark>mother</mark>" in hit.snippet_html
    assert hit.seconds == 5.0 and hit.clock == "0:05"


def test_all_words_are_required(cast: Cast, transcripts: dict[str, Transcript]) -> None:
    assert len(texts(cast.therapist_a, "garden")) == 2
    assert texts(cast.therapist_a, "garden mother") == [
        "I have been worried about my mother and the garden."
    ]
    assert texts(cast.therapist_a, "garden lighthouse") == []


def test_prefix_search(cast: Cast, transcripts: dict[str, Transcript]) -> None:
    assert texts(cast.therapist_a, "anx*") == [
        "It feels like an anxious place <b>now</b> & I avoid it."
    ]
    assert texts(cast.therapist_a, "anx") == []


def test_snippet_is_escaped_and_marked(cast: Cast, transcripts: dict[str, Transcript]) -> None:
    [hit] = search_segments(cast.therapist_a, "avoid")
    assert "<b>" not in hit.snippet_html
    assert "<mark>avoid</mark>" in hit.snippet_html
    assert "&amp;" in hit.snippet_html
    assert "&lt;b&gt;now&lt;/b&gt;" in hit.snippet_html or "now" in hit.snippet_html


@pytest.mark.parametrize("query", [
    '"', '""', "'", "AND", "OR", "NOT mother", "NEAR(mother garden)", "mother AND",
    "text:mother", "(", ")(", "*", "**", "-", "^mother", "mother\x00", "{text}: mother",
    "a" * 5000, "“mother”", "mother\"garden", "\\", "%", "%s", "'; DROP TABLE x; --",
])
def test_query_syntax_from_users_never_errors(
    cast: Cast, transcripts: dict[str, Transcript], query: str
) -> None:
    found = search_segments(cast.therapist_a, query)
    assert isinstance(found, list)
    # Colin's words are never among them, whatever the syntax.
    assert all(hit.transcript == transcripts["cora"] for hit in found)


def test_websearch_syntax_means_the_same_on_both_databases(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    # OR between alternatives, -word to leave one out, "a phrase" in quotes: what PostgreSQL's
    # websearch_to_tsquery understands, and what the FTS5 query is built to mean.
    assert texts(cast.therapist_a, "mother OR lighthouse") == [
        "I have been worried about my mother and the garden."
    ]
    assert texts(cast.therapist_b, "mother OR lighthouse") == [
        "My brother and the lighthouse keep coming up."
    ]
    assert texts(cast.therapist_a, "garden -mother") == ["Tell me more about the garden."]
    assert texts(cast.therapist_a, '"anxious place"') == [
        "It feels like an anxious place <b>now</b> & I avoid it."
    ]
    assert texts(cast.therapist_a, '"place anxious"') == []
    assert texts(cast.therapist_a, '"worried mother"') == []  # not next to each other


def test_empty_query_finds_nothing(cast: Cast, transcripts: dict[str, Transcript]) -> None:
    assert search_segments(cast.therapist_a, "") == []
    assert search_segments(cast.therapist_a, "   ") == []


def test_indexing_again_adds_no_duplicates(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    index_transcript(transcripts["cora"])
    index_transcript(transcripts["cora"])
    assert len(texts(cast.therapist_a, "garden")) == 2
    assert indexed_segment_ids(transcripts["cora"]) == set(
        transcripts["cora"].segments.values_list("id", flat=True)
    )


# ---- the access policy -----------------------------------------------------------------------

def test_other_therapist_never_finds_anothers_clients_words(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    assert texts(cast.therapist_b, "mother") == []
    assert texts(cast.therapist_b, "lighthouse") == [
        "My brother and the lighthouse keep coming up."
    ]
    assert texts(cast.therapist_a, "lighthouse") == []


def test_limit_counts_only_what_the_user_may_see(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, transcripts: dict[str, Transcript]
) -> None:
    # Many of Colin's segments say "lighthouse" and would win any ranking; Tess must still get
    # her own client's one hit with a limit of 1, so access is applied before the LIMIT.
    session = cast.client_b.episodes.get().sessions.get(number=2)
    crowded = make_recording(session, b"more audio " * 100, created_by=cast.therapist_b,
                             scratch=tmp_path)
    make_transcript(crowded, [("S2", "lighthouse lighthouse lighthouse")] * 30)
    extra = make_recording(first_session(cast, "a"), b"x" * 900, created_by=cast.therapist_a,
                           scratch=tmp_path)
    make_transcript(extra, [("S2", "a lighthouse far away")])
    assert texts(cast.therapist_a, "lighthouse", limit=1) == ["a lighthouse far away"]


def test_supervisor_only_with_supervision_consent(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    assert len(texts(cast.supervisor, "garden")) == 2
    assert texts(cast.supervisor, "lighthouse") == []  # not Colin's supervisor
    revoke(actor=cast.therapist_a, client=cast.client_a, purpose=Purpose.SUPERVISION_REVIEW,
           method=Method.PAPER_ATTESTED)
    assert texts(cast.supervisor, "garden") == []
    assert len(texts(cast.therapist_a, "garden")) == 2  # the therapist still treats her


def test_client_finds_only_own_words_with_client_access_consent(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    assert len(texts(cast.client_user_a, "garden")) == 2
    assert texts(cast.client_user_a, "lighthouse") == []
    # Colin has not agreed to see his own recordings, so not their transcripts either.
    assert texts(cast.client_user_b, "lighthouse") == []
    revoke(actor=cast.client_user_a, client=cast.client_a, purpose=Purpose.CLIENT_ACCESS,
           method=Method.CLIENT_ONLINE)
    assert texts(cast.client_user_a, "garden") == []


@pytest.mark.parametrize("persona", ["admin", "researcher", "other_clinic_therapist", "trainee"])
def test_people_without_a_clinical_relationship_find_nothing(
    cast: Cast, transcripts: dict[str, Transcript], persona: str
) -> None:
    user = getattr(cast, persona)
    for word in ("garden", "lighthouse", "mother", "brother"):
        assert texts(user, word) == []


# ---- kept in step with edits and erasure -----------------------------------------------------

def test_corrected_segment_is_found_by_new_text_not_old(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    segment = transcripts["cora"].segments.get(index=2)
    segment.text = "Tell me more about the orchard."
    segment.save()
    assert texts(cast.therapist_a, "orchard") == ["Tell me more about the orchard."]
    assert texts(cast.therapist_a, "garden") == [
        "I have been worried about my mother and the garden."
    ]
    # A bulk update (no save()) is seen too: the index follows the table, not the model.
    Segment.objects.filter(pk=segment.pk).update(text="Tell me about the meadow.")
    assert texts(cast.therapist_a, "orchard") == []
    assert texts(cast.therapist_a, "meadow") == ["Tell me about the meadow."]


def test_correction_action_keeps_index_in_step(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    from relisten.transcripts import actions

    segment = transcripts["cora"].segments.get(index=2)
    actions.correct_segment(actor=cast.therapist_a, segment=segment,
                            text="Tell me more about the allotment.")
    assert texts(cast.therapist_a, "allotment") == ["Tell me more about the allotment."]
    assert len(texts(cast.therapist_a, "garden")) == 1


def test_erased_recording_is_not_found(cast: Cast, transcripts: dict[str, Transcript]) -> None:
    erase_recording(actor=cast.therapist_a, recording=transcripts["cora"].recording)
    for user in (cast.therapist_a, cast.supervisor, cast.client_user_a):
        assert texts(user, "garden") == []


def test_deleted_transcript_leaves_no_index_rows(
    cast: Cast, transcripts: dict[str, Transcript]
) -> None:
    transcript = transcripts["cora"]
    ids = set(transcript.segments.values_list("id", flat=True))
    assert indexed_segment_ids(transcript) == ids
    transcript.delete()  # what replacing a transcript or erasing its recording does
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {search.FTS_TABLE} WHERE rowid IN "
                           f"({', '.join(str(i) for i in ids)})")
            assert cursor.fetchone()[0] == 0
    assert texts(cast.therapist_a, "garden") == []


def test_unindex_removes_rows(cast: Cast, transcripts: dict[str, Transcript]) -> None:
    search.unindex_transcript(transcripts["cora"])
    if connection.vendor == "sqlite":
        assert indexed_segment_ids(transcripts["cora"]) == set()
        assert texts(cast.therapist_a, "garden") == []
        index_transcript(transcripts["cora"])
    assert len(texts(cast.therapist_a, "garden")) == 2


# ---- the search page -------------------------------------------------------------------------

def _page(http: HttpClient, query: str) -> Any:
    return http.get("/transcripts/search/", {"q": query})


def test_search_page_links_to_the_moment_and_audits_per_transcript(
    cast: Cast, transcripts: dict[str, Transcript], signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    before = AuditEvent.objects.count()
    response = _page(http, "garden")
    assert response.status_code == 200
    page = response.content.decode()
    recording = transcripts["cora"].recording
    segment = transcripts["cora"].segments.get(index=2)
    assert f"/recordings/{recording.public_id}/transcript/?t=10.0#seg-{segment.public_id}" in page
    assert "<mark>garden</mark>" in page
    assert "Cora Client, session 1" in page
    assert "lighthouse" not in page
    viewed = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.event_type, e.target_id) for e in viewed] == [
        ("record.viewed", str(transcripts["cora"].public_id))
    ]
    assert viewed[0].client_id == cast.client_a.public_id
    assert "garden" not in str(viewed[0].changes)  # the query is clinical text: never logged


def test_search_page_escapes_and_survives_odd_input(
    cast: Cast, transcripts: dict[str, Transcript], signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    response = _page(http, "avoid")
    assert response.status_code == 200
    assert b"<b>now</b>" not in response.content
    assert b"<mark>avoid</mark>" in response.content
    for query in ('"', "NEAR(", "<script>alert(1)</script>", ")(*"):
        odd = _page(http, query)
        assert odd.status_code == 200
        assert b"<script>alert(1)</script>" not in odd.content


def test_client_search_page_says_my_session(
    cast: Cast, transcripts: dict[str, Transcript], signed_in: Any
) -> None:
    response = _page(signed_in(cast.client_user_a), "garden")
    assert response.status_code == 200
    assert b"My session 1" in response.content
    assert b"<mark>garden</mark>" in response.content


def test_search_page_needs_sign_in(db: None) -> None:
    response = HttpClient().get("/transcripts/search/", {"q": "garden"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/sign-in/")
