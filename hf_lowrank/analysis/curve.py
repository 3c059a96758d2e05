"""Effective rank region and knee of an accuracy-against-rank curve, and their bootstrap intervals.

Pure numpy / scipy. The curve is the monotone PCHIP interpolant (scipy.interpolate.PchipInterpolator) of normalised
accuracy n(r) = a(r) / a_T over the measured ranks, after monotonicity is enforced on the data by isotonic
regression (pool-adjacent-violators: the closest non-decreasing sequence in least squares, which unlike a running
maximum does not let one lucky point lift every rank after it). The raw points are kept beside the curve.
"""

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, minimize_scalar


__all__ = [
    "Curve",
    "effective_knee",
    "effective_rank_region",
    "find_knee",
    "fit_curve",
    "isotonic",
    "threshold_rank",
]

GRID = 4097  # points the knee search scans before refining
KNEE_TOLERANCE = 1e-9  # a normalised distance at most this above the secant is no knee


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
    """Monotone PCHIP fit of normalised accuracy against rank (at least two distinct ranks)."""
    ranks = np.asarray(ranks, dtype=float)
    accuracies = np.asarray(accuracies, dtype=float)
    if ranks.shape != accuracies.shape or ranks.ndim != 1:
        raise ValueError(
            f"ranks and accuracies must be 1-D and of equal length, got {ranks.shape} and {accuracies.shape}."
        )
    if len(np.unique(ranks)) != len(ranks) or len(ranks) < 2:
        raise ValueError(f"need at least two distinct ranks, got {ranks.tolist()}.")
    if not teacher_accuracy > 0:
        raise ValueError(f"teacher_accuracy must be > 0, got {teacher_accuracy}.")
    order = np.argsort(ranks)
    ranks, raw = ranks[order], accuracies[order] / teacher_accuracy
    monotone = isotonic(raw)
    return Curve(ranks, raw, monotone, PchipInterpolator(ranks, monotone))


def threshold_rank(curve: Curve, level: float) -> float | None:
    """Smallest rank in the measured range at which the curve reaches `level`; None if it never does.

    At the smallest measured rank already above `level`, that rank is returned (the crossing may lie below it).
    """
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
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}.")
    curve = fit_curve(ranks, accuracies, teacher_accuracy)
    return threshold_rank(curve, low), threshold_rank(curve, high)


def find_knee(curve: Curve, log_rank: bool = False) -> tuple[float | None, str | None]:
    """`(knee, None)`, or `(None, why)` when the curve has no knee: it is flat, or never rises above the secant
    through its endpoints (linear or convex), so every point is at most as far from the secant as the endpoints.

    The knee maximises the perpendicular distance from the curve to that secant, with both axes normalised to
    [0, 1] (rank by its measured range, or log-rank when `log_rank`; accuracy by the curve's range): the secant is
    the diagonal and the distance is (y - x) / sqrt(2).
    """
    lo, hi = curve.ranks[0], curve.ranks[-1]
    to_x = (
        (lambda r: (np.log(r) - np.log(lo)) / (np.log(hi) - np.log(lo)))
        if log_rank
        else (lambda r: (r - lo) / (hi - lo))
    )
    y_lo, y_hi = float(curve(lo)), float(curve(hi))
    if y_hi - y_lo <= 1e-12:
        return None, "the curve is flat over the measured ranks"

    def distance(r):  # vectorised over r
        return ((curve(r) - y_lo) / (y_hi - y_lo) - to_x(r)) / np.sqrt(2)

    grid = np.exp(np.linspace(np.log(lo), np.log(hi), GRID)) if log_rank else np.linspace(lo, hi, GRID)
    distances = distance(grid)
    best = int(np.argmax(distances))
    if distances[best] <= KNEE_TOLERANCE:
        axis = "log-rank" if log_rank else "linear rank"
        return None, f"the curve never rises above the secant through its endpoints on the {axis} axis"
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, GRID - 1)]
    refined = minimize_scalar(
        lambda r: -float(distance(r)), bounds=(a, b), method="bounded", options={"xatol": 1e-9 * (hi - lo)}
    )
    return (float(refined.x) if -refined.fun >= distances[best] else float(grid[best])), None


def effective_knee(ranks, accuracies, teacher_accuracy: float, log_rank: bool = False) -> float | None:
    """The knee of the monotone PCHIP curve of normalised accuracy against rank (see `find_knee`); None when the
    curve has none (flat, linear or convex)."""
    return find_knee(fit_curve(ranks, accuracies, teacher_accuracy), log_rank)[0]
