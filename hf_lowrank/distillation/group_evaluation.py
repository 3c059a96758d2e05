"""Evaluation during a group's training: every student on the validation split at Trainer's evaluation steps, its
own best step (`load_best_model_at_end`) and its own early stop, since Trainer's `EarlyStoppingCallback` and best
checkpoint would stop or rewind the whole group. A mixin of `GroupDistillationTrainer`."""

import torch

from ..data import model_inputs
from .student_group import StudentRun
from .targets import student_loss, teacher_targets


__all__ = ["GroupEvaluationMixin"]


class GroupEvaluationMixin:
    """`evaluate`, each student's best step and early stop, and the best weights given back after `train`."""

    def _best_metric(self) -> tuple[str, bool]:
        """The metric ranking a student's evaluations ("loss" or "accuracy") and whether greater is better."""
        name = (self.args.metric_for_best_model or "loss").removeprefix("eval_")
        greater = self.args.greater_is_better
        return name, (name != "loss") if greater is None else greater

    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Every active student's accuracy and loss (its training loss: distillation from the teacher, or the labels'
        cross-entropy without one) on the validation data, gathered over the processes; the teacher runs once per
        batch. Logged, and passed to the callbacks' `on_evaluate`, as Trainer's own `evaluate` does."""
        loader = self.get_eval_dataloader(eval_dataset)
        runs = self.active_runs()
        correct = {run.key: torch.zeros((), device=self.args.device) for run in runs}
        losses = {run.key: torch.zeros((), device=self.args.device) for run in runs}
        count = torch.zeros((), device=self.args.device)
        self.group.eval()
        for batch in loader:
            batch = self._prepare_inputs(batch)
            inputs, labels = model_inputs(batch), batch["labels"]
            size = torch.tensor(float(labels.shape[0]), device=self.args.device)
            gathered_labels = self.accelerator.gather_for_metrics(labels)
            count += gathered_labels.shape[0]
            targets = None
            if self.teacher_model is not None:
                targets = teacher_targets(self.teacher_model, self.teacher_recorder, inputs, self.final_tokens)
            for run in runs:
                student = self.group.students[run.index]
                with self.autocast():
                    if targets is None:
                        outputs = student(**inputs, labels=labels)
                        loss = outputs.loss  # the labels' cross-entropy, without smoothing
                    else:
                        teacher_logits, teacher_blocks, teacher_tokens = targets
                        loss, outputs = student_loss(
                            student, run.recorder, inputs, labels, teacher_logits, teacher_blocks, self.args,
                            teacher_tokens,
                        )  # fmt: skip
                predictions = self.accelerator.gather_for_metrics(outputs.logits.argmax(-1))
                correct[run.key] += (predictions == gathered_labels).sum()
                losses[run.key] += self.accelerator.gather(loss.detach().float() * size).sum()
        self.group.train()
        examples = max(count.item(), 1.0)
        metrics = {}
        for run in runs:
            accuracy, loss = correct[run.key].item() / examples, losses[run.key].item() / examples
            metrics[f"{metric_key_prefix}_{run.key}_accuracy"] = accuracy
            metrics[f"{metric_key_prefix}_{run.key}_loss"] = loss
            self._judge(run, accuracy, loss)
        for name in ("accuracy", "loss"):  # the group's means, which Trainer's own best-metric bookkeeping reads
            values = [metrics[f"{metric_key_prefix}_{run.key}_{name}"] for run in runs]
            metrics[f"{metric_key_prefix}_{name}"] = sum(values) / len(values) if values else float("nan")
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics=metrics)
        if not self.active_runs():  # every student stopped early: no further batch is drawn
            self.control.should_training_stop = True
        return metrics

    def _judge(self, run: StudentRun, accuracy: float, loss: float) -> None:
        """Record one evaluation of `run`: its best step (strictly better than the best so far, as Trainer decides
        its best checkpoint) and its early-stopping patience (improvement beyond `early_stopping_threshold`, as
        `EarlyStoppingCallback` decides)."""
        step = self.state.global_step
        run.validation.append((step, accuracy, loss))
        name, greater = self._best_metric()
        value = accuracy if name == "accuracy" else loss
        better = (lambda a, b: a > b) if greater else (lambda a, b: a < b)
        patience = getattr(self.args, "early_stopping_patience", None)
        if patience:
            threshold = self.args.early_stopping_threshold
            if run.best_value is None or (better(value, run.best_value) and abs(value - run.best_value) > threshold):
                run.patience = 0
            else:
                run.patience += 1
        if run.best_value is None or better(value, run.best_value):
            run.best_value, run.best_step = value, step
            if self.args.load_best_model_at_end:
                student = self.group.students[run.index]
                run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in student.state_dict().items()}
        if patience and run.patience >= patience:
            run.stopped_step = step
            self.accelerator.print(
                f"{run.key}: stopped early at optimizer step {step}: validation {name} has not improved by more than "
                f"{self.args.early_stopping_threshold} for {patience} evaluations (best {run.best_value:.4g} at step "
                f"{run.best_step}); the others go on."
            )

    def train(self, *args, **kwargs):
        """Trainer's `train`; then, with `load_best_model_at_end`, every student that was evaluated gets the weights
        of its own best step back."""
        output = super().train(*args, **kwargs)
        if self.args.load_best_model_at_end:
            for run in self.runs:
                if run.best_state is not None and run.error is None:
                    self.group.students[run.index].load_state_dict(run.best_state)
        return output
