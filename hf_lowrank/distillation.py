"""Distillation of a student from a frozen teacher: `DistillationConfig`, `DistillationTrainer`, and the pieces the
lock-step sweep shares with it (teacher preparation, block-output capture, one student's loss)."""

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.models.vit.modeling_vit import ViTAttention, ViTMLP

from .losses import DISTILLATION_MODES, bridged_distillation_loss, cosine_embedding_loss, distillation_loss


__all__ = [
    "BlockOutputRecorder",
    "DistillationConfig",
    "FinalTokenRecorder",
    "DistillationTrainer",
    "prepare_teacher",
    "student_loss",
    "teacher_targets",
]

# The two outputs of every ViT block the geometric loss aligns: attention output (before the residual) and MLP output.
BLOCK_OUTPUT_TYPES = (ViTAttention, ViTMLP)


@dataclass
class DistillationConfig(TrainingArguments):
    """`TrainingArguments` plus the distillation method's own fields. Every other field keeps its meaning."""

    distillation_mode: str = field(
        default="geometric",
        metadata={
            "help": "geometric: MSE + (1 - cosine) on every block's attention and MLP output and on the logits "
            "(the paper's method); logits: MSE + (1 - cosine) on the logits only; kd: KL divergence on "
            "temperature-softened logits, times T^2.",
            "choices": list(DISTILLATION_MODES),
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature T of the kd mode (> 0)."})
    ce_weight: float = field(
        default=0.0, metadata={"help": "Weight of an added cross-entropy on the labels (>= 0; 0 turns it off)."}
    )
    # Inputs are pixel_values plus bookkeeping columns (labels, index) that the loss reads; keep them.
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Trainer's column pruning; off, since the loss reads `labels`."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.distillation_mode not in DISTILLATION_MODES:
            raise ValueError(f"distillation_mode must be one of {DISTILLATION_MODES}, got {self.distillation_mode!r}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}.")
        if not self.ce_weight >= 0:
            raise ValueError(f"ce_weight must be >= 0, got {self.ce_weight!r}.")


class BlockOutputRecorder:
    """Forward hooks that record the attention output and MLP output of every ViT block of `model`, in order.

    `pop()` returns the outputs of the last forward pass (`2 * num_blocks` tensors of shape `(batch, tokens,
    hidden)`) and clears them; `clear()` before a forward pass drops anything recorded by a recompute
    (gradient checkpointing) in between.
    """

    def __init__(self, model: nn.Module):
        modules = [m for m in model.modules() if isinstance(m, BLOCK_OUTPUT_TYPES)]
        if not modules:
            raise ValueError(
                f"{type(model).__name__} has no ViT blocks (ViTAttention / ViTMLP modules) whose outputs geometric "
                "distillation could align; use distillation_mode='logits' or 'kd'."
            )
        self.num_outputs = len(modules)
        self._outputs: list[torch.Tensor] = []
        self._handles = [m.register_forward_hook(self._record) for m in modules]

    def _record(self, module, args, output):
        self._outputs.append(output[0] if isinstance(output, tuple) else output)

    def clear(self) -> None:
        self._outputs = []

    def pop(self) -> list[torch.Tensor]:
        outputs, self._outputs = self._outputs, []
        return outputs

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def prepare_teacher(teacher: nn.Module, device: torch.device | str) -> nn.Module:
    """The teacher as every distillation path uses it: on `device`, in eval mode, with gradients off."""
    teacher = teacher.to(device).eval()
    teacher.requires_grad_(False)
    return teacher


class FinalTokenRecorder:
    """A forward hook on a ViT classifier's final layer norm: its normalised final tokens `(batch, tokens, dim)`,
    the targets of Lift / WideLast feature distillation."""

    def __init__(self, model: nn.Module):
        self.tokens = None
        self._handle = model.vit.layernorm.register_forward_hook(self._record)

    def _record(self, module, args, output):
        self.tokens = output

    def remove(self) -> None:
        self._handle.remove()


def is_bridged(model: nn.Module) -> bool:
    """A student distilled on the teacher's final tokens, not block by block: Lift / WideLast, or a CNN student."""
    from .cnn_students import CNNEmbeddingStudent

    model = getattr(model, "module", model)  # DDP-wrapped
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type == "bridged_vit" or isinstance(model, CNNEmbeddingStudent)


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module,
    recorder: BlockOutputRecorder | None,
    pixel_values: torch.Tensor,
    final_tokens: FinalTokenRecorder | None = None,
):
    """The teacher's logits `(batch, num_labels)`, block outputs (empty without a recorder) and final tokens (None
    without a `final_tokens` recorder), computed in one forward pass."""
    if recorder is not None:
        recorder.clear()
    logits = teacher(pixel_values=pixel_values).logits
    blocks = recorder.pop() if recorder is not None else []
    return logits, blocks, (final_tokens.tokens if final_tokens is not None else None)


def student_loss(
    student: nn.Module,
    recorder: BlockOutputRecorder | None,
    pixel_values: torch.Tensor,
    labels: torch.Tensor | None,
    teacher_logits: torch.Tensor,
    teacher_blocks: list[torch.Tensor],
    args: DistillationConfig,
    teacher_tokens: torch.Tensor | None = None,
):
    """Run `student` on `pixel_values` and return `(loss, outputs)` against the teacher's targets; a Lift /
    WideLast student is distilled with `bridged_distillation_loss` on its bridged tokens."""
    if recorder is not None:
        recorder.clear()
    outputs = student(pixel_values=pixel_values)
    if getattr(outputs, "student_embedding", None) is not None:  # a CNN student: cosine on the embedding
        return cosine_embedding_loss(outputs.student_embedding, teacher_tokens[:, 0]), outputs
    if getattr(outputs, "bridged_tokens", None) is not None:
        loss = bridged_distillation_loss(
            args.distillation_mode,
            outputs.logits,
            teacher_logits,
            outputs.bridged_tokens,
            teacher_tokens,
            labels=labels,
            ce_weight=args.ce_weight,
            temperature=args.temperature,
        )
        return loss, outputs
    loss = distillation_loss(
        args.distillation_mode,
        outputs.logits,
        teacher_logits,
        student_blocks=recorder.pop() if recorder is not None else (),
        teacher_blocks=teacher_blocks,
        labels=labels,
        ce_weight=args.ce_weight,
        temperature=args.temperature,
    )
    return loss, outputs


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
        pixel_values = inputs["pixel_values"]
        teacher_logits, teacher_blocks, teacher_tokens = teacher_targets(
            self.teacher_model, self._teacher_recorder, pixel_values, self._final_tokens
        )
        loss, outputs = student_loss(
            model,
            self._student_recorder,
            pixel_values,
            inputs.get("labels"),
            teacher_logits,
            teacher_blocks,
            self.args,
            teacher_tokens,
        )
        return (loss, outputs) if return_outputs else loss
