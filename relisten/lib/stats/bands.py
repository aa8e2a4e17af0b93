"""Plain-word readings of agreement coefficients, from published rules of thumb.

Bands are conventions, not laws: the pages show the number, the band and its source together.

* Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting intraclass correlation
  coefficients for reliability research. Journal of Chiropractic Medicine, 15(2), 155–163.
  ICC below .50 poor, .50–.75 moderate, .75–.90 good, above .90 excellent.
* Cicchetti, D. V. (1994). Guidelines, criteria, and rules of thumb for evaluating normed and
  standardized assessment instruments in psychology. Psychological Assessment, 6(4), 284–290.
  Kappa (and ICC) below .40 poor, .40–.59 fair, .60–.74 good, .75 and above excellent.
"""

from __future__ import annotations

KOO_LI_2016 = ("Koo & Li (2016), Journal of Chiropractic Medicine 15(2): ICC below .50 poor, "
               ".50–.75 moderate, .75–.90 good, above .90 excellent.")
CICCHETTI_1994 = ("Cicchetti (1994), Psychological Assessment 6(4): kappa below .40 poor, "
                  ".40–.59 fair, .60–.74 good, .75 and above excellent.")
# Koo & Li advise at least 30 heterogeneous samples for a dependable ICC.
KOO_LI_MIN_SAMPLES = 30


def _below_chance(value: float) -> bool:
    return value < 0


def icc_band(value: float | None) -> str:
    """Koo & Li (2016) reading of an intraclass correlation."""
    if value is None:
        return "not defined"
    if _below_chance(value):
        return "poor (raters agree less than by chance)"
    if value < 0.50:
        return "poor"
    if value < 0.75:
        return "moderate"
    if value <= 0.90:
        return "good"
    return "excellent"


def kappa_band(value: float | None) -> str:
    """Cicchetti (1994) reading of a kappa."""
    if value is None:
        return "not defined"
    if _below_chance(value):
        return "poor (raters agree less than by chance)"
    if value < 0.40:
        return "poor"
    if value < 0.60:
        return "fair"
    if value < 0.75:
        return "good"
    return "excellent"
