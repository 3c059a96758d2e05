"""The parts of a group's training that are not the Trainer: the students as one module (`StudentGroup`), each
student's record (`StudentRun`: its RNG stream, losses, evaluations, best step and early stop), and the group's
callbacks (its progress bar, its additions to Trainer's flow)."""

import re
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import TrainerCallback

from .flags import plain_value
from .rng import RNGStream
from .targets import BlockOutputRecorder


__all__ = ["GroupFlow", "GroupProgress", "StudentGroup", "StudentRun", "run_slug"]


def run_slug(description: str) -> str:
    """A group's description as a tracker run's name: 'students [1, 2] seed 0' -> 'students-1-2-seed-0'."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", description).strip("-") or "training"


class StudentGroup(nn.Module):
    """Trainer's `model` for a group: the students in one module, so that Trainer places, wraps (DDP) and optimizes
    them together. `forward(index, **inputs)` runs student `index` alone."""

    def __init__(self, students: dict[str, nn.Module]):
        super().__init__()
        self.keys = list(students)
        self.students = nn.ModuleList(students.values())
        self.config = None  # the students' configs are their own; Trainer reads `model.config` where it exists

    def forward(self, index: int, **inputs):
        return self.students[index](**inputs)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, every_n_layers=1, offload=False):
        """Trainer's `--gradient_checkpointing` / `--activation_checkpointing`: every student recomputes its blocks'
        activations in the backward (transformers' own checkpointing of each student)."""
        for student in self.students:
            if not getattr(student, "supports_gradient_checkpointing", False):
                raise ValueError(f"{type(student).__name__} does not support gradient checkpointing.")
            student.activation_checkpointing_enable(
                activation_checkpointing_kwargs=activation_checkpointing_kwargs,
                every_n_layers=every_n_layers,
                offload=offload,
            )


@dataclass
class StudentRun:
    """One student's part of a group's training: its RNG stream, block recorder and record."""

    key: str
    index: int
    rng: RNGStream
    recorder: BlockOutputRecorder | None
    seconds: float = 0.0  # its own forward and backward (the shared teacher forward and optimizer step excluded)
    last_loss: float = float("nan")
    error: str | None = None
    history: list[tuple[int, float]] = field(default_factory=list)  # (optimizer step, mean loss since last log)
    loss_sum: float = 0.0  # sum of per-step mean losses since the last log
    grad_norm: float | None = None  # before clipping, at the last optimizer step
    validation: list[tuple[int, float, float]] = field(default_factory=list)  # (step, accuracy, loss)
    best_value: float | None = None  # the best validation metric so far (metric_for_best_model)
    best_step: int | None = None
    patience: int = 0  # evaluations without improvement (early stopping)
    stopped_step: int | None = None  # early-stopped at this optimizer step
    best_state: dict | None = None  # the weights of best_step (load_best_model_at_end), on the CPU
    scaler: torch.amp.GradScaler | None = None  # its own loss scaler, with --fp16
    skipped_steps: int = 0  # optimizer steps its loss scaler skipped (an fp16 gradient overflow)

    @property
    def active(self) -> bool:
        return self.error is None and self.stopped_step is None

    def record(self) -> dict:
        return {
            "seconds": self.seconds,
            "last_loss": self.last_loss,
            "error": self.error,
            "history": self.history,
            "loss_sum": self.loss_sum,
            "validation": self.validation,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "patience": self.patience,
            "stopped_step": self.stopped_step,
            "skipped_steps": self.skipped_steps,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def restore_record(self, record: dict) -> None:
        self.seconds, self.last_loss, self.error = record["seconds"], record["last_loss"], record["error"]
        self.history = [tuple(entry) for entry in record["history"]]
        self.loss_sum = record["loss_sum"]
        self.validation = [tuple(entry) for entry in record["validation"]]
        self.best_value, self.best_step = record["best_value"], record["best_step"]
        self.patience, self.stopped_step = record["patience"], record["stopped_step"]
        self.skipped_steps = record.get("skipped_steps", 0)
        if self.scaler is not None and record.get("scaler"):
            self.scaler.load_state_dict(record["scaler"])


class GroupFlow(TrainerCallback):
    """The group's additions to Trainer's flow: log the last step (the loss a sweep records), and stop when every
    student has stopped."""

    def __init__(self, trainer):  # a GroupDistillationTrainer
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        logging = plain_value(args.logging_strategy) != "no"
        if not self.trainer.active_runs():
            control.should_training_stop = True
        if control.should_training_stop or state.global_step >= state.max_steps:
            control.should_log = control.should_log or logging
        return control


class GroupProgress(TrainerCallback):
    """The progress bar (in place of Trainer's), named after the group, with each student's latest loss instead of
    printed logs."""

    def __init__(self, description: str, disabled: bool):
        self.description, self.disabled, self.bar = description, disabled, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not self.disabled:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.description)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            losses = {key[5:]: f"{value:.3g}" for key, value in logs.items() if key.startswith("loss/")}
            self.bar.set_postfix(dict(list(losses.items())[:6]))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
