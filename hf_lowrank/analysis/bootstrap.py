"""Percentile bootstrap intervals of a sweep's accuracies, region and knees, resampling test examples jointly."""

from numbers import Integral

import numpy as np

from .summary import summarize_checked
from .validation import check_fractions, check_level, check_positive_int, check_ranks, check_thresholds


__all__ = ["MIN_DEFINED_SHARE", "bootstrap_intervals", "paired_difference_interval"]


# An interval of a quantity that is undefined in some resamples (a threshold not reached, no knee) is the percentile
# interval of the resamples where it is defined; it is given only where they are at least this share of all
# resamples. Below it the interval would describe a minority of the resamples (once: 2 of 1,000), and it is None.
MIN_DEFINED_SHARE = 0.5


def _interval(samples, level=0.95):
    """Percentile interval of the non-None samples, and the fraction of samples that were None; (None, None,
    fraction) when fewer than `MIN_DEFINED_SHARE` of the samples are defined."""
    values = np.array([s for s in samples if s is not None], dtype=float)
    missing = 1 - len(values) / len(samples)
    if len(values) == 0 or len(values) < MIN_DEFINED_SHARE * len(samples):
        return None, None, missing
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)), missing


def _checked(ranks, student_correct, teacher_correct, num_samples, seed, low, high, level):
    """`bootstrap_intervals`' arguments checked (ValueError naming the argument) and as arrays."""
    ranks = check_ranks(ranks)
    num_samples = check_positive_int("num_samples", num_samples)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    low, high = check_thresholds(low, high)
    level = check_level(level)
    teacher_correct = check_fractions("teacher_correct", teacher_correct, label="example", percent_hint=False)
    num_examples = teacher_correct.shape[0]
    if num_examples == 0:
        raise ValueError("teacher_correct must hold at least one test example; got none.")
    try:
        student_correct = np.asarray(student_correct, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"student_correct must be a (num_ranks, num_examples) array of 0/1; {error}.") from None
    if student_correct.shape != (len(ranks), num_examples):
        raise ValueError(
            f"student_correct must be (num_ranks, num_examples) = ({len(ranks)}, {num_examples}), "
            f"got {student_correct.shape}."
        )
    for rank, row in zip(ranks, student_correct):
        check_fractions(f"student_correct (row of rank {rank:g})", row, label="example", percent_hint=False)
    return ranks, student_correct, teacher_correct, num_samples, low, high, level


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
        num_samples: resamples, at least 1; `level`: the intervals' confidence level, in (0, 1).

    Raises ValueError naming the argument for ranks that are not positive and distinct, correctness outside [0, 1]
    (or NaN), mismatched shapes, num_samples < 1, a level outside (0, 1) or thresholds outside
    0 < low <= high <= 1.

    Returns:
        {"accuracy": [(lo, hi)] per rank, "teacher_accuracy": (lo, hi), "r_low", "r_high", "knee", "knee_log":
        (lo, hi, fraction of resamples where it was undefined); lo and hi are None where it was defined in fewer
        than `MIN_DEFINED_SHARE` of the resamples}.
    """
    ranks, student_correct, teacher_correct, num_samples, low, high, level = _checked(
        ranks, student_correct, teacher_correct, num_samples, seed, low, high, level
    )
    num_examples = teacher_correct.shape[0]
    rng = np.random.default_rng(seed)
    student_accuracy = np.empty((num_samples, len(ranks)))
    teacher_accuracy = np.empty(num_samples)
    summaries = []
    for b in range(num_samples):
        sample = rng.integers(0, num_examples, num_examples)  # (num_examples,) shared by every model
        student_accuracy[b] = student_correct[:, sample].mean(axis=1)
        teacher_accuracy[b] = teacher_correct[sample].mean()
        if teacher_accuracy[b] > 0 and len(ranks) >= 2:
            summary = summarize_checked(ranks, student_accuracy[b], teacher_accuracy[b], low, high, 2)
            summaries.append((summary.r_low, summary.r_high, summary.knee, summary.knee_log))
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


def paired_difference_interval(
    first_correct, second_correct, num_samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(first) - accuracy(second) over the same test examples, resampled
    jointly (paired). Both are `(num_examples,)` 0/1 correctness arrays in one example order."""
    first = check_fractions("first_correct", first_correct, label="example", percent_hint=False)
    second = check_fractions("second_correct", second_correct, label="example", percent_hint=False)
    if first.shape != second.shape or first.shape[0] == 0:
        raise ValueError(
            f"first_correct and second_correct must be non-empty and of one length; got {first.shape[0]} and "
            f"{second.shape[0]} examples."
        )
    num_samples = check_positive_int("num_samples", num_samples)
    level = check_level(level)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, first.shape[0], (num_samples, first.shape[0]))  # (num_samples, num_examples)
    differences = first[samples].mean(axis=1) - second[samples].mean(axis=1)  # (num_samples,)
    tail = (1 - level) / 2 * 100
    return tuple(np.percentile(differences, [tail, 100 - tail]).tolist())
