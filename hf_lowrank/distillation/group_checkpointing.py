"""The group trainer's checkpoints: the group's state as a `GroupCheckpoint` (safetensors plus JSON, never a
pickle), written at Trainer's save steps and read back inside Trainer's own resume path (its `trainer_state.json`,
its step count and data skipping) by the `_load_*` hooks. Each student's part: its weights, its optimizer moments by
parameter name, the schedule, its RNG stream, its record (with its fp16 loss scale) and its best weights."""

import torch

from .checkpoint import TrainingPosition
from .student_group import StudentRun


__all__ = ["GroupCheckpointMixin"]


class GroupCheckpointMixin:
    """`GroupDistillationTrainer`'s `_save_checkpoint` and `_load_*` hooks (it holds `group`, `runs`, `checkpoint`,
    `examples_seen` and `_logged_step`)."""

    def _optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate's wrapper

    def _run_state(self, run: StudentRun) -> dict:
        """Everything a resumed run needs for this student (its optimizer state by parameter name)."""
        student, optimizer = self.group.students[run.index], self._optimizer()
        moments = {name: dict(optimizer.state[p]) for name, p in student.named_parameters() if p in optimizer.state}
        return {
            "model": student.state_dict(),
            "optimizer": moments,
            "scheduler": self.lr_scheduler.state_dict(),
            "rng": run.rng.state_dict(),
            "record": {**run.record(), "logged_step": self._logged_step},
            "best": run.best_state or {},
        }

    def _save_checkpoint(self, model, trial=None) -> None:
        if self.checkpoint is None:
            return
        epoch, batch = self._batch_position()
        position = TrainingPosition(self.state.global_step, epoch, batch, self.examples_seen)
        runs = {run.key: self._run_state(run) for run in self.runs}
        self.checkpoint.save(position, runs, self.state, keep=self.args.save_total_limit or 1)
        self.accelerator.wait_for_everyone()

    def resume_from(self, position: TrainingPosition, states: dict[str, dict]) -> None:
        """Resume from these states (a `GroupCheckpoint.load`): applied by Trainer's `_load_*` hooks in `train`."""
        self._resume_states = (position, states)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        position, states = self._resume_states
        for run in self.runs:
            self.group.students[run.index].load_state_dict(states[run.key]["model"])
            run.restore_record(states[run.key]["record"])
            run.best_state = states[run.key]["best"] or None
        self.examples_seen = position.examples
        self._logged_step = states[self.runs[0].key]["record"].get("logged_step", position.step)

    def _load_optimizer_and_scheduler(self, checkpoint) -> None:
        _, states = self._resume_states
        optimizer = self._optimizer()
        for run in self.runs:
            state = states[run.key]
            for name, parameter in self.group.students[run.index].named_parameters():
                if name in state["optimizer"]:
                    optimizer.state[parameter] = {
                        key: value.to(parameter.device) if key != "step" and torch.is_tensor(value) else value
                        for key, value in state["optimizer"][name].items()
                    }
        self.lr_scheduler.load_state_dict(states[self.runs[0].key]["scheduler"])
        for group, lr in zip(optimizer.param_groups, self.lr_scheduler.get_last_lr()):
            group["lr"] = lr

    def _load_rng_state(self, checkpoint) -> None:
        _, states = self._resume_states
        for run in self.runs:
            run.rng.load_state_dict(states[run.key]["rng"])

    def _load_scaler(self, checkpoint) -> None:
        pass
