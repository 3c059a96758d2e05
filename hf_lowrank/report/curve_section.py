"""One curve section of the report: fit, bootstrap, region and knee of one accuracy-rank curve, built the same way
for the trained curve, each training-free preview curve and the nested curve (and any curve added later)."""

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from ..analysis import CurveSummary, aurac, bootstrap_intervals, paired_difference_interval, summarize_curve


__all__ = ["CurveSection", "CurveSettings", "curve_section", "paired_difference"]


@dataclass(frozen=True)
class CurveSettings:
    """How every curve of a report is read: the region's thresholds (fractions of the teacher's accuracy) and the
    bootstrap (`num_bootstrap` resamples of the test examples, 0: no intervals, drawn from `seed`)."""

    low: float = 0.85
    high: float = 0.95
    num_bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self):  # the thresholds are checked by the curve fit (`analysis.summarize_curve`)
        bootstrap = self.num_bootstrap
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, Integral) or bootstrap < 0:
            raise ValueError(f"num_bootstrap must be a non-negative integer (0: no intervals); got {bootstrap!r}.")


@dataclass
class CurveSection:
    """One fitted curve: its `summary` (the fit, kept for plots), the per-rank accuracy intervals (None without a
    bootstrap), the teacher's accuracy interval, and the region and knee as report.json holds them."""

    summary: CurveSummary
    accuracy_intervals: list[list[float]] | None
    teacher_accuracy_interval: list[float] | None
    region: dict
    knee: dict
    aurac: float | None


def _interval(intervals, key):
    value = intervals.get(key) if intervals else None
    return list(value) if value is not None else None


def curve_section(
    ranks: list[int],
    accuracies: list[float],
    correct,
    teacher_accuracy: float,
    teacher_correct,
    settings: CurveSettings,
) -> CurveSection:
    """The section of the curve through `accuracies` `(ranks,)` against `teacher_accuracy`.

    Args:
        correct: per-example correctness `(ranks, examples)` (fractions when averaged over seeds), or None (no
            intervals); `teacher_correct` `(examples,)`, the teacher's.
    """
    summary = summarize_curve(ranks, accuracies, teacher_accuracy, settings.low, settings.high)
    intervals = None
    if len(ranks) >= 2 and settings.num_bootstrap > 0 and correct is not None:
        intervals = bootstrap_intervals(
            ranks,
            np.asarray(correct, dtype=float),
            np.asarray(teacher_correct),
            settings.num_bootstrap,
            settings.seed,
            settings.low,
            settings.high,
        )
    estimated = intervals if summary.estimated else None
    return CurveSection(
        summary=summary,
        accuracy_intervals=[list(interval) for interval in intervals["accuracy"]] if intervals else None,
        teacher_accuracy_interval=_interval(intervals, "teacher_accuracy"),
        region={
            "estimated": summary.estimated,
            "r_low": summary.r_low,
            "r_high": summary.r_high,
            "r_low_interval": _interval(estimated, "r_low"),
            "r_high_interval": _interval(estimated, "r_high"),
        },
        knee={
            "linear": summary.knee,
            "log_rank": summary.knee_log,
            "linear_why": summary.knee_why,
            "log_rank_why": summary.knee_log_why,
            "linear_interval": _interval(estimated, "knee"),
            "log_rank_interval": _interval(estimated, "knee_log"),
        },
        aurac=aurac(summary.curve) if summary.curve is not None else None,
    )


def paired_difference(record, partner, settings: CurveSettings) -> tuple[float | None, list[float] | None]:
    """`record`'s accuracy minus `partner`'s (two students measured on the same test examples), with its paired 95%
    bootstrap interval; `(None, None)` without a partner, no interval without a bootstrap or per-example
    correctness."""
    if partner is None:
        return None, None
    interval = None
    if settings.num_bootstrap > 0 and record.correct and partner.correct:
        interval = paired_difference_interval(record.correct, partner.correct, settings.num_bootstrap, settings.seed)
    return record.accuracy - partner.accuracy, list(interval) if interval is not None else None
