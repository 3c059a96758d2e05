"""Lock-step training: K models on the same batches, the teacher run once per batch for all of them.

Each model keeps its own optimizer, learning-rate schedule, gradient clipping and RNG stream, so it trains exactly
as it would alone with the same seed: a student's result does not depend on which others train beside it.
"""

import math
import time
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import Trainer, TrainingArguments, get_scheduler

from ..data import batch_size, collate_examples, model_inputs
from ..models import BlockLayout, truncated_view
from .checkpoint import CheckpointError, GroupCheckpoint, TrainingPosition
from .config import DistillationConfig
from .flags import check_training_arguments, checkpoint_interval, plain_value, steps_interval
from .nested import NestedRankSchedule
from .rng import RNGStream
from .sampling import EpochShuffleSampler
from .targets import (
    BlockOutputRecorder,
    FinalTokenRecorder,
    is_bridged,
    prepare_teacher,
    student_loss,
    teacher_targets,
)


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

    def state(self, accelerator: Accelerator) -> dict:
        """Everything a resumed run needs to continue exactly as this one would (nested, tensors inside)."""
        record = {"seconds": self.seconds, "last_loss": self.last_loss, "error": self.error, "history": self.history}
        return {
            "model": accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.state_dict(),
            "record": record,
        }

    def restore(self, state: dict, accelerator: Accelerator) -> None:
        accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.load_state_dict(state["rng"])
        record = state["record"]
        self.seconds, self.last_loss, self.error = record["seconds"], record["last_loss"], record["error"]
        self.history = [tuple(entry) for entry in record["history"]]


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
        block_layout: BlockLayout | None = None,
        nested: NestedRankSchedule | None = None,
    ):
        """`block_layout`: the teacher's blocks, for a family hf_lowrank's table does not know (students record
        their own). `nested`: distil every model through truncated views of its factors, the ranks of each batch
        drawn by the schedule (nested-rank training), the loss the weighted sum over those views."""
        problems = check_training_arguments(args)
        if accelerator.gradient_accumulation_steps != args.gradient_accumulation_steps:
            problems.append(
                f"the Accelerator accumulates {accelerator.gradient_accumulation_steps} batches per step, "
                f"--gradient_accumulation_steps says {args.gradient_accumulation_steps}: build it with "
                "Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps)"
            )
        if problems:
            raise ValueError("LockstepTrainer cannot honour these arguments:\n  " + "\n  ".join(problems))
        self.accelerator = accelerator
        self.args = args
        self.description = description
        self.teacher = prepare_teacher(teacher, accelerator.device) if teacher is not None else None
        geometric = teacher is not None and args.distillation_mode == "geometric"
        self.teacher_recorder = BlockOutputRecorder(self.teacher, block_layout) if geometric else None
        # Final tokens, for Lift / WideLast students (a hook that only keeps a reference: free for the others).
        self.final_tokens = FinalTokenRecorder(self.teacher) if teacher is not None else None
        if nested is not None and teacher is None:
            raise ValueError("nested-rank training distils from a teacher; give teacher=.")
        self.nested = nested
        self._views: list[tuple[int, float]] = []  # the current batch's (rank, weight) views, with `nested`

    def _loss(self, run: _Run, batch, targets) -> torch.Tensor:
        if self.teacher is None:
            return run.model(**model_inputs(batch), labels=batch["labels"]).loss
        teacher_logits, teacher_blocks, teacher_tokens = targets

        def loss_of_view():
            loss, _ = student_loss(
                run.model,
                run.recorder,
                model_inputs(batch),
                batch["labels"],
                teacher_logits,
                teacher_blocks,
                self.args,
                teacher_tokens,
            )
            return loss

        if self.nested is None:
            return loss_of_view()
        total = 0.0
        for rank, weight in self._views:  # one backward of the weighted sum (DDP: one gradient reduction)
            with truncated_view(run.model, rank):
                total = total + weight * loss_of_view()
        return total / sum(weight for _, weight in self._views)

    def _loader(self, train_dataset: Dataset):
        """The training data loader, prepared for the process group. The data order is `EpochShuffleSampler` of
        `args.data_seed` (else `args.seed`): a function of the seed and the epoch, the same on every process."""
        args = self.args
        seed = args.data_seed if args.data_seed is not None else args.seed
        workers = args.dataloader_num_workers
        loader = DataLoader(
            train_dataset,
            batch_size=args.per_device_train_batch_size,
            sampler=EpochShuffleSampler(len(train_dataset), seed),
            collate_fn=collate_examples,
            drop_last=args.dataloader_drop_last,
            num_workers=workers,
            pin_memory=args.dataloader_pin_memory and self.accelerator.device.type == "cuda",
            persistent_workers=args.dataloader_persistent_workers and workers > 0,
            prefetch_factor=args.dataloader_prefetch_factor if workers > 0 else None,
            multiprocessing_context=args.dataloader_multiprocessing_context if workers > 0 else None,
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

    def _step(self, run: _Run, batch, targets, step: int, window: int) -> bool:
        """Forward and backward of one model on `batch`, then (at an accumulation boundary) clipping and the
        optimizer step. `window` is the number of batches of this optimizer step (fewer than the accumulation steps
        at the end of an epoch): the gradient is the mean over them, as in `Trainer`. Returns False when the
        gradient became non-finite: the model is stopped."""
        accelerator, args = self.accelerator, self.args
        start = time.perf_counter()
        with run.rng.active():
            loss = self._loss(run, batch, targets)
            # accelerate divides by gradient_accumulation_steps; a short last window divides by its own length.
            scale = args.gradient_accumulation_steps / window
            accelerator.backward(loss * scale if scale != 1 else loss)
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

    def _resume(self, checkpoint: GroupCheckpoint | None, runs: list[_Run], batches: int) -> TrainingPosition:
        """The position to start from: the checkpoint's (its states loaded into `runs`), or the beginning. A
        checkpoint of a larger group (some of whose models were recorded since) serves its remaining models."""
        keys = [run.key for run in runs]
        saved = checkpoint.load(keys) if checkpoint is not None else None
        found = torch.tensor([saved[0].step if saved else -1], device=self.accelerator.device)
        if len(set(self.accelerator.gather(found).tolist())) > 1:
            raise CheckpointError(
                f"the processes found different checkpoints in {checkpoint.directory} (optimizer steps "
                f"{self.accelerator.gather(found).tolist()}, -1: none): put the output directory on a filesystem "
                "every process sees."
            )
        if saved is None:
            stale = checkpoint.describe() if checkpoint is not None else None
            if stale:
                self.accelerator.print(f"not resuming the checkpoint in {checkpoint.directory} ({stale}): not {keys}")
            return TrainingPosition()
        position, states = saved
        for run in runs:
            run.restore(states[run.key], self.accelerator)
        if position.batch >= batches:  # saved at the end of an epoch
            position.epoch, position.batch = position.epoch + 1, 0
        self.accelerator.print(f"resuming {self.description} at optimizer step {position.step}")
        return position

    def _save(self, checkpoint: GroupCheckpoint, runs: list[_Run], position: TrainingPosition) -> None:
        checkpoint.save(position, {run.key: run.state(self.accelerator) for run in runs})
        self.accelerator.wait_for_everyone()

    def _window(self, batch_in_epoch: int, batches: int) -> int:
        """Batches in the optimizer step that batch `batch_in_epoch` (1-based) of an epoch of `batches` belongs to:
        the accumulation steps, or fewer in the epoch's last step (accelerate syncs at the end of the data)."""
        accumulation = self.args.gradient_accumulation_steps
        return min(accumulation, batches - (batch_in_epoch - 1) // accumulation * accumulation)

    def _logged(self, position: TrainingPosition, total_steps: int, batches: int) -> bool:
        """Whether the loss of the optimizer step just taken goes into the history (`logging_strategy`,
        `logging_steps`, `logging_first_step`; the last step is always kept unless logging is off)."""
        args, strategy = self.args, plain_value(self.args.logging_strategy)
        if strategy == "no":
            return False
        if position.step == total_steps or (args.logging_first_step and position.step == 1):
            return True
        if strategy == "epoch":
            return position.batch == batches
        return position.step % steps_interval(args.logging_steps, total_steps) == 0

    def _batch(self, batch, active: list[_Run], position: TrainingPosition, batches: int, total_steps: int, progress):
        """One batch through every active model; True when it completed an optimizer step."""
        accelerator = self.accelerator
        position.batch += 1
        position.examples += batch_size(batch)
        targets = None
        if self.teacher is not None:
            targets = teacher_targets(self.teacher, self.teacher_recorder, model_inputs(batch), self.final_tokens)
        window = self._window(position.batch, batches)
        if self.nested is not None:
            self._views = self.nested.views(position.epoch, position.batch)
        with accelerator.accumulate(*[run.model for run in active]):
            for run in list(active):
                if not self._step(run, batch, targets, position.step, window):
                    active.remove(run)
                    progress.write(run.error)
        if not accelerator.sync_gradients:
            return False
        position.step += 1
        if self._logged(position, total_steps, batches):
            for run in active:
                run.history.append((position.step, run.last_loss))
        progress.update(1)
        progress.set_postfix({run.key: f"{run.last_loss:.3g}" for run in active[:6]})
        return True

    def train(
        self, models: dict[str, nn.Module], train_dataset: Dataset, checkpoint: GroupCheckpoint | None = None
    ) -> dict[str, TrainResult]:
        """Train every model of `models` for `num_update_steps` optimizer steps; returns key -> `TrainResult`.

        With a `checkpoint`, the whole group's state is saved every `args.save_steps` optimizer steps (or at epoch
        ends, as `args.save_strategy` says) and when training ends, and a matching checkpoint found there is
        resumed: the run then ends exactly as an uninterrupted one would."""
        args, accelerator = self.args, self.accelerator
        loader = self._loader(train_dataset)
        batches = len(loader)
        if batches == 0:
            raise ValueError(
                f"no training batch: {len(train_dataset)} examples, per_device_train_batch_size "
                f"{args.per_device_train_batch_size} x {accelerator.num_processes} process(es) with "
                f"dataloader_drop_last {args.dataloader_drop_last}; use a smaller batch or keep the last batch."
            )
        total_steps = num_update_steps(args, batches)
        runs = [self._start(key, model, total_steps) for key, model in models.items()]
        position = self._resume(checkpoint, runs, batches)
        strategy = plain_value(args.save_strategy) if checkpoint is not None else "no"
        save_every = checkpoint_interval(args, total_steps) if checkpoint is not None else None
        active, start_step = [run for run in runs if run.error is None], position.step
        accelerator.step = 0  # accumulation restarts at a step boundary (a checkpoint is always at one)
        progress = tqdm(
            total=total_steps,
            initial=position.step,
            desc=f"{self.description} ({len(runs)} models)",
            disable=not accelerator.is_local_main_process or args.disable_tqdm,
        )
        while position.step < total_steps and active:
            loader.set_epoch(position.epoch)
            epoch_loader = accelerator.skip_first_batches(loader, position.batch) if position.batch else loader
            for batch in epoch_loader:
                if not self._batch(batch, active, position, batches, total_steps, progress):
                    continue
                if position.step >= total_steps or not active:
                    break
                if save_every and position.step % save_every == 0:
                    self._save(checkpoint, runs, position)
            else:
                position.epoch, position.batch = position.epoch + 1, 0
                if strategy == "epoch" and position.step < total_steps and active:
                    self._save(checkpoint, runs, position)
        if strategy != "no" and position.step > start_step:  # what follows (evaluation, saving) may still crash
            self._save(checkpoint, runs, position)
        progress.close()
        per_process = accelerator.gather(torch.tensor([position.examples], device=accelerator.device)).tolist()
        return {run.key: self._finish(run, position.step, per_process) for run in runs}

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
