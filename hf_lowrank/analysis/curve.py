"""Effective rank region and knee of an accuracy-against-rank curve, and their bootstrap intervals.

Pure numpy / scipy. The curve is the monotone PCHIP interpolant (scipy.interpolate.PchipInterpolator) of normalised
accuracy n(r) = a(r) / a_T over the measured ranks, after monotonicity is enforced on the data by isotonic
regression (pool-adjacent-violators: the closest non-decreasing sequence in least squares, which unlike a running
maximum does not let one lucky point lift every rank after it). The raw points are kept beside the curve.
"""

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, minimize_scalar

from .validation import check_curve_inputs, check_thresholds


__all__ = [
    "Curve",
    "aurac",
    "fit_checked",
    "effective_knee",
    "effective_rank_region",
    "find_knee",
    "fit_curve",
    "isotonic",
    "secant",
    "threshold_rank",
]

GRID = 4097  # points the knee search scans before refining
# A knee needs a prominence: the curve's largest perpendicular distance above the secant through its endpoints, with
# both axes normalised to [0, 1], must exceed this (0.01: the curve rises about 1.4% of its range above the diagonal).
# Below it the "knee" of a nearly straight curve is where round-off or one test example puts it (often the last rank).
KNEE_PROMINENCE = 0.01


def isotonic(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The non-decreasing sequence closest to `values` in (weighted) least squares (pool adjacent violators)."""
    values = np.asarray(values, dtype=float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    blocks = []  # [mean, weight, length]
    for value, weight in zip(values, weights):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean2, weight2, length2 = blocks.pop()
            mean1, weight1, length1 = blocks.pop()
            total = weight1 + weight2
            blocks.append([(mean1 * weight1 + mean2 * weight2) / total, total, length1 + length2])
    return np.concatenate([np.full(length, mean) for mean, _, length in blocks])


@dataclass
class Curve:
    """The fitted curve: raw points, the isotonic points the interpolant passes through, and the interpolant."""

    ranks: np.ndarray  # (k,) increasing
    raw: np.ndarray  # (k,) normalised accuracy as measured
    monotone: np.ndarray  # (k,) after isotonic regression
    interpolant: PchipInterpolator

    def __call__(self, rank):
        return self.interpolant(rank)

    @property
    def was_monotone(self) -> bool:
        return bool(np.all(np.diff(self.raw) >= 0))


def fit_curve(ranks, accuracies, teacher_accuracy: float) -> Curve:
    """Monotone PCHIP fit of normalised accuracy against rank (at least two distinct ranks).

    Raises ValueError (naming the argument and the value) for ranks that are not finite, positive and distinct,
    accuracies that are not fractions in [0, 1] (percent, NaN) or not one per rank, and a teacher accuracy outside
    (0, 1]."""
    ranks, accuracies, teacher_accuracy = check_curve_inputs(ranks, accuracies, teacher_accuracy)
    return fit_checked(ranks, accuracies, teacher_accuracy)


def fit_checked(ranks: np.ndarray, accuracies: np.ndarray, teacher_accuracy: float) -> Curve:
    """`fit_curve` on inputs `check_curve_inputs` has already passed."""
    if len(ranks) < 2:
        raise ValueError(f"need at least two distinct ranks to fit a curve; got ranks {ranks.tolist()}.")
    order = np.argsort(ranks)
    ranks, raw = ranks[order], accuracies[order] / teacher_accuracy
    monotone = isotonic(raw)
    return Curve(ranks, raw, monotone, PchipInterpolator(ranks, monotone))


def threshold_rank(curve: Curve, level: float) -> float | None:
    """Smallest rank in the measured range at which the curve reaches `level`; None if it never does.

    At the smallest measured rank already above `level`, that rank is returned (the crossing may lie below it).
    """
    _check_curve(curve)
    if isinstance(level, bool) or not isinstance(level, Real) or not np.isfinite(level):
        raise ValueError(f"level must be a finite fraction of the teacher's accuracy, e.g. 0.85; got {level!r}.")
    lo, hi = curve.ranks[0], curve.ranks[-1]
    if curve(hi) < level:
        return None
    if curve(lo) >= level:
        return float(lo)
    # First measured interval whose right end reaches the level; the curve is monotone inside it.
    right = int(np.argmax(curve.monotone >= level))
    a, b = curve.ranks[right - 1], curve.ranks[right]
    if curve(a) >= level:  # a flat stretch exactly at the level
        return float(a)
    return float(brentq(lambda r: float(curve(r)) - level, a, b, xtol=1e-10))


def effective_rank_region(ranks, accuracies, teacher_accuracy: float, low: float = 0.85, high: float = 0.95):
    """(r_low, r_high): smallest ranks where the monotone PCHIP curve of normalised accuracy reaches `low` and
    `high` of the teacher's accuracy; each None where the curve never gets there."""
    low, high = check_thresholds(low, high)
    curve = fit_curve(ranks, accuracies, teacher_accuracy)
    return threshold_rank(curve, low), threshold_rank(curve, high)


def _check_curve(curve) -> None:
    if not isinstance(curve, Curve):
        raise ValueError(f"curve must be a Curve (from fit_curve); got {type(curve).__name__}.")


def _knee_axis(curve: Curve, log_rank: bool):
    """The knee's x coordinate: rank (or log-rank) normalised to [0, 1] over the measured range, and its inverse."""
    lo, hi = curve.ranks[0], curve.ranks[-1]
    if log_rank:
        log_lo, log_hi = np.log(lo), np.log(hi)
        return (lambda r: (np.log(r) - log_lo) / (log_hi - log_lo)), (lambda x: np.exp(log_lo + x * (log_hi - log_lo)))
    return (lambda r: (r - lo) / (hi - lo)), (lambda x: lo + x * (hi - lo))


def secant(curve: Curve, log_rank: bool = False, num: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """`(ranks, values)`: `num` points of the secant `find_knee` measures its distance to, the straight segment
    from the curve's first to its last measured point in the knee's coordinates (rank, or log-rank when
    `log_rank`), evenly spaced along that axis. Drawn on an axis of the same scale it is a straight line."""
    _check_curve(curve)
    if isinstance(num, bool) or not isinstance(num, Integral) or num < 2:
        raise ValueError(f"num must be an integer >= 2 (the segment's endpoints at least); got {num!r}.")
    _, from_x = _knee_axis(curve, log_rank)
    x = np.linspace(0.0, 1.0, num)
    y_lo, y_hi = float(curve(curve.ranks[0])), float(curve(curve.ranks[-1]))
    ranks = from_x(x)
    ranks[0], ranks[-1] = curve.ranks[0], curve.ranks[-1]  # exactly the endpoints, not exp(log(r))
    return ranks, y_lo + (y_hi - y_lo) * x


def find_knee(curve: Curve, log_rank: bool = False) -> tuple[float | None, str | None]:
    """`(knee, None)`, or `(None, why)` when the curve has no knee: it is flat, never rises above the secant
    through its endpoints (linear or convex), or rises above it by at most `KNEE_PROMINENCE` (nearly straight).

    The knee maximises the perpendicular distance from the curve to that secant, with both axes normalised to
    [0, 1] (rank by its measured range, or log-rank when `log_rank`; accuracy by the curve's range): the secant is
    the diagonal and the distance is (y - x) / sqrt(2).
    """
    _check_curve(curve)
    lo, hi = curve.ranks[0], curve.ranks[-1]
    to_x, _ = _knee_axis(curve, log_rank)
    y_lo, y_hi = float(curve(lo)), float(curve(hi))
    if y_hi - y_lo <= 1e-12:
        return None, "the curve is flat over the measured ranks"

    def distance(r):  # vectorised over r
        return ((curve(r) - y_lo) / (y_hi - y_lo) - to_x(r)) / np.sqrt(2)

    grid = np.exp(np.linspace(np.log(lo), np.log(hi), GRID)) if log_rank else np.linspace(lo, hi, GRID)
    distances = distance(grid)
    best = int(np.argmax(distances))
    axis = "log-rank" if log_rank else "linear rank"
    if distances[best] <= 1e-12:
        return None, f"the curve never rises above the secant through its endpoints on the {axis} axis"
    if distances[best] <= KNEE_PROMINENCE:
        return None, (
            f"the curve rises at most {distances[best]:.2g} above the secant through its endpoints on the {axis} "
            f"axis (normalised axes), not more than the knee's minimum prominence {KNEE_PROMINENCE:g}"
        )
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, GRID - 1)]
    refined = minimize_scalar(
        lambda r: -float(distance(r)), bounds=(a, b), method="bounded", options={"xatol": 1e-9 * (hi - lo)}
    )
    return (float(refined.x) if -refined.fun >= distances[best] else float(grid[best])), None


def effective_knee(ranks, accuracies, teacher_accuracy: float, log_rank: bool = False) -> float | None:
    """The knee of the monotone PCHIP curve of normalised accuracy against rank (see `find_knee`); None when the
    curve has none (flat, linear or convex)."""
    return find_knee(fit_curve(ranks, accuracies, teacher_accuracy), log_rank)[0]


def aurac(curve: Curve, num: int = 2001) -> float:
    """Area under the normalised accuracy-rank curve on the log2-rank axis, divided by that axis's length: the
    mean of the fitted curve over log2(r) between the smallest and the largest rank measured (1: every rank matches
    the teacher). Trapezoid rule on `num` points evenly spaced in log2(r)."""
    low, high = np.log2(curve.ranks[0]), np.log2(curve.ranks[-1])
    if high <= low:
        raise ValueError("aurac needs at least two distinct ranks.")
    grid = np.linspace(low, high, num)  # (num,) log2 ranks
    values = curve(2.0**grid)  # (num,) normalised accuracy
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(grid)) / (high - low))
