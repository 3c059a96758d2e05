"""`GroupDistillationTrainer`: one transformers `Trainer` that trains a group of students on the same batches.

Trainer's own loop runs the group: its data loader (with the seeded `EpochShuffleSampler`), gradient accumulation,
optimizer and schedule, logging (`report_to`: TensorBoard, Trackio, W&B, MLflow ...), callbacks and checkpoint
flow. What a group needs beyond one model goes through Trainer's hooks, not a parallel loop:

- `training_step`: the teacher's forward once per batch, then each active student's forward and backward in turn,
  each in its private RNG stream (`RNGStream`, dropout); on the batch that ends an optimizer step, each student is
  clipped by its own norm and stepped right after its backward, its gradients dropped before the next student's
  forward (one student's activations and gradients alive at a time, as when it trains alone; the shared optimizer
  skips the parameters without gradients). A student whose gradient is not finite is stopped alone, the step
  named. Trainer's own clipping and optimizer step then find no gradient left (`_clip_grad_norm` reports the
  students' norms);
- `log`: each student's loss and gradient norm beside Trainer's group figures (`loss/<key>`, `grad_norm/<key>`);
- `evaluate` (at Trainer's evaluation steps): every active student on the validation split, logged as
  `eval_<key>_accuracy` / `eval_<key>_loss`; each student's best step (`load_best_model_at_end`) and early stopping
  are its own, since Trainer's `EarlyStoppingCallback` and best checkpoint would stop or rewind the whole group;
- `_save_checkpoint` and the `_load_*` methods (`GroupCheckpointMixin`, group_checkpointing.py): the group's
  state as a `GroupCheckpoint` (safetensors plus JSON, never a pickle), resumed through Trainer's own resume path
  (its `trainer_state.json`, its data skipping).

One optimizer holds every student's parameters: AdamW's update is elementwise per parameter and skips a parameter
without a gradient, so a student trained in a group equals the same student trained alone, bit for bit, and a
stopped student is not moved.

`--fp16` is the group's own, not accelerate's: the students' forward passes run under float16 autocast and each
student has its own `GradScaler`, so a gradient overflow in one student skips that student's step and halves its
scale alone (the others, and the group's schedule, go on), and its scale is part of its checkpoint. (Accelerate
has one scaler for the whole model, and ignores fp16 on a CPU without a word.) The teacher runs in its own dtype,
under --fp16 as under --bf16.
"""

import contextlib
import copy
import functools
import math
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..data import batch_size, collate_examples, model_inputs
from ..models import BlockLayout, truncated_view
from .checkpoint import GroupCheckpoint, TrainingPosition
from .config import DistillationConfig
from .group_checkpointing import GroupCheckpointMixin
from .group_evaluation import GroupEvaluationMixin
from .losses import kd_loss
from .nested import NestedRankSchedule
from .rng import RNGStream
from .sampling import EpochShuffleSampler
from .student_group import GroupFlow, GroupProgress, StudentGroup, StudentRun, run_slug
from .targets import (
    BlockOutputRecorder,
    FinalTokenRecorder,
    is_bridged,
    prepare_teacher,
    student_loss,
    teacher_targets,
)


__all__ = ["GroupDistillationTrainer"]


class GroupDistillationTrainer(GroupCheckpointMixin, GroupEvaluationMixin, Trainer):
    """Trains `students` (key -> model) on the same batches: with a `teacher_model`, by `args.distillation_mode`
    distillation (the teacher's forward once per batch); without one, on the labels with the model's own loss (the
    teacher's fine-tuning). `nested`: every student distils through truncated views of its factors, the ranks of
    each batch drawn by the schedule. `checkpoint`: where the group's state is saved at Trainer's save steps.
    `compile_options` (`torch.compile`'s backend and mode): every student and the teacher compiled in place, each on
    its own (the group's `forward(index, ...)` is not compiled: it would specialise on every student).

    With an `eval_dataset` (a validation split) and `args.eval_strategy`, every active student is evaluated at
    Trainer's evaluation steps (accuracy, and its training loss on the validation data), logged as
    `eval_<key>_accuracy` / `eval_<key>_loss`; `args.metric_for_best_model` ("loss" or "accuracy") ranks each
    student's evaluations: its best step is recorded, `load_best_model_at_end` gives it its best weights back, and
    `args.early_stopping_patience` stops it alone (transformers' `EarlyStoppingCallback` meaning) while the others
    go on.

    After `train()`, `runs` holds each student's `StudentRun` and `examples_seen` this process's training examples.
    """

    def __init__(
        self,
        students: dict[str, nn.Module],
        args: DistillationConfig,
        train_dataset,
        teacher_model: nn.Module | None = None,
        eval_dataset=None,
        description: str = "training",
        block_layout: BlockLayout | None = None,
        nested: NestedRankSchedule | None = None,
        checkpoint: GroupCheckpoint | None = None,
        callbacks: list[TrainerCallback] | None = None,
        compile_options: dict | None = None,
    ):
        if nested is not None and teacher_model is None:
            raise ValueError("nested-rank training distils from a teacher; give teacher_model=.")
        # --fp16 is the group's own (float16 autocast, one loss scaler per student): accelerate's single scaler would
        # couple the students, and on a CPU accelerate ignores fp16 without a word.
        self.fp16 = bool(args.fp16)
        if self.fp16:
            args = copy.copy(args)  # (TrainingArguments.__post_init__ must not run again)
            args.fp16, args.mixed_precision = False, "no"
        self.group = StudentGroup(students)
        super().__init__(
            model=self.group,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=collate_examples,
            callbacks=callbacks,
        )
        self.model_accepts_loss_kwargs = False  # the loss is per batch; training_step scales it by the window
        self.remove_callback(PrinterCallback)
        self.remove_callback(ProgressCallback)
        self.add_callback(GroupProgress(f"{description} ({len(students)} models)", args.disable_tqdm))
        self.add_callback(GroupFlow(self))
        self.description = description
        self._name_tracker_runs(args, description)
        self.teacher_model = prepare_teacher(teacher_model, self.accelerator.device) if teacher_model else None
        geometric = teacher_model is not None and args.distillation_mode == "geometric"
        self.teacher_recorder = BlockOutputRecorder(self.teacher_model, block_layout) if geometric else None
        # Final tokens, for Lift / WideLast and CNN students (a hook that only keeps a reference).
        self.final_tokens = FinalTokenRecorder(self.teacher_model) if teacher_model is not None else None
        self.nested = nested
        self.checkpoint = checkpoint
        if compile_options is not None:  # each student and the teacher, in place (hooks and parameter names kept)
            for model in [*students.values(), *([self.teacher_model] if self.teacher_model is not None else [])]:
                if getattr(model, "_compiled_call_impl", None) is None:  # (the teacher serves every group)
                    model.compile(**compile_options)
        self.runs = [
            StudentRun(
                key,
                index,
                RNGStream(args.seed),
                BlockOutputRecorder(model) if geometric and not is_bridged(model) else None,
            )
            for index, (key, model) in enumerate(students.items())
        ]
        for run in self.runs:
            run.scaler = torch.amp.GradScaler(self.accelerator.device.type) if self.fp16 else None
        self.examples_seen = 0
        self._resume_states: tuple[TrainingPosition, dict] | None = None
        self._micro_batch = 0  # batches of the optimizer step under way
        self._logged_step = 0

    def _name_tracker_runs(self, args, description: str) -> None:
        """TensorBoard writes this group's run into OUTPUT_DIR/runs/<group> (unless TENSORBOARD_LOGGING_DIR says
        where), so that the teacher's and each group's curves are runs of their own."""
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
                callback.logging_dir = os.path.join(args.output_dir, "runs", run_slug(description))

    def autocast(self):
        """The students' mixed precision: float16 autocast with --fp16, accelerate's (bf16) otherwise."""
        if self.fp16:
            return torch.autocast(self.accelerator.device.type, dtype=torch.float16)
        return self.accelerator.autocast()

    # ---- the data order ----
    def _get_train_sampler(self, train_dataset=None):
        """`EpochShuffleSampler` of `data_seed` (else `seed`): a function of the seed and the epoch, the same on every
        process (accelerate shards the batches, not the order)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochShuffleSampler(len(dataset), seed)

    def get_train_dataloader(self):
        loader = super().get_train_dataloader()
        self._batches_per_epoch = len(loader)
        if self._batches_per_epoch == 0:
            args = self.args
            raise ValueError(
                f"no training batch: {len(self.train_dataset)} examples, per_device_train_batch_size "
                f"{args.per_device_train_batch_size} x {self.accelerator.num_processes} process(es) with "
                f"dataloader_drop_last {args.dataloader_drop_last}; use a smaller batch or keep the last batch."
            )
        return loader

    def _batch_position(self) -> tuple[int, int]:
        """(epoch, 1-based batch of that epoch) of the batch under way, from the optimizer steps done."""
        accumulation = self.args.gradient_accumulation_steps
        steps_per_epoch = math.ceil(self._batches_per_epoch / accumulation)
        step = self.state.global_step
        return step // steps_per_epoch, (step % steps_per_epoch) * accumulation + self._micro_batch

    # ---- one batch ----
    def active_runs(self) -> list[StudentRun]:
        """The students still training: not failed, not early-stopped."""
        return [run for run in self.runs if run.active]

    def _student_loss(self, model: nn.Module, run: StudentRun, inputs: dict, labels, targets) -> torch.Tensor:
        """One student's loss on the batch (the weighted mean over the batch's views with `nested`). `model` is the
        prepared group (DDP-wrapped under several processes): every forward goes through it."""
        forward = functools.partial(model, run.index)
        if self.teacher_model is None:
            return self._label_loss(forward, inputs, labels)
        teacher_logits, teacher_blocks, teacher_tokens = targets

        def loss_of_view():
            return student_loss(
                forward, run.recorder, inputs, labels, teacher_logits, teacher_blocks, self.args, teacher_tokens
            )

        if self.nested is None:
            return loss_of_view()[0]
        epoch, batch = self._batch_position()
        views = self.nested.views(epoch, batch)
        total, largest_logits = 0.0, None
        for rank, weight in views:  # largest first; one backward of the weighted sum (DDP: one gradient reduction)
            with truncated_view(self.group.students[run.index], rank):
                loss, outputs = loss_of_view()
            if largest_logits is not None:  # in-place distillation from the largest view (inplace_weight > 0)
                inplace = kd_loss(outputs.logits, largest_logits, self.args.temperature)
                loss = loss + self.nested.inplace_weight * inplace
            elif self.nested.inplace_weight and rank == self.nested.ranks[-1]:
                largest_logits = outputs.logits.detach()  # (batch, num_labels)
            total = total + weight * loss
        return total / sum(weight for _, weight in views)

    def _label_loss(self, forward, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
        """Training on the labels (the teacher's fine-tuning): the model's own loss, or the cross-entropy with
        `label_smoothing_factor` (Trainer's label smoothing) when it is set."""
        smoothing = self.args.label_smoothing_factor
        if not smoothing:
            return forward(**inputs, labels=labels).loss
        return F.cross_entropy(forward(**inputs).logits, labels, label_smoothing=smoothing)

    def training_step(self, model: nn.Module, inputs: dict, num_items_in_batch=None) -> torch.Tensor:
        """The teacher once, then every active student in turn: forward and backward and, on the batch that ends an
        optimizer step, its own clipping and optimizer step, its gradients dropped before the next student's forward
        (one student's activations and gradients alive at a time). Returns the students' mean loss, scaled by the
        accumulation window as Trainer's own step returns it."""
        model.train()
        self._micro_batch += 1
        inputs = self._prepare_inputs(inputs)
        forward_inputs, labels = model_inputs(inputs), inputs.get("labels")
        self.examples_seen += batch_size(inputs)
        targets = None
        if self.teacher_model is not None:
            targets = teacher_targets(self.teacher_model, self.teacher_recorder, forward_inputs, self.final_tokens)
        window = self.current_gradient_accumulation_steps
        steps = self.accelerator.sync_gradients  # this batch ends the optimizer step (Trainer sets it)
        active = self.active_runs()
        total = torch.zeros((), device=self.args.device)
        for run in active:
            start = time.perf_counter()
            with run.rng.active():
                with self.autocast() if self.fp16 else contextlib.nullcontext():  # (bf16: accelerate's wrapper)
                    loss = self._student_loss(model, run, forward_inputs, labels, targets)
                if loss.requires_grad:  # (a student frozen entirely has nothing to train)
                    scaled = loss / window
                    self.accelerator.backward(run.scaler.scale(scaled) if run.scaler is not None else scaled)
            if run.recorder is not None:
                run.recorder.clear()  # block outputs a checkpointed backward recomputed
            run.last_loss = loss.item()
            run.loss_sum += run.last_loss / window
            if steps:
                self._step_student(run)
            run.seconds += time.perf_counter() - start
            total += loss.detach() / window
        if steps:
            self._micro_batch = 0
        return total / max(len(active), 1)

    # ---- each student's own clipping, optimizer step and stopping ----
    def _step_student(self, run: StudentRun) -> None:
        """Clip `run`'s gradient by its own norm, stop it when the norm is not finite, else step the optimizer with
        only this student's parameters holding gradients (the others are skipped) and drop its gradients.

        With --fp16 the gradient is first unscaled by the student's own loss scaler; a non-finite gradient of a
        finite loss is then an fp16 overflow: this student's step is skipped and its scale halved (GradScaler's rule),
        the other students are untouched. A non-finite loss still stops the student."""
        parameters = [p for p in self.group.students[run.index].parameters() if p.requires_grad]
        # With accumulation, the students after this one still hold the window's earlier gradients: set aside.
        others = [
            p
            for other in self.runs
            if other is not run and self.args.gradient_accumulation_steps > 1
            for p in self.group.students[other.index].parameters()
            if p.grad is not None
        ]  # fmt: skip  (without accumulation no other student holds a gradient here)
        set_aside = [p.grad for p in others]
        for parameter in others:
            parameter.grad = None
        if run.scaler is not None and parameters:
            run.scaler.unscale_(self._optimizer())  # (only this student's parameters hold gradients)
        max_norm = self.args.max_grad_norm if self.args.max_grad_norm and self.args.max_grad_norm > 0 else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm)) if parameters else 0.0
        overflow = run.scaler is not None and math.isfinite(run.last_loss)
        if not math.isfinite(norm) and not overflow:
            run.error = (
                f"{run.key}: the loss or its gradient became non-finite at optimizer step "
                f"{self.state.global_step + 1} (loss {run.last_loss}); this model was stopped, the others go on."
            )
            self.accelerator.print(run.error)
        elif run.scaler is not None and parameters:
            run.scaler.step(self._optimizer())  # skipped on an overflow
            run.scaler.update()
            run.skipped_steps += not math.isfinite(norm)
            run.grad_norm = norm if math.isfinite(norm) else run.grad_norm
        else:
            run.grad_norm = norm
            self.optimizer.step()
        for parameter, grad in zip(others, set_aside):
            parameter.grad = grad
        for parameter in parameters:
            parameter.grad = None

    def _clip_grad_norm(self, model):
        """Each student was clipped (and stepped) by its own norm in `training_step`: the norm of the stepped
        students' gradients together, for Trainer's log."""
        return math.sqrt(sum(run.grad_norm**2 for run in self.active_runs() if run.grad_norm is not None))

    def _get_grad_norm(self, model, grad_norm=None):
        return self._clip_grad_norm(model) if grad_norm is None else grad_norm

    # ---- logging ----
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer's log, with each student's mean loss since the last log and its gradient norm; the losses also go
        into each student's `history`."""
        if "loss" in logs:
            steps = max(self.state.global_step - self._logged_step, 1)
            for run in self.active_runs():
                mean = run.loss_sum / steps
                run.history.append((self.state.global_step, mean))
                logs[f"loss/{run.key}"] = mean
                if run.grad_norm is not None:
                    logs[f"grad_norm/{run.key}"] = run.grad_norm
            for run in self.runs:
                run.loss_sum = 0.0
            self._logged_step = self.state.global_step
        super().log(logs, start_time)

    def close(self) -> None:
        for recorder in (self.teacher_recorder, self.final_tokens, *(run.recorder for run in self.runs)):
            if recorder is not None:
                recorder.remove()
