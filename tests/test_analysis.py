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
    secant,
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
    with pytest.raises(ValueError, match=r"ranks must be distinct .*got rank 4 more than once in \[4, 4\]"):
        fit_curve([4, 4], [0.5, 0.6], 1.0)
    with pytest.raises(ValueError, match="need at least two distinct ranks"):
        fit_curve([4], [0.5], 1.0)


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


def _prominence(curve, log_rank=False):
    """The curve's largest normalised distance above its endpoint secant, on a dense grid of its own (independent of
    find_knee's search): (y_norm - x) / sqrt(2)."""
    lo, hi = curve.ranks[0], curve.ranks[-1]
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 200_001)) if log_rank else np.linspace(lo, hi, 200_001)
    x = (np.log(grid / lo) / np.log(hi / lo)) if log_rank else (grid - lo) / (hi - lo)
    y = (curve(grid) - curve(lo)) / (curve(hi) - curve(lo))
    return float(np.max(y - x) / np.sqrt(2))


@pytest.mark.parametrize("log_rank", [False, True])
def test_a_knee_needs_its_prominence_just_below_none_just_above_one(log_rank):
    from scipy.optimize import brentq

    from hf_lowrank.analysis import KNEE_PROMINENCE

    ranks = np.array([1.0, 2, 4, 8, 16, 32]) if log_rank else np.arange(1.0, 8)
    x = np.log(ranks) / np.log(ranks[-1]) if log_rank else (ranks - 1) / (ranks[-1] - 1)

    def curve_of(bump):  # a straight line on the knee's axis, bent upwards by `bump` in the middle
        return fit_curve(ranks, (0.3 + 0.6 * x + bump * np.sin(np.pi * x)) * TEACHER, TEACHER)

    bump = brentq(lambda b: _prominence(curve_of(b), log_rank) - KNEE_PROMINENCE, 1e-6, 0.2)
    below, above = curve_of(bump * 0.97), curve_of(bump * 1.03)
    assert _prominence(below, log_rank) < KNEE_PROMINENCE < _prominence(above, log_rank)
    knee, why = find_knee(below, log_rank=log_rank)
    assert knee is None and f"minimum prominence {KNEE_PROMINENCE:g}" in why
    knee, why = find_knee(above, log_rank=log_rank)
    assert why is None and ranks[0] < knee < ranks[-1]


def test_an_interval_needs_its_minimum_share_of_defined_resamples():
    from hf_lowrank.analysis import MIN_DEFINED_SHARE
    from hf_lowrank.analysis.bootstrap import _interval
    from hf_lowrank.report import fmt_interval

    rng = np.random.default_rng(0)
    total = 1000
    needed = int(np.ceil(MIN_DEFINED_SHARE * total))
    for defined in (needed - 1, needed):
        values = list(rng.uniform(2, 9, defined))
        samples = values + [None] * (total - defined)
        lo, hi, missing = _interval(samples, 0.95)
        assert missing == pytest.approx(1 - defined / total)
        if defined < needed:
            assert (lo, hi) == (None, None)
        else:
            assert (lo, hi) == tuple(np.percentile(values, [2.5, 97.5]))
    # The share is given exactly, not rounded to 100%: the case once printed as "[63.2, 63.9] (undefined in 100%)".
    assert fmt_interval((None, None, 0.998)) == "n/a (undefined in 99.8% of resamples)"
    assert fmt_interval((None, None, 1.0)) == "n/a (undefined in 100% of resamples)"
    assert fmt_interval((3.0, 5.0, 0.0004)) == "[3.0, 5.0] (undefined in 0.04% of resamples)"
    # Either side of one half stays there: 501 of 1,000 undefined is n/a, 500 is not, and the text says which.
    assert fmt_interval(_interval([1.0] * 499 + [None] * 501)) == "n/a (undefined in 50.1% of resamples)"
    assert fmt_interval(_interval([1.0] * 500 + [None] * 500)) == "[1.0, 1.0] (undefined in 50% of resamples)"
    assert fmt_interval((1.0, 1.0, 0.4999)) == "[1.0, 1.0] (undefined in 49.99% of resamples)"
    assert fmt_interval((None, None, 1 - 1e-7)) == "n/a (undefined in >99.9999% of resamples)"


def test_summary_fits_once_and_matches_the_separate_functions():
    ranks, accuracies = [1, 2, 4, 8, 16], [0.3, 0.6, 0.8, 0.86, 0.9]
    summary = summarize_curve(ranks, accuracies, 0.9)
    assert (summary.r_low, summary.r_high) == effective_rank_region(ranks, accuracies, 0.9)
    assert summary.knee == effective_knee(ranks, accuracies, 0.9)
    assert summary.knee_log == effective_knee(ranks, accuracies, 0.9, log_rank=True)
    assert not summarize_curve(ranks[:2], accuracies[:2], 0.9).estimated


RANKS, GOOD = [1, 2, 4, 8], [0.5, 0.7, 0.8, 0.85]
ENTRY_POINTS = {
    "fit_curve": lambda r, a, t: fit_curve(r, a, t),
    "effective_rank_region": lambda r, a, t: effective_rank_region(r, a, t),
    "effective_knee": lambda r, a, t: effective_knee(r, a, t),
    "effective_knee (log-rank)": lambda r, a, t: effective_knee(r, a, t, log_rank=True),
    "summarize_curve": lambda r, a, t: summarize_curve(r, a, t),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("ranks", "accuracies", "teacher", "message"),
    [
        (
            RANKS,
            [50.0, 70.0, 80.0, 85.0],
            0.9,
            r"accuracies must be fractions in \[0, 1\]; got 50 at rank 1 \(percent",
        ),
        (RANKS, [0.5, 0.7, 0.8, 85.0], 0.9, r"accuracies must be fractions in \[0, 1\]; got 85 at rank 8 \(percent"),
        (RANKS, [0.5, float("nan"), 0.8, 0.85], 0.9, r"accuracies must be fractions in \[0, 1\]; got nan at rank 2\."),
        (RANKS, [0.5, -0.1, 0.8, 0.85], 0.9, r"accuracies must be fractions in \[0, 1\]; got -0.1 at rank 2\."),
        (RANKS, GOOD, 90.0, r"teacher_accuracy must be a fraction in \(0, 1\]; got 90 \(percent\? divide by 100\)"),
        (RANKS, GOOD, 0.0, r"teacher_accuracy must be a fraction in \(0, 1\]; got 0\."),
        (RANKS, GOOD, -0.5, r"teacher_accuracy must be a fraction in \(0, 1\]; got -0.5\."),
        (RANKS, GOOD, float("inf"), r"teacher_accuracy must be a fraction in \(0, 1\]; got inf\."),
        (RANKS, GOOD, float("nan"), r"teacher_accuracy must be a fraction in \(0, 1\]; got nan\."),
        ([0, 2, 4, 8], GOOD, 0.9, r"ranks must be finite positive numbers; got 0 at position 0 of \[0, 2, 4, 8\]"),
        ([1, -2, 4, 8], GOOD, 0.9, r"ranks must be finite positive numbers; got -2 at position 1"),
        ([1, 2, float("nan"), 8], GOOD, 0.9, r"ranks must be finite positive numbers; got nan at position 2"),
        (
            [8, 2, 4, 2],
            GOOD,
            0.9,
            r"ranks must be distinct \(strictly increasing once sorted\); got rank 2 more than once",
        ),
        (RANKS, GOOD[:3], 0.9, r"one accuracy per rank; got 4 ranks and 3 accuracies"),
    ],
)
def test_bad_inputs_fail_in_every_entry_point_with_a_message_naming_them(entry, ranks, accuracies, teacher, message):
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](ranks, accuracies, teacher)


def test_percent_accuracies_no_longer_give_a_silent_none_region():
    # Before the checks this returned (None, None): 85 / 0.9 is far above every threshold... of a flat curve.
    with pytest.raises(ValueError, match=r"got 45 at rank 1 \(percent\? divide by 100\)"):
        effective_rank_region([1, 2, 4], [45.0, 80.0, 85.0], 0.9)
    with pytest.raises(ValueError, match=r"thresholds must be fractions .* got low=85.0, high=95.0 \(percent"):
        summarize_curve([1, 2, 4], [0.45, 0.8, 0.85], 0.9, low=85, high=95)


def test_bootstrap_checks_its_arguments():
    ones = np.ones(20, dtype=int)
    students = np.stack([ones, ones, ones])
    for bad in (0, -5):
        with pytest.raises(ValueError, match=rf"num_samples must be a positive integer; got {bad}\."):
            bootstrap_intervals([1, 2, 3], students, ones, num_samples=bad)
    with pytest.raises(ValueError, match=r"num_samples must be a positive integer; got 2.5\."):
        bootstrap_intervals([1, 2, 3], students, ones, num_samples=2.5)
    for bad in (0, 1, 95, -0.1):
        with pytest.raises(ValueError, match=rf"level must be a confidence level in \(0, 1\), e.g. 0.95; got {bad}"):
            bootstrap_intervals([1, 2, 3], students, ones, level=bad)
    with pytest.raises(ValueError, match=r"thresholds must be fractions .* got low=0.95, high=0.85"):
        bootstrap_intervals([1, 2, 3], students, ones, low=0.95, high=0.85)
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer; got -1\."):
        bootstrap_intervals([1, 2, 3], students, ones, seed=-1)
    with pytest.raises(ValueError, match=r"ranks must be distinct .* got rank 2 more than once in \[1, 2, 2\]"):
        bootstrap_intervals([1, 2, 2], students, ones)
    with pytest.raises(ValueError, match=r"student_correct \(row of rank 2\) must be fractions in \[0, 1\]; got nan"):
        bootstrap_intervals([1, 2, 3], np.stack([ones, np.full(20, np.nan), ones]), ones)
    with pytest.raises(ValueError, match=r"teacher_correct must hold at least one test example"):
        bootstrap_intervals([1, 2, 3], np.zeros((3, 0)), [])
    assert bootstrap_intervals([1, 2, 3], students, ones, num_samples=1)["num_samples"] == 1  # the smallest valid


@pytest.mark.parametrize("log_rank", [False, True])
def test_secant_is_the_straight_segment_through_the_fitted_endpoints_in_the_knee_coordinates(log_rank):
    ranks, accuracies = [1, 2, 4, 8, 16, 32], [0.3, 0.6, 0.75, 0.8, 0.83, 0.85]
    curve = fit_curve(ranks, accuracies, 0.9)
    points, values = secant(curve, log_rank=log_rank, num=33)
    # Endpoints: the first and last fitted (isotonic) points.
    assert (points[0], points[-1]) == (1.0, 32.0)
    np.testing.assert_allclose([values[0], values[-1]], [curve.monotone[0], curve.monotone[-1]], atol=1e-12)
    # Independently: evenly spaced and collinear in log2(rank) (or rank), which is find_knee's x up to scale.
    x = np.log2(points) if log_rank else points
    np.testing.assert_allclose(np.diff(x), (x[-1] - x[0]) / 32, atol=1e-9)
    slope = (values[-1] - values[0]) / (x[-1] - x[0])
    np.testing.assert_allclose(values, values[0] + slope * (x - x[0]), atol=1e-12)
    # It is the line find_knee measures against: at the knee, the curve is farthest above it.
    knee, _ = find_knee(curve, log_rank=log_rank)
    grid_x = np.linspace(x[0], x[-1], 2001)
    grid = 2**grid_x if log_rank else grid_x
    gap = curve(grid) - (values[0] + slope * (grid_x - x[0]))
    assert grid[int(np.argmax(gap))] == pytest.approx(knee, rel=0.01)
    with pytest.raises(ValueError, match=r"num must be an integer >= 2"):
        secant(curve, num=1)
