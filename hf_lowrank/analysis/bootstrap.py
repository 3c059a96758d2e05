"""Percentile bootstrap intervals of a sweep's accuracies, region and knees, resampling test examples jointly."""

import numpy as np

from .summary import summarize_curve


__all__ = ["bootstrap_intervals"]


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
            summary = summarize_curve(ranks, student_accuracy[b], teacher_accuracy[b], low, high, min_ranks=2)
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
