"""--validation_split: a stratified, seeded validation split carved from the training data, and a sweep that
evaluates its students on it during training (learning curves, best steps, early stopping)."""

import json

import numpy as np
import pytest

from hf_lowrank.data import validation_count, validation_indices
from hf_lowrank.sweep import SweepError, run_sweep

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import sweep_argv


def test_each_class_gets_its_share_and_keeps_training_rows():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    rows = validation_indices(labels, 12, seed=3)
    assert len(rows) == len(set(rows)) == 12 and np.all(np.diff(rows) > 0)
    assert np.bincount(labels[rows]).tolist() == [2, 4, 6]  # 12 x (10, 20, 30) / 60
    np.testing.assert_array_equal(rows, validation_indices(labels, 12, seed=3))  # seeded
    assert not np.array_equal(rows, validation_indices(labels, 12, seed=4))
    # shares that do not divide: largest remainders first (7 x (1/6, 2/6, 3/6) = 1.17, 2.33, 3.5 -> 1, 2, 4)
    assert np.bincount(labels[validation_indices(labels, 7, seed=0)]).tolist() == [1, 2, 4]
    # a rare class still gets one, and keeps one for training
    rare = np.repeat([0, 1], [2, 98])
    assert np.bincount(rare[validation_indices(rare, 10, seed=0)]).tolist() == [1, 9]
    assert validation_count(0.25, 61) == 15 and validation_count(7, 61) == 7


@pytest.mark.parametrize(
    "labels, count, message",
    [
        (np.repeat([0, 1, 2], 5), 2, "cannot hold one of each of the 3 classes; ask for at least 3"),
        (np.repeat([0, 1, 2], [1, 5, 5]), 3, "1 class(es) have a single training example"),
        (np.repeat([0, 1, 2], 5), 13, "leaves some class nothing to train on; ask for at most 12"),
    ],
)
def test_splits_that_cannot_be_made_are_refused(labels, count, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validation_indices(labels, count, seed=0)


def test_a_sweep_evaluates_its_students_on_the_validation_split(tmp_path):
    """Evaluations every 2 steps; a threshold no improvement reaches stops every student at its second evaluation
    (patience 1), and --load_best_model_at_end gives it the weights of its better one."""
    argv = sweep_argv(
        tmp_path, "--ranks", 2, 4, "--validation_split", 0.2, "--eval_strategy", "steps", "--eval_steps", 2,
        "--save_steps", 2, "--early_stopping_patience", 1, "--early_stopping_threshold", 10,
        "--load_best_model_at_end", "true", "--metric_for_best_model", "accuracy",
    )  # fmt: skip
    results = run_sweep(*sweep_script.parse(argv))
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["dataset"]["num_validation"] == 32 and payload["dataset"]["num_train"] == 128  # 0.2 x 160
    for record in results.ranks:
        assert [step for step, _, _ in record.validation_history] == [2, 4]
        assert record.stopped_step == 4 and record.steps == 4
        assert record.examples_per_process == [4 * 32]  # no batch drawn once every student had stopped
        best = max(record.validation_history, key=lambda entry: entry[1])  # the first of equals: strictly better
        assert record.best_step == best[0]
    report = (tmp_path / "report.md").read_text()
    assert "## Learning curves" in report and "32 examples carved from the training data" in report
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert results.teacher.examples_per_process == [4 * 128]  # the teacher's 4 epochs: never stopped early


@pytest.mark.parametrize(
    "split, message",
    [
        (
            5,
            "--validation_split 5 (5 of 160 training examples): a validation split of 5 example(s) cannot hold one "
            "of each of the 10 classes; ask for at least 10.",
        ),
        (155, "leaves some class nothing to train on; ask for at most 150."),
    ],
)
def test_a_validation_split_the_data_cannot_give_is_refused_before_any_work(tmp_path, split, message):
    argv = sweep_argv(tmp_path, "--validation_split", split, "--eval_strategy", "epoch")
    with pytest.raises(SweepError) as error:
        run_sweep(*sweep_script.parse(argv))
    assert str(error.value).endswith(message) and "\n" not in str(error.value)
    assert not (tmp_path / "results.json").exists()


def test_a_two_process_sweep_evaluates_on_the_whole_validation_split_and_stops_together(tmp_path):
    """DDP over gloo: the validation split (31 examples: one process gets a padded last batch) is sharded and gathered
    without that padding (accuracies in 31sts), and every student stops early at the same step on both processes."""
    import os
    import subprocess

    from sweep_helpers import SWEEP_SCRIPT, TWO_PROCESSES

    argv = sweep_argv(
        tmp_path, "--ranks", 2, "--per_device_train_batch_size", 16, "--per_device_eval_batch_size", 5,
        "--validation_split", 31, "--eval_strategy", "steps", "--eval_steps", 2, "--save_steps", 2,
        "--early_stopping_patience", 1, "--early_stopping_threshold", 10,
    )  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([*TWO_PROCESSES, str(SWEEP_SCRIPT), *argv], check=True, env=env, capture_output=True, timeout=600)
    (record,) = json.loads((tmp_path / "results.json").read_text())["ranks"]
    assert [step for step, _, _ in record["validation_history"]] == [2, 4] and record["stopped_step"] == 4
    assert all(round(accuracy * 31, 6).is_integer() for _, accuracy, _ in record["validation_history"])
    assert record["examples_per_process"] == [4 * 16, 4 * 16]
