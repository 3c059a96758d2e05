"""The sweep directory: results.json (the in-memory `SweepResults`, written after every stage) and the model
directories beside it. Only the main process writes."""

import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from torch import nn

from .. import __version__
from ..report import REPORT_FILES
from ..results import SweepResults
from .arguments import SweepError
from .fingerprint import differences


__all__ = ["RESULTS_FILE", "TEACHER_DIR", "SweepStore", "check_writable"]

TEACHER_DIR = "teacher"
RESULTS_FILE = "results.json"
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
    """Opens (or resumes) the sweep in `output_dir`; `results` is the typed record the stages fill in."""

    def __init__(self, output_dir: Path, fingerprint: dict, accelerator: Accelerator, overwrite: bool):
        self.dir = output_dir
        self.path = output_dir / RESULTS_FILE
        self.accelerator = accelerator
        self.results = SweepResults(config=fingerprint, hf_lowrank_version=__version__)
        if self.path.exists():
            previous = SweepResults.load(self.path)
            changed = differences(fingerprint, previous.config)
            if not changed:
                self.results = previous
                self.results.config = fingerprint  # arguments added since, at their defaults, are recorded
            elif not overwrite:
                raise SweepError(
                    f"{output_dir} holds a sweep made with another configuration (differs in: {', '.join(changed)}). "
                    "Use another --output_dir, rerun with the same arguments to resume, or pass "
                    "--overwrite_output_dir to start afresh."
                )
            elif accelerator.is_main_process:
                self._clear()
        accelerator.wait_for_everyone()

    def _clear(self) -> None:
        """Remove an earlier sweep's results, models, report and cards."""
        for child in self.dir.iterdir():
            if child.name in (RESULTS_FILE, TEACHER_DIR, *SWEEP_OUTPUTS) or child.name.startswith(("rank-", "cnn-")):
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    def finished(self) -> set[tuple[int, int]]:
        """(rank, seed) of every student recorded as failed, or as done with its model directory in place."""
        return {
            (record.rank, record.seed)
            for record in self.results.ranks
            if record.status == "failed" or (self.dir / record.model_dir).is_dir()
        }

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
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        self.accelerator.wait_for_everyone()
        return name

    def write(self) -> None:
        if self.accelerator.is_main_process:
            self.results.save(self.path)
        self.accelerator.wait_for_everyone()
