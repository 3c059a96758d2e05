import json
import os

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


def _write(path, payload):
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("[1, 2, 3]", r"results.json is not an hf_lowrank sweep results file: its top level is a JSON list"),
        ('"results"', r"results.json is not an hf_lowrank sweep results file: its top level is a JSON string"),
        ("null", r"its top level is a JSON null"),
        ({"format": "other", "version": 1}, r"format 'other', expected 'hf_lowrank.sweep'"),
    ],
)
def test_results_files_that_are_not_objects_raise_results_error(tmp_path, payload, message):
    path = _write(tmp_path / "results.json", payload)
    with pytest.raises(ResultsError, match=message) as error:
        SweepResults.load(tmp_path)
    assert str(path) in str(error.value)


def _without(payload, *keys):
    """`payload` (a results dict) with the field at each dotted path of `keys` removed."""
    payload = json.loads(json.dumps(payload))
    for key in keys:
        *parents, last = key.split(".")
        target = payload
        for parent in parents:
            target = target[int(parent)] if isinstance(target, list) else target[parent]
        del target[last]
    return payload


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: _without(p, "ranks"), r"the results lack the required field\(s\) 'ranks'"),
        (lambda p: _without(p, "config"), r"the results lack the required field\(s\) 'config'"),
        (lambda p: _without(p, "ranks.1.rank"), r"ranks\[1\] lacks the required field 'rank'"),
        (
            lambda p: _without({**p, "ranks": [{**p["ranks"][0], "config": {"rank": 1}}]}, "ranks.0.rank"),
            r"ranks\[0\] lacks the required field 'rank'",
        ),
        (
            lambda p: _without(p, "ranks.2.status"),
            r"ranks\[2\] \(StudentResult\) lacks the required field\(s\) 'status'",
        ),
        (
            lambda p: _without(p, "teacher.accuracy"),
            r"'teacher' \(TeacherResult\) lacks the required field\(s\) 'accuracy'",
        ),
        (lambda p: {**p, "ranks": {"1": {}}}, r"'ranks' must be a JSON list; got an object"),
        (lambda p: {**p, "ranks": [["rank", 1]]}, r"ranks\[0\] must be a JSON object; got a list"),
        (lambda p: {**p, "config": []}, r"'config' must be a JSON object; got a list"),
        (
            lambda p: {**p, "ranks": [{**p["ranks"][0], "rank": "4"}]},
            r"ranks\[0\] has 'rank' '4'; it must be a positive",
        ),
        (lambda p: {**p, "teacher": [0.9]}, r"'teacher' must be a JSON object; got a list"),
    ],
)
def test_results_files_without_required_fields_name_the_file_and_the_field(tmp_path, edit, message):
    path = _write(tmp_path / "results.json", edit(make_results({1: 0.5, 2: 0.8, 4: 0.85})))
    with pytest.raises(ResultsError, match=message) as error:
        SweepResults.load(path)
    assert str(error.value).startswith(f"{path} is not a valid results file")
    with pytest.raises(ResultsError, match=message):  # the payload itself, without a file
        SweepResults.from_dict(edit(make_results({1: 0.5, 2: 0.8, 4: 0.85})))


def _strict_loads(text):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_and_load_back(tmp_path):
    results = SweepResults.from_dict(make_results({1: 0.5, 2: 0.8, 4: 0.85}))
    failed = results.ranks[0]
    failed.status, failed.loss_history = "failed", [(1, 2.5), (2, float("nan")), (3, float("inf"))]
    results.ranks[1].ece = float("nan")
    results.ranks[1].noise_accuracy = {"0.1": float("-inf")}
    results.save(tmp_path / "results.json")
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    payload = _strict_loads(text)  # strict JSON: a NaN / Infinity token would raise here
    assert payload["ranks"][0]["loss_history"] == [[1, 2.5], [2, None], [3, None]]
    assert payload["ranks"][1]["ece"] is None and payload["ranks"][1]["noise_accuracy"] == {"0.1": None}
    loaded = SweepResults.load(tmp_path)
    assert loaded.ranks[0].loss_history == [[1, 2.5], [2, None], [3, None]] and loaded.ranks[1].ece is None
    report = build_report(loaded, num_bootstrap=10)
    write_report(report, tmp_path)
    _strict_loads((tmp_path / "report.json").read_text())
    assert Report.load(tmp_path / "report.json").rows[0]["rank"] == 2  # rank 1 failed


def test_report_json_of_a_report_with_non_finite_values_is_strict(tmp_path):
    report = report_of(CURVE)
    report.rows[0]["ece"] = float("nan")
    report.teacher["noise_accuracy"] = {"0.1": float("inf")}
    write_report(report, tmp_path)
    payload = _strict_loads((tmp_path / "report.json").read_text())
    assert payload["rows"][0]["ece"] is None and payload["teacher"]["noise_accuracy"] == {"0.1": None}
    json.dumps(payload, allow_nan=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_report_script_into_a_read_only_directory_prints_one_line_and_fails(tmp_path, capsys, monkeypatch):
    import report as report_script  # scripts/report.py

    monkeypatch.delenv("HF_LOWRANK_TRACEBACK", raising=False)
    SweepResults.from_dict(make_results(CURVE)).save(tmp_path / "results.json")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(SystemExit) as exit_info:
            report_script.main([str(tmp_path), "--num_bootstrap", "5"])
    finally:
        tmp_path.chmod(0o755)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: cannot write the report into {tmp_path}: Permission denied.\n"


def test_report_script_turns_write_errors_and_bad_results_into_one_line(tmp_path, monkeypatch, capsys):
    import report as report_script  # scripts/report.py

    from hf_lowrank.commands import report as report_command

    monkeypatch.delenv("HF_LOWRANK_TRACEBACK", raising=False)
    SweepResults.from_dict(make_results(CURVE)).save(tmp_path / "results.json")

    def refuse(report, output_dir):
        raise PermissionError(13, "Permission denied", os.path.join(output_dir, ".report.json.x"))

    monkeypatch.setattr(report_command, "write_report", refuse)
    with pytest.raises(SystemExit) as exit_info:
        report_script.main([str(tmp_path), "--num_bootstrap", "5"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: cannot write the report into {tmp_path}: Permission denied.\n"
    (tmp_path / "results.json").write_text("[]")
    with pytest.raises(SystemExit) as exit_info:
        report_script.main([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and "JSON list" in err and err.count("\n") == 1


def test_knee_plot_secant_is_straight_on_the_log_axis_through_the_fitted_endpoints():
    from hf_lowrank.plotting import pyplot
    from hf_lowrank.report.plots import SECANT_LABEL, knee_figure

    report = report_of(CURVE)
    fig = knee_figure(report)
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"
        (line,) = [line for line in ax.get_lines() if line.get_label() == SECANT_LABEL]
        ranks, values = (np.asarray(v, dtype=float) for v in line.get_data())
        assert len(ranks) > 2  # sampled, not just the endpoints
        curve = report.summary.curve
        assert (ranks[0], ranks[-1]) == (1.0, 32.0)
        np.testing.assert_allclose([values[0], values[-1]], [curve.monotone[0], curve.monotone[-1]], atol=1e-12)
        # Straight in the plotted coordinates (log2 rank by accuracy): every point on the endpoints' line.
        x = np.log2(ranks)
        np.testing.assert_allclose(values, values[0] + (values[-1] - values[0]) * (x - x[0]) / (x[-1] - x[0]))
        display = ax.transData.transform(np.column_stack([ranks, values]))  # and on the drawn figure
        along, offsets = display[-1] - display[0], display - display[0]
        distance = (along[0] * offsets[:, 1] - along[1] * offsets[:, 0]) / np.linalg.norm(along)  # pixels
        assert np.abs(distance).max() < 1e-6
    finally:
        pyplot().close(fig)


@pytest.mark.parametrize(
    ("accuracies", "seeds"),
    [
        ({8: 0.85}, (0,)),
        ({4: 0.8, 8: 0.85}, (0,)),
        ({4: {0: 0.8, 1: 0.75}, 8: {0: 0.85, 1: 0.8}}, (0, 1)),
    ],
)
def test_one_or_two_rank_reports_say_not_estimated_once_without_intervals(tmp_path, accuracies, seeds):
    report = report_of(accuracies, seeds=seeds, num_bootstrap=20)
    write_report(report, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.count("not estimated (fewer than 3 ranks)") == 1
    assert "- Region and knee: not estimated (fewer than 3 ranks)." in text
    assert "r_low [" not in text and "Knee (headline" not in text and "## Across seeds" not in text
    assert report.region["r_low_interval"] is None and report.region["r_high_interval"] is None
    assert report.knee["linear_interval"] is None and report.knee["log_rank_interval"] is None
    assert report.knee["linear_why"] == report.knee["log_rank_why"] == "not estimated (fewer than 3 ranks)"
    assert json.loads((tmp_path / "report.json").read_text())["region"]["estimated"] is False


def test_report_json_that_is_not_an_object_and_a_negative_bootstrap_count_are_refused(tmp_path):
    path = _write(tmp_path / "report.json", "[1, 2]")
    with pytest.raises(ResultsError, match=r"report.json is not a report: its top level is a JSON list"):
        Report.load(path)
    results = SweepResults.from_dict(make_results(CURVE))
    with pytest.raises(ValueError, match=r"num_bootstrap must be a non-negative integer \(0: no intervals\); got -1"):
        build_report(results, num_bootstrap=-1)


def test_a_threshold_reached_at_the_smallest_rank_is_an_upper_bound_and_report_md_says_so():
    from hf_lowrank.report import at_smallest_rank_note, region_text, summary_line

    early = report_of({4: 0.80, 16: 0.87, 64: 0.9}, teacher_accuracy=0.9)  # rank 4 at 88.9%: r_85 <= 4
    assert early.region["r_low"] == 4.0 and 4 < early.region["r_high"] < 16
    assert region_text(early) == f"[<=4.0, {early.region['r_high']:.1f}]"
    assert summary_line(early).startswith(f"effective rank region [<=4.0, {early.region['r_high']:.1f}]")
    note = at_smallest_rank_note(early)
    assert note == (
        "r_85% is already reached at the smallest rank measured (4): the curve may cross below it; add smaller "
        "ranks (--ranks) to locate it."
    )
    assert f"- Note: {note}" in render_markdown(early)
    both = report_of({4: 0.89, 16: 0.9, 64: 0.9}, teacher_accuracy=0.9)
    assert region_text(both) == "[<=4.0, <=4.0]" and "r_85% and r_95% are already reached" in at_smallest_rank_note(
        both
    )
    later = report_of(CURVE)  # rank 1 at 50%: both thresholds are crossed between measured ranks
    assert "<=" not in region_text(later) and at_smallest_rank_note(later) is None
    assert "- Note:" not in render_markdown(later)
