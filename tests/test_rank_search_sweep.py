"""`--ranks auto` end to end: a sweep of a planted-rank teacher (every encoder linear truncated to rank K by SVD,
so that its function is exactly rank K) finds r_95 <= K with fewer trained students than the dense grid, keeps the
ranks whose preview is the teacher's untrained, records why it chose each rank, and a rerun chooses the same ranks
without training any again."""

import json
import os
import shutil

import pytest
import torch
from transformers import AutoModelForImageClassification, ViTForImageClassification

from hf_lowrank.results import read_results_payload
from hf_lowrank.sweep import SweepError, run_sweep

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import sweep_argv


PLANTED_RANK = 4
DENSE_GRID = [1, 2, 4, 8, 16, 32, 48]  # the default ranks of the embedded teachers (width 48)
# Enough data for a teacher well above chance (the tiny default trains one at chance).
DATA = ["--max_train_samples", "500", "--max_test_samples", "300"]


def _run(argv) -> dict:
    run_sweep(*sweep_script.parse([str(arg) for arg in argv]))
    return read_results_payload(os.path.join(argv[1], "results.json"))


def _plant(source, target, rank: int) -> None:
    """Copy the teacher saved in `source` to `target` with every linear inside its encoder blocks truncated to its
    `rank` largest singular directions."""
    teacher = ViTForImageClassification.from_pretrained(source)
    with torch.no_grad():
        for name, module in teacher.named_modules():
            if ".layers." in name and isinstance(module, torch.nn.Linear):  # (transformers 5: vit.layers.N)
                u, s, vh = torch.linalg.svd(module.weight.double(), full_matrices=False)
                module.weight.copy_((u[:, :rank] * s[:rank]) @ vh[:rank])
        assert sum(".layers." in name for name, _ in teacher.named_modules()) > 0
    shutil.copytree(source, target)
    teacher.save_pretrained(target)


@pytest.fixture(scope="module")
def planted_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    _run(sweep_argv(root / "teacher_run", *DATA, "--teacher_num_train_epochs", 15, "--ranks", 1, "--preview_only", 1))
    _plant(root / "teacher_run" / "teacher", root / "planted", PLANTED_RANK)
    argv = [
        "--output_dir", root / "out", *DATA, "--teacher", root / "planted", "--teacher_finetune", "none",
        "--ranks", "auto", "--max_students", 6, "--num_train_epochs", 1, "--per_device_train_batch_size", 32,
        "--disable_tqdm", "true",
    ]  # fmt: skip
    return argv, _run(argv)


def test_an_adaptive_sweep_of_a_planted_rank_teacher_finds_r95_at_most_the_planted_rank(planted_sweep):
    argv, results = planted_sweep
    assert results["teacher"]["accuracy"] > 0.3  # a real curve: far above chance (0.1; measured 0.52)
    chosen = [choice["rank"] for choice in results["rank_search"]]
    recorded = sorted(record["rank"] for record in results["ranks"])
    trained = [record["rank"] for record in results["ranks"] if record["steps"] > 0]
    assert sorted(chosen) == recorded and len(trained) < len(DENSE_GRID) / 2
    round0 = [(c["rank"], c["target"]) for c in results["rank_search"] if c["round"] == 0]
    # From rank 4 up the truncation is exact, so those previews are the teacher's: measured untrained, and the
    # coarse grid (1, 4, 16, 48) stops below them.
    assert round0 == [(1, "grid")] + [(rank, "preview") for rank in DENSE_GRID if rank >= PLANTED_RANK]
    assert all(c["reason"] for c in results["rank_search"])
    report = json.loads((argv[1] / "report.json").read_text())
    assert report["region"]["r_high"] <= PLANTED_RANK
    text = (argv[1] / "report.md").read_text()
    assert "## Ranks chosen (--ranks auto)" in text and "coarse grid" in text


def test_ranks_whose_preview_is_the_teachers_are_saved_untrained_and_say_so(planted_sweep):
    argv, results = planted_sweep
    teacher_correct = results["teacher"]["correct"]
    kept = [record for record in results["ranks"] if record["config"]["untrained"]]
    assert sorted(record["rank"] for record in kept) == [rank for rank in DENSE_GRID if rank >= PLANTED_RANK]
    for record in kept:
        assert record["steps"] == 0 and not record["loss_history"]
        assert record["correct"] == teacher_correct  # the planted teacher's function, exactly
        card = (argv[1] / record["model_dir"] / "README.md").read_text()
        assert "not distilled" in card and "then distilled" not in card
    teacher = ViTForImageClassification.from_pretrained(argv[argv.index("--teacher") + 1]).eval()
    size = teacher.config.image_size
    pixels = torch.randn(5, teacher.config.num_channels, size, size, generator=torch.Generator().manual_seed(0))
    student = AutoModelForImageClassification.from_pretrained(argv[1] / kept[0]["model_dir"]).eval()
    with torch.no_grad():  # saved as initialised: a rank-4 factorization of a rank-4 teacher is the teacher
        torch.testing.assert_close(student(pixel_values=pixels).logits, teacher(pixel_values=pixels).logits)
    distilled = next(record for record in results["ranks"] if record["steps"] > 0)
    assert "then distilled" in (argv[1] / distilled["model_dir"] / "README.md").read_text()


def test_a_rerun_of_an_adaptive_sweep_chooses_the_same_ranks_and_trains_none_again(planted_sweep, tmp_path):
    argv, results = planted_sweep
    copy = tmp_path / "again"
    shutil.copytree(argv[1], copy)
    again = _run([argv[0], copy, *argv[2:]])
    assert again["rank_search"] == results["rank_search"]
    assert [r["train_seconds"] for r in again["ranks"]] == [r["train_seconds"] for r in results["ranks"]]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ranks", "auto", "--rank_tolerance", "0"], "--rank_tolerance 0.0: must be a finite number of octaves > 0"),
        (["--ranks", "auto", "--max_students", "2"], "--max_students 2: must be an integer >= 3"),
        (["--max_students", "5"], "--max_students 5 has no effect: it applies to --ranks auto"),
        (["--ranks", "auto", "--rank_search_preview_level", "0"], "--rank_search_preview_level 0.0: must be a finite"),
        (["--rank_search_preview_level", "0.9"], "--rank_search_preview_level 0.9 has no effect"),
        (["--ranks", "auto", "--curve", "nested"], "--ranks auto with --curve nested"),
        (["--ranks", "auto", "--preview_only", "true"], "--ranks auto with --preview_only"),
    ],
)
def test_bad_rank_search_settings_are_refused_before_any_work(tmp_path, extra, message):
    with pytest.raises(SweepError) as error:
        sweep_script.parse(sweep_argv(tmp_path / "out", *extra))
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_adaptive_sweep_killed_in_a_later_round_resumes_to_the_same_choices_and_students(planted_sweep, tmp_path):
    """kill -9 while round 1's student (rank 2) trains, after a mid-training checkpoint: the rerun makes the same
    round-0 and round-1 decisions from the recorded students, resumes rank 2 from its checkpoint, and ends with the
    uninterrupted sweep's choices and students."""
    from test_sweep import _checkpoint_identity, _kill_when

    argv, expected = planted_sweep
    killed = tmp_path / "killed"
    argv = [argv[0], killed, *argv[2:], "--save_steps", 4]
    _kill_when(
        [str(a) for a in argv], killed, lambda out: (_checkpoint_identity(out) or {}).get("runs") == ["rank-002"]
    )
    recorded = read_results_payload(killed / "results.json")
    assert sorted(r["rank"] for r in recorded["ranks"]) == [1, 4, 8, 16, 32, 48]  # killed inside round 1
    resumed = _run(argv)
    assert resumed["rank_search"] == expected["rank_search"]
    for mine, theirs in zip(resumed["ranks"], expected["ranks"]):
        assert (mine["rank"], mine["correct"], mine["loss_history"]) == (
            theirs["rank"], theirs["correct"], theirs["loss_history"]
        )  # fmt: skip
