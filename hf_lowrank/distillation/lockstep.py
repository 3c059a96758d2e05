"""Lock-step training: K models on the same batches, the teacher run once per batch for all of them.

Each model keeps its own optimizer, learning-rate schedule, gradient clipping and RNG stream, so it trains exactly
as it would alone with the same seed: a student's result does not depend on which others train beside it.
"""

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..data import collate_pixel_values
from .config import DistillationConfig
from .targets import (
    BlockOutputRecorder,
    FinalTokenRecorder,
    is_bridged,
    prepare_teacher,
    student_loss,
    teacher_targets,
)


__all__ = ["LockstepTrainer", "RNGStream", "TrainResult", "build_optimizer", "num_update_steps"]


class RNGStream:
    """A private torch RNG stream (CPU, and CUDA when used), started as `torch.manual_seed(seed)` would start it."""

    def __init__(self, seed: int):
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        self._devices = devices
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self._cpu = torch.get_rng_state()
            self._cuda = [torch.cuda.get_rng_state(d) for d in devices]

    @contextlib.contextmanager
    def active(self):
        """Draw from this stream inside the block; the global RNG is left as it was."""
        with torch.random.fork_rng(devices=self._devices):
            torch.set_rng_state(self._cpu)
            for device, state in zip(self._devices, self._cuda):
                torch.cuda.set_rng_state(state, device)
            yield
            self._cpu = torch.get_rng_state()
            self._cuda = [torch.cuda.get_rng_state(d) for d in self._devices]


@dataclass
class TrainResult:
    """How one model's training ended."""

    status: str  # "done" or "failed"
    steps: int
    train_seconds: float  # this model's own forward/backward/step time (the shared teacher time excluded)
    error: str | None = None
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (optimizer step, loss)
    examples_per_process: list[int] = field(default_factory=list)  # training examples each process saw


def num_update_steps(args: DistillationConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of a run: `max_steps` if set, else epochs x ceil(batches / accumulation)."""
    if args.max_steps > 0:
        return args.max_steps
    return max(1, math.ceil(args.num_train_epochs * math.ceil(batches_per_epoch / args.gradient_accumulation_steps)))


def build_optimizer(model: nn.Module, args: DistillationConfig) -> torch.optim.Optimizer:
    """AdamW as Trainer builds it: weight decay on matrices, none on biases and norm weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
    )


@dataclass
class _Run:
    key: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: RNGStream
    recorder: BlockOutputRecorder | None
    seconds: float = 0.0
    last_loss: float = float("nan")
    error: str | None = None
    history: list[tuple[int, float]] = field(default_factory=list)


class LockstepTrainer:
    """Trains `models` (key -> model) in lock-step on one data stream.

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
    ):
        self.accelerator = accelerator
        self.args = args
        self.description = description
        self.teacher = prepare_teacher(teacher, accelerator.device) if teacher is not None else None
        geometric = teacher is not None and args.distillation_mode == "geometric"
        self.teacher_recorder = BlockOutputRecorder(self.teacher) if geometric else None
        # Final tokens, for Lift / WideLast students (a hook that only keeps a reference: free for the others).
        self.final_tokens = FinalTokenRecorder(self.teacher) if teacher is not None else None

    def _loss(self, run: _Run, batch, targets) -> torch.Tensor:
        if self.teacher is None:
            return run.model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
        teacher_logits, teacher_blocks, teacher_tokens = targets
        loss, _ = student_loss(
            run.model,
            run.recorder,
            batch["pixel_values"],
            batch["labels"],
            teacher_logits,
            teacher_blocks,
            self.args,
            teacher_tokens,
        )
        return loss

    def _loader(self, train_dataset: Dataset):
        """The training data loader, prepared for the process group. The data order is a function of `args.seed`
        alone (not of the global RNG), the same on every process."""
        args = self.args
        loader = DataLoader(
            train_dataset,
            batch_size=args.per_device_train_batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(args.seed),
            collate_fn=collate_pixel_values,
            drop_last=args.dataloader_drop_last,
            num_workers=args.dataloader_num_workers,
        )
        return self.accelerator.prepare(loader)

    def _start(self, key: str, model: nn.Module, total_steps: int) -> _Run:
        """One model's optimizer, schedule, block recorder and RNG stream, prepared for the process group."""
        args = self.args
        model.train()
        optimizer = build_optimizer(model, args)
        scheduler = get_scheduler(
            args.lr_scheduler_type,
            optimizer,
            num_warmup_steps=args.get_warmup_steps(total_steps),
            num_training_steps=total_steps,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs,
        )
        geometric = self.teacher is not None and args.distillation_mode == "geometric"
        recorder = BlockOutputRecorder(model) if geometric and not is_bridged(model) else None
        model, optimizer = self.accelerator.prepare(model, optimizer)
        return _Run(key, model, optimizer, scheduler, RNGStream(args.seed), recorder)

    def _step(self, run: _Run, batch, targets, step: int) -> bool:
        """Forward and backward of one model on `batch`, then (at an accumulation boundary) clipping and the
        optimizer step. Returns False when the gradient became non-finite: the model is stopped."""
        accelerator, args = self.accelerator, self.args
        start = time.perf_counter()
        with run.rng.active():
            loss = self._loss(run, batch, targets)
            accelerator.backward(loss)
        run.last_loss = loss.item()
        if accelerator.sync_gradients:
            max_norm = args.max_grad_norm if args.max_grad_norm and args.max_grad_norm > 0 else math.inf
            grad_norm = accelerator.clip_grad_norm_(run.model.parameters(), max_norm)
            if not torch.isfinite(torch.as_tensor(grad_norm)):
                run.error = (
                    f"{run.key}: the loss or its gradient became non-finite at optimizer step {step + 1} (loss "
                    f"{run.last_loss}); this model was stopped, the others go on."
                )
                run.optimizer.zero_grad(set_to_none=True)
                return False
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
        run.seconds += time.perf_counter() - start
        return True

    def train(self, models: dict[str, nn.Module], train_dataset: Dataset) -> dict[str, TrainResult]:
        """Train every model of `models` for `num_update_steps` optimizer steps; returns key -> `TrainResult`."""
        args, accelerator = self.args, self.accelerator
        loader = self._loader(train_dataset)
        total_steps = num_update_steps(args, len(loader))
        runs = [self._start(key, model, total_steps) for key, model in models.items()]
        active, step, epoch, examples = list(runs), 0, 0, 0
        progress = tqdm(
            total=total_steps,
            desc=f"{self.description} ({len(runs)} models)",
            disable=not accelerator.is_local_main_process or args.disable_tqdm,
        )
        while step < total_steps and active:
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            for batch in loader:
                examples += batch["pixel_values"].shape[0]
                targets = None
                if self.teacher is not None:
                    targets = teacher_targets(
                        self.teacher, self.teacher_recorder, batch["pixel_values"], self.final_tokens
                    )
                with accelerator.accumulate(*[run.model for run in active]):
                    for run in list(active):
                        if not self._step(run, batch, targets, step):
                            active.remove(run)
                            progress.write(run.error)
                if not accelerator.sync_gradients:
                    continue
                step += 1
                for run in active:
                    if step % max(1, int(args.logging_steps)) == 0 or step == total_steps:
                        run.history.append((step, run.last_loss))
                progress.update(1)
                progress.set_postfix({run.key: f"{run.last_loss:.3g}" for run in active[:6]})
                if step >= total_steps or not active:
                    break
            epoch += 1
        progress.close()
        per_process = accelerator.gather(torch.tensor([examples], device=accelerator.device)).tolist()
        return {run.key: self._finish(run, step, per_process) for run in runs}

    @staticmethod
    def _finish(run: _Run, step: int, per_process: list[int]) -> TrainResult:
        if run.recorder is not None:
            run.recorder.remove()
        run.model.eval()
        return TrainResult("failed" if run.error else "done", step, run.seconds, run.error, run.history, per_process)

    def close(self) -> None:
        for recorder in (self.teacher_recorder, self.final_tokens):
            if recorder is not None:
                recorder.remove()
