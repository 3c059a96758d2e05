"""experiments/cross_architecture.py on two families at the tiniest settings: its table holds each family's report
values, and its parameter counts are those of the students."""

import json
import os
import subprocess
import sys

from sweep_helpers import REPO


def test_cross_architecture_table_holds_each_familys_report(tmp_path):
    tiny = ["--max_train_samples", "64", "--max_test_samples", "40", "--teacher_num_train_epochs", "1"]
    tiny += ["--num_train_epochs", "1", "--ranks", "1", "2", "4", "--diagnostics_examples", "0", "--disable_tqdm"]
    command = [sys.executable, str(REPO / "experiments" / "cross_architecture.py"), "--output_dir", str(tmp_path)]
    command += ["--families", "vit", "swin", "--", *tiny, "true"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert [row["family"] for row in rows] == ["vit", "swin"]
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == 4 and "| ViT |" in table and "| Swin |" in table
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    for row in rows:
        report = json.loads((tmp_path / row["family"] / "report.json").read_text())
        results = json.loads((tmp_path / row["family"] / "results.json").read_text())
        assert row["teacher_accuracy"] == results["teacher"]["accuracy"]
        assert row["r_low"] == report["region"]["r_low"] and row["r_high"] == report["region"]["r_high"]
        assert row["knee"] == report["knee"]["linear"]
        counts = {r["rank"]: r["parameters"] for r in results["ranks"]}
        # A student's parameter count is exactly linear in its rank: the line through ranks 2 and 4 gives the
        # table's rank-independent count (the script used ranks 1 and 2) and its count at the knee.
        slope = (counts[4] - counts[2]) / 2
        assert row["rank_independent_parameters"] == counts[2] - 2 * slope
        if row["knee"] is not None:
            assert abs(row["parameters_at_knee"] - (counts[2] + (row["knee"] - 2) * slope)) < 1e-6


def test_pretrained_minilm_experiment_tabulates_each_starts_report(tmp_path):
    """experiments/pretrained_minilm.py at the tiniest settings (10 texts per topic, one step): the stdlib task is
    built, the real MiniLM fine-tuned once, and each start's row holds its own report's values."""
    tiny = [
        "--ranks",
        "4",
        "16",
        "64",
        "--max_steps",
        "1",
        "--teacher_num_train_epochs",
        "1",
        "--max_seq_length",
        "16",
    ]
    command = [sys.executable, str(REPO / "experiments" / "pretrained_minilm.py"), "--output_dir", str(tmp_path)]
    command += ["--per_topic", "10", "--inits", "whitened", "svd", "--", *tiny]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "stdlib_docstrings.json").read_text())
    assert info["per_topic"] == 10 and len(info["available"]) == 5
    assert (tmp_path / "stdlib_docstrings.csv").read_text().count("\n") == 1 + 5 * 10
    table = json.loads((tmp_path / "table.json").read_text())
    assert [row["init"] for row in table["rows"]] == ["whitened", "svd"]
    for row in table["rows"]:
        report = json.loads((tmp_path / row["init"] / "report.json").read_text())
        results = json.loads((tmp_path / row["init"] / "results.json").read_text())
        assert {r["config"]["init"] for r in results["ranks"]} == {row["init"]}
        assert row["ranks"] == [4, 16, 64] and row["r_low"] == report["region"]["r_low"]
        assert row["normalized_accuracy"] == [r["normalized_accuracy"] for r in report["rows"]]
    assert "| whitened |" in (tmp_path / "table.md").read_text() and (tmp_path / "curves.png").stat().st_size > 10_000
