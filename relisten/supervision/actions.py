"""Writes to supervision: each checks, saves and audits in one transaction.

Audit rows name people by their public id only; a sign-off's note is feedback about a client's
session, so it is never in the row (only whether there is one).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from relisten.accounts.models import TREATING_ROLES, Clinic, Membership, Role, User
from relisten.audit.log import record_event
from relisten.clients.models import TherapySession
from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.supervision.models import SessionSignOff, SupervisionAssignment


class SupervisionError(ValueError):
    """A request that cannot be done, with a message the person who asked can read."""


def _holds(user: User, clinic: Clinic, roles: set[str] | frozenset[str]) -> bool:
    return Membership.objects.filter(
        user=user, clinic=clinic, role__in=roles, active=True
    ).exists()


def assignment_problem(clinic: Clinic, supervisor: User, supervisee: User) -> str | None:
    """Why this pair cannot be assigned in this clinic, in plain words; None if it can."""
    if supervisor.pk == supervisee.pk:
        return "A person cannot supervise themselves. Choose two different people."
    if not _holds(supervisor, clinic, {Role.SUPERVISOR}):
        return (f"{supervisor.label()} does not have the Supervisor role in {clinic.name}. "
                "Give them the role under People and roles first.")
    if not _holds(supervisee, clinic, TREATING_ROLES):
        return (f"{supervisee.label()} is not a therapist or trainee in {clinic.name}, so there "
                "is no one’s work to supervise. Give them one of those roles first.")
    if SupervisionAssignment.objects.filter(
        clinic=clinic, supervisor=supervisor, supervisee=supervisee, ended_at__isnull=True
    ).exists():
        return f"{supervisor.label()} already supervises {supervisee.label()} here."
    return None


def assign_supervisor(
    *, actor: User | None, clinic: Clinic, supervisor: User, supervisee: User
) -> SupervisionAssignment:
    problem = assignment_problem(clinic, supervisor, supervisee)
    if problem is not None:
        raise SupervisionError(problem)
    with transaction.atomic():
        assignment = SupervisionAssignment.objects.create(
            clinic=clinic, supervisor=supervisor, supervisee=supervisee, created_by=actor
        )
        record_event(
            actor=actor, event_type="supervision.assigned", target=assignment, clinic=clinic,
            changes={"supervisor": str(supervisor.public_id),
                     "supervisee": str(supervisee.public_id)},
        )
    return assignment


def end_assignment(*, actor: User, assignment: SupervisionAssignment) -> SupervisionAssignment:
    """From the next request on, the supervisor no longer sees the supervisee's episodes."""
    if assignment.ended_at is not None:
        return assignment
    with transaction.atomic():
        assignment.ended_at = timezone.now()
        assignment.ended_by = actor
        assignment.save(update_fields=["ended_at", "ended_by"])
        record_event(
            actor=actor, event_type="supervision.ended", target=assignment,
            clinic=assignment.clinic,
            changes={"supervisor": str(assignment.supervisor.public_id),
                     "supervisee": str(assignment.supervisee.public_id)},
        )
    return assignment


def standing_signoff(session: TherapySession) -> SessionSignOff | None:
    return (
        session.signoffs.filter(reopened_at__isnull=True).select_related("supervisor").first()
    )


def signoff_refusal(*, shared: bool, consent: bool, signed_off: bool) -> str | None:
    """Why a session cannot be signed off, from what is already known; None if it can.

    Only a session in the supervisor's review queue: shared for supervision, with the client's
    supervision-review consent in force, and not signed off already."""
    if signed_off:
        return "This session is already signed off."
    if not shared:
        return ("This session is not shared for supervision, so there is nothing to sign off "
                "yet. The therapist shares it from this page.")
    if not consent:
        return ("The client has not agreed to supervision review, or has withdrawn it, so "
                "this session cannot be reviewed or signed off.")
    return None


def signoff_problem(session: TherapySession) -> str | None:
    return signoff_refusal(
        shared=session.shared_for_supervision,
        consent=is_allowed(session.episode.client, Purpose.SUPERVISION_REVIEW),
        signed_off=standing_signoff(session) is not None,
    )


def sign_off_session(
    *, actor: User, session: TherapySession, note: str = ""
) -> SessionSignOff:
    """`actor` must come with a session from access.get_session_for_signoff."""
    problem = signoff_problem(session)
    if problem is not None:
        raise SupervisionError(problem)
    client = session.episode.client
    with transaction.atomic():
        signoff = SessionSignOff.objects.create(
            session=session, supervisor=actor, note=note.strip()
        )
        record_event(
            actor=actor, event_type="session.signed_off", target=session, client=client,
            clinic=client.clinic, actor_role="supervisor",
            changes={"signoff": str(signoff.public_id), "with_note": bool(signoff.note)},
        )
    return signoff


def reopen_session(*, actor: User, session: TherapySession) -> SessionSignOff:
    """Withdraw the standing sign-off: the session goes back into the review queue. The row
    stays, marked reopened, so the history shows both."""
    signoff = standing_signoff(session)
    if signoff is None:
        raise SupervisionError("This session is not signed off, so there is nothing to reopen.")
    client = session.episode.client
    with transaction.atomic():
        signoff.reopened_at = timezone.now()
        signoff.reopened_by = actor
        signoff.save(update_fields=["reopened_at", "reopened_by"])
        record_event(
            actor=actor, event_type="session.signoff_reopened", target=session, client=client,
            clinic=client.clinic, actor_role="supervisor",
            changes={"signoff": str(signoff.public_id)},
        )
    return signoff
