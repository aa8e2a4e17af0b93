"""What questionnaires an episode of care should have asked for by now.

A measurement plan (the episode's own, else the clinic's default) says when: at intake, before
every n-th session, at the end of treatment and at follow-ups some months after discharge.
`plan_dues()` turns that into Due rows. It is idempotent (the unique constraint on episode,
instrument, time point and session backs it up), so the periodic job and the on-commit hooks
may both call it as often as they like.

Only dues whose time has come are created, so a 12-month follow-up appears 12 months after
discharge and not before. Open dues that the plan no longer wants (a cancelled session, a
changed plan, an opted-out client) are cancelled; answered or missed ones are history and are
never touched.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from relisten.clients.models import Attendance, Episode
from relisten.outcomes.models import (
    Due,
    DueState,
    MeasurementPlan,
    QuestionnaireContact,
    TimePoint,
)

# A questionnaire before a session is asked for the day before, so the answers are there when
# the session starts.
BEFORE_SESSION = dt.timedelta(days=1)
FOLLOW_UP_POINTS = {1: TimePoint.FOLLOW_UP_1, 3: TimePoint.FOLLOW_UP_3,
                    6: TimePoint.FOLLOW_UP_6, 12: TimePoint.FOLLOW_UP_12}
# The periodic job looks at episodes that ended up to this long ago (the last follow-up is 12
# months; the margin lets a late run still create it).
FOLLOW_UP_HORIZON = dt.timedelta(days=13 * 31)


@dataclass(frozen=True)
class Wanted:
    instrument_id: int
    time_point: str
    session_id: int | None
    due_at: dt.datetime

    @property
    def key(self) -> tuple[int, str, int | None]:
        return (self.instrument_id, self.time_point, self.session_id)


@dataclass(frozen=True)
class Planned:
    created: int
    cancelled: int
    rescheduled: int


def plan_for(episode: Episode) -> MeasurementPlan | None:
    """The episode's own plan, else its clinic's default; None if neither exists."""
    own = MeasurementPlan.objects.filter(episode=episode).first()
    if own is not None:
        return own
    return MeasurementPlan.objects.filter(clinic_id=episode.client.clinic_id, episode=None).first()


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` later, or the month's last day (31 Jan + 1 = 28 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def start_of_day(day: dt.date) -> dt.datetime:
    """Midnight at the clinic (the configured time zone), as an aware datetime."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _follow_up_points(plan: MeasurementPlan) -> list[tuple[int, str]]:
    months = plan.follow_up_months if isinstance(plan.follow_up_months, list) else []
    return [(m, FOLLOW_UP_POINTS[m]) for m in sorted(set(months)) if m in FOLLOW_UP_POINTS]


def _session_times(episode: Episode, plan: MeasurementPlan) -> list[tuple[int, dt.datetime]]:
    """(session id, due at) for the sessions the plan asks about."""
    n = plan.every_n_sessions
    if n == 0:
        return []
    sessions = episode.sessions.exclude(attendance=Attendance.CANCELLED).order_by("number")
    chosen: list[tuple[int, dt.datetime]] = []
    for session in sessions.only("pk", "number", "scheduled_at"):
        if (session.number - 1) % n != 0:
            continue
        # The intake questionnaire already covers the first session.
        if session.number == 1 and plan.at_intake:
            continue
        if episode.end_date is not None and session.scheduled_at.date() > episode.end_date:
            continue
        chosen.append((session.pk, session.scheduled_at - BEFORE_SESSION))
    return chosen


def wanted_dues(episode: Episode, plan: MeasurementPlan) -> list[Wanted]:
    """Every due the plan asks for over the whole episode, whether or not its time has come."""
    instrument_ids = list(plan.instruments.filter(active=True).values_list("pk", flat=True))
    points: list[tuple[str, int | None, dt.datetime]] = []
    if plan.at_intake:
        points.append((TimePoint.INTAKE, None, start_of_day(episode.start_date)))
    points += [(TimePoint.SESSION, sid, at) for sid, at in _session_times(episode, plan)]
    if episode.end_date is not None:
        if plan.at_end:
            points.append((TimePoint.END, None, start_of_day(episode.end_date)))
        for months, point in _follow_up_points(plan):
            points.append((point, None, start_of_day(add_months(episode.end_date, months))))
    return [Wanted(iid, point, sid, at) for point, sid, at in points for iid in instrument_ids]


def _opted_out(episode: Episode) -> bool:
    return QuestionnaireContact.objects.filter(
        client_id=episode.client_id, opted_out_at__isnull=False
    ).exists()


def plan_dues(episode: Episode, now: dt.datetime | None = None) -> Planned:
    """Create the dues whose time has come, cancel open ones no longer wanted."""
    now = now or timezone.now()
    plan = plan_for(episode)
    wanted = [] if plan is None or _opted_out(episode) else wanted_dues(episode, plan)
    by_key = {w.key: w for w in wanted}
    # A due whose time passed long ago (a plan set up late, a client opting back in) is not
    # asked for any more: its moment has gone, and a reminder about it would only confuse.
    stale_before = now - dt.timedelta(days=plan.link_valid_days if plan else 0)
    created = cancelled = rescheduled = 0
    with transaction.atomic():
        existing = {(d.instrument_id, d.time_point, d.session_id): d
                    for d in Due.objects.select_for_update().filter(episode=episode)}
        for key, due in existing.items():
            want = by_key.get(key)
            if due.state == DueState.DUE and want is None:
                due.state = DueState.CANCELLED
                due.save(update_fields=["state"])
                cancelled += 1
            elif want is not None and due.state in (DueState.DUE, DueState.CANCELLED):
                changed = due.due_at != want.due_at or due.state == DueState.CANCELLED
                if changed and stale_before <= want.due_at <= now:
                    # A rescheduled session moves its questionnaire; a session booked again
                    # asks again. Reminders start over from the new date.
                    due.due_at, due.state = want.due_at, DueState.DUE
                    due.reminders_sent, due.last_reminded_at = 0, None
                    due.save(update_fields=["due_at", "state", "reminders_sent",
                                            "last_reminded_at"])
                    rescheduled += 1
                elif changed and due.state == DueState.DUE:
                    # Moved into the future: not asked for yet.
                    due.state = DueState.CANCELLED
                    due.save(update_fields=["state"])
                    cancelled += 1
        for want in wanted:
            if want.key in existing or not stale_before <= want.due_at <= now:
                continue
            try:
                with transaction.atomic():
                    Due.objects.create(episode=episode, instrument_id=want.instrument_id,
                                       time_point=want.time_point, session_id=want.session_id,
                                       due_at=want.due_at)
                created += 1
            except IntegrityError:
                pass  # another worker made it first: that is the idempotence we want
    return Planned(created, cancelled, rescheduled)


def episodes_to_plan(now: dt.datetime) -> list[int]:
    """Ids of episodes that may still need a due: open ones and those within follow-up."""
    horizon = (now - FOLLOW_UP_HORIZON).date()
    open_ids = Episode.objects.filter(end_date__isnull=True).values_list("pk", flat=True)
    recent = Episode.objects.filter(end_date__gte=horizon).values_list("pk", flat=True)
    return sorted(set(open_ids) | set(recent))
