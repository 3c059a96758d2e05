"""The checks every public analysis function runs on its inputs, in one place, so that accuracies in percent, a NaN
or unsorted duplicate ranks fail with a message naming the argument and the bad value instead of a silent
`(None, None)` or scipy's error."""

import math
from numbers import Integral

import numpy as np


__all__ = [
    "check_curve_inputs",
    "check_fractions",
    "check_level",
    "check_positive_int",
    "check_ranks",
    "check_teacher_accuracy",
    "check_thresholds",
]


def _as_vector(name: str, values) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a 1-D sequence of numbers; got {values!r} ({error}).") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per rank); got an array of shape {array.shape}.")
    return array


def _as_number(value) -> float | None:
    """`value` as a float when it is one number (a Python or numpy scalar, not a bool or a string); else None."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _format(value: float) -> str:
    return f"{value:g}"


def _list(values) -> str:
    return "[" + ", ".join(_format(v) for v in values) + "]"


def check_ranks(ranks) -> np.ndarray:
    """`ranks` as a float array: 1-D, finite, positive and distinct (strictly increasing once sorted)."""
    ranks = _as_vector("ranks", ranks)
    bad = np.flatnonzero(~np.isfinite(ranks) | (ranks <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"ranks must be finite positive numbers; got {_format(ranks[i])} at position {i} of {_list(ranks)}."
        )
    ordered = np.sort(ranks)
    repeated = ordered[1:][np.diff(ordered) == 0]
    if repeated.size:
        raise ValueError(
            f"ranks must be distinct (strictly increasing once sorted); got rank {_format(repeated[0])} more than "
            f"once in {_list(ranks)}."
        )
    return ranks


def check_fractions(name: str, values, labels=None, label: str = "position", percent_hint: bool = True) -> np.ndarray:
    """`values` as a float array of fractions in [0, 1] (no NaN); the first bad one is named by `labels[i]` (a rank,
    say) or by its position; a value in (1, 100] is said to look like percent when `percent_hint`."""
    values = _as_vector(name, values)
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0) & (values <= 1)))
    if bad.size:
        i = int(bad[0])
        where = f"{label} {_format(labels[i])}" if labels is not None else f"{label} {i}"
        value = values[i]
        hint = " (percent? divide by 100)" if percent_hint and 1 < value <= 100 else ""
        raise ValueError(f"{name} must be fractions in [0, 1]; got {_format(value)} at {where}{hint}.")
    return values


def check_teacher_accuracy(teacher_accuracy) -> float:
    """The teacher's accuracy as a float in (0, 1] (it normalises every student's)."""
    value = _as_number(teacher_accuracy)
    if value is None:
        raise ValueError(f"teacher_accuracy must be a number in (0, 1]; got {teacher_accuracy!r}.")
    if not (math.isfinite(value) and 0 < value <= 1):
        hint = " (percent? divide by 100)" if 1 < value <= 100 else ""
        raise ValueError(f"teacher_accuracy must be a fraction in (0, 1]; got {_format(value)}{hint}.")
    return value


def check_thresholds(low, high) -> tuple[float, float]:
    """The region's thresholds: fractions of the teacher's accuracy with 0 < low <= high <= 1."""
    for name, value in (("low", low), ("high", high)):
        number = _as_number(value)
        if number is None or not math.isfinite(number):
            raise ValueError(f"{name} must be a finite fraction in (0, 1]; got {value!r}.")
    low, high = float(low), float(high)
    if not 0 < low <= high <= 1:
        hint = " (percent? divide by 100)" if high > 1 else ""
        raise ValueError(
            f"thresholds must be fractions of the teacher's accuracy with 0 < low <= high <= 1; got low={low}, "
            f"high={high}{hint}."
        )
    return low, high


def check_level(level) -> float:
    """A confidence level strictly between 0 and 1."""
    number = _as_number(level)
    if number is None or not 0 < number < 1:
        hint = " (percent? divide by 100)" if number is not None and 1 < number < 100 else ""
        raise ValueError(f"level must be a confidence level in (0, 1), e.g. 0.95; got {level!r}{hint}.")
    return number


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_curve_inputs(ranks, accuracies, teacher_accuracy) -> tuple[np.ndarray, np.ndarray, float]:
    """The inputs of every curve function, checked once: (ranks, accuracies, teacher_accuracy) as floats.

    ranks: finite, positive, distinct; accuracies: one per rank, fractions in [0, 1] (not percent, no NaN);
    teacher_accuracy: a fraction in (0, 1]."""
    ranks = check_ranks(ranks)
    accuracies = _as_vector("accuracies", accuracies)
    if accuracies.shape != ranks.shape:
        raise ValueError(
            f"ranks and accuracies must have one accuracy per rank; got {len(ranks)} ranks and "
            f"{len(accuracies)} accuracies."
        )
    accuracies = check_fractions("accuracies", accuracies, ranks, "rank")
    return ranks, accuracies, check_teacher_accuracy(teacher_accuracy)
