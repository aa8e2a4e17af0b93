"""Inter-rater agreement statistics (framework-free; numpy only).

See agreement.py: intraclass correlations (Shrout & Fleiss 1979), Cohen's kappa (unweighted and
quadratic-weighted) and percent agreement.
"""

from relisten.lib.stats.agreement import (
    ICC_FORMS,
    IccEstimate,
    IccResult,
    KappaResult,
    MeanSquares,
    PercentAgreement,
    cohen_kappa,
    icc,
    percent_agreement,
    quadratic_weighted_kappa,
)

__all__ = [
    "ICC_FORMS",
    "IccEstimate",
    "IccResult",
    "KappaResult",
    "MeanSquares",
    "PercentAgreement",
    "cohen_kappa",
    "icc",
    "percent_agreement",
    "quadratic_weighted_kappa",
]
