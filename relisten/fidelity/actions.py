"""Writes to scales and ratings. Each saves and audits in one transaction.

Shared by several owners: each keeps to its own marked section. Audit rows name the scale,
the item ids and the shape of what changed (a range? a linked comment?), never an answer's
value, an evidence note or a comment's words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.text import slugify

from relisten import access
from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event
from relisten.fidelity.models import Evidence, RaterRole, Rating, RatingState, Scale
from relisten.lib.fidelity.scale import (
    Format,
    Item,
    ScaleDef,
    answer_problem,
    load_scale,
    score,
    to_definition,
)
from relisten.recordings.models import Recording
from relisten.review.models import Comment

# ---- SCALES (importing, building, retiring, loading the shipped scales) --------------------
# Every save of a scale document is a new version (slug stays, version + 1), so a rating keeps
# pointing at exactly the items it used. The document is validated by the one loader
# (relisten/lib/fidelity/scale.py) whether it was uploaded, pasted or made with the builder.

SHIPPED_SCALES_DIR = Path(__file__).resolve().parent / "scales"


class ScaleSaveRefused(ValueError):
    """A valid document that cannot be saved here; the message says why in plain words."""


def _next_scale_version(clinic: Clinic | None, slug: str) -> int:
    latest = (Scale.objects.select_for_update().filter(clinic=clinic, slug=slug)
              .order_by("-version").values_list("version", flat=True).first())
    return (latest or 0) + 1


def save_scale_document(*, actor: User | None, clinic: Clinic | None, text: str, fmt: Format,
                        origin: str = "import") -> tuple[Scale, bool]:
    """Validate `text` and save it as the next version of its slug in `clinic` (None: shipped).

    Returns (scale, created). An identical document to the latest version saves nothing and
    returns that version. Raises ScaleError (with the line) when the document is not valid and
    ScaleSaveRefused when a clinic reuses the slug of a shipped scale.
    """
    definition = load_scale(text, fmt)
    if clinic is not None and Scale.objects.filter(clinic=None, slug=definition.slug).exists():
        raise ScaleSaveRefused(
            f"'{definition.slug}' is the slug of a scale shipped with Relisten. Give your "
            f"version its own slug, for example '{definition.slug}-{slugify(clinic.name)[:20]}'.")
    digest = hashlib.sha256(text.encode()).hexdigest()
    with transaction.atomic():
        version = _next_scale_version(clinic, definition.slug)
        latest = Scale.objects.filter(clinic=clinic, slug=definition.slug,
                                      version=version - 1).first()
        if latest is not None and latest.source_sha256 == digest:
            return latest, False
        scale = Scale.objects.create(
            clinic=clinic, slug=definition.slug, version=version, name=definition.name,
            definition=to_definition(definition), source_sha256=digest, created_by=actor,
        )
        if origin != "shipped":  # reference data installed by migrate, like a migration
            event = "scale.built" if origin == "builder" else "scale.imported"
            record_event(actor=actor, event_type=event, target=scale, clinic=clinic,
                         changes={"slug": scale.slug, "version": scale.version, "format": fmt})
    return scale, True


def set_scale_retired(*, actor: User, scale: Scale, retired: bool) -> Scale:
    """Retire a version (not offered for new ratings; existing ratings keep it) or offer it
    again."""
    with transaction.atomic():
        scale = Scale.objects.select_for_update().get(pk=scale.pk)
        if scale.retired != retired:
            scale.retired = retired
            scale.save(update_fields=["retired"])
            record_event(actor=actor, event_type="scale.retired" if retired else "scale.restored",
                         target=scale, clinic=scale.clinic,
                         changes={"slug": scale.slug, "version": scale.version})
    return scale


def load_shipped_scales() -> list[Scale]:
    """Add the scales in relisten/fidelity/scales/ that are new or changed; idempotent.

    Runs after every `migrate` and test-database flush (FidelityConfig.ready connects it to
    post_migrate). A changed file becomes the next version, so ratings made with the earlier
    one keep it. Like a data migration it writes no audit row: no person acted, and migrate must
    not depend on the audit key.
    """
    added = []
    for path in sorted(SHIPPED_SCALES_DIR.glob("*.yaml")):
        scale, created = save_scale_document(actor=None, clinic=None,
                                             text=path.read_text(encoding="utf-8"), fmt="yaml",
                                             origin="shipped")
        if created:
            added.append(scale)
    return added


# ---- end SCALES ----

# ---- RATING (starting, answering, evidence, completing, reopening) --------------------------
# Answers are saved as the rater goes (autosave, one request per change). Each save is its own
# small write but not its own audit row: a behaviour count clicked forty times would bury the
# trail. The trail says when a rating was started, completed (with the answers as they then
# stood, kept on the rating) and reopened, and when evidence was added or removed.

MAX_COUNT = 9999
COMPLETE_FIRST = "This rating is complete. Reopen it to change it."


class RatingRefused(Exception):
    """The change cannot be made; `message` says why, in words for the rater."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _audit(actor: User, event_type: str, rating: Rating, changes: dict[str, Any]) -> None:
    client = rating.session.episode.client
    record_event(
        actor=actor, event_type=event_type, target=rating, client=client, clinic=client.clinic,
        changes={"scale": rating.scale.slug, "version": rating.scale.version,
                 "role": rating.role, **changes},
        actor_role=access.relationship_to(actor, client),
    )


def offered_scales(recording: Recording) -> QuerySet[Scale]:
    """Scales a rating of this recording's session may use: shipped ones and the clinic's own,
    not retired (a retired version keeps its old ratings but starts no new ones)."""
    clinic_id = recording.session.episode.client.clinic_id
    return Scale.objects.filter(Q(clinic=None) | Q(clinic_id=clinic_id), retired=False)


def start_rating(*, actor: User, recording: Recording, scale: Scale, role: str) -> Rating:
    """A new draft rating of the recording's session on `scale`, or the rater's existing one
    on that scale (brought to the front, so the panel shows it)."""
    session = recording.session
    existing = Rating.objects.filter(session=session, scale=scale, rater=actor).first()
    if existing is not None:
        existing.save(update_fields=["updated_at"])
        return existing
    if role not in RaterRole.values:
        raise RatingRefused("Only the session's therapist or supervisor can rate it.")
    if not offered_scales(recording).filter(pk=scale.pk).exists():
        raise RatingRefused("That scale is not offered for new ratings here. Please choose "
                            "another one from the list.")
    try:
        with transaction.atomic():
            rating = Rating.objects.create(session=session, recording=recording, scale=scale,
                                           rater=actor, role=role)
            _audit(actor, "rating.started", rating, {"recording_id": str(recording.public_id)})
    except IntegrityError:  # the same rater started it a moment ago in another tab
        return Rating.objects.get(session=session, scale=scale, rater=actor)
    return rating


def _check_value(item: Item, value: float | None) -> float | None:
    """The answer as stored (whole numbers for points and counts), or RatingRefused."""
    if value is None:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        raise RatingRefused(f"“{item.text}” takes a whole number.")
    if item.kind == "count" and value > MAX_COUNT:
        raise RatingRefused(f"“{item.text}” counts up to {MAX_COUNT}.")
    problem = answer_problem(item, value)
    if problem:
        raise RatingRefused(problem[0].upper() + problem[1:] + ".")
    return int(value)


def _item(definition: ScaleDef, item_id: str) -> Item:
    item = definition.item(item_id)
    if item is None:
        raise RatingRefused("That item is not part of this scale. Please reload the page.")
    return item


def save_answers(*, actor: User, rating: Rating, definition: ScaleDef,
                 values: Mapping[str, float | None]) -> bool:
    """Set these items' answers (None clears one). Saving what is already saved changes
    nothing, so a repeated autosave is harmless. Returns whether anything changed."""
    if rating.rater_id != actor.pk:
        raise RatingRefused("Only the person who gave a rating can change it.")
    checked = {item_id: _check_value(_item(definition, item_id), value)
               for item_id, value in values.items()}
    with transaction.atomic():
        # Locked and read afresh: two autosaves of different items must not undo each other.
        current = Rating.objects.select_for_update().get(pk=rating.pk)
        if current.state != RatingState.DRAFT:
            raise RatingRefused(COMPLETE_FIRST)
        answers = dict(current.answers)
        for item_id, value in checked.items():
            if value is None:
                answers.pop(item_id, None)
            else:
                answers[item_id] = value
        if answers == current.answers:
            rating.answers = answers
            return False
        current.answers = answers
        current.save(update_fields=["answers", "updated_at"])
    rating.answers, rating.updated_at = current.answers, current.updated_at
    return True


def add_evidence(*, actor: User, rating: Rating, definition: ScaleDef, item_id: str,
                 start: float, end: float | None, comment: Comment | None = None,
                 note: str = "") -> Evidence:
    """Evidence for one item: a moment or stretch of the recording, or one of the comments the
    rater can read (its time is copied, so the evidence still points there if it goes)."""
    item = _item(definition, item_id)
    if rating.state != RatingState.DRAFT:
        raise RatingRefused(COMPLETE_FIRST)
    if comment is not None:
        start, end = comment.start, comment.end
    with transaction.atomic():
        evidence = Evidence.objects.create(rating=rating, item=item.id, start=start, end=end,
                                           comment=comment, note=note[:500])
        _audit(actor, "rating.evidence_added", rating, {
            "item_id": item.id, "range": end is not None, "linked_comment": comment is not None,
        })
    return evidence


def remove_evidence(*, actor: User, evidence: Evidence) -> None:
    rating = evidence.rating
    if rating.state != RatingState.DRAFT:
        raise RatingRefused(COMPLETE_FIRST)
    with transaction.atomic():
        _audit(actor, "rating.evidence_removed", rating, {"item_id": evidence.item})
        evidence.delete()


def unanswered(definition: ScaleDef, answers: Mapping[str, Any]) -> list[Item]:
    """Items still to rate. Behaviour counts start at 0, so they never hold a rating up."""
    return [item for item in definition.items
            if item.kind != "count" and answers.get(item.id) is None]


def complete_rating(*, actor: User, rating: Rating, definition: ScaleDef) -> Rating:
    """Every item rated → the scale's scores computed and stored, the rating complete."""
    with transaction.atomic():
        current = Rating.objects.select_for_update().get(pk=rating.pk)
        if current.state == RatingState.COMPLETE:
            return rating
        missing = unanswered(definition, current.answers)
        if missing:
            raise RatingRefused(
                f"{len(missing)} item{'s' if len(missing) != 1 else ''} still need"
                f"{'s' if len(missing) == 1 else ''} a rating: "
                + ", ".join(f"“{item.text}”" for item in missing[:5])
                + ("…" if len(missing) > 5 else "") + ".")
        answers = {**{item.id: 0 for item in definition.items if item.kind == "count"},
                   **current.answers}
        scores = score(definition, answers)
        rating.answers = answers
        rating.scores = scores.to_json()
        rating.total = scores.main
        rating.state = RatingState.COMPLETE
        rating.completed_at = timezone.now()
        rating.save(update_fields=["answers", "scores", "total", "state", "completed_at",
                                   "updated_at"])
        _audit(actor, "rating.completed", rating, {})
    return rating


def reopen_rating(*, actor: User, rating: Rating) -> Rating:
    """Back to a draft; the stored scores go (they would no longer match the answers)."""
    if rating.state != RatingState.COMPLETE:
        return rating
    with transaction.atomic():
        rating.state = RatingState.DRAFT
        rating.completed_at = None
        rating.scores = {}
        rating.total = None
        rating.save(update_fields=["state", "completed_at", "scores", "total", "updated_at"])
        _audit(actor, "rating.reopened", rating, {})
    return rating


# ---- end RATING ----
