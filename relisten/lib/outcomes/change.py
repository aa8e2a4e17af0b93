"""Change between a first score and a later one: NHS Talking Therapies measures and the
Jacobson–Truax reliable change index. Higher scores mean more symptoms (PHQ-9, GAD-7).

    is_case(rules, total) -> bool                                 # total ≥ caseness cut-off
    classify(rules, first, later) -> Change                       # one measure
    classify_pair(depression: Change, anxiety: Change) -> Change  # PHQ-9 + GAD-7 together
    evaluate_course(rules, first, later: Sequence[(label, total)]) -> tuple[(label, Change)]
    jacobson_truax(pre, post, sd, reliability, z=1.96) -> Rci
    rci_for(rules, pre, post) -> Rci | None                       # with the instrument's SD, r

Definitions (docs/outcome-measures.md has the sources):
- case: total ≥ the cut-off (PHQ-9 10, GAD-7 8);
- reliable improvement: a drop of at least the instrument's points (PHQ-9 6, GAD-7 4);
  reliable deterioration: a rise of at least as many;
- recovery: a case at the first score and not a case at the later one;
- reliable recovery: recovery and reliable improvement.
Paired (NHS TT): a case if either measure is; recovered when neither is a case at the end;
reliable improvement on one or both with no reliable deterioration on the other (and the same
rule mirrored for deterioration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from relisten.lib.outcomes.instruments import ScoringRules

Z_95 = 1.96


@dataclass(frozen=True)
class Change:
    case_at_start: bool
    case_at_end: bool
    reliable_improvement: bool
    reliable_deterioration: bool
    first: int | None = None   # None for a paired result
    later: int | None = None

    @property
    def recovery(self) -> bool:
        return self.case_at_start and not self.case_at_end

    @property
    def reliable_recovery(self) -> bool:
        return self.recovery and self.reliable_improvement

    @property
    def difference(self) -> int | None:
        if self.first is None or self.later is None:
            return None
        return self.later - self.first

    @property
    def status(self) -> str:
        """One plain label, the most specific that applies."""
        if self.reliable_deterioration:
            return "Reliable deterioration"
        if self.reliable_recovery:
            return "Reliable recovery"
        if self.recovery:
            return "Recovered"
        if self.reliable_improvement:
            return "Reliable improvement"
        return "No reliable change"


def is_case(rules: ScoringRules, total: int) -> bool:
    return rules.caseness_at_least is not None and total >= rules.caseness_at_least


def _check(rules: ScoringRules, *totals: int) -> None:
    for total in totals:
        if not rules.total_min <= total <= rules.total_max:
            raise ValueError(f"a total of {total} is outside {rules.total_min}–{rules.total_max}")


def classify(rules: ScoringRules, first: int, later: int) -> Change:
    _check(rules, first, later)
    points = rules.reliable_change_points
    return Change(
        case_at_start=is_case(rules, first), case_at_end=is_case(rules, later),
        reliable_improvement=points is not None and first - later >= points,
        reliable_deterioration=points is not None and later - first >= points,
        first=first, later=later)


def classify_pair(depression: Change, anxiety: Change) -> Change:
    improved = depression.reliable_improvement or anxiety.reliable_improvement
    worse = depression.reliable_deterioration or anxiety.reliable_deterioration
    return Change(
        case_at_start=depression.case_at_start or anxiety.case_at_start,
        case_at_end=depression.case_at_end or anxiety.case_at_end,
        reliable_improvement=improved and not worse,
        reliable_deterioration=worse and not improved)


def evaluate_course(rules: ScoringRules, first: int,
                    later: Sequence[tuple[str, int]]) -> tuple[tuple[str, Change], ...]:
    """The first score against each later one (end of treatment, each follow-up)."""
    return tuple((label, classify(rules, first, total)) for label, total in later)


@dataclass(frozen=True)
class Rci:
    value: float                # (post − pre) / S_diff; negative = fewer symptoms
    s_diff: float               # SD · √2 · √(1 − r)
    min_reliable_change: float  # z · S_diff, in score points
    z: float = Z_95

    @property
    def reliable(self) -> bool:
        return abs(self.value) > self.z

    @property
    def direction(self) -> str:
        if not self.reliable:
            return "No reliable change"
        return "Reliable improvement" if self.value < 0 else "Reliable deterioration"


def jacobson_truax(pre: float, post: float, sd: float, reliability: float,
                   z: float = Z_95) -> Rci:
    if sd <= 0 or not 0 <= reliability < 1:
        raise ValueError("the SD must be above 0 and the reliability in [0, 1)")
    s_diff = sd * math.sqrt(2) * math.sqrt(1 - reliability)
    return Rci(value=(post - pre) / s_diff, s_diff=s_diff, min_reliable_change=z * s_diff, z=z)


def rci_for(rules: ScoringRules, pre: int, post: int) -> Rci | None:
    if rules.rci is None:
        return None
    _check(rules, pre, post)
    return jacobson_truax(pre, post, rules.rci.sd, rules.rci.reliability)
