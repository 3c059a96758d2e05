"""Calibration of a classifier's confidences (pure numpy)."""

import numpy as np


__all__ = ["expected_calibration_error"]


def expected_calibration_error(confidences, correct, num_bins: int = 15) -> float:
    """ECE: sum over `num_bins` equal-width confidence bins of (bin size / n) x |accuracy - mean confidence|."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = np.clip(np.ceil(confidences * num_bins).astype(int) - 1, 0, num_bins - 1)  # (0, 1/B] is bin 0
    ece = 0.0
    for b in range(num_bins):
        members = bins == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidences[members].mean())
    return float(ece)
