"""The sweep directory: results.json (the in-memory `SweepResults`, written after every stage) and the model
directories beside it. Only the main process writes."""

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..distillation import GroupCheckpoint
from ..file_modes import give_umask_modes
from ..report import REPORT_FILES
from ..results import SweepResults, atomic_write_json
from .arguments import SweepError
from .fingerprint import describe_differences, differences


__all__ = ["CHECKPOINT_DIR", "RESULTS_FILE", "TEACHER_DIR", "SweepStore", "check_writable"]

TEACHER_DIR = "teacher"
RESULTS_FILE = "results.json"
CHECKPOINT_DIR = "checkpoint"  # the running stage's latest mid-training checkpoint
# What a sweep writes besides results.json and the model directories: removed by --overwrite_output_dir.
SWEEP_OUTPUTS = ("README.md", *REPORT_FILES)


def check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise SweepError(f"output_dir {str(output_dir)!r} is not writable: {error}.") from error


class SweepStore:
    """Opens (or resumes) the sweep in `output_dir`; `results` is the typed record the stages fill in.

    With `overwrite` and another configuration on disk, the old sweep is only removed by `start_afresh`, which the
    teacher stage calls once the teacher and the data are loaded: a run that fails before that (or one whose
    --teacher lies in the old sweep) loses nothing."""

    def __init__(self, output_dir: Path, fingerprint: dict, accelerator: Accelerator, overwrite: bool):
        self.dir = output_dir
        self.path = output_dir / RESULTS_FILE
        self.accelerator = accelerator
        self.results = SweepResults(config=fingerprint, hf_lowrank_version=__version__)
        self.stale = False
        if self.path.exists():
            previous = SweepResults.load(self.path)
            changed = differences(fingerprint, previous.config)
            if not changed:
                self.results = previous
                self.results.config = fingerprint  # arguments added since, at their defaults, are recorded
            elif not overwrite:
                raise SweepError(
                    f"{output_dir} holds a sweep made with another configuration (differs in: "
                    f"{describe_differences(changed, fingerprint, previous.config)}). "
                    "Use another --output_dir, rerun with the same arguments to resume, or pass "
                    "--overwrite_output_dir to start afresh."
                )
            else:
                self.stale = True

    def start_afresh(self) -> None:
        """With an overwritten sweep on disk: remove its results, models, checkpoint, report and cards."""
        if self.stale and self.accelerator.is_main_process:
            for child in self.dir.iterdir():
                old = child.name in (RESULTS_FILE, TEACHER_DIR, CHECKPOINT_DIR, *SWEEP_OUTPUTS)
                if old or child.name.startswith(("rank-", "cnn-", "budget-", "nested-")):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.stale = False
        self.accelerator.wait_for_everyone()

    def checkpoint(self, identity: dict) -> GroupCheckpoint:
        """The mid-training checkpoint of the stage `identity` names (only one stage runs at a time); it resumes
        only under this sweep's fingerprint."""
        identity = {**identity, "config": self.results.config}
        return GroupCheckpoint(self.dir / CHECKPOINT_DIR, identity, self.accelerator.is_main_process)

    def teacher_finished(self) -> bool:
        """The teacher stage is recorded and its model directory is in place."""
        return self.results.teacher is not None and (self.dir / TEACHER_DIR).is_dir()

    def finished(self) -> set[tuple[int, int]]:
        """(rank, seed) of every student recorded as failed, or as done with its model directory in place."""
        return self._finished(self.results.ranks, lambda record: (record.rank, record.seed))

    def finished_budgets(self) -> set[tuple[float, int]]:
        """(budget, seed) of every budget student recorded as failed, or as done with its model directory in place."""
        return self._finished(self.results.budget_students, lambda record: (record.budget, record.seed))

    def _finished(self, records, key) -> set:
        """`key` of each record a resume does not train again: failed (not retried), or done and saved."""
        return {
            key(record)
            for record in records
            if record.status == "failed" or (record.model_dir and (self.dir / record.model_dir).is_dir())
        }

    def remove_checkpoint(self) -> None:
        """Remove the mid-training checkpoint (its stage is recorded); every process waits for it."""
        self.checkpoint({}).remove()
        self.accelerator.wait_for_everyone()

    def keep_weights(self, name: str, identity: dict, model: nn.Module, record: dict) -> None:
        """Keep a finished training's weights (safetensors) and `record` (plain JSON) in OUTPUT_DIR/NAME until the
        stage that uses them is recorded (`discard`): a later step of the stage (its own checkpoint replaces this
        one's) can be killed without losing this training. Written atomically, main process only."""
        if self.accelerator.is_main_process:
            final, tmp = self.dir / name, self.dir / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            state = self.accelerator.unwrap_model(model).state_dict()
            save_file(
                {key: value.detach().cpu().contiguous() for key, value in state.items()}, tmp / "model.safetensors"
            )
            identity = {**identity, "config": self.results.config}
            atomic_write_json(tmp / "kept.json", {"identity": identity, "record": record})
            give_umask_modes(tmp)  # safetensors writes 0600
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        self.accelerator.wait_for_everyone()

    def kept_weights(self, name: str, identity: dict) -> tuple[dict, dict] | None:
        """(state dict, record) kept under NAME by `keep_weights` with this identity under this sweep's fingerprint,
        else None (nothing kept, another stage's, or unreadable)."""
        directory = self.dir / name
        try:
            kept = json.loads((directory / "kept.json").read_text())
            if kept["identity"] != {**identity, "config": self.results.config}:
                return None
            return load_file(directory / "model.safetensors"), kept["record"]
        except (OSError, ValueError, KeyError):
            return None

    def discard(self, name: str) -> None:
        """Remove what `keep_weights` kept under NAME (its stage is recorded)."""
        if self.accelerator.is_main_process:
            shutil.rmtree(self.dir / name, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def save_model(self, name: str, model: nn.Module, processor=None) -> str:
        """Save atomically (a temporary directory renamed into place): `save_pretrained`, or `save` for a model
        that is not a transformers model (a CNN student)."""
        if self.accelerator.is_main_process:
            final, tmp = self.dir / name, self.dir / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            model = self.accelerator.unwrap_model(model)
            model.save_pretrained(tmp) if hasattr(model, "save_pretrained") else model.save(tmp)
            if processor is not None:
                processor.save_pretrained(tmp)
            give_umask_modes(tmp)  # safetensors writes 0600
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        self.accelerator.wait_for_everyone()
        return name

    def write(self) -> None:
        if self.stale:
            raise RuntimeError("SweepStore.write before start_afresh would mix two sweeps")
        if self.accelerator.is_main_process:
            self.results.save(self.path)
        self.accelerator.wait_for_everyone()
