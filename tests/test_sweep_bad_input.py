"""Bad sweep input that used to delete a sweep, end in a traceback, or block a rerun: each refused by name, before
anything is written or removed; flags without effect refused or left out of the fingerprint; a kill during the
nested fine-tune resumes without training the nested student again."""

import json
import shutil

import pytest
import torch
from accelerate import Accelerator
from test_sweep import _checkpoint_identity, _kill_when, _run, _strip
from test_sweep_families import _text_teacher
from transformers import AutoModelForImageClassification

from hf_lowrank.sweep import SweepError
from hf_lowrank.sweep.fingerprint import differences, fingerprint

import sweep as sweep_script
from sweep_helpers import FINISHED_RANKS, sweep_argv, text_csv


def _snapshot(directory) -> dict:
    """Every file under `directory` (relative path -> bytes)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


BY_HAND = ["--block_pattern", r"vit\.layers\.\d+", "--block_attention_output", "attention.o_proj"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            [*BY_HAND, "--block_mlp_output", "nothere.fc"],
            r"--block_mlp_output 'nothere.fc': 3 of the 3 blocks have no",
        ),
        (
            [*BY_HAND[:2], "--block_attention_output", "attn.out", "--block_mlp_output", "mlp.fc2"],
            r"--block_attention_output 'attn.out': 3 of the 3 blocks have no module 'attn.out' \(e.g. vit.layers.0, "
            r"whose modules are \['attention', 'attention.q_proj'",
        ),
        (["--block_pattern", r"vit\.blocks\.\d+", "--block_mlp_output", "mlp.fc2"], "matches no module"),
        (["--exclude_modules", "vit"], r"--exclude_modules \['vit'\]: excludes every encoder linear"),
        (
            ["--param_budget", 50],
            r"--param_budget 50 \(50 parameters\): must be a fraction in \[.* \(over the 18 factorized encoder "
            r"linears\)\.$",
        ),
    ],
)
def test_an_overwrite_with_a_mistake_found_on_the_teacher_removes_nothing(finished_sweep, tmp_path, flags, message):
    """The mistake is found on the (untrained) teacher, before the old sweep is removed and before any training."""
    output_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep[0], output_dir)  # conftest.py's, shared by the session
    before = _snapshot(output_dir)
    with pytest.raises(SweepError, match=message):
        _run(sweep_argv(output_dir, "--ranks", *FINISHED_RANKS, "--overwrite_output_dir", "true", *flags))
    assert _snapshot(output_dir) == before


def test_block_flags_from_yaml_and_with_a_text_teacher_are_checked_on_the_teacher(finished_sweep, tmp_path):
    output_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep[0], output_dir)
    before = _snapshot(output_dir)
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "block_pattern: 'vit\\.layers\\.\\d+'\nblock_mlp_output: mlp.nothere\noverwrite_output_dir: true\n"
    )
    with pytest.raises(SweepError, match=r"--block_mlp_output 'mlp.nothere': 3 of the 3 blocks"):
        _run(sweep_argv(output_dir, "--config", config, "--ranks", *FINISHED_RANKS))
    assert _snapshot(output_dir) == before
    # A text teacher named by hand: the same check, before results.json exists.
    data = text_csv(tmp_path / "reviews.csv", rows=40)
    teacher = _text_teacher(tmp_path)
    flags = ["--block_pattern", r"bert\.encoder\.layer\.\d+", "--block_mlp_output", "output.wrong"]
    with pytest.raises(SweepError, match=r"--block_mlp_output 'output.wrong': 2 of the 2 blocks"):
        _run(sweep_argv(tmp_path / "text", "--teacher", teacher, "--dataset", data, "--ranks", 2, *flags))
    assert not (tmp_path / "text" / "results.json").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--block_pattern", r"vit\.layers\.(\d+", "--block_mlp_output", "mlp.fc2"],
            r"--block_pattern 'vit\\\\.layers\\\\.\(\\\\d\+': not a valid regular expression \(missing \)",
        ),
        (["--exclude_modules", "fc["], r"--exclude_modules 'fc\[': not a valid regular expression"),
        (["--preview_inits", "svd", "svd"], r"--preview_inits \['svd', 'svd'\]: .* got \['svd'\] more than once"),
        (["--preview_inits", "svd", "qr"], r"got unknown \['qr'\]"),
        (
            ["--preview_only", "true", "--student_bridge", "lift"],
            r"--preview_only with --student_bridge lift: .* Lift / WideLast students have none",
        ),
        (["--init_alpha", 3, "--preview_inits", "svd"], r"--init_alpha 3.0 has no effect: it is the exponent of the"),
        (
            ["--calibration_samples", 64, "--preview_inits", "svd"],
            r"--calibration_samples 64 has no effect: only the data-aware inits",
        ),
        (["--nested_samples", 3], r"--nested_samples 3 has no effect: it applies to --curve nested or both"),
        (["--nested_finetune_steps", 5], r"--nested_finetune_steps 5 has no effect"),
        (
            ["--curve", "nested", "--nested_strategy", "sum", "--nested_distribution", "log_uniform"],
            r"--nested_distribution 'log_uniform' has no effect: it applies to --nested_strategy sample",
        ),
        (["--lora_rank", 8], r"--lora_rank 8 has no effect: it applies to --teacher_finetune lora"),
        (["--student_num_attention_heads", 4], r"--student_num_attention_heads 4 has no effect"),
        (["--max_seq_length", 64], r"--max_seq_length 64 has no effect: it applies to text teachers"),
        (["--curve", "nested", "--ranks", 4, "--nested_samples", 3], r"--nested_samples 3: must be in \[1, 1\]"),
    ],
)
def test_bad_flags_are_refused_by_name_when_parsed(tmp_path, flags, message):
    with pytest.raises(SweepError, match=message):
        sweep_script.parse([str(a) for a in sweep_argv(tmp_path / "out", *flags)])
    assert not (tmp_path / "out").exists()


def test_an_image_teacher_refuses_max_seq_length_before_anything_is_written(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    teacher = tmp_path / "teacher"
    config = ViTConfig(image_size=8, patch_size=2, num_channels=3, hidden_size=12, num_hidden_layers=1)
    config.num_attention_heads, config.intermediate_size, config.num_labels = 3, 20, 10
    ViTForImageClassification(config).save_pretrained(teacher)
    ViTImageProcessorPil(size={"height": 8, "width": 8}).save_pretrained(teacher)
    with pytest.raises(SweepError, match=r"--max_seq_length 64 has no effect: .* this teacher is an image classifier"):
        _run(sweep_argv(tmp_path / "out", "--teacher", teacher, "--max_seq_length", 64))
    assert not (tmp_path / "out" / "results.json").exists()


def test_defaults_that_used_to_be_refused_are_accepted(tmp_path):
    sweep, _ = sweep_script.parse([str(a) for a in sweep_argv(tmp_path, "--curve", "nested", "--ranks", 4)])
    assert sweep.nested_samples == 4 and sweep.nested_sandwich  # the defaults (samples capped at the one rank)
    sweep, _ = sweep_script.parse([str(a) for a in sweep_argv(tmp_path, "--init_alpha", 0.25)])
    assert sweep.init_alpha == 0.25 and "activation" in sweep.preview_inits  # the default previews use it


def _fingerprint(tmp_path, *flags) -> dict:
    sweep, training = sweep_script.parse([str(a) for a in sweep_argv(tmp_path, *flags)])
    return fingerprint(sweep, training, Accelerator(cpu=True))


def test_flags_without_effect_are_recorded_at_their_default_so_they_never_block_a_rerun(tmp_path):
    svd_only = ["--preview_inits", "svd"]
    # --calibration_samples 0 says "none"; with nothing that reads calibration data it changes nothing.
    assert not differences(
        _fingerprint(tmp_path, *svd_only, "--calibration_samples", 0), _fingerprint(tmp_path, *svd_only)
    )
    # Where it does have an effect (the students start from the whitened SVD), it is part of the fingerprint.
    whitened = ["--init", "whitened"]
    changed = differences(
        _fingerprint(tmp_path, *whitened, "--calibration_samples", 64), _fingerprint(tmp_path, *whitened)
    )
    assert changed == ["sweep.calibration_samples"]
    changed = differences(_fingerprint(tmp_path, "--init_alpha", 0.25), _fingerprint(tmp_path))
    assert changed == ["sweep.init_alpha"]


@pytest.mark.slow
def test_a_kill_during_the_nested_fine_tune_keeps_the_nested_training_and_the_fine_tune(tmp_path, capsys):
    nested = ["--ranks", 1, 2, 4, "--preview_inits", "none", "--diagnostics_examples", 0, "--curve", "nested"]
    nested += ["--nested_finetune_steps", 9, "--save_steps", 3]
    killed = tmp_path / "killed"
    argv = [str(a) for a in sweep_argv(killed, *nested)]

    def fine_tune_checkpointed(out):
        identity = _checkpoint_identity(out) or {}
        return identity.get("stage") == "nested-finetune" and (out / "nested-trained-seed-0").is_dir()

    _kill_when(argv, killed, fine_tune_checkpointed)
    step = json.loads((killed / "checkpoint" / "latest.json").read_text())["checkpoint"]
    capsys.readouterr()
    resumed = _run(argv)
    printed = capsys.readouterr().out
    assert "resuming: the nested student of seed 0 is trained (10 steps)" in printed
    assert not (killed / "nested-trained-seed-0").exists() and not (killed / "checkpoint").exists()
    clean = _run(sweep_argv(tmp_path / "clean", *nested))
    assert [_strip(r) for r in resumed["ranks"]] == [_strip(r) for r in clean["ranks"]]
    assert int(step.split("-")[1]) >= 3  # the fine-tune was resumed from a checkpoint of its own
    for rank in (1, 2, 4):
        a = AutoModelForImageClassification.from_pretrained(killed / f"rank-{rank:03d}").state_dict()
        b = AutoModelForImageClassification.from_pretrained(tmp_path / "clean" / f"rank-{rank:03d}").state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
