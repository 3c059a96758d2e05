"""Lock-step training: K models on the same batches, the teacher run once per batch for all of them.

`LockstepTrainer` is the sweep's entry point: it runs one `GroupDistillationTrainer` (a transformers `Trainer`)
per group, resumes it from the group's checkpoint, and returns each model's `TrainResult`. Each model keeps its own
gradient clipping and RNG stream and, in the shared optimizer, its own moments, so it trains exactly as it would
alone with the same seed: a student's result does not depend on which others train beside it.
"""

import contextlib
import copy
import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import SaveStrategy

from ..models import BlockLayout
from .checkpoint import CheckpointError, GroupCheckpoint
from .config import DistillationConfig
from .flags import check_training_arguments
from .group_trainer import GroupDistillationTrainer
from .nested import NestedRankSchedule
from .rng import RNGStream
from .student_group import run_slug


__all__ = ["LockstepTrainer", "RNGStream", "TrainResult", "build_optimizer", "num_update_steps"]


@dataclass
class TrainResult:
    """How one model's training ended."""

    status: str  # "done" or "failed"
    steps: int
    train_seconds: float  # this model's own forward/backward/step time (the shared teacher time excluded)
    error: str | None = None
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (optimizer step, loss)
    examples_per_process: list[int] = field(default_factory=list)  # training examples each process saw
    validation_history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, accuracy, loss)
    best_step: int | None = None  # its best evaluation's step (metric_for_best_model), with evaluation
    stopped_step: int | None = None  # early-stopped at this optimizer step
    skipped_steps: int = 0  # optimizer steps its fp16 loss scaler skipped (a gradient overflow)


def num_update_steps(args: DistillationConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of a run: `max_steps` if set, else epochs x ceil(batches / accumulation)."""
    if args.max_steps > 0:
        return args.max_steps
    return max(1, math.ceil(args.num_train_epochs * math.ceil(batches_per_epoch / args.gradient_accumulation_steps)))


def build_optimizer(model: nn.Module, args: TrainingArguments) -> torch.optim.Optimizer:
    """The optimizer `Trainer.create_optimizer` builds for `args` (`args.optim`, `args.optim_args`): weight decay
    on the parameters Trainer decays, none on biases and norm weights."""
    decay = set(Trainer.get_decay_parameter_names(None, model))  # a method that does not read `self`
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for name, p in named if name in decay], "weight_decay": args.weight_decay},
        {"params": [p for name, p in named if name not in decay], "weight_decay": 0.0},
    ]
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return optimizer_cls(groups, **kwargs)


class LockstepTrainer:
    """Trains `models` (key -> model) in lock-step on one data stream, through `GroupDistillationTrainer` (one
    transformers `Trainer` for the group).

    With a `teacher`, the loss is `args.distillation_mode` distillation from it (teacher forward once per batch);
    without one, the models are trained on the labels with cross-entropy (the teacher's own fine-tuning stage).
    A model whose gradient becomes NaN or inf is stopped with a message naming the step; the others go on.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        args: DistillationConfig,
        teacher: nn.Module | None = None,
        description: str = "training",
        block_layout: BlockLayout | None = None,
        nested: NestedRankSchedule | None = None,
        callbacks: list | None = None,
    ):
        """`block_layout`: the teacher's blocks, for a family hf_lowrank's table does not know (students record
        their own). `nested`: distil every model through truncated views of its factors, the ranks of each batch
        drawn by the schedule (nested-rank training), the loss the weighted sum over those views. `callbacks`:
        transformers `TrainerCallback`s added to the group's Trainer."""
        problems = check_training_arguments(args)
        if problems:
            raise ValueError("LockstepTrainer cannot honour these arguments:\n  " + "\n  ".join(problems))
        if nested is not None and teacher is None:
            raise ValueError("nested-rank training distils from a teacher; give teacher=.")
        self.accelerator = accelerator
        self.args = args
        self.teacher = teacher
        self.description = description
        self.block_layout = block_layout
        self.nested = nested
        self.callbacks = callbacks

    def _arguments(self, checkpoint: GroupCheckpoint | None) -> DistillationConfig:
        """The group's Trainer arguments: the user's, with the columns kept (the loss reads `labels`), no Hub push
        (the sweep pushes its students itself, at the end), the tracker run named RUN_NAME/<group>, and no checkpoint
        without a `checkpoint` (a shallow copy: TrainingArguments.__post_init__ must not run again)."""
        args = copy.copy(self.args)
        args.remove_unused_columns = False
        args.push_to_hub = False
        args.run_name = f"{self.args.run_name}/{run_slug(self.description)}" if self.args.run_name else None
        # The group trainer compiles each model itself (compile_options); accelerate must not compile the group.
        args.torch_compile, args.torch_compile_backend, args.torch_compile_mode = False, None, None
        args.label_names = ["labels"]
        if checkpoint is None:
            args.save_strategy = SaveStrategy.NO
        return args

    def _resume(self, checkpoint: GroupCheckpoint | None, keys: list[str]):
        """The checkpoint's position and states of `keys`, or None. A checkpoint of a larger group (some of whose
        models were recorded since) serves its remaining models. Every process must find the same one."""
        saved = checkpoint.load(keys) if checkpoint is not None else None
        found = torch.tensor([saved[0].step if saved else -1], device=self.accelerator.device)
        steps = self.accelerator.gather(found).tolist()
        if len(set(steps)) > 1:
            raise CheckpointError(
                f"the processes found different checkpoints in {checkpoint.directory} (optimizer steps {steps}, -1: "
                "none): put the output directory on a filesystem every process sees."
            )
        if saved is None:
            stale = checkpoint.describe() if checkpoint is not None else None
            if stale:
                self.accelerator.print(f"not resuming the checkpoint in {checkpoint.directory} ({stale}): not {keys}")
            return None
        self.accelerator.print(f"resuming {self.description} at optimizer step {saved[0].step}")
        return saved

    def train(
        self,
        models: dict[str, nn.Module],
        train_dataset: Dataset,
        checkpoint: GroupCheckpoint | None = None,
        eval_dataset: Dataset | None = None,
    ) -> dict[str, TrainResult]:
        """Train every model of `models` for `num_update_steps` optimizer steps; returns key -> `TrainResult`.

        With a `checkpoint`, the whole group's state is saved every `args.save_steps` optimizer steps (or at epoch
        ends, as `args.save_strategy` says) and when training ends, and a matching checkpoint found there is
        resumed: the run then ends exactly as an uninterrupted one would. With an `eval_dataset` (a validation split)
        and `args.eval_strategy`, each model is evaluated during training, and may stop early or end at its best step
        (`GroupDistillationTrainer`). The global RNGs are left as they were (Trainer reseeds them; each model draws
        from its own stream)."""
        for model in models.values():
            model.train()
        with _global_rng_kept():
            trainer = GroupDistillationTrainer(
                models,
                self._arguments(checkpoint),
                train_dataset,
                teacher_model=self.teacher,
                eval_dataset=eval_dataset,
                description=self.description,
                block_layout=self.block_layout,
                nested=self.nested,
                checkpoint=checkpoint,
                callbacks=self.callbacks,
                compile_options=compile_options(self.args),
            )
            self.trainer = trainer
            saved = self._resume(checkpoint, list(models))
            try:
                if saved is not None:
                    trainer.resume_from(*saved)
                    trainer.train(resume_from_checkpoint=str(checkpoint.latest()))
                else:
                    trainer.train()
            finally:
                trainer.close()
        accelerator = trainer.accelerator
        per_process = accelerator.gather(torch.tensor([trainer.examples_seen], device=accelerator.device)).tolist()
        results = {}
        for run in trainer.runs:
            models[run.key].eval()
            status = "failed" if run.error else "done"
            steps = run.stopped_step if run.stopped_step is not None else trainer.state.global_step
            results[run.key] = TrainResult(
                status, steps, run.seconds, run.error, run.history, per_process, run.validation, run.best_step,
                run.stopped_step, run.skipped_steps,
            )  # fmt: skip
        return results


def compile_options(args: TrainingArguments) -> dict | None:
    """`torch.compile`'s options that `--torch_compile`, `--torch_compile_backend` and `--torch_compile_mode` ask
    for (None: no compilation)."""
    if not args.torch_compile:
        return None
    return {"backend": args.torch_compile_backend or "inductor", "mode": args.torch_compile_mode}


@contextlib.contextmanager
def _global_rng_kept():
    """Leave Python's, numpy's and torch's global RNGs as they were (Trainer seeds them when built)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
