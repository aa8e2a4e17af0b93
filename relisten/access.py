"""The one access policy: who may see or do what, for every object type.

Views never test roles themselves; they call a get_<thing>_for_user() helper here. An object
the user may not see is answered exactly like a missing one (Http404) and leaves an
`authz.denied` audit event, so probing ids reveals nothing but is still on record.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from relisten.accounts.models import (
    CLINICAL_ROLES,
    TREATING_ROLES,
    Clinic,
    Membership,
    Role,
    User,
)
from relisten.audit.log import record_event_now
from relisten.clients.models import Client, Episode, TherapySession
from relisten.consent.models import ConsentDecision, ConsentText, Purpose
from relisten.consent.policy import is_allowed
from relisten.fidelity.models import (  # ratings; Scale: fidelity reports
    Evidence,
    RaterRole,
    Rating,
    RatingState,
    Scale,
)
from relisten.recordings.models import Recording, State, Upload
from relisten.review.models import Comment, Scope
from relisten.supervision.models import SessionSignOff, SupervisionAssignment
from relisten.transcripts.models import Segment, Speaker, Transcript


class Act(Enum):
    VIEW = "view"  # read the clinical record
    TREAT = "treat"  # change it: edit, record consent, schedule, discharge


def _parse_id(raw: Any) -> uuid.UUID | None:
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def _deny(user: User, object_type: str, raw_id: Any) -> Http404:
    """Audit the refusal, then hand back the 404 the caller raises."""
    record_event_now(
        actor=user if user.is_authenticated else None,
        event_type="authz.denied",
        changes={"object_type": object_type, "object_id": str(raw_id)[:64]},
    )
    return Http404("Not found")


def _role_clinics(user: User, roles: frozenset[Role] | set[Role]) -> QuerySet[Clinic]:
    return Clinic.objects.filter(
        memberships__user=user, memberships__role__in=roles, memberships__active=True
    ).distinct()


def has_role(user: User, clinic_id: int, roles: frozenset[Role] | set[Role]) -> bool:
    if not user.is_authenticated:
        return False
    return Membership.objects.filter(
        user=user, clinic_id=clinic_id, role__in=roles, active=True
    ).exists()


# ---- clients, episodes, sessions -------------------------------------------------------------

def _treating_q(user: User, prefix: str = "") -> Q:
    return Q(**{f"{prefix}therapist": user}) & Q(
        **{f"{prefix}client__clinic__in": _role_clinics(user, TREATING_ROLES)}
    )


def _supervising_q(user: User, prefix: str = "") -> Q:
    """Episodes this user supervises: named as the episode's supervisor, holding the supervisor
    role in its clinic, and assigned by the clinic to its therapist right now (supervision
    section below), so ending the assignment closes the episode on the very next request."""
    return (
        Q(**{f"{prefix}supervisor": user})
        & Q(**{f"{prefix}client__clinic__in": _role_clinics(user, {Role.SUPERVISOR})})
        & Q(_active_assignment_to_therapist(user, prefix))
    )


def episodes_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[Episode]:
    """Episodes whose clinical content this user may see (VIEW) or change (TREAT)."""
    if not user.is_authenticated:
        return Episode.objects.none()
    allowed = _treating_q(user)
    if act is Act.VIEW:
        allowed |= _supervising_q(user)
    return Episode.objects.filter(allowed).distinct()


def clients_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[Client]:
    return Client.objects.filter(episodes__in=episodes_for_user(user, act)).distinct()


def sessions_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[TherapySession]:
    return TherapySession.objects.filter(episode__in=episodes_for_user(user, act))


def _get_visible(
    user: User, queryset_view: QuerySet[Any], queryset_act: QuerySet[Any], raw_id: Any, name: str
) -> Any:
    public_id = _parse_id(raw_id)
    obj = queryset_view.filter(public_id=public_id).first() if public_id else None
    if obj is None:
        raise _deny(user, name, raw_id)
    if queryset_act is not queryset_view and not queryset_act.filter(pk=obj.pk).exists():
        # Visible but not theirs to change (e.g. a supervisor): say so plainly.
        record_event_now(
            actor=user, event_type="authz.forbidden",
            changes={"object_type": name, "object_id": str(public_id)},
        )
        raise PermissionDenied("You can see this record but not change it.")
    return obj


def get_client_for_user(user: User, raw_id: Any, act: Act = Act.VIEW) -> Client:
    view = clients_for_user(user, Act.VIEW).select_related("clinic")
    chosen = clients_for_user(user, act) if act is not Act.VIEW else view
    client: Client = _get_visible(user, view, chosen, raw_id, "client")
    return client


def get_episode_for_user(user: User, raw_id: Any, act: Act = Act.VIEW) -> Episode:
    view = episodes_for_user(user, Act.VIEW).select_related("client", "client__clinic")
    chosen = episodes_for_user(user, act) if act is not Act.VIEW else view
    episode: Episode = _get_visible(user, view, chosen, raw_id, "episode")
    return episode


def get_session_for_user(user: User, raw_id: Any, act: Act = Act.VIEW) -> TherapySession:
    view = sessions_for_user(user, Act.VIEW).select_related("episode__client__clinic")
    chosen = sessions_for_user(user, act) if act is not Act.VIEW else view
    session: TherapySession = _get_visible(user, view, chosen, raw_id, "session")
    return session


def clinics_where_user_treats(user: User) -> QuerySet[Clinic]:
    return _role_clinics(user, TREATING_ROLES)


def supervisors_in(clinic: Clinic) -> QuerySet[User]:
    return User.objects.filter(
        memberships__clinic=clinic, memberships__role=Role.SUPERVISOR, memberships__active=True
    ).distinct()


def is_clinical(user: User) -> bool:
    return _role_clinics(user, CLINICAL_ROLES).exists()


# ---- the client's own portal ----------------------------------------------------------------

def own_client_records(user: User) -> QuerySet[Client]:
    if not user.is_authenticated:
        return Client.objects.none()
    return Client.objects.filter(
        user=user, clinic__in=_role_clinics(user, {Role.CLIENT})
    ).select_related("clinic")


def get_own_client_record(user: User, raw_id: Any) -> Client:
    public_id = _parse_id(raw_id)
    client = own_client_records(user).filter(public_id=public_id).first() if public_id else None
    if client is None:
        raise _deny(user, "own_record", raw_id)
    return client


# ---- recordings ------------------------------------------------------------------------------

def _clients_consenting(clients: QuerySet[Client], purpose: Purpose) -> list[int]:
    """The clients among these whose consent for `purpose` is in force right now.

    Asked through consent.policy, uncached, so a withdrawal stops the very next request.
    """
    return [client.pk for client in clients if is_allowed(client, purpose)]


def recordings_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[Recording]:
    """READY recordings this user may play (VIEW) or erase (TREAT).

    The treating therapist or trainee of the session's episode may do both. The episode's
    supervisor may play them only while the client's "supervision review" consent is in force,
    and the client may play their own only while "client access" consent is, and only those of
    sessions shared with them. Recordings that are not READY are invisible to everyone.
    """
    if not user.is_authenticated:
        return Recording.objects.none()
    allowed = Q(session__episode__in=Episode.objects.filter(_treating_q(user)))
    if act is Act.VIEW:
        supervised = Episode.objects.filter(_supervising_q(user))
        reviewable = _clients_consenting(
            Client.objects.filter(episodes__in=supervised).distinct(), Purpose.SUPERVISION_REVIEW
        )
        allowed |= Q(session__episode__in=supervised.filter(client_id__in=reviewable))
        own = _clients_consenting(own_client_records(user), Purpose.CLIENT_ACCESS)
        # The client sees only the sessions their therapist shared with them (portal helper).
        allowed |= Q(session__episode__client_id__in=own, session__shared_with_client=True)
    return Recording.objects.filter(allowed, state=State.READY).distinct()


def get_recording_for_user(user: User, raw_id: Any, act: Act = Act.VIEW) -> Recording:
    view = recordings_for_user(user, Act.VIEW).select_related("session__episode__client__clinic")
    chosen = recordings_for_user(user, act) if act is not Act.VIEW else view
    recording: Recording = _get_visible(user, view, chosen, raw_id, "recording")
    return recording


# ---- clinic administration (no clinical content) ---------------------------------------------

def admin_clinics(user: User) -> QuerySet[Clinic]:
    if not user.is_authenticated:
        return Clinic.objects.none()
    return _role_clinics(user, {Role.ADMIN})


def get_clinic_for_admin(user: User, raw_id: Any) -> Clinic:
    public_id = _parse_id(raw_id)
    clinic = admin_clinics(user).filter(public_id=public_id).first() if public_id else None
    if clinic is None:
        raise _deny(user, "clinic", raw_id)
    return clinic


def get_membership_for_admin(user: User, raw_id: Any) -> Membership:
    public_id = _parse_id(raw_id)
    # A client's role is clinical information (it says who is in therapy here): admins manage
    # staff roles only, as the people page lists them; the therapist gives portal access.
    membership = (
        Membership.objects.filter(public_id=public_id, clinic__in=admin_clinics(user))
        .exclude(role=Role.CLIENT)
        .select_related("user", "clinic")
        .first()
        if public_id
        else None
    )
    if membership is None:
        raise _deny(user, "membership", raw_id)
    return membership


def get_consent_text_for_admin(user: User, raw_id: Any) -> ConsentText:
    public_id = _parse_id(raw_id)
    text = (
        ConsentText.objects.filter(public_id=public_id, clinic__in=admin_clinics(user))
        .select_related("clinic")
        .first()
        if public_id
        else None
    )
    if text is None:
        raise _deny(user, "consent_text", raw_id)
    return text


def relationship_to(user: User, client: Client) -> str:
    """How this user relates to the client, in words the client's access log shows."""
    if client.user_id is not None and client.user_id == user.pk:
        return "client"
    episodes = client.episodes.all()
    if any(episode.therapist_id == user.pk for episode in episodes):
        return "therapist"
    if any(episode.supervisor_id == user.pk for episode in episodes):
        return "supervisor"
    return "staff"


def get_upload_for_user(user: User, raw_id: Any) -> Upload:
    """The user's own unfinished upload to a session they treat; anything else is answered
    like a missing one (404) and audited."""
    public_id = _parse_id(raw_id)
    upload = (
        Upload.objects.filter(
            public_id=public_id, recording__created_by=user,
            recording__session__in=sessions_for_user(user, Act.TREAT),
        )
        .select_related("recording__session__episode__client__clinic")
        .first()
        if public_id
        else None
    )
    if upload is None:
        raise _deny(user, "upload", raw_id)
    return upload


# ---- transcripts -----------------------------------------------------------------------------
# A transcript is the recording in words: it is visible, and changeable, exactly when its
# recording is. Nothing here decides anything new; it follows recordings_for_user, so consent
# withdrawal and erasure hide transcripts on the very next request, search results included.

def transcripts_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[Transcript]:
    return Transcript.objects.filter(recording__in=recordings_for_user(user, act))


def segments_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[Segment]:
    return Segment.objects.filter(transcript__in=transcripts_for_user(user, act))


def get_transcript_for_user(user: User, raw_id: Any, act: Act = Act.VIEW) -> Transcript:
    view = transcripts_for_user(user, Act.VIEW).select_related(
        "recording__session__episode__client__clinic"
    )
    chosen = transcripts_for_user(user, act) if act is not Act.VIEW else view
    transcript: Transcript = _get_visible(user, view, chosen, raw_id, "transcript")
    return transcript


def get_segment_for_user(
    user: User, raw_transcript_id: Any, raw_segment_id: Any, act: Act = Act.VIEW
) -> Segment:
    """A segment of a transcript the user may see (or change); the transcript is checked
    first, so a supervisor gets the same 403 as for the transcript itself."""
    transcript = get_transcript_for_user(user, raw_transcript_id, act)
    public_id = _parse_id(raw_segment_id)
    segment = (
        transcript.segments.filter(public_id=public_id).select_related("speaker").first()
        if public_id else None
    )
    if segment is None:
        raise _deny(user, "segment", raw_segment_id)
    segment.transcript = transcript  # keeps the recording/client already loaded
    return segment


def get_speaker_for_user(
    user: User, raw_transcript_id: Any, raw_speaker_id: Any, act: Act = Act.VIEW
) -> Speaker:
    transcript = get_transcript_for_user(user, raw_transcript_id, act)
    public_id = _parse_id(raw_speaker_id)
    speaker = transcript.speakers.filter(public_id=public_id).first() if public_id else None
    if speaker is None:
        raise _deny(user, "speaker", raw_speaker_id)
    speaker.transcript = transcript
    return speaker


# ---- comments (time-stamped comments on a recording) -----------------------------------------
# A comment is visible only to someone who can see its recording, and then by its thread's scope:
# PRIVATE to its author, CARE_TEAM to the staff who can see the recording (never the client),
# CLIENT to those staff and to the client. A reply always follows its thread's root, so nobody
# reads an answer to a comment they cannot read. Only the author edits or deletes.

def is_recordings_client(user: User, recording: Recording) -> bool:
    """Whether `user` is the client this recording is of (their own portal sign-in).

    Free of queries when the recording came from get_recording_for_user (which loads the
    session, episode and client with it)."""
    return user.is_authenticated and recording.session.episode.client.user_id == user.pk


def readable_comment_scopes(user: User, recording: Recording) -> tuple[str, ...]:
    """The shared scopes (besides their own private notes) this user reads on a recording
    they can see."""
    if is_recordings_client(user, recording):
        return (Scope.CLIENT,)
    return (Scope.CARE_TEAM, Scope.CLIENT)


def writable_comment_scopes(user: User, recording: Recording) -> tuple[str, ...]:
    """Clients keep private notes or share with their therapist; staff may use every scope."""
    if is_recordings_client(user, recording):
        return (Scope.PRIVATE, Scope.CLIENT)
    return (Scope.PRIVATE, Scope.CARE_TEAM, Scope.CLIENT)


def _comment_scope_q(user: User, shared: tuple[str, ...], prefix: str) -> Q:
    return Q(**{f"{prefix}scope__in": shared}) | Q(
        **{f"{prefix}scope": Scope.PRIVATE, f"{prefix}author": user}
    )


def comments_for_user(user: User, recording: Recording) -> QuerySet[Comment]:
    """Comments and replies on `recording` this user may read, in time order.

    `recording` must come from get_recording_for_user (or a transcript from
    get_transcript_for_user) for this same user: whether they may see the recording at all is
    decided there; this decides which of its comments. One query, whatever the count.
    """
    if not user.is_authenticated:
        return Comment.objects.none()
    shared = readable_comment_scopes(user, recording)
    # Roots by their own scope; replies by their root's, whatever they carry themselves.
    visible = (Q(parent__isnull=True) & _comment_scope_q(user, shared, "")) | (
        Q(parent__isnull=False) & _comment_scope_q(user, shared, "parent__")
    )
    return Comment.objects.filter(visible, recording=recording).select_related("author")


def get_comment_for_user(user: User, raw_id: Any, *, author_only: bool = False) -> Comment:
    """A comment the user may read (its recording visible to them, its scope readable), with
    its recording loaded as get_recording_for_user loads it. `author_only`: for edit and
    delete, which only the author may do; anyone else who can read it is told so (403)."""
    public_id = _parse_id(raw_id)
    found = (
        Comment.objects.filter(public_id=public_id).select_related("parent").first()
        if public_id else None
    )
    recording = (
        recordings_for_user(user, Act.VIEW).select_related("session__episode__client__clinic")
        .filter(pk=found.recording_id).first()
        if found is not None else None
    )
    comment = (
        comments_for_user(user, recording).filter(pk=found.pk).first()
        if found is not None and recording is not None else None
    )
    if comment is None or recording is None:
        raise _deny(user, "comment", raw_id)
    comment.recording = recording
    if author_only and comment.author_id != user.pk:
        record_event_now(
            actor=user, event_type="authz.forbidden",
            changes={"object_type": "comment", "object_id": str(comment.public_id)},
        )
        raise PermissionDenied("Only the person who wrote a comment can change or delete it.")
    return comment


# ---- sharing: the supervisor's queue, the client's portal, home pages (portal helper) --------

def _latest_decision_granted(purpose: Purpose, client_path: str) -> Subquery:
    """Whether the client at `client_path` has `purpose` in force, as consent.policy.is_allowed
    decides it (the latest decision by insertion order is a grant), but inside one SQL query
    so that a list of many clients costs no query per client. NULL (no decision) means no."""
    return Subquery(
        ConsentDecision.objects.filter(client=OuterRef(client_path), purpose=purpose)
        .order_by("-id").values("granted")[:1]
    )


def consents_in_force(client: Client, *purposes: Purpose) -> dict[Purpose, bool]:
    """For each purpose, whether it is in force for this client now: one query for them all."""
    row = (
        Client.objects.filter(pk=client.pk)
        .annotate(**{purpose.value: _latest_decision_granted(purpose, "pk")
                     for purpose in purposes})
        .values(*[purpose.value for purpose in purposes])
        .first()
    ) or {}
    return {purpose: bool(row.get(purpose.value)) for purpose in purposes}


def supervision_queue_for_user(user: User) -> QuerySet[TherapySession]:
    """Sessions shared for supervision whose episode this user supervises (under an active
    assignment), while the client's supervision-review consent is in force and no sign-off
    stands; the longest-waiting first."""
    if not user.is_authenticated:
        return TherapySession.objects.none()
    return (
        TherapySession.objects.filter(
            shared_for_supervision=True, episode__in=Episode.objects.filter(_supervising_q(user))
        )
        .annotate(review_allowed=_latest_decision_granted(Purpose.SUPERVISION_REVIEW,
                                                          "episode__client"))
        .filter(review_allowed=True)
        .exclude(_signed_off())
        .order_by("shared_for_supervision_at", "scheduled_at", "pk")
    )


def shared_recordings_for_client(user: User, client: Client) -> QuerySet[Recording]:
    """What the client may play in their portal: recordings_for_user decides (shared sessions,
    client-access consent, READY), narrowed to this one of their records."""
    return recordings_for_user(user, Act.VIEW).filter(session__episode__client=client)


def comments_from_others_for_user(user: User) -> QuerySet[Comment]:
    """Comments others wrote on recordings this user treats, as far as the comment rules let
    this user read them (the client's "shared with my therapist", the supervisor's care-team
    notes): the therapist's "needs attention" and the trainee's "feedback received"."""
    if not user.is_authenticated:
        return Comment.objects.none()
    shared = (Scope.CARE_TEAM, Scope.CLIENT)  # staff read both shared scopes
    visible = (Q(parent__isnull=True) & _comment_scope_q(user, shared, "")) | (
        Q(parent__isnull=False) & _comment_scope_q(user, shared, "parent__")
    )
    return Comment.objects.filter(
        visible, recording__in=recordings_for_user(user, Act.TREAT)
    ).exclude(author=user)


# ---- supervision: assignments and sign-off (supervision helper) ------------------------------
# The clinic assigns supervisors to therapists and trainees; an episode's named supervisor sees
# it only while such an assignment is active (_supervising_q above). Assignments carry no
# clinical content: the clinic's admins manage them, like roles.

def _active_assignment_to_therapist(user: User, prefix: str = "") -> Exists:
    return Exists(SupervisionAssignment.objects.filter(
        supervisor=user, ended_at__isnull=True,
        supervisee=OuterRef(f"{prefix}therapist"), clinic=OuterRef(f"{prefix}client__clinic"),
    ))


def _signed_off(session_path: str = "pk") -> Exists:
    """Whether a sign-off stands for the session at `session_path` (not reopened)."""
    return Exists(SessionSignOff.objects.filter(
        session=OuterRef(session_path), reopened_at__isnull=True
    ))


def active_assignments(clinic: Clinic) -> QuerySet[SupervisionAssignment]:
    return SupervisionAssignment.objects.filter(clinic=clinic, ended_at__isnull=True)


def is_assigned_supervisor(supervisor_id: int, supervisee_id: int, clinic_id: int) -> bool:
    """By ids, so a caller holding an episode needs no query to load the people."""
    return SupervisionAssignment.objects.filter(
        supervisor_id=supervisor_id, supervisee_id=supervisee_id, clinic_id=clinic_id,
        ended_at__isnull=True,
    ).exists()


def supervisors_assigned_to(
    supervisee: User, clinics: QuerySet[Clinic] | list[Clinic]
) -> QuerySet[User]:
    """Who may be named supervisor on this therapist's episodes: assigned to them in one of
    these clinics, and still holding the supervisor role there."""
    return User.objects.filter(
        supervision_assignments_given__supervisee=supervisee,
        supervision_assignments_given__ended_at__isnull=True,
        supervision_assignments_given__clinic__in=clinics,
        memberships__clinic__in=clinics, memberships__role=Role.SUPERVISOR,
        memberships__active=True,
    ).distinct()


def get_assignment_for_admin(user: User, raw_id: Any) -> SupervisionAssignment:
    public_id = _parse_id(raw_id)
    assignment = (
        SupervisionAssignment.objects.filter(public_id=public_id, clinic__in=admin_clinics(user))
        .select_related("clinic", "supervisor", "supervisee")
        .first()
        if public_id
        else None
    )
    if assignment is None:
        raise _deny(user, "supervision_assignment", raw_id)
    return assignment


def get_session_for_signoff(user: User, raw_id: Any) -> TherapySession:
    """A session this user supervises (and so may sign off or reopen). Anyone else who can
    see it (its therapist) is told they cannot (403); everyone else gets the 404."""
    session = get_session_for_user(user, raw_id)
    if session.episode.supervisor_id != user.pk or not Episode.objects.filter(
        _supervising_q(user), pk=session.episode_id
    ).exists():
        record_event_now(
            actor=user, event_type="authz.forbidden",
            changes={"object_type": "session", "object_id": str(session.public_id)},
        )
        raise PermissionDenied("Only the session's supervisor can sign it off.")
    return session


# ---- fidelity ratings (issue 6, rating helper) ----------------------------------------------
# A rating is about a recorded session, so it follows the recording: nobody sees a rating of a
# recording they cannot play (a supervisor whose consent or assignment has ended included), and
# clients never see ratings. Among those who may, a rater sees their own ratings, drafts too;
# someone else's only once it is COMPLETE (the therapist sees the supervisor's finished rating,
# not the working draft, and the other way round). Only the rater changes a rating.

def rater_role(user: User, recording: Recording, *, can_treat: bool | None = None) -> str | None:
    """The role in which `user` rates this recording's session: "self" for the treating
    therapist or trainee, "supervisor" for the episode's supervisor, None for anyone else (the
    client). `recording` must come from get_recording_for_user for this user, which has checked
    the supervisor's consent; this adds one query at most (none when `can_treat` is true)."""
    if not user.is_authenticated or is_recordings_client(user, recording):
        return None
    if can_treat is None:
        can_treat = recordings_for_user(user, Act.TREAT).filter(pk=recording.pk).exists()
    if can_treat:
        return str(RaterRole.SELF)
    supervises = Episode.objects.filter(_supervising_q(user), pk=recording.session.episode_id)
    return str(RaterRole.SUPERVISOR) if supervises.exists() else None


def ratings_for_user(user: User) -> QuerySet[Rating]:
    """Ratings this user may read: their own, and others' finished ones, on recordings they may
    play of episodes they treat or supervise."""
    if not user.is_authenticated:
        return Rating.objects.none()
    return Rating.objects.filter(
        Q(rater=user) | Q(state=RatingState.COMPLETE),
        recording__in=recordings_for_user(user, Act.VIEW),
        session__episode__in=episodes_for_user(user, Act.VIEW),
    )


def get_rating_for_user(user: User, raw_id: Any, *, own: bool = False) -> Rating:
    """A rating the user may read, with its scale, rater and recording loaded. `own`: for
    changes, which only the rater may make; anyone else who can read it is told so (403)."""
    public_id = _parse_id(raw_id)
    rating = (
        ratings_for_user(user).filter(public_id=public_id)
        .select_related("scale", "rater", "recording__session__episode__client__clinic")
        .first()
        if public_id else None
    )
    if rating is None:
        raise _deny(user, "rating", raw_id)
    if own and rating.rater_id != user.pk:
        record_event_now(
            actor=user, event_type="authz.forbidden",
            changes={"object_type": "rating", "object_id": str(rating.public_id)},
        )
        raise PermissionDenied("Only the person who gave a rating can change it.")
    recording = rating.recording
    assert recording is not None  # ratings_for_user asks for a playable recording
    rating.session = recording.session  # already loaded with the recording
    return rating


def get_evidence_for_user(user: User, raw_id: Any) -> Evidence:
    """A piece of evidence on one of the user's own ratings (to remove it); others' → 404."""
    public_id = _parse_id(raw_id)
    evidence = (
        Evidence.objects.filter(public_id=public_id, rating__rater=user)
        .select_related("rating").first()
        if public_id and user.is_authenticated else None
    )
    if evidence is None:
        raise _deny(user, "evidence", raw_id)
    evidence.rating = get_rating_for_user(user, evidence.rating.public_id, own=True)
    return evidence


def get_rated_session_for_user(user: User, raw_id: Any) -> TherapySession:
    """A session whose ratings the user may compare: one they treat or supervise, with a
    recording they may play (a supervisor without the client's consent gets the 404)."""
    public_id = _parse_id(raw_id)
    session = (
        sessions_for_user(user, Act.VIEW).filter(public_id=public_id)
        .select_related("episode__client__clinic").first()
        if public_id else None
    )
    if session is None or not recordings_for_user(user, Act.VIEW).filter(
        session=session
    ).exists():
        raise _deny(user, "session", raw_id)
    return session
# ---- end fidelity ratings ----


# ---- fidelity reports: calibration and fidelity over time (issue 6, stats helper) -----------
# Calibration compares raters, not clients: a clinic's supervisors and admins see every finished
# rating of that clinic's sessions, shown by session date, number and therapist, never by client.
# Fidelity over time shows only ratings the viewer could open one by one (ratings_for_user): a
# therapist or trainee on their own page, a supervisor on the page of someone assigned to them.

CALIBRATION_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})


def calibration_clinics(user: User) -> QuerySet[Clinic]:
    if not user.is_authenticated:
        return Clinic.objects.none()
    return _role_clinics(user, CALIBRATION_ROLES)


def get_clinic_for_calibration(user: User, raw_id: Any) -> Clinic:
    public_id = _parse_id(raw_id)
    clinic = (calibration_clinics(user).filter(public_id=public_id).first()
              if public_id else None)
    if clinic is None:
        raise _deny(user, "clinic", raw_id)
    return clinic


def get_scale_for_calibration(user: User, clinic: Clinic, raw_id: Any) -> Scale:
    """A shipped scale version or one of this clinic's own (`clinic` from
    get_clinic_for_calibration); another clinic's scale is answered like a missing one."""
    public_id = _parse_id(raw_id)
    scale = (
        Scale.objects.filter(Q(clinic__isnull=True) | Q(clinic=clinic), public_id=public_id)
        .first() if public_id else None
    )
    if scale is None:
        raise _deny(user, "scale", raw_id)
    return scale


def calibration_ratings(clinic: Clinic) -> QuerySet[Rating]:
    """Every finished rating of this clinic's sessions (the caller has checked the clinic)."""
    return Rating.objects.filter(state=RatingState.COMPLETE,
                                 session__episode__client__clinic=clinic)


def trend_people_for_user(user: User) -> QuerySet[User]:
    """Whose fidelity-over-time page this user may open: their own while they treat clients
    somewhere, and those assigned to them for supervision in a clinic where they supervise."""
    if not user.is_authenticated:
        return User.objects.none()
    own = Q(pk=user.pk) if _role_clinics(user, TREATING_ROLES).exists() else Q(pk__in=[])
    supervised = Q(pk__in=SupervisionAssignment.objects.filter(
        supervisor=user, ended_at__isnull=True,
        clinic__in=_role_clinics(user, {Role.SUPERVISOR}),
    ).values("supervisee"))
    return User.objects.filter(own | supervised)


def get_trend_person_for_user(user: User, raw_id: Any) -> User:
    public_id = _parse_id(raw_id)
    person = (trend_people_for_user(user).filter(public_id=public_id).first()
              if public_id else None)
    if person is None:
        raise _deny(user, "trend_person", raw_id)
    return person
# ---- end fidelity reports ----


# ---- fidelity scales (issue 6, SCALES) -------------------------------------------------------
# A scale holds no clinical content. Shipped scales (clinic NULL) are offered to every clinical
# member and clinic admin of any clinic; a clinic's own scale only to that clinic's members, and
# it is 404 for everyone else. Clinic admins and supervisors manage their clinic's scales;
# shipped scales are never changed in place (export one and import it under your own slug).

SCALE_VIEW_ROLES = CLINICAL_ROLES | {Role.ADMIN}
SCALE_MANAGE_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})


def scale_clinics(user: User) -> QuerySet[Clinic]:
    """Clinics whose own scales this user may see."""
    if not user.is_authenticated:
        return Clinic.objects.none()
    return _role_clinics(user, SCALE_VIEW_ROLES)


def scale_manage_clinics(user: User) -> QuerySet[Clinic]:
    """Clinics whose scales this user may import, build, edit and retire."""
    if not user.is_authenticated:
        return Clinic.objects.none()
    return _role_clinics(user, SCALE_MANAGE_ROLES)


def scales_for_user(user: User) -> QuerySet[Any]:
    """Every scale version this user may see: shipped ones and their clinics' own."""
    from relisten.fidelity.models import Scale

    if not user.is_authenticated or not scale_clinics(user).exists():
        return Scale.objects.none()
    return Scale.objects.filter(Q(clinic__isnull=True) | Q(clinic__in=scale_clinics(user)))


def get_scale_for_user(user: User, raw_id: Any, *, manage: bool = False) -> Any:
    """A scale version the user may see (404 otherwise). `manage`: for changes, which only a
    clinic admin or supervisor of the scale's clinic may make (403 with the reason, since the
    scale is visible to them anyway)."""
    public_id = _parse_id(raw_id)
    scale = (scales_for_user(user).filter(public_id=public_id).select_related("clinic").first()
             if public_id else None)
    if scale is None:
        raise _deny(user, "scale", raw_id)
    if manage:
        reason = ""
        if scale.clinic_id is None:
            reason = ("Scales shipped with Relisten cannot be changed. Export this one and "
                      "import it under your own slug to adapt it.")
        elif not scale_manage_clinics(user).filter(pk=scale.clinic_id).exists():
            reason = "Only the clinic's admins and supervisors can change its scales."
        if reason:
            record_event_now(actor=user, event_type="authz.forbidden",
                             changes={"object_type": "scale", "object_id": str(public_id)})
            raise PermissionDenied(reason)
    return scale


# ---- outcome monitoring: answers and alerts (issue 7, ANSWER) --------------------------------
# Questionnaire answers are clinical content: responses and alerts follow the episode (its
# treating therapist sees and acknowledges them, its supervisor sees them), and a client sees
# and answers only the questionnaires asked of their own record.

def own_dues(user: User, client: Client) -> QuerySet[Any]:
    """Questionnaires waiting for this client (`client` from get_own_client_record)."""
    from relisten.outcomes.models import Due, DueState

    if not user.is_authenticated or client.user_id != user.pk:
        return Due.objects.none()
    return Due.objects.filter(episode__client=client, state=DueState.DUE)


def get_own_due(user: User, client: Client, raw_id: Any) -> Any:
    public_id = _parse_id(raw_id)
    due = (own_dues(user, client).filter(public_id=public_id)
           .select_related("instrument", "episode__client__clinic").first()
           if public_id else None)
    if due is None:
        raise _deny(user, "due", raw_id)
    return due


def outcome_responses_for_user(user: User) -> QuerySet[Any]:
    from relisten.outcomes.models import Response

    return Response.objects.filter(episode__in=episodes_for_user(user, Act.VIEW))


def outcome_alerts_for_user(user: User, act: Act = Act.VIEW) -> QuerySet[Any]:
    from relisten.outcomes.models import Alert

    return Alert.objects.filter(episode__in=episodes_for_user(user, act))


def get_outcome_alert_for_user(user: User, raw_id: Any, act: Act = Act.VIEW) -> Any:
    """An alert on an episode the user sees; only its treating therapist acknowledges (403 for
    the supervisor, who sees it)."""
    view = outcome_alerts_for_user(user, Act.VIEW).select_related(
        "episode__client__clinic", "response__instrument")
    chosen = outcome_alerts_for_user(user, act) if act is not Act.VIEW else view
    return _get_visible(user, view, chosen, raw_id, "outcome_alert")
# ---- end outcome monitoring answers and alerts ----


# ---- outcome monitoring: FHIR export and import (issue 7, FHIRWEB) ---------------------------
# A response's FHIR export follows the episode like its chart (therapist and supervisor);
# importing writes to the record, so it takes Act.TREAT on the episode (get_episode_for_user).

def get_outcome_response_for_user(user: User, raw_id: Any) -> Any:
    view = outcome_responses_for_user(user).select_related("episode__client__clinic",
                                                           "instrument")
    return _get_visible(user, view, view, raw_id, "outcome_response")
# ---- end outcome monitoring FHIR ----


# ---- outcome instruments (issue 7, INSTRUMENTS) ----------------------------------------------
# A questionnaire definition holds no clinical content. Built-in ones (clinic NULL: PHQ-9,
# GAD-7) are shown to every clinic's clinical staff and admins; a clinic's own only to that
# clinic's staff (404 for everyone else). Only the clinic's admins import questionnaires.

INSTRUMENT_VIEW_ROLES = CLINICAL_ROLES | {Role.ADMIN}


def instrument_clinics(user: User) -> QuerySet[Clinic]:
    """Clinics whose own questionnaires this user may see."""
    if not user.is_authenticated:
        return Clinic.objects.none()
    return _role_clinics(user, INSTRUMENT_VIEW_ROLES)


def instrument_import_clinics(user: User) -> QuerySet[Clinic]:
    """Clinics this user may add questionnaires to: where they are an admin."""
    return admin_clinics(user)


def instruments_for_user(user: User) -> QuerySet[Any]:
    """Every instrument version this user may see: built-in ones and their clinics' own."""
    from relisten.outcomes.models import Instrument

    clinics = instrument_clinics(user)
    if not clinics.exists():
        return Instrument.objects.none()
    return Instrument.objects.filter(Q(clinic__isnull=True) | Q(clinic__in=clinics))


def get_instrument_for_user(user: User, raw_id: Any) -> Any:
    public_id = _parse_id(raw_id)
    instrument = (instruments_for_user(user).filter(public_id=public_id)
                  .select_related("clinic").first() if public_id else None)
    if instrument is None:
        raise _deny(user, "instrument", raw_id)
    return instrument
# ---- end outcome instruments ----
