"""Effective rank region and knee of an accuracy-against-rank curve, and their bootstrap intervals (pure numpy /
scipy).

- `curve`: isotonic regression, the monotone PCHIP fit, threshold ranks, the knee and its secant.
- `validation`: the input checks every public function runs (`check_curve_inputs`).
- `summary`: `summarize_curve`, region and knees from one fit (what the report, cards and console show).
- `bootstrap`: joint percentile bootstrap over test examples.
"""

from .bootstrap import MIN_DEFINED_SHARE, bootstrap_intervals, paired_difference_interval
from .curve import (
    KNEE_PROMINENCE,
    Curve,
    aurac,
    effective_knee,
    effective_rank_region,
    find_knee,
    fit_curve,
    isotonic,
    secant,
    threshold_rank,
)
from .summary import MIN_RANKS, CurveSummary, summarize_curve
from .validation import check_curve_inputs


__all__ = [
    "aurac",
    "KNEE_PROMINENCE",
    "MIN_DEFINED_SHARE",
    "MIN_RANKS",
    "Curve",
    "CurveSummary",
    "bootstrap_intervals",
    "paired_difference_interval",
    "check_curve_inputs",
    "effective_knee",
    "effective_rank_region",
    "find_knee",
    "fit_curve",
    "isotonic",
    "secant",
    "summarize_curve",
    "threshold_rank",
]
