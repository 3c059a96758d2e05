"""The scripts' shared convention for a user error: one line ``error: ...`` on stderr, exit status 2, no traceback
(HF_LOWRANK_TRACEBACK=1 keeps it); and the bad inputs that used to end in a traceback."""

import os
import subprocess
import sys

import diagnose as diagnose_script  # scripts/diagnose.py
import factorize_demo as factorize_script  # scripts/factorize_demo.py
import numpy as np
import push as push_script  # scripts/push.py
import pytest
import report as report_script  # scripts/report.py
from PIL import Image
from test_report import CURVE, make_results, report_of
from test_sweep import _run
from test_sweep_families import _text_teacher
from transformers import BertConfig

from hf_lowrank.report.plots import error_bars
from hf_lowrank.results import SweepResults
from hf_lowrank.sweep import SweepError, embedded_teacher

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import REPO, sweep_argv


def _one_line_error(capsys, main, *argv, prefix="error: ") -> str:
    """Run a script's `main(argv)`; check it exits with status 2 and one line on stderr, and return the line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(map(str, argv)))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert exit_info.value.code == 2, err
    assert lines and lines[-1].startswith(prefix) and "Traceback" not in err, err
    return lines[-1]


@pytest.fixture(autouse=True)
def _no_traceback_variable(monkeypatch):
    monkeypatch.delenv("HF_LOWRANK_TRACEBACK", raising=False)


@pytest.fixture
def results_dir(tmp_path):
    SweepResults.from_dict(make_results(CURVE)).save(tmp_path / "results.json")
    return tmp_path


def _image_folder(root, corrupt: str | None = None):
    """Two classes of 6x6 RGB PNGs (4 each); `corrupt` ("cats/2.png") is overwritten with bytes that are no PNG."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    if corrupt:
        (root / corrupt).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 4)
    return root


@pytest.fixture(scope="module")
def image_classifier_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("classifier")
    model, processor = embedded_teacher(["cats", "dogs"])
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


# --- report.py -------------------------------------------------------------------------------------------------


def test_error_bars_are_the_distances_to_the_interval_clipped_at_zero():
    report = report_of(CURVE, num_bootstrap=50)
    teacher = report.teacher["accuracy"]
    report.rows[0]["accuracy_interval"] = [report.rows[0]["accuracy"] + 0.02, report.rows[0]["accuracy"] + 0.05]
    report.rows[1]["accuracy_interval"] = [report.rows[1]["accuracy"] - 0.04, report.rows[1]["accuracy"] - 0.01]
    normalised = np.array([row["accuracy"] for row in report.rows]) / teacher
    bars = error_bars(report, normalised)
    assert bars.shape == (2, len(report.rows)) and (bars >= 0).all()
    np.testing.assert_allclose(bars[:, 0], [0.0, 0.05 / teacher], rtol=1e-12)  # interval above the point
    np.testing.assert_allclose(bars[:, 1], [0.04 / teacher, 0.0], rtol=1e-12)  # interval below it
    for column, row in list(enumerate(report.rows))[2:]:  # intervals that hold the point: the plain distances
        low, high = row["accuracy_interval"]
        if low <= row["accuracy"] <= high:
            np.testing.assert_allclose(
                bars[:, column], [(row["accuracy"] - low) / teacher, (high - row["accuracy"]) / teacher]
            )


def test_report_with_one_bootstrap_resample_plots_its_intervals(results_dir, capsys):
    """One resample gives intervals that miss the point estimate; the plot used to refuse negative error bars."""
    report_script.main([str(results_dir), "--num_bootstrap", "1"])
    assert "effective rank region" in capsys.readouterr().out
    assert (results_dir / "knee.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_bootstrap", "-1"], "error: argument --num_bootstrap: -1 is negative: give the number of bootstrap"),
        (["--num_bootstrap", "many"], "error: argument --num_bootstrap: 'many' is not an integer"),
        (["--low", "1.5"], "error: thresholds must be fractions of the teacher's accuracy with 0 < low <= high <= 1"),
        (["--flag"], "error: unrecognized arguments: --flag (see report.py --help)"),
    ],
)
def test_report_bad_values_are_one_line(results_dir, capsys, argv, message):
    assert _one_line_error(capsys, report_script.main, results_dir, *argv).startswith(message)


def test_report_without_results_is_one_line(tmp_path, capsys):
    assert (
        _one_line_error(capsys, report_script.main, tmp_path / "none")
        == f"error: no results file at {tmp_path / 'none'}."
    )


# --- diagnose.py -----------------------------------------------------------------------------------------------


def test_diagnose_a_model_path_that_does_not_exist(tmp_path, capsys):
    line = _one_line_error(capsys, diagnose_script.main, tmp_path / "no" / "model", "--output_dir", tmp_path / "out")
    assert line.startswith(f"error: models[0] '{tmp_path / 'no' / 'model'}' does not exist: there is no such local")
    assert not (tmp_path / "out").exists()


def test_diagnose_a_text_model_says_it_is_not_an_image_classifier(tmp_path, image_classifier_dir, capsys):
    text_model = tmp_path / "bert"
    BertConfig(
        vocab_size=16,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        architectures=["BertForSequenceClassification"],
    ).save_pretrained(text_model)
    line = _one_line_error(capsys, diagnose_script.main, image_classifier_dir, text_model)
    assert line == (
        f"error: models[1] '{text_model}' is a BertForSequenceClassification (model_type 'bert'), not an image "
        "classifier: give models that AutoModelForImageClassification loads (vit, deit, beit, swin, convnext, "
        "resnet, ... and hf_lowrank's students)."
    )


def test_diagnose_a_corrupt_image_names_its_file(tmp_path, image_classifier_dir, capsys):
    folder = _image_folder(tmp_path / "images", corrupt="cats/2.png")
    line = _one_line_error(
        capsys, diagnose_script.main, image_classifier_dir, "--dataset", folder, "--output_dir", tmp_path / "out"
    )
    assert "cannot read the image of example" in line and str(folder / "cats" / "2.png") in line


def test_diagnose_a_dataset_that_does_not_exist(tmp_path, image_classifier_dir, capsys):
    line = _one_line_error(capsys, diagnose_script.main, image_classifier_dir, "--dataset", tmp_path / "nothing")
    assert line.startswith(f"error: dataset '{tmp_path / 'nothing'}' does not exist")


def test_diagnose_runs_on_a_clean_folder(tmp_path, image_classifier_dir, capsys):
    """The same call without the corrupt file goes through: the checks refuse only what is wrong."""
    folder = _image_folder(tmp_path / "images")
    diagnose_script.main([str(image_classifier_dir), "--dataset", str(folder), "--output_dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "diagnostics.json").is_file()


# --- push.py, factorize_demo.py ----------------------------------------------------------------------------------


def test_push_without_a_finished_sweep_is_one_line(tmp_path, capsys):
    line = _one_line_error(capsys, push_script.main, tmp_path, "--hub_model_id", "me/sweep")
    assert "results" in line and str(tmp_path) in line


def test_factorize_demo_bad_rank_names_the_flag(tmp_path, capsys):
    line = _one_line_error(capsys, factorize_script.main, "--rank", 0, "--output_dir", tmp_path)
    assert line == (
        "error: --rank 0: rank for layer 'vit.layers.0.attention.q_proj' (48 -> 48) must be an integer in [1, 48], "
        "got 0."
    )
    line = _one_line_error(capsys, factorize_script.main, "--teacher", tmp_path / "none", "--output_dir", tmp_path)
    assert line.startswith(f"error: --teacher '{tmp_path / 'none'}' does not exist")


# --- the sweep: a corrupt image, a malformed text file ----------------------------------------------------------


def test_sweep_on_an_image_folder_with_a_corrupt_png_names_the_file_before_writing(
    tmp_path, image_classifier_dir, capsys
):
    folder = _image_folder(tmp_path / "images", corrupt="dogs/1.png")
    argv = sweep_argv(tmp_path / "out", "--teacher", image_classifier_dir, "--dataset", folder, "--ranks", 2)
    with pytest.raises(SweepError, match=r"cannot read the image of example \d+ of the (train|test) split") as error:
        _run(argv)
    assert str(folder / "dogs" / "1.png") in str(error.value)
    assert not (tmp_path / "out" / "results.json").exists()
    line = _one_line_error(capsys, sweep_script.main, *argv)
    assert str(folder / "dogs" / "1.png") in line


def test_sweep_on_a_malformed_json_lines_file_names_the_line(tmp_path, capsys):
    data = tmp_path / "texts.jsonl"
    data.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n{"text": "fine" "label": 1}\n')
    teacher = _text_teacher(tmp_path)
    line = _one_line_error(
        capsys, sweep_script.main, *sweep_argv(tmp_path / "out", "--teacher", teacher, "--dataset", data)
    )
    assert line == (f"error: cannot read dataset file '{data}' as .jsonl: line 3, column 17: Expecting ',' delimiter")


# --- as processes: nothing but the line, and the traceback on request --------------------------------------------


def _script(name, *argv, **env):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        timeout=300,
    )


def test_scripts_as_processes_print_one_line_and_exit_2(tmp_path):
    for name in ("report.py", "push.py"):
        argv = [tmp_path / "none"] + (["--hub_model_id", "me/x"] if name == "push.py" else [])
        done = _script(name, *argv)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(("error: ", "push failed: ")), done.stderr
    done = _script("diagnose.py", tmp_path / "missing-model")
    assert done.returncode == 2 and done.stderr.splitlines()[-1].startswith("error: models[0]")
    assert "Traceback" not in done.stderr


def test_the_traceback_is_kept_on_request(tmp_path):
    done = _script("report.py", tmp_path / "none", HF_LOWRANK_TRACEBACK="1")
    assert (
        done.returncode == 1 and "Traceback (most recent call last)" in done.stderr and "ResultsError" in done.stderr
    )
