import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from hf_lowrank.analysis import (
    bootstrap_intervals,
    effective_knee,
    effective_rank_region,
    find_knee,
    fit_curve,
    isotonic,
    summarize_curve,
)


TEACHER = 0.8


def test_isotonic_matches_scikit_learn():
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(0.1, 1.0, 40))
    expected = IsotonicRegression(increasing=True).fit_transform(np.arange(40), values)
    np.testing.assert_allclose(isotonic(values), expected, atol=1e-12)
    np.testing.assert_allclose(isotonic([1, 3, 2, 4]), [1, 2.5, 2.5, 4])


def test_logistic_curve_threshold_crossings_match_closed_form():
    center, scale = 30.0, 5.0
    ranks = np.arange(1, 129)
    normalised = 1 / (1 + np.exp(-(ranks - center) / scale))
    r_low, r_high = effective_rank_region(ranks, normalised * TEACHER, TEACHER)
    assert r_low == pytest.approx(center + scale * np.log(0.85 / 0.15), abs=0.02)
    assert r_high == pytest.approx(center + scale * np.log(0.95 / 0.05), abs=0.02)
    r_90, _ = effective_rank_region(ranks, normalised * TEACHER, TEACHER, low=0.9, high=0.99)
    assert r_90 == pytest.approx(center + scale * np.log(9), abs=0.02)


def test_piecewise_linear_knee_is_the_breakpoint():
    ranks = np.arange(1, 102, dtype=float)
    breakpoint_ = 21.0
    normalised = np.where(
        ranks <= breakpoint_,
        0.9 * (ranks - 1) / (breakpoint_ - 1),
        0.9 + 0.1 * (ranks - breakpoint_) / (101 - breakpoint_),
    )
    assert effective_knee(ranks, normalised * TEACHER, TEACHER) == pytest.approx(breakpoint_, abs=0.05)


def test_log_rank_knee_is_the_breakpoint_in_log_space():
    # 1 .. 128, geometric; dense, since PCHIP interpolates in rank, not log-rank, between the points
    ranks = 2.0 ** (np.arange(0, 113) / 16)
    t = np.log2(ranks) / 7  # log-rank normalised to [0, 1]
    t_break = 3 / 7  # rank 8
    normalised = np.where(t <= t_break, 0.3 + 0.6 * t / t_break, 0.9 + 0.1 * (t - t_break) / (1 - t_break))
    # PCHIP blends the two slopes over the intervals next to the kink: the knee is within one sampling step of it.
    assert abs(effective_knee(ranks, normalised * TEACHER, TEACHER, log_rank=True) - 8.0) < 8 * (2 ** (1 / 16) - 1)


def test_region_not_reached_and_reached_at_the_first_rank():
    ranks = [1, 2, 4, 8]
    assert effective_rank_region(ranks, [0.1, 0.3, 0.5, 0.7], 1.0) == (None, None)
    assert effective_rank_region(ranks, [0.5, 0.8, 0.9, 0.92], 1.0) == (pytest.approx(2.5, abs=0.5), None)
    assert effective_rank_region(ranks, [0.96, 0.97, 0.98, 0.99], 1.0) == (1.0, 1.0)
    assert effective_knee(ranks, [0.5, 0.5, 0.5, 0.5], 1.0) is None


def test_non_monotone_points_are_kept_raw_and_pooled_for_the_curve():
    curve = fit_curve([1, 2, 4, 8], [0.5, 0.9, 0.8, 0.95], 1.0)
    assert not curve.was_monotone
    np.testing.assert_allclose(curve.raw, [0.5, 0.9, 0.8, 0.95])
    np.testing.assert_allclose(curve.monotone, [0.5, 0.85, 0.85, 0.95])
    grid = np.linspace(1, 8, 200)
    assert np.all(np.diff(curve(grid)) >= -1e-12)  # the interpolant is monotone
    with pytest.raises(ValueError, match="two distinct ranks"):
        fit_curve([4, 4], [0.5, 0.6], 1.0)


def test_bootstrap_accuracy_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    n = 4000
    teacher = (rng.random(n) < 0.9).astype(int)
    students = np.stack([(rng.random(n) < p).astype(int) for p in (0.5, 0.7, 0.85, 0.9)])
    intervals = bootstrap_intervals([2, 4, 8, 16], students, teacher, num_samples=400, seed=0)
    for row, (lo, hi) in zip(students, intervals["accuracy"]):
        p = row.mean()
        half = 1.96 * np.sqrt(p * (1 - p) / n)
        assert lo == pytest.approx(p - half, abs=0.004) and hi == pytest.approx(p + half, abs=0.004)
    lo, hi, missing = intervals["r_low"]
    point, _ = effective_rank_region([2, 4, 8, 16], students.mean(1), teacher.mean())
    assert lo <= point <= hi and missing == 0
    again = bootstrap_intervals([2, 4, 8, 16], students, teacher, num_samples=400, seed=0)
    assert again == intervals  # seeded


def test_bootstrap_of_perfect_models_is_degenerate_and_shapes_are_checked():
    ones = np.ones(50, dtype=int)
    intervals = bootstrap_intervals([1, 2, 3], np.stack([ones, ones, ones]), ones, num_samples=20)
    assert intervals["accuracy"] == [(1.0, 1.0)] * 3
    assert intervals["r_low"] == (1.0, 1.0, 0.0)
    assert intervals["knee"] == (None, None, 1.0)  # a flat curve has no knee
    with pytest.raises(ValueError, match="num_ranks, num_examples"):
        bootstrap_intervals([1, 2], np.stack([ones, ones, ones]), ones)


@pytest.mark.parametrize(
    ("accuracies", "why"),
    [
        ([0.8, 0.8, 0.8, 0.8], "flat"),  # no rise at all
        ([0.2, 0.4, 0.6, 0.8], "never rises above the secant"),  # linear in rank: the curve is the secant
        ([0.2, 0.25, 0.4, 0.8], "never rises above the secant"),  # convex: below the secant everywhere
    ],
)
def test_curves_without_a_knee_have_none_and_say_why(accuracies, why):
    ranks = [1, 2, 3, 4]
    assert effective_knee(ranks, accuracies, 0.8) is None
    knee, reason = find_knee(fit_curve(ranks, accuracies, 0.8))
    assert knee is None and why in reason
    summary = summarize_curve(ranks, accuracies, 0.8)
    assert summary.knee is None and why in summary.knee_why


def test_summary_fits_once_and_matches_the_separate_functions():
    ranks, accuracies = [1, 2, 4, 8, 16], [0.3, 0.6, 0.8, 0.86, 0.9]
    summary = summarize_curve(ranks, accuracies, 0.9)
    assert (summary.r_low, summary.r_high) == effective_rank_region(ranks, accuracies, 0.9)
    assert summary.knee == effective_knee(ranks, accuracies, 0.9)
    assert summary.knee_log == effective_knee(ranks, accuracies, 0.9, log_rank=True)
    assert not summarize_curve(ranks[:2], accuracies[:2], 0.9).estimated
