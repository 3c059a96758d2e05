"""`SweepContext`: what every stage of a sweep works with, built once by `run_sweep`."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accelerate import Accelerator
from datasets import DatasetDict
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.image_processing_base import ImageProcessingMixin

from ..distillation import DistillationConfig, evaluate_models
from ..models import BlockLayout, PretrainedSource
from .arguments import SweepArguments
from .families import sweep_layout
from .store import SweepStore


if TYPE_CHECKING:
    from .factorization import TeacherFactorization


__all__ = ["SweepContext"]


@dataclass
class SweepContext:
    """The arguments, the process group, the sweep directory, what the run derives from its arguments once (the
    teacher's source and modality, the block layout), and (after the teacher stage) the teacher, its image processor
    or tokenizer, the preprocessed splits and the teacher's factorization."""

    sweep: SweepArguments
    args: DistillationConfig
    accelerator: Accelerator
    store: SweepStore
    teacher_source: PretrainedSource | None = None  # --teacher's (None: the embedded teacher)
    modality: str = "image"  # the teacher's: "image" or "text"
    layout: BlockLayout | None = field(init=False)  # the --block_* flags' layout (None: the table's, by model_type)
    teacher: nn.Module | None = None
    processor: PreTrainedTokenizerBase | ImageProcessingMixin | None = None
    processed: DatasetDict | None = None
    factorization: "TeacherFactorization | None" = None  # after the teacher stage

    def __post_init__(self):
        self.layout = sweep_layout(self.sweep)

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
