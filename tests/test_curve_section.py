"""One curve section for every curve of the report (trained, preview, nested): the same fit, intervals and region
words, each checked against an independent computation; the settings object; report.md rendered once."""

import numpy as np
import pytest
from test_report import make_results

from hf_lowrank.analysis import bootstrap_intervals, summarize_curve
from hf_lowrank.hub import render_cards, write_cards
from hf_lowrank.report import build_report, region_words, write_report
from hf_lowrank.report.curve_section import CurveSettings, curve_section
from hf_lowrank.results import SweepResults


TRAINED = {2: 0.5, 4: 0.8, 8: 0.88, 16: 0.9}
PREVIEW = {2: 0.3, 4: 0.84, 8: 0.87, 16: 0.89}  # r_85 of the preview is reached at rank 4, r_95 at 8


def _results(with_nested: bool = False) -> SweepResults:
    payload = make_results(TRAINED)
    for record in payload["ranks"]:  # plain floats, as a results.json holds (the cards' YAML takes no numpy scalar)
        record["accuracy"], record["normalized_accuracy"] = (
            float(record["accuracy"]),
            float(record["normalized_accuracy"]),
        )
    rng = np.random.default_rng(1)
    correct = {}
    for rank, accuracy in PREVIEW.items():
        row = np.zeros(400, dtype=int)
        row[rng.choice(400, int(accuracy * 400), replace=False)] = 1
        correct[rank] = row.tolist()
    payload["previews"] = [
        {"init": "svd", "rank": r, "parameters": 100 * r, "accuracy": float(np.mean(c)),
         "normalized_accuracy": float(np.mean(c)) / 0.9, "correct": c}
        for r, c in correct.items()
    ]  # fmt: skip
    if with_nested:
        payload["nested"] = [
            dict(record, config={"rank": record["rank"], "curve": "nested"}) for record in payload["ranks"]
        ]
    return SweepResults.from_dict(payload)


def test_every_curve_section_is_the_same_fit_and_bootstrap_as_computed_directly():
    results = _results(with_nested=True)
    report = build_report(results, num_bootstrap=200, seed=3)
    teacher = np.asarray(results.teacher.correct)
    preview_ranks = sorted(PREVIEW)
    preview_correct = np.array([next(p.correct for p in results.previews if p.rank == r) for r in preview_ranks])
    preview_accuracy = preview_correct.mean(1)
    summary = summarize_curve(preview_ranks, preview_accuracy, results.teacher.accuracy)
    direct = bootstrap_intervals(preview_ranks, preview_correct.astype(float), teacher, 200, 3, 0.85, 0.95)
    preview = report.previews["svd"]
    assert preview["region"]["r_low"] == summary.r_low and preview["region"]["r_high"] == summary.r_high
    assert preview["region"]["r_high_interval"] == list(direct["r_high"])
    assert preview["knee"]["linear"] == summary.knee and preview["knee"]["log_rank_interval"] == list(
        direct["knee_log"]
    )
    assert [row["accuracy_interval"] for row in preview["rows"]] == [list(i) for i in direct["accuracy"]]
    # The nested curve here holds the trained students' own points: its section equals the trained curve's.
    assert report.nested["region"] == report.region
    assert {"headline": "linear", **report.nested["knee"]} == report.knee
    assert set(preview["knee"]) == set(report.nested["knee"])  # one shape for every section


def test_every_section_writes_a_threshold_reached_at_its_smallest_rank_as_an_upper_bound():
    report = build_report(_results(), num_bootstrap=0)
    markdown = report.markdown()
    preview = report.previews["svd"]["region"]
    assert region_words(preview, 2) == f"[{preview['r_low']:.1f}, {preview['r_high']:.1f}]"  # above rank 2
    at_start = dict(preview, r_low=2.0)
    assert region_words(at_start, 2) == f"[<=2.0, {preview['r_high']:.1f}]"
    assert region_words(dict(preview, estimated=False), 2).startswith("not estimated")
    assert f"| svd | {region_words(preview, 2)}" in markdown


def test_curve_settings_refuse_a_bad_bootstrap_count_by_name():
    for value in (-1, 2.5, True):
        with pytest.raises(ValueError, match=rf"num_bootstrap must be a non-negative integer .* got {value!r}"):
            CurveSettings(num_bootstrap=value)
    section = curve_section([1, 2, 4], [0.2, 0.5, 0.9], None, 0.9, [1] * 10, CurveSettings())
    assert section.accuracy_intervals is None and section.region["r_high_interval"] is None  # no correctness given


def test_report_markdown_is_rendered_once_for_report_md_and_the_sweep_card(tmp_path, monkeypatch):
    import hf_lowrank.report.markdown as markdown_module

    calls, real = [], markdown_module.render_markdown
    monkeypatch.setattr(markdown_module, "render_markdown", lambda report: calls.append(1) or real(report))
    results = _results()
    report = build_report(results, num_bootstrap=0)
    write_report(report, tmp_path)
    write_cards(render_cards(results, report), tmp_path)
    body = (tmp_path / "report.md").read_text().split("\n", 1)[1]
    assert len(calls) == 1 and body.strip()[:60] in (tmp_path / "README.md").read_text()


def test_results_read_their_init_and_process_count_as_typed_fields():
    results = _results()
    assert results.init == "svd" and results.num_processes == 1  # not recorded: the defaults of older sweeps
    results.config["sweep"] = {"init": "whitened"}
    results.config["environment"] = {"num_processes": 4}
    assert results.init == "whitened" and results.num_processes == 4
    assert build_report(results, num_bootstrap=0).init == "whitened"
