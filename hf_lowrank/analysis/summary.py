"""The effective-rank summary of one accuracy-rank curve: region and both knees from a single curve fit."""

from dataclasses import dataclass

from .curve import Curve, find_knee, fit_checked, threshold_rank
from .validation import check_curve_inputs, check_positive_int, check_thresholds


__all__ = ["MIN_RANKS", "CurveSummary", "summarize_checked", "summarize_curve"]

MIN_RANKS = 3  # fewer measured ranks: region and knee are not estimated


@dataclass(frozen=True)
class CurveSummary:
    """Region `[r_low, r_high]` and knees of one curve; each None when undefined, with the reason in `why`.

    `curve` is the fitted curve (None with fewer than two ranks), kept so plots draw the same fit."""

    curve: Curve | None
    estimated: bool  # False with fewer than MIN_RANKS ranks
    r_low: float | None = None
    r_high: float | None = None
    knee: float | None = None
    knee_log: float | None = None
    knee_why: str | None = None  # why `knee` is None
    knee_log_why: str | None = None

    def to_dict(self) -> dict:
        return {
            "estimated": self.estimated,
            "r_low": self.r_low,
            "r_high": self.r_high,
            "knee": self.knee,
            "knee_log": self.knee_log,
            "knee_why": self.knee_why,
            "knee_log_why": self.knee_log_why,
        }


def summarize_curve(
    ranks, accuracies, teacher_accuracy: float, low: float = 0.85, high: float = 0.95, min_ranks: int = MIN_RANKS
) -> CurveSummary:
    """Fit the monotone PCHIP curve once and read the region (`low`, `high` of the teacher's accuracy) and the
    knees (linear and log-rank axes) off it. With fewer than `min_ranks` ranks nothing is estimated.

    Raises ValueError for inputs `check_curve_inputs` rejects (accuracies in percent, NaN, ranks not positive or
    repeated, one accuracy per rank) and thresholds outside 0 < low <= high <= 1."""
    ranks, accuracies, teacher_accuracy = check_curve_inputs(ranks, accuracies, teacher_accuracy)
    low, high = check_thresholds(low, high)
    min_ranks = check_positive_int("min_ranks", min_ranks)
    return summarize_checked(ranks, accuracies, teacher_accuracy, low, high, min_ranks)


def summarize_checked(ranks, accuracies, teacher_accuracy, low, high, min_ranks) -> CurveSummary:
    """`summarize_curve` on inputs already checked (the bootstrap checks once, then calls this per resample)."""
    if len(ranks) < max(min_ranks, 2):
        why = f"not estimated (fewer than {max(min_ranks, 2)} ranks)"
        curve = fit_checked(ranks, accuracies, teacher_accuracy) if len(ranks) >= 2 else None
        return CurveSummary(curve, False, knee_why=why, knee_log_why=why)
    curve = fit_checked(ranks, accuracies, teacher_accuracy)
    knee, knee_why = find_knee(curve)
    knee_log, knee_log_why = find_knee(curve, log_rank=True)
    return CurveSummary(
        curve,
        True,
        threshold_rank(curve, low),
        threshold_rank(curve, high),
        knee,
        knee_log,
        knee_why,
        knee_log_why,
    )
