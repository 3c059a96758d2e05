import json

import numpy as np
import pytest

from hf_lowrank.report import Report, build_report, render_markdown, write_report
from hf_lowrank.results import RESULTS_FORMAT, RESULTS_VERSION, ResultsError, SweepResults


def _correct(accuracy, n, rng):
    row = np.zeros(n, dtype=int)
    row[rng.choice(n, int(round(accuracy * n)), replace=False)] = 1
    return row.tolist()


def make_results(accuracies: dict, teacher_accuracy=0.9, n=400, seeds=(0,), failed=()):
    """A results.json payload with per-example correctness matching the given accuracies exactly."""
    rng = np.random.default_rng(0)
    records = []
    for seed in seeds:
        for rank, accuracy in accuracies.items():
            value = accuracy[seed] if isinstance(accuracy, dict) else accuracy
            correct = _correct(value, n, rng)
            records.append(
                {
                    "rank": rank,
                    "seed": seed,
                    "status": "done",
                    "error": None,
                    "accuracy": np.mean(correct),
                    "normalized_accuracy": np.mean(correct) / teacher_accuracy,
                    "parameters": 100 * rank,
                    "compression": 1000 / rank,
                    "correct": correct,
                    "model_dir": f"rank-{rank:03d}",
                }
            )
    for rank in failed:
        records.append(
            {
                "rank": rank,
                "seed": 0,
                "status": "failed",
                "parameters": 100 * rank,
                "compression": 1000 / rank,
                "model_dir": None,
                "error": f"rank-{rank:03d}: the loss became non-finite at optimizer step 7",
            }
        )
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "config": {"training": {"distillation_mode": "geometric", "seed": 0}},
        "teacher": {
            "source": "t",
            "accuracy": teacher_accuracy,
            "parameters": 1000,
            "finetune": "none",
            "model_dir": "teacher",
            "correct": _correct(teacher_accuracy, n, rng),
        },
        "dataset": {"name": "toy", "num_train": 10, "num_test": n, "label_names": ["a", "b"]},
        "ranks": records,
    }


def report_of(accuracies: dict, **kwargs) -> Report:
    num_bootstrap = kwargs.pop("num_bootstrap", 20)
    return build_report(SweepResults.from_dict(make_results(accuracies, **kwargs)), num_bootstrap=num_bootstrap)


CURVE = {1: 0.45, 2: 0.72, 4: 0.81, 8: 0.855, 16: 0.88, 32: 0.9}


def test_report_estimates_match_the_analysis_functions():
    from hf_lowrank.analysis import effective_knee, effective_rank_region

    report = report_of(CURVE, num_bootstrap=100)
    ranks, accuracies = list(CURVE), [row["accuracy"] for row in report.rows]
    r_low, r_high = effective_rank_region(ranks, accuracies, 0.9)
    assert (report.region["r_low"], report.region["r_high"]) == (r_low, r_high)
    assert report.knee["linear"] == effective_knee(ranks, accuracies, 0.9)
    assert report.knee["log_rank"] == effective_knee(ranks, accuracies, 0.9, log_rank=True)
    lo, hi, _ = report.region["r_low_interval"]
    assert lo <= r_low <= hi
    assert report.knee["headline"] == "linear" and not report.notes


def test_fewer_than_three_ranks_still_writes_the_table(tmp_path):
    report = report_of({4: 0.8, 8: 0.85}, num_bootstrap=50)
    write_report(report, tmp_path)
    assert report.region["r_low"] is None and report.knee["linear"] is None and not report.estimated
    text = (tmp_path / "report.md").read_text()
    assert "need at least 3" in text and "| 8 | 800 |" in text
    # Said once, without intervals for what was not estimated.
    assert text.count("not estimated (fewer than 3 ranks)") == 1 and "not reached" not in text
    assert report.region["r_low_interval"] is None and report.knee["linear_interval"] is None
    for name in ("knee.png", "params_vs_accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "report.json").read_text())["rows"][1]["rank"] == 8


def test_above_teacher_and_non_monotone_points_are_flagged_and_kept():
    report = report_of({1: 0.5, 2: 0.8, 4: 0.75, 8: 0.95})
    notes = " ".join(report.notes)
    assert "above the teacher" in notes and "[8]" in notes and "not monotone" in notes
    assert report.rows[2]["accuracy"] == pytest.approx(0.75)  # the raw point, not the pooled one


def test_seeds_give_per_seed_estimates_and_failures_are_listed():
    curve = {rank: {0: value, 1: max(value - 0.05, 0.1)} for rank, value in CURVE.items()}
    report = report_of(curve, seeds=(0, 1), failed=(64,))
    assert set(report.per_seed) == {"0", "1"}
    assert report.rows[0]["seeds"] == [0, 1]
    assert report.rows[0]["accuracy"] == pytest.approx((0.45 + 0.40) / 2)
    assert report.failed[0]["rank"] == 64
    text = render_markdown(report)
    assert "## Across seeds" in text and "optimizer step 7" in text


def test_bad_results_files(tmp_path):
    with pytest.raises(ResultsError, match="no results file"):
        SweepResults.load(tmp_path)
    (tmp_path / "results.json").write_text('{"format": "hf_lowrank.sweep", "version": 1, "teach')
    with pytest.raises(ResultsError, match="truncated"):
        SweepResults.load(tmp_path)


def test_a_convex_curve_has_no_knee_and_the_report_says_why(tmp_path):
    report = report_of({1: 0.2, 2: 0.25, 4: 0.4, 8: 0.9})
    assert report.knee["linear"] is None and "never rises above the secant" in report.knee["linear_why"]
    text = render_markdown(report)
    assert "Knee (headline, linear rank axis): **none**: the curve never rises above the secant" in text
    assert any(note.startswith("No knee:") for note in report.notes)
    write_report(report, tmp_path)  # the knee plot draws a curve without a knee
    assert (tmp_path / "knee.png").read_bytes()[:4] == b"\x89PNG"
