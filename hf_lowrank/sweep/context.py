"""`SweepContext`: what every stage of a sweep works with, built once by `run_sweep`."""

from dataclasses import dataclass

from accelerate import Accelerator
from datasets import DatasetDict
from torch import nn

from ..distillation import DistillationConfig, evaluate_models
from .arguments import SweepArguments
from .store import SweepStore


__all__ = ["SweepContext"]


@dataclass
class SweepContext:
    """The arguments, the process group, the sweep directory, and (after the teacher stage) the teacher, its image
    processor or tokenizer and the preprocessed splits."""

    sweep: SweepArguments
    args: DistillationConfig
    accelerator: Accelerator
    store: SweepStore
    teacher_source: object | None = None  # models.PretrainedSource of --teacher (None: the embedded teacher)
    modality: str = "image"  # the teacher's: "image" or "text"
    teacher: nn.Module | None = None
    processor: object | None = None
    processed: DatasetDict | None = None
    factorization: object | None = None  # sweep.factorization.TeacherFactorization, after the teacher stage

    @property
    def results(self):
        return self.store.results

    @property
    def noise_sigmas(self) -> tuple[float, ...]:
        return tuple(s for s in self.sweep.noise_sigmas if s > 0)

    def evaluate(self, models: dict, description: str, noise: bool = True) -> dict:
        """`evaluate_models` on the test split with the sweep's batch size and noise settings (noise seeded by the
        primary seed, so every model sees the same noise; `noise=False`: clean accuracy only)."""
        return evaluate_models(
            self.accelerator,
            models,
            self.processed["test"],
            self.args.per_device_eval_batch_size,
            description=description,
            noise_sigmas=self.noise_sigmas if noise else (),
            noise_seed=self.results.primary_seed,
        )
