"""Agreement statistics against published examples and hand computations."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from relisten.lib.stats import (
    cohen_kappa,
    icc,
    percent_agreement,
    quadratic_weighted_kappa,
)

# Shrout & Fleiss (1979), Table 2: six targets rated by four judges.
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


# ---- ICC --------------------------------------------------------------------------------

def test_shrout_fleiss_table_4_values() -> None:
    result = icc(SHROUT_FLEISS)
    published = {"ICC(1,1)": .17, "ICC(2,1)": .29, "ICC(3,1)": .71,
                 "ICC(1,k)": .44, "ICC(2,k)": .62, "ICC(3,k)": .91}
    for form, value in published.items():
        got = result.value(form)
        assert got is not None and round(got, 2) == value, form
    assert (result.n_targets, result.n_raters, result.dropped_targets) == (6, 4, 0)
    assert result.defined and result.reason is None


def test_shrout_fleiss_table_3_mean_squares() -> None:
    ms = icc(SHROUT_FLEISS).mean_squares
    assert ms is not None
    assert round(ms.between_targets, 2) == 11.24
    assert round(ms.within_targets, 2) == 6.26
    assert round(ms.between_raters, 2) == 32.49
    assert round(ms.residual, 2) == 1.02


def test_icc_drops_incomplete_targets_and_says_how_many() -> None:
    with_gaps: list[Sequence[float | None]] = [
        *SHROUT_FLEISS, [5, None, 3, 4], [float("nan"), 1, 1, 1]]
    result = icc(with_gaps)
    assert result.dropped_targets == 2 and result.n_targets == 6
    assert result.value("ICC(2,1)") == pytest.approx(icc(SHROUT_FLEISS).value("ICC(2,1)"))


def test_icc_perfect_agreement_is_one() -> None:
    result = icc([[3, 3, 3], [5, 5, 5], [1, 1, 1], [4, 4, 4]])
    assert all(e.value == pytest.approx(1.0) for e in result.estimates)


def test_icc_consistency_versus_absolute_agreement() -> None:
    # The second rater is always two points higher: perfectly consistent (ICC(3,1) = 1) but
    # not in absolute agreement (ICC(2,1) < 1) — the distinction the forms exist for.
    result = icc([[1, 3], [2, 4], [4, 6], [5, 7]])
    assert result.value("ICC(3,1)") == pytest.approx(1.0)
    icc21 = result.value("ICC(2,1)")
    assert icc21 is not None and icc21 < 0.8


@pytest.mark.parametrize(
    ("ratings", "words"),
    [
        ([[1, 2, 3]], "two sessions"),  # one target
        ([[1], [2], [3]], "two raters"),  # one rater
        ([], "two raters"),  # nothing at all
        ([[4, 4], [4, 4], [4, 4]], "same"),  # no variance
        ([[1, 2], [1, 2], [1, 2]], "do not differ"),  # raters differ, sessions do not
        ([[1, None], [None, 2], [3, 4]], "two sessions"),  # only one complete target
    ],
)
def test_icc_degenerate_input_is_not_defined_not_nan(ratings: list[list[float | None]],
                                                     words: str) -> None:
    result = icc(ratings)
    assert not result.defined
    assert result.reason is not None and words in result.reason
    assert all(e.value is None for e in result.estimates)
    assert len(result.estimates) == 6


def test_icc_ragged_matrix_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        icc([[1, 2], [3]])


# ---- Cohen's kappa --------------------------------------------------------------------------

def test_kappa_two_by_two_hand_computation() -> None:
    # 50 items: both yes 20, yes/no 5, no/yes 10, both no 15.
    # p_o = 35/50 = .70; margins .5/.5 and .6/.4 → p_e = .5·.6 + .5·.4 = .50; κ = .2/.5 = .40.
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    result = cohen_kappa(first, second)
    assert result.observed == pytest.approx(0.70)
    assert result.expected == pytest.approx(0.50)
    assert result.value == pytest.approx(0.40)


def test_kappa_scikit_learn_documented_vectors() -> None:
    # scikit-learn's test_cohen_kappa (sklearn/metrics/tests/test_classification.py).
    first = [0] * 40 + [1] * 60
    second = [0] * 20 + [1] * 20 + [0] * 10 + [1] * 50
    # Hand: p_o = .70, p_e = .4·.3 + .6·.7 = .54, κ = .16/.46 = .3478.
    assert cohen_kappa(first, second).value == pytest.approx(0.348, abs=5e-4)
    assert cohen_kappa(second, first).value == cohen_kappa(first, second).value

    first = [0] * 46 + [1] * 44 + [2] * 10
    second = [0] * 52 + [1] * 32 + [2] * 16
    assert cohen_kappa(first, second).value == pytest.approx(0.8013, abs=5e-5)

    second = [0] * 50 + [1] * 40 + [2] * 10
    assert cohen_kappa(first, second).value == pytest.approx(0.9315, abs=5e-5)
    assert quadratic_weighted_kappa(first, second, 0, 2).value == pytest.approx(0.9541, abs=5e-5)


def test_quadratic_kappa_small_worked_example() -> None:
    # x = 0,4,3 and y = 1,4,2 on 0–4. By the Fleiss & Cohen (1973) identity (below):
    # means 7/3, variances 26/9 and 14/9, covariance 17/9 → κ = 2·17/(26+14+0) = .85.
    assert quadratic_weighted_kappa([0, 4, 3], [1, 4, 2], 0, 4).value == pytest.approx(0.85)
    assert quadratic_weighted_kappa([0, 4, 4], [4, 0, 0], 0, 4).value == pytest.approx(-0.8)


def test_quadratic_kappa_equals_the_concordance_form_of_fleiss_and_cohen() -> None:
    # Fleiss & Cohen (1973): with quadratic weights, κ_w = 2·s_xy / (s_x² + s_y² + (x̄ − ȳ)²)
    # (moments with divisor n) — an intraclass correlation that charges rater bias.
    rng = random.Random(20240601)
    for _ in range(20):
        x = [rng.randint(0, 6) for _ in range(30)]
        y = [min(6, max(0, v + rng.choice([-2, -1, 0, 0, 1]))) for v in x]
        n = len(x)
        mx, my = sum(x) / n, sum(y) / n
        sxx = sum((a - mx) ** 2 for a in x) / n
        syy = sum((b - my) ** 2 for b in y) / n
        sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
        expected = 2 * sxy / (sxx + syy + (mx - my) ** 2)
        assert quadratic_weighted_kappa(x, y, 0, 6).value == pytest.approx(expected)


def test_quadratic_kappa_with_two_categories_is_cohens_kappa() -> None:
    first = [1, 1, 0, 0, 1, 0, 1, 1]
    second = [1, 0, 0, 0, 1, 1, 1, 1]
    assert quadratic_weighted_kappa(first, second, 0, 1).value == pytest.approx(
        cohen_kappa(first, second).value)


def test_quadratic_kappa_credits_near_misses_unweighted_does_not() -> None:
    first = [1, 2, 3, 4, 5, 6, 1, 2, 3, 4]
    off_by_one = [2, 3, 4, 5, 6, 5, 2, 3, 4, 5]
    unweighted = cohen_kappa(first, off_by_one).value
    weighted = quadratic_weighted_kappa(first, off_by_one, 0, 6).value
    assert unweighted is not None and weighted is not None
    assert unweighted < 0 < 0.75 < weighted


def test_kappa_perfect_agreement_is_one_and_chance_is_near_zero() -> None:
    ratings = [0, 1, 2, 3, 1, 2, 0, 3]
    assert cohen_kappa(ratings, ratings).value == pytest.approx(1.0)
    assert quadratic_weighted_kappa(ratings, ratings, 0, 3).value == pytest.approx(1.0)
    rng = random.Random(7)
    first = [rng.randint(0, 4) for _ in range(20000)]
    second = [rng.randint(0, 4) for _ in range(20000)]
    unweighted = cohen_kappa(first, second).value
    weighted = quadratic_weighted_kappa(first, second, 0, 4).value
    assert unweighted is not None and abs(unweighted) < 0.02
    assert weighted is not None and abs(weighted) < 0.03


def test_kappa_missing_ratings_are_dropped_pairwise() -> None:
    result = cohen_kappa([1, 2, None, 3, 1], [1, 2, 2, None, 1])
    assert (result.n, result.dropped) == (3, 2)
    assert result.value == pytest.approx(1.0)


def test_kappa_degenerate_input_is_not_defined_not_nan() -> None:
    same_category = cohen_kappa([2, 2, 2], [2, 2, 2])
    assert same_category.value is None and same_category.reason is not None
    assert "same category" in same_category.reason
    nothing = quadratic_weighted_kappa([None, 1], [3, None], 0, 4)
    assert nothing.value is None and nothing.n == 0 and nothing.reason
    weighted_same = quadratic_weighted_kappa([4, 4], [4, 4], 0, 6)
    assert weighted_same.value is None and weighted_same.reason
    for result in (same_category, nothing, weighted_same):
        assert result.value is None or not math.isnan(result.value)


def test_kappa_rejects_values_outside_the_declared_range() -> None:
    with pytest.raises(ValueError):
        quadratic_weighted_kappa([0, 7], [0, 1], 0, 6)
    with pytest.raises(ValueError):
        quadratic_weighted_kappa([0, 1.5], [0, 1], 0, 6)
    with pytest.raises(ValueError):
        quadratic_weighted_kappa([0], [0], 3, 3)
    with pytest.raises(ValueError):
        cohen_kappa(["a", "z"], ["a", "b"], categories=["a", "b"])
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1])


def test_kappa_given_categories_count_unused_ones() -> None:
    # An unused category changes nothing in unweighted kappa but must be accepted.
    assert cohen_kappa([0, 1, 1], [0, 1, 0], categories=[0, 1, 2]).value == pytest.approx(
        cohen_kappa([0, 1, 1], [0, 1, 0]).value)


# ---- percent agreement ----------------------------------------------------------------------

def test_percent_agreement_exact_and_within_one() -> None:
    result = percent_agreement([1, 2, 3, 4, None], [1, 3, 5, 4, 2], tolerance=1)
    assert (result.n, result.dropped) == (4, 1)
    assert result.exact == pytest.approx(0.5)
    assert result.within == pytest.approx(0.75)
    assert percent_agreement([1, 2], [1, 2]).within is None


def test_percent_agreement_with_nothing_paired_is_not_defined() -> None:
    result = percent_agreement([None], [None], tolerance=1)
    assert result.exact is None and result.within is None and result.reason


# ---- plain-word bands -----------------------------------------------------------------------

def test_bands_follow_their_published_cut_points() -> None:
    from relisten.lib.stats.bands import icc_band, kappa_band

    assert [icc_band(v) for v in (0.49, 0.5, 0.75, 0.9, 0.91)] == [
        "poor", "moderate", "good", "good", "excellent"]
    assert [kappa_band(v) for v in (0.39, 0.4, 0.6, 0.75)] == [
        "poor", "fair", "good", "excellent"]
    assert icc_band(None) == kappa_band(None) == "not defined"
    assert "less than by chance" in kappa_band(-0.2)
