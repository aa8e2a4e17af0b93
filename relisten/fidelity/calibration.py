"""Calibration: do a clinic's raters agree when they rate the same sessions on the same scale?

For one clinic and one scale version: the six Shrout & Fleiss intraclass correlations of the
main score, per-item Cohen's kappa (unweighted and quadratic-weighted) and percent agreement,
agreement period by period (drift), and each rater against the reference ratings (for trainees
learning to rate). The statistics live in relisten/lib/stats; this module picks the ratings and
lays the numbers out.

Who: the clinic's supervisors and admins (access.get_clinic_for_calibration). Sessions appear by
date, number and therapist, never by client. Every page reads the ratings in one query.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from statistics import fmean
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from relisten import access
from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event_now
from relisten.clients.models import TherapySession
from relisten.fidelity.models import RaterRole, Rating, Scale
from relisten.fidelity.trend import ROLE_WORDS, scale_definition
from relisten.lib.fidelity.scale import Item, ScaleDef
from relisten.lib.stats import (
    IccResult,
    cohen_kappa,
    icc,
    percent_agreement,
    quadratic_weighted_kappa,
)
from relisten.lib.stats.bands import (
    CICCHETTI_1994,
    KOO_LI_2016,
    KOO_LI_MIN_SAMPLES,
    icc_band,
    kappa_band,
)
from relisten.web import signed_in_user as _user

MAX_RATINGS = 5000  # the most recent finished ratings a report reads
MAX_SESSIONS_LISTED = 200  # rows in a report's session table
PERIODS = {"month": "Month", "quarter": "Quarter"}



# ---- reading the ratings ----------------------------------------------------------------------

@dataclass
class RatedSession:
    session: TherapySession
    by_rater: dict[int, Rating] = field(default_factory=dict)


def load_rated_sessions(clinic: Clinic, scale: Scale) -> tuple[list[RatedSession], bool]:
    """The clinic's sessions with finished ratings on `scale`, oldest first, in one query, and
    whether older ratings were left out (MAX_RATINGS)."""
    newest = list(
        access.calibration_ratings(clinic).filter(scale=scale)
        .select_related("rater", "session__episode__therapist")
        .order_by("-session__scheduled_at", "-session_id", "-pk")[:MAX_RATINGS + 1]
    )
    truncated = len(newest) > MAX_RATINGS
    sessions: dict[int, RatedSession] = {}
    for rating in reversed(newest[:MAX_RATINGS]):
        rated = sessions.setdefault(rating.session_id, RatedSession(rating.session))
        rated.by_rater[rating.rater_id] = rating
    return list(sessions.values()), truncated


def _moment(rating: Rating) -> dt.datetime:
    return rating.completed_at or rating.updated_at


def period_of(moment: dt.datetime, by: str) -> tuple[str, str]:
    """(sort key, words) of the month or quarter `moment` falls in, in local time."""
    local = timezone.localtime(moment)
    if by == "month":
        return f"{local.year}-{local.month:02d}", local.strftime("%B %Y")
    quarter = (local.month - 1) // 3 + 1
    first = dt.date(local.year, 3 * quarter - 2, 1).strftime("%b")
    last = dt.date(local.year, 3 * quarter, 1).strftime("%b")
    return f"{local.year}-Q{quarter}", f"{first}–{last} {local.year} (Q{quarter})"


# ---- choosing whom to compare ------------------------------------------------------------------

@dataclass(frozen=True)
class RaterChoice:
    user: User
    sessions: int  # sessions this rater rated that someone else also rated
    roles: str
    chosen: bool


def multi_rated(sessions: Iterable[RatedSession]) -> list[RatedSession]:
    return [rated for rated in sessions if len(rated.by_rater) >= 2]


def default_raters(sessions: Sequence[RatedSession]) -> list[int]:
    """The two raters who rated the most sessions in common (ties: the earlier pair)."""
    pairs: Counter[tuple[int, int]] = Counter()
    for rated in sessions:
        for pair in combinations(sorted(rated.by_rater), 2):
            pairs[pair] += 1
    if not pairs:
        return []
    best = max(pairs.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))[0]
    return list(best)


def rater_choices(sessions: Sequence[RatedSession], requested: Sequence[str]
                  ) -> tuple[list[RaterChoice], list[int]]:
    """Everyone who rated a session someone else rated too, and the ids to compare: those
    requested (by public id) if at least two of them qualify, else the default pair."""
    users: dict[int, User] = {}
    counts: Counter[int] = Counter()
    roles: dict[int, set[str]] = {}
    for rated in sessions:
        for rater_id, rating in rated.by_rater.items():
            users[rater_id] = rating.rater
            counts[rater_id] += 1
            roles.setdefault(rater_id, set()).add(rating.role)
    wanted = [pk for pk, user in users.items() if str(user.public_id) in set(requested)]
    chosen = wanted if len(wanted) >= 2 else default_raters(sessions)
    ordered = sorted(users, key=lambda pk: (users[pk].label().lower(), pk))
    choices = [
        RaterChoice(users[pk], counts[pk],
                    ", ".join(ROLE_WORDS[RaterRole(role)] for role in sorted(roles[pk])),
                    pk in chosen)
        for pk in ordered
    ]
    return choices, [pk for pk in ordered if pk in chosen]


# ---- agreement on totals and items --------------------------------------------------------------

@dataclass(frozen=True)
class IccRow:
    form: str
    meaning: str
    value: float | None
    band: str


def icc_rows(result: IccResult) -> list[IccRow]:
    """The six forms with k spelled out as the number of raters compared."""
    k = str(result.n_raters) if result.n_raters else "k"
    return [IccRow(e.form.replace(",k)", f",{k})"), e.meaning.replace(" k raters", f" {k} raters"),
                   e.value, icc_band(e.value))
            for e in result.estimates]


def totals_matrix(sessions: Sequence[RatedSession], raters: Sequence[int]
                  ) -> list[list[float | None]]:
    """One row per session at least two of `raters` rated; None where one did not."""
    rows = []
    for rated in sessions:
        if sum(1 for pk in raters if pk in rated.by_rater) < 2:
            continue
        rows.append([rated.by_rater[pk].total if pk in rated.by_rater else None
                     for pk in raters])
    return rows


def _answer(rating: Rating, item_id: str) -> float | None:
    value = rating.answers.get(item_id) if isinstance(rating.answers, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ItemRow:
    item_id: str
    text: str
    kind: str
    n: int  # rated pairs (session × pair of raters) with both answers
    kappa: float | None
    weighted_kappa: float | None
    exact: float | None
    within_one: float | None
    icc: float | None  # behaviour counts: ICC(2,1), where kappa does not apply
    note: str

    @property
    def kappa_band(self) -> str:
        return kappa_band(self.kappa)

    @property
    def weighted_band(self) -> str:
        return kappa_band(self.weighted_kappa)

    @property
    def icc_band(self) -> str:
        return icc_band(self.icc)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def item_row(item: Item, sessions: Sequence[RatedSession], raters: Sequence[int]) -> ItemRow:
    """Agreement on one item over every pair of the chosen raters (averaged over pairs when
    there are more than two: Light's approach for kappa)."""
    kappas: list[float | None] = []
    weighted: list[float | None] = []
    exact: list[float | None] = []
    within: list[float | None] = []
    reasons: list[str] = []
    n = 0
    for first, second in combinations(raters, 2):
        both = [r for r in sessions if first in r.by_rater and second in r.by_rater]
        a = [_answer(r.by_rater[first], item.id) for r in both]
        b = [_answer(r.by_rater[second], item.id) for r in both]
        agreement = percent_agreement(a, b, tolerance=None if item.kind == "yes_no" else 1)
        n += agreement.n
        exact.append(agreement.exact)
        within.append(agreement.within)
        if item.kind == "count" or item.max is None:
            continue
        try:
            plain = cohen_kappa(a, b, categories=list(range(item.min, item.max + 1)))
            quadratic = quadratic_weighted_kappa(a, b, item.min, item.max)
        except ValueError:  # an answer outside the item's range (an edited scale)
            reasons.append("some answers lie outside this item's range")
            continue
        kappas.append(plain.value)
        weighted.append(quadratic.value)
        reasons += [reason for reason in (plain.reason, quadratic.reason) if reason]
    icc_value: float | None = None
    if item.kind == "count" or item.max is None:
        counts = [[_answer(r.by_rater[pk], item.id) if pk in r.by_rater else None
                   for pk in raters] for r in sessions]
        result = icc(counts)
        icc_value = result.value("ICC(2,1)")
        reasons += [result.reason] if result.reason else []
    note = reasons[0] if reasons and _mean(kappas) is None and icc_value is None else ""
    if n == 0:
        note = "No session has an answer to this item from two of these raters."
    return ItemRow(item.id, item.text, item.kind, n, _mean(kappas), _mean(weighted),
                   _mean(exact), _mean(within), icc_value, note)


def _pooled_items(definition: ScaleDef | None, first: Rating, second: Rating
                  ) -> tuple[int, int, int, int]:
    """(exact, compared, within ±1, compared for ±1) over the items both answered."""
    exact = compared = within = within_compared = 0
    items = definition.items if definition is not None else ()
    for item in items:
        a, b = _answer(first, item.id), _answer(second, item.id)
        if a is None or b is None:
            continue
        compared += 1
        exact += a == b
        if item.kind != "yes_no":
            within_compared += 1
            within += abs(a - b) <= 1
    return exact, compared, within, within_compared


@dataclass(frozen=True)
class PeriodRow:
    key: str
    label: str
    sessions: int
    icc: float | None
    icc_note: str
    exact: float | None
    within_one: float | None
    mean_total_difference: float | None

    @property
    def icc_band(self) -> str:
        return icc_band(self.icc)


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def drift(definition: ScaleDef | None, sessions: Sequence[RatedSession], raters: Sequence[int],
          by: str) -> list[PeriodRow]:
    """Agreement of the chosen raters period by period: sessions every one of them rated,
    placed in the period the last of them finished rating it."""
    grouped: dict[tuple[str, str], list[RatedSession]] = {}
    for rated in sessions:
        if all(pk in rated.by_rater for pk in raters):
            last = max(_moment(rated.by_rater[pk]) for pk in raters)
            grouped.setdefault(period_of(last, by), []).append(rated)
    rows = []
    for (key, label), group in sorted(grouped.items()):
        result = icc([[r.by_rater[pk].total for pk in raters] for r in group])
        counts = [0, 0, 0, 0]
        differences = []
        for rated in group:
            for first, second in combinations(raters, 2):
                one, other = rated.by_rater[first], rated.by_rater[second]
                counts = [c + d for c, d in zip(counts, _pooled_items(definition, one, other),
                                                strict=True)]
                if one.total is not None and other.total is not None:
                    differences.append(abs(one.total - other.total))
        rows.append(PeriodRow(
            key, label, len(group), result.value("ICC(2,1)"), result.reason or "",
            _share(counts[0], counts[1]), _share(counts[2], counts[3]),
            fmean(differences) if differences else None,
        ))
    return rows


# ---- raters against the reference ---------------------------------------------------------------

@dataclass(frozen=True)
class ReferenceSessionRow:
    session: TherapySession
    when: dt.datetime
    total: float | None
    reference_total: float | None
    exact: float | None

    @property
    def difference(self) -> float | None:
        if self.total is None or self.reference_total is None:
            return None
        return self.total - self.reference_total


@dataclass(frozen=True)
class ReferenceComparison:
    rater: User
    roles: str
    sessions: int
    icc: IccResult
    exact: float | None
    within_one: float | None
    mean_total_difference: float | None
    periods: list[PeriodRow]
    rows: list[ReferenceSessionRow]

    @property
    def icc_value(self) -> float | None:
        return self.icc.value("ICC(2,1)")

    @property
    def icc_band(self) -> str:
        return icc_band(self.icc_value)


def reference_of(rated: RatedSession) -> Rating | None:
    """The session's reference rating (the first finished, if there are several)."""
    references = [r for r in rated.by_rater.values() if r.role == RaterRole.REFERENCE]
    return min(references, key=lambda r: (_moment(r), r.pk)) if references else None


def compare_with_reference(definition: ScaleDef | None, sessions: Sequence[RatedSession],
                           by: str) -> list[ReferenceComparison]:
    """Each rater's ratings of sessions that have a reference rating, against that rating,
    overall and period by period (the period the rater finished their rating in)."""
    pairs: dict[int, list[tuple[RatedSession, Rating, Rating]]] = {}
    for rated in sessions:
        reference = reference_of(rated)
        if reference is None:
            continue
        for rating in rated.by_rater.values():
            if rating.role != RaterRole.REFERENCE and rating.rater_id != reference.rater_id:
                pairs.setdefault(rating.rater_id, []).append((rated, rating, reference))
    comparisons = []
    for compared in pairs.values():
        rater = compared[0][1].rater
        totals = [[rating.total, reference.total] for _, rating, reference in compared]
        rows = []
        overall = [0, 0, 0, 0]
        periods: dict[tuple[str, str], list[Any]] = {}
        for rated, rating, reference in compared:
            counts = _pooled_items(definition, rating, reference)
            overall = [c + d for c, d in zip(overall, counts, strict=True)]
            row = ReferenceSessionRow(rated.session, _moment(rating), rating.total,
                                      reference.total, _share(counts[0], counts[1]))
            rows.append(row)
            periods.setdefault(period_of(_moment(rating), by), []).append((row, counts))
        period_rows = []
        for (key, label), entries in sorted(periods.items()):
            sums = [sum(counts[i] for _, counts in entries) for i in range(4)]
            differences = [abs(r.difference) for r, _ in entries if r.difference is not None]
            period_totals = [[r.total, r.reference_total] for r, _ in entries]
            result = icc(period_totals)
            period_rows.append(PeriodRow(
                key, label, len(entries), result.value("ICC(2,1)"), result.reason or "",
                _share(sums[0], sums[1]), _share(sums[2], sums[3]),
                fmean(differences) if differences else None))
        differences = [abs(r.difference) for r in rows if r.difference is not None]
        roles = {rating.role for _, rating, _ in compared}
        comparisons.append(ReferenceComparison(
            rater, ", ".join(ROLE_WORDS[RaterRole(role)] for role in sorted(roles)),
            len(compared), icc(totals), _share(overall[0], overall[1]),
            _share(overall[2], overall[3]), fmean(differences) if differences else None,
            period_rows, rows[-MAX_SESSIONS_LISTED:],
        ))
    return sorted(comparisons, key=lambda c: c.rater.label().lower())


# ---- views ------------------------------------------------------------------------------------

def _by(request: HttpRequest) -> str:
    by = request.GET.get("by", "quarter")
    return by if by in PERIODS else "quarter"


def _audit_view(user: User, clinic: Clinic, target: Any, report: str) -> None:
    record_event_now(actor=user, event_type="fidelity.calibration_viewed", target=target,
                     clinic=clinic, changes={"report": report})


@login_required
@require_GET
def calibration_index(request: HttpRequest, clinic_id: str) -> HttpResponse:
    """The clinic's scale versions, with how many sessions two or more raters finished."""
    user = _user(request)
    clinic = access.get_clinic_for_calibration(user, clinic_id)
    per_session = (
        access.calibration_ratings(clinic).values("scale_id", "session_id")
        .annotate(raters=Count("rater", distinct=True))
    )
    sessions: Counter[int] = Counter()
    multi: Counter[int] = Counter()
    for entry in per_session:
        sessions[entry["scale_id"]] += 1
        multi[entry["scale_id"]] += entry["raters"] >= 2
    scales = Scale.objects.filter(pk__in=list(sessions)).order_by("name", "-version")
    _audit_view(user, clinic, clinic, "index")
    return render(request, "fidelity/calibration_index.html", {
        "clinic": clinic,
        "scales": [(scale, sessions[scale.pk], multi[scale.pk]) for scale in scales],
    })


@login_required
@require_GET
def calibration_report(request: HttpRequest, clinic_id: str, scale_id: str) -> HttpResponse:
    user = _user(request)
    clinic = access.get_clinic_for_calibration(user, clinic_id)
    scale = access.get_scale_for_calibration(user, clinic, scale_id)
    definition = scale_definition(scale)
    by = _by(request)
    all_sessions, truncated = load_rated_sessions(clinic, scale)
    sessions = multi_rated(all_sessions)
    choices, raters = rater_choices(sessions, request.GET.getlist("rater"))
    matrix = totals_matrix(sessions, raters)
    totals = icc(matrix)
    compared = [r for r in sessions if sum(1 for pk in raters if pk in r.by_rater) >= 2]
    items = ([item_row(item, compared, raters) for item in definition.items]
             if definition is not None and len(raters) >= 2 else [])
    _audit_view(user, clinic, scale, "agreement")
    chosen_users = [c.user for c in choices if c.chosen]
    return render(request, "fidelity/calibration.html", {
        "clinic": clinic, "scale": scale, "definition": definition, "by": by,
        "periods": PERIODS, "choices": choices, "chosen_users": chosen_users,
        "totals": totals, "icc_rows": icc_rows(totals),
        "few_sessions": 0 < totals.n_targets < KOO_LI_MIN_SAMPLES,
        "min_sessions": KOO_LI_MIN_SAMPLES,
        "items": items, "drift": drift(definition, compared, raters, by) if raters else [],
        "session_rows": [
            (r.session, [r.by_rater[pk].total if pk in r.by_rater else None for pk in raters])
            for r in compared[-MAX_SESSIONS_LISTED:]
        ],
        "listed_all": len(compared) <= MAX_SESSIONS_LISTED, "truncated": truncated,
        "max_ratings": MAX_RATINGS, "max_sessions": MAX_SESSIONS_LISTED,
        "multi_rated": len(sessions), "koo_li": KOO_LI_2016, "cicchetti": CICCHETTI_1994,
        "score_name": (definition.score_name(definition.main_score)
                       if definition is not None else "Total"),
    })


@login_required
@require_GET
def calibration_reference(request: HttpRequest, clinic_id: str, scale_id: str) -> HttpResponse:
    user = _user(request)
    clinic = access.get_clinic_for_calibration(user, clinic_id)
    scale = access.get_scale_for_calibration(user, clinic, scale_id)
    definition = scale_definition(scale)
    by = _by(request)
    sessions, truncated = load_rated_sessions(clinic, scale)
    comparisons = compare_with_reference(definition, sessions, by)
    _audit_view(user, clinic, scale, "reference")
    return render(request, "fidelity/calibration_reference.html", {
        "clinic": clinic, "scale": scale, "by": by, "periods": PERIODS,
        "comparisons": comparisons, "truncated": truncated, "max_ratings": MAX_RATINGS,
        "with_reference": sum(1 for r in sessions if reference_of(r) is not None),
        "koo_li": KOO_LI_2016,
        "score_name": (definition.score_name(definition.main_score)
                       if definition is not None else "Total"),
    })
