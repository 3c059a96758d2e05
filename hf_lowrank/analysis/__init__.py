"""Effective rank region and knee of an accuracy-against-rank curve, and their bootstrap intervals (pure numpy /
scipy).

- `curve`: isotonic regression, the monotone PCHIP fit, threshold ranks, the knee.
- `summary`: `summarize_curve`, region and knees from one fit (what the report, cards and console show).
- `bootstrap`: joint percentile bootstrap over test examples.
"""

from .bootstrap import bootstrap_intervals
from .curve import Curve, effective_knee, effective_rank_region, find_knee, fit_curve, isotonic, threshold_rank
from .summary import MIN_RANKS, CurveSummary, summarize_curve


__all__ = [
    "MIN_RANKS",
    "Curve",
    "CurveSummary",
    "bootstrap_intervals",
    "effective_knee",
    "effective_rank_region",
    "find_knee",
    "fit_curve",
    "isotonic",
    "summarize_curve",
    "threshold_rank",
]
