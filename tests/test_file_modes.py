"""Every file hf_lowrank writes gets the mode the umask gives (``0o666 & ~umask``): the atomic JSON writes
(mkstemp: 0600) and safetensors (its own temporary file: 0600) did not."""

import os
import stat

import pytest
import torch
from accelerate import Accelerator
from test_sweep import _run

from hf_lowrank.distillation import GroupCheckpoint, TrainingPosition
from hf_lowrank.file_modes import umask_file_mode
from hf_lowrank.results import atomic_write_json
from hf_lowrank.sweep.store import SweepStore

from sweep_helpers import sweep_argv


pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@pytest.fixture(params=[0o022, 0o077, 0o027], ids=["umask-022", "umask-077", "umask-027"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _modes(directory) -> dict[str, int]:
    return {
        str(path.relative_to(directory)): stat.S_IMODE(path.stat().st_mode)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _wrong_modes(directory, umask: int) -> dict[str, str]:
    expected = 0o666 & ~umask
    return {name: oct(mode) for name, mode in _modes(directory).items() if mode != expected}


def test_the_umask_is_read_without_changing_it(umask):
    assert umask_file_mode() == 0o666 & ~umask
    assert os.umask(umask) == umask  # still the one set


def test_atomic_json_checkpoint_and_saved_models_get_the_umask_mode(umask, tmp_path):
    atomic_write_json(tmp_path / "results.json", {"a": 1})
    GroupCheckpoint(tmp_path / "checkpoint", {"stage": "x"}).save(
        TrainingPosition(step=3), {"student": {"weight": torch.ones(2, 3), "step": 3}}
    )
    store = SweepStore(tmp_path / "sweep", {"seed": 0}, Accelerator(cpu=True), overwrite=False)
    store.dir.mkdir()
    store.save_model("model", _linear_model())
    store.keep_weights("kept", {"stage": "nested"}, torch.nn.Linear(3, 2), {"steps": 5})
    assert (tmp_path / "checkpoint" / "step-000003" / "student.safetensors").is_file()
    assert (tmp_path / "sweep" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "sweep" / "kept" / "model.safetensors").is_file()
    assert _wrong_modes(tmp_path, umask) == {}


def _linear_model():
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        hidden_size=6, num_hidden_layers=1, num_attention_heads=2, intermediate_size=10, image_size=8, patch_size=4
    )
    return ViTForImageClassification(config)


def test_a_whole_sweep_writes_every_file_with_the_umask_mode(tmp_path):
    """Results, students, teacher, report, cards and plots: nothing left at 0600 under umask 027 (0640)."""
    previous = os.umask(0o027)
    try:
        _run(sweep_argv(tmp_path, "--ranks", 2, "--diagnostics_examples", 0, "--noise_sigmas", 0))
    finally:
        os.umask(previous)
    names = _modes(tmp_path)
    assert {"results.json", "report.json", "teacher/model.safetensors", "rank-002/model.safetensors"} <= set(names)
    assert _wrong_modes(tmp_path, 0o027) == {}
