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
    "bootstrap_intervals",
    "effective_knee",
    "effective_rank_region",
    "fit_curve",
    "isotonic",
    "threshold_rank",
]

GRID = 4097  # points the knee search scans before refining


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


def effective_knee(ranks, accuracies, teacher_accuracy: float, log_rank: bool = False) -> float | None:
    """The rank maximising the perpendicular distance from the curve to the secant through its endpoints.

    Both axes are normalised to [0, 1] (rank by its measured range, or log-rank by its range when `log_rank`;
    accuracy by the curve's range), so the secant is the diagonal and the distance is (y - x) / sqrt(2). The curve
    is the monotone PCHIP fit. None when the curve is flat (no knee).
    """
    curve = fit_curve(ranks, accuracies, teacher_accuracy)
    lo, hi = curve.ranks[0], curve.ranks[-1]
    to_x = (
        (lambda r: (np.log(r) - np.log(lo)) / (np.log(hi) - np.log(lo)))
        if log_rank
        else (lambda r: (r - lo) / (hi - lo))
    )
    y_lo, y_hi = float(curve(lo)), float(curve(hi))
    if y_hi - y_lo <= 1e-12:
        return None

    def distance(r):  # vectorised over r
        return ((curve(r) - y_lo) / (y_hi - y_lo) - to_x(r)) / np.sqrt(2)

    grid = np.exp(np.linspace(np.log(lo), np.log(hi), GRID)) if log_rank else np.linspace(lo, hi, GRID)
    distances = distance(grid)
    best = int(np.argmax(distances))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, GRID - 1)]
    refined = minimize_scalar(
        lambda r: -float(distance(r)), bounds=(a, b), method="bounded", options={"xatol": 1e-9 * (hi - lo)}
    )
    return float(refined.x) if -refined.fun >= distances[best] else float(grid[best])


def _summaries(ranks, accuracies, teacher_accuracy, low, high):
    r_low, r_high = effective_rank_region(ranks, accuracies, teacher_accuracy, low, high)
    return (
        r_low,
        r_high,
        effective_knee(ranks, accuracies, teacher_accuracy),
        effective_knee(ranks, accuracies, teacher_accuracy, log_rank=True),
    )


def _interval(samples, level=0.95):
    """Percentile interval of the non-None samples, and the fraction of samples that were None."""
    values = np.array([s for s in samples if s is not None], dtype=float)
    missing = 1 - len(values) / len(samples)
    if len(values) == 0:
        return None, None, missing
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)), missing


def bootstrap_intervals(
    ranks,
    student_correct,
    teacher_correct,
    num_samples: int = 1000,
    seed: int = 0,
    low: float = 0.85,
    high: float = 0.95,
    level: float = 0.95,
) -> dict:
    """Percentile bootstrap over test examples: every resample draws the same example indices for the teacher and
    all students (their errors are correlated), then recomputes every accuracy, r_low, r_high and both knees.

    Args:
        student_correct: `(num_ranks, num_examples)` 0/1 correctness of each student, rows in `ranks` order.
        teacher_correct: `(num_examples,)` 0/1 correctness of the teacher.

    Returns:
        {"accuracy": [(lo, hi)] per rank, "teacher_accuracy": (lo, hi), "r_low", "r_high", "knee", "knee_log":
        (lo, hi, fraction of resamples where it was undefined)}.
    """
    student_correct = np.asarray(student_correct, dtype=float)
    teacher_correct = np.asarray(teacher_correct, dtype=float)
    num_examples = teacher_correct.shape[0]
    if student_correct.shape != (len(ranks), num_examples):
        raise ValueError(
            f"student_correct must be (num_ranks, num_examples) = ({len(ranks)}, {num_examples}), "
            f"got {student_correct.shape}."
        )
    rng = np.random.default_rng(seed)
    student_accuracy = np.empty((num_samples, len(ranks)))
    teacher_accuracy = np.empty(num_samples)
    summaries = []
    for b in range(num_samples):
        sample = rng.integers(0, num_examples, num_examples)  # (num_examples,) shared by every model
        student_accuracy[b] = student_correct[:, sample].mean(axis=1)
        teacher_accuracy[b] = teacher_correct[sample].mean()
        if teacher_accuracy[b] > 0 and len(ranks) >= 2:
            summaries.append(_summaries(ranks, student_accuracy[b], teacher_accuracy[b], low, high))
        else:
            summaries.append((None, None, None, None))
    tail = (1 - level) / 2 * 100
    columns = list(zip(*summaries))
    return {
        "accuracy": [
            tuple(np.percentile(student_accuracy[:, i], [tail, 100 - tail]).tolist()) for i in range(len(ranks))
        ],
        "teacher_accuracy": tuple(np.percentile(teacher_accuracy, [tail, 100 - tail]).tolist()),
        "r_low": _interval(columns[0], level),
        "r_high": _interval(columns[1], level),
        "knee": _interval(columns[2], level),
        "knee_log": _interval(columns[3], level),
        "num_samples": num_samples,
        "level": level,
    }
