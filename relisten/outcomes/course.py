"""Change since the start of treatment, evaluated at the end and at each follow-up.

NHS Talking Therapies measures (caseness, reliable improvement and deterioration, recovery,
reliable recovery) and the Jacobson–Truax reliable change index, from relisten.lib.outcomes.change,
for one episode: the first score against each end-of-treatment and follow-up score. This is the
figure the whole project is about: whether gains hold a year after treatment.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from relisten.clients.models import Episode
from relisten.lib.outcomes.change import Change, Rci, classify, rci_for
from relisten.lib.outcomes.instruments import load_questionnaire
from relisten.outcomes.models import Response, TimePoint

# The points where the course is judged, in order; session scores are the path, not the result.
EVALUATED = (TimePoint.END, TimePoint.FOLLOW_UP_1, TimePoint.FOLLOW_UP_3,
             TimePoint.FOLLOW_UP_6, TimePoint.FOLLOW_UP_12)


@dataclass(frozen=True)
class CourseRow:
    label: str
    first: int
    later: int
    change: Change
    rci: Rci | None


@dataclass(frozen=True)
class CourseTable:
    instrument: str
    first_label: str
    rows: tuple[CourseRow, ...]


def _table(responses: list[Response]) -> CourseTable | None:
    first = responses[0]
    later = [r for r in responses[1:] if r.time_point in EVALUATED]
    if not later:
        return None
    rules = load_questionnaire(first.instrument.questionnaire,
                               first.instrument.scoring or None).scoring
    rows = tuple(
        CourseRow(label=r.get_time_point_display(), first=first.total, later=r.total,
                  change=classify(rules, first.total, r.total),
                  rci=rci_for(rules, first.total, r.total))
        for r in later
    )
    return CourseTable(instrument=first.instrument.name,
                       first_label=first.get_time_point_display(), rows=rows)


def course_for_episode(episode: Episode) -> list[CourseTable]:
    """One table per questionnaire with an end-of-treatment or follow-up score. One query."""
    responses = (Response.objects.filter(episode=episode).select_related("instrument")
                 .order_by("instrument_id", "answered_at"))
    tables = []
    for _, group in groupby(responses, key=lambda r: r.instrument_id):
        table = _table(list(group))
        if table is not None:
            tables.append(table)
    return tables
