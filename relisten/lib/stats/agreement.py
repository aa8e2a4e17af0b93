"""How far raters agree: intraclass correlations, Cohen's kappa, percent agreement.

Framework-free (numpy only) so it can be checked against published examples on its own.

Conventions
-----------
* Ratings arrive as plain numbers; ``None`` or NaN is a missing rating.
* Degenerate data never leak NaN or raise: every result carries ``value = None`` and a plain
  ``reason`` saying why the statistic is not defined (too few raters or sessions, no variation).
  Programmer errors (ragged matrices, values outside a declared category range) do raise
  ValueError.
* Proportions are 0–1; formatting as percentages is the caller's business.

References
----------
* Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
  reliability. Psychological Bulletin, 86(2), 420–428.
* Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and Psychological
  Measurement, 20(1), 37–46.
* Cohen, J. (1968). Weighted kappa. Psychological Bulletin, 70(4), 213–220.
* Fleiss, J. L., & Cohen, J. (1973). The equivalence of weighted kappa and the intraclass
  correlation coefficient as measures of reliability. Educational and Psychological
  Measurement, 33(3), 613–619.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

Rating = float | int | None
T = TypeVar("T", bound=Hashable)
FloatArray = npt.NDArray[np.float64]

# Shrout & Fleiss's six forms, in the order their Table 4 lists them. "k" is the number of
# raters whose mean is the measure (the average-measure forms).
ICC_FORMS: tuple[tuple[str, str], ...] = (
    ("ICC(1,1)", "each session rated by different raters; one rater's score"),
    ("ICC(2,1)", "the same raters, seen as a sample of possible raters; one rater's score"),
    ("ICC(3,1)", "the same fixed raters, consistency only; one rater's score"),
    ("ICC(1,k)", "each session rated by different raters; the mean of k raters"),
    ("ICC(2,k)", "the same raters, seen as a sample of possible raters; the mean of k raters"),
    ("ICC(3,k)", "the same fixed raters, consistency only; the mean of k raters"),
)

# A denominator this small relative to the data's own size is zero in all but floating-point
# noise; dividing by it would report noise as agreement.
_RELATIVE_ZERO = 1e-12


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_zero(denominator: float, scale: float) -> bool:
    return abs(denominator) <= _RELATIVE_ZERO * max(1.0, abs(scale))


# ---- intraclass correlation -----------------------------------------------------------------

@dataclass(frozen=True)
class MeanSquares:
    """The two-way ANOVA mean squares of Shrout & Fleiss's Table 1."""

    between_targets: float  # BMS
    within_targets: float  # WMS (one-way residual: raters + error)
    between_raters: float  # JMS
    residual: float  # EMS (two-way residual)


@dataclass(frozen=True)
class IccEstimate:
    form: str  # "ICC(2,1)" etc.; "k" forms keep the letter, `n_raters` says what k was
    meaning: str
    value: float | None


@dataclass(frozen=True)
class IccResult:
    n_targets: int  # complete targets used
    n_raters: int
    dropped_targets: int  # targets left out because a rating was missing
    mean_squares: MeanSquares | None
    estimates: tuple[IccEstimate, ...]  # always the six forms; value None when not defined
    reason: str | None = None  # why the values are not defined, in plain words

    def value(self, form: str) -> float | None:
        for estimate in self.estimates:
            if estimate.form == form:
                return estimate.value
        raise KeyError(form)

    @property
    def defined(self) -> bool:
        return self.reason is None


def _undefined_icc(n_targets: int, n_raters: int, dropped: int, reason: str,
                   mean_squares: MeanSquares | None = None) -> IccResult:
    return IccResult(
        n_targets=n_targets, n_raters=n_raters, dropped_targets=dropped,
        mean_squares=mean_squares,
        estimates=tuple(IccEstimate(form, meaning, None) for form, meaning in ICC_FORMS),
        reason=reason,
    )


def complete_rows(ratings: Sequence[Sequence[Rating]]) -> tuple[FloatArray, int]:
    """The targets (rows) with every rater's rating present, and how many were dropped."""
    widths = {len(row) for row in ratings}
    if len(widths) > 1:
        raise ValueError("every target needs one entry per rater (use None for a missing one)")
    kept = [[float(v) for v in row if v is not None] for row in ratings
            if not any(_is_missing(v) for v in row)]
    width = widths.pop() if widths else 0
    matrix = np.array(kept, dtype=np.float64).reshape(len(kept), width)
    return matrix, len(ratings) - len(kept)


def mean_squares(matrix: FloatArray) -> MeanSquares:
    """Shrout & Fleiss Table 1 mean squares for an n targets × k raters matrix (n, k ≥ 2)."""
    n, k = matrix.shape
    grand = float(matrix.mean())
    ss_total = float(((matrix - grand) ** 2).sum())
    ss_targets = k * float(((matrix.mean(axis=1) - grand) ** 2).sum())
    ss_raters = n * float(((matrix.mean(axis=0) - grand) ** 2).sum())
    ss_within = ss_total - ss_targets
    ss_residual = ss_total - ss_targets - ss_raters
    return MeanSquares(
        between_targets=ss_targets / (n - 1),
        within_targets=ss_within / (n * (k - 1)),
        between_raters=ss_raters / (k - 1),
        # Clamp: a perfect additive fit can leave -1e-16 of rounding.
        residual=max(ss_residual, 0.0) / ((n - 1) * (k - 1)),
    )


def icc(ratings: Sequence[Sequence[Rating]]) -> IccResult:
    """All six Shrout & Fleiss (1979) intraclass correlations.

    `ratings` has one row per target (a rated session) and one column per rater; a target with
    any missing rating is left out (the result says how many). Needs at least two complete
    targets and two raters, and some variation between targets; otherwise every value is None
    and `reason` says why.
    """
    matrix, dropped = complete_rows(ratings)
    n, k = matrix.shape
    if k < 2:
        return _undefined_icc(n, k, dropped, "Agreement needs at least two raters.")
    if n < 2:
        return _undefined_icc(
            n, k, dropped, "Agreement needs at least two sessions rated by every rater.")
    ms = mean_squares(matrix)
    bms, wms, jms, ems = (ms.between_targets, ms.within_targets, ms.between_raters,
                          ms.residual)
    scale = float((matrix ** 2).mean())
    if _is_zero(bms, scale) and _is_zero(wms, scale):
        return _undefined_icc(
            n, k, dropped,
            "Every rating is the same, so there is no variation for agreement to explain.", ms)
    if _is_zero(bms, scale):
        return _undefined_icc(
            n, k, dropped,
            "The sessions do not differ from one another (their mean scores are equal), so "
            "an intraclass correlation is not defined.", ms)

    def ratio(numerator: float, denominator: float) -> float | None:
        return None if _is_zero(denominator, scale) else numerator / denominator

    values = (
        ratio(bms - wms, bms + (k - 1) * wms),
        ratio(bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        ratio(bms - ems, bms + (k - 1) * ems),
        ratio(bms - wms, bms),
        ratio(bms - ems, bms + (jms - ems) / n),
        ratio(bms - ems, bms),
    )
    return IccResult(
        n_targets=n, n_raters=k, dropped_targets=dropped, mean_squares=ms,
        estimates=tuple(IccEstimate(form, meaning, value)
                        for (form, meaning), value in zip(ICC_FORMS, values, strict=True)),
    )


# ---- Cohen's kappa ------------------------------------------------------------------------

@dataclass(frozen=True)
class KappaResult:
    value: float | None
    observed: float | None  # (weighted) proportion of agreement observed
    expected: float | None  # (weighted) proportion expected by chance from the margins
    n: int  # pairs used
    dropped: int  # pairs left out because one rating was missing
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.reason is None


def _pairs(first: Sequence[T | None], second: Sequence[T | None]) -> tuple[list[tuple[T, T]], int]:
    if len(first) != len(second):
        raise ValueError("both raters need one entry per rated item (use None for missing)")
    kept = [(a, b) for a, b in zip(first, second, strict=True)
            if a is not None and b is not None and not _is_missing(a) and not _is_missing(b)]
    return kept, len(first) - len(kept)


def _kappa_from_table(table: FloatArray, agreement_weights: FloatArray, n: int,
                      dropped: int) -> KappaResult:
    """κ = (p_o − p_e) / (1 − p_e) with (weighted) observed and chance agreement."""
    proportions = table / n
    chance = np.outer(proportions.sum(axis=1), proportions.sum(axis=0))
    observed = float((agreement_weights * proportions).sum())
    expected = float((agreement_weights * chance).sum())
    if _is_zero(1.0 - expected, 1.0):
        return KappaResult(
            None, observed, expected, n, dropped,
            "Both raters put every rating in the same category, so agreement beyond chance "
            "cannot be told apart from chance.")
    return KappaResult((observed - expected) / (1.0 - expected), observed, expected, n, dropped)


def cohen_kappa(first: Sequence[Hashable | None], second: Sequence[Hashable | None],
                categories: Sequence[Hashable] | None = None) -> KappaResult:
    """Cohen's (1960) unweighted kappa for two raters rating the same items.

    `categories` (optional) fixes the category set; values outside it raise ValueError.
    """
    pairs, dropped = _pairs(first, second)
    if not pairs:
        return KappaResult(None, None, None, 0, dropped, "No item was rated by both raters.")
    seen = {value for pair in pairs for value in pair}
    if categories is not None:
        unknown = seen - set(categories)
        if unknown:
            raise ValueError(f"ratings outside the given categories: {sorted(map(str, unknown))}")
        labels = list(dict.fromkeys(categories))
    else:
        labels = sorted(seen, key=lambda v: (str(type(v)), str(v)))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for a, b in pairs:
        table[index[a], index[b]] += 1
    return _kappa_from_table(table, np.eye(len(labels)), len(pairs), dropped)


def _category_index(value: float, low: int, high: int) -> int:
    number = float(value)
    if not number.is_integer() or not low <= number <= high:
        raise ValueError(f"rating {value!r} is not a whole number from {low} to {high}")
    return int(number) - low


def quadratic_weighted_kappa(first: Sequence[Rating], second: Sequence[Rating],
                             low: int, high: int) -> KappaResult:
    """Cohen's (1968) weighted kappa with quadratic weights for ordinal ratings low…high.

    Agreement weight for categories i, j is 1 − (i − j)² / (high − low)². Fleiss & Cohen (1973)
    showed this kappa equals an intraclass correlation; it credits near misses. Ratings must be
    whole numbers within the range (ValueError otherwise).
    """
    if high <= low:
        raise ValueError("the category range needs at least two categories (high > low)")
    pairs, dropped = _pairs(first, second)
    if not pairs:
        return KappaResult(None, None, None, 0, dropped, "No item was rated by both raters.")
    size = high - low + 1
    table = np.zeros((size, size), dtype=np.float64)
    for a, b in pairs:
        row, column = (_category_index(value, low, high) for value in (a, b))
        table[row, column] += 1
    steps = np.arange(size, dtype=np.float64)
    weights = 1.0 - (steps[:, None] - steps[None, :]) ** 2 / float(size - 1) ** 2
    return _kappa_from_table(table, weights, len(pairs), dropped)


# ---- percent agreement --------------------------------------------------------------------

@dataclass(frozen=True)
class PercentAgreement:
    exact: float | None  # proportion of pairs with identical ratings
    within: float | None  # proportion within ± tolerance (None when no tolerance asked)
    tolerance: float | None
    n: int
    dropped: int
    reason: str | None = None


def percent_agreement(first: Sequence[Rating], second: Sequence[Rating],
                      tolerance: float | None = None) -> PercentAgreement:
    """The share of items both raters rated identically (and, optionally, within ± tolerance)."""
    pairs, dropped = _pairs(first, second)
    if not pairs:
        return PercentAgreement(None, None, tolerance, 0, dropped,
                                "No item was rated by both raters.")
    differences = [abs(float(a) - float(b)) for a, b in pairs]
    exact = sum(1 for d in differences if d == 0) / len(pairs)
    within = (None if tolerance is None
              else sum(1 for d in differences if d <= tolerance) / len(pairs))
    return PercentAgreement(exact, within, tolerance, len(pairs), dropped)
