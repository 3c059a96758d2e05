"""`DistillationTrainer`: a transformers `Trainer` that distils a student from a frozen teacher."""

from torch import nn
from transformers import Trainer

from ..data import model_inputs
from .config import DistillationConfig
from .targets import (
    BlockOutputRecorder,
    FinalTokenRecorder,
    is_bridged,
    prepare_teacher,
    student_loss,
    teacher_targets,
)


__all__ = ["DistillationTrainer"]


class DistillationTrainer(Trainer):
    """`Trainer` that distils `model` (the student) from a frozen `teacher_model`.

    The teacher is moved to the training device once, in eval mode with gradients off; it is not wrapped by DDP
    and not part of the saved model. The loss is `hf_lowrank.losses.distillation_loss` of `args.distillation_mode`.
    """

    # compute_loss returns a per-batch mean: Trainer divides it by the gradient-accumulation steps itself.
    loss_is_scaled_for_ga = False

    def __init__(self, model: nn.Module, teacher_model: nn.Module, args: DistillationConfig, **kwargs):
        if not isinstance(args, DistillationConfig):
            raise TypeError(f"args must be a DistillationConfig, got {type(args).__name__}.")
        super().__init__(model=model, args=args, **kwargs)
        # ViT's forward takes **kwargs: without this Trainer would skip the accumulation division and scale the
        # loss by the world size under DDP.
        self.model_accepts_loss_kwargs = False
        self.teacher_model = prepare_teacher(teacher_model, self.accelerator.device)
        bridged = is_bridged(model)
        geometric = args.distillation_mode == "geometric" and not bridged
        self._teacher_recorder = BlockOutputRecorder(self.teacher_model) if geometric else None
        self._student_recorder = BlockOutputRecorder(self.model) if geometric else None
        self._final_tokens = FinalTokenRecorder(self.teacher_model) if bridged else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forward_inputs = model_inputs(inputs)
        teacher_logits, teacher_blocks, teacher_tokens = teacher_targets(
            self.teacher_model, self._teacher_recorder, forward_inputs, self._final_tokens
        )
        loss, outputs = student_loss(
            model,
            self._student_recorder,
            forward_inputs,
            inputs.get("labels"),
            teacher_logits,
            teacher_blocks,
            self.args,
            teacher_tokens,
        )
        return (loss, outputs) if return_outputs else loss
