"""What distillation reads from the models: the teacher prepared once, block outputs captured by hooks, the teacher's
targets of a batch, and one student's loss against them. Shared by `DistillationTrainer` and
`GroupDistillationTrainer`."""

import torch
from torch import nn

from ..models import BlockLayout, block_output_modules
from .config import DistillationConfig
from .losses import bridged_distillation_loss, cosine_embedding_loss, distillation_loss


__all__ = [
    "BlockOutputRecorder",
    "FinalTokenRecorder",
    "is_bridged",
    "prepare_teacher",
    "student_loss",
    "teacher_targets",
]


class BlockOutputRecorder:
    """Forward hooks that record the attention output and MLP output of every block of `model`, in order, where
    `models.block_output_modules` finds them (the per-family table, or the layout a LowRank student records).

    `pop()` returns the outputs of the last forward pass (per block: the attention output, when the family has
    attention, then the MLP output; `(batch, tokens, hidden)`, or `(batch, h, w, channels)` for ConvNeXt, or
    `(batch * windows, window_tokens, hidden)` for Swin) and clears them; `clear()` before a forward pass drops
    anything recorded by a recompute (gradient checkpointing) in between.
    """

    def __init__(self, model: nn.Module, layout: BlockLayout | None = None):
        model = getattr(model, "module", model)  # DDP-wrapped
        try:
            modules = block_output_modules(model, layout)
        except ValueError as error:
            raise ValueError(
                f"geometric distillation cannot find the block outputs of {type(model).__name__}: {error} Or use "
                "distillation_mode='logits' or 'kd'."
            ) from error
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
        layernorm = getattr(getattr(model, "vit", None), "layernorm", None)  # only ViT teachers have Lift students
        self._handle = layernorm.register_forward_hook(self._record) if layernorm is not None else None

    def _record(self, module, args, output):
        self.tokens = output

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()


def is_bridged(model: nn.Module) -> bool:
    """A student distilled on the teacher's final tokens, not block by block: Lift / WideLast, or a CNN student."""
    model = getattr(model, "module", model)  # DDP-wrapped
    return bool(getattr(model, "distils_final_tokens", False))  # a class attribute of those students


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module,
    recorder: BlockOutputRecorder | None,
    inputs: dict[str, torch.Tensor],
    final_tokens: FinalTokenRecorder | None = None,
):
    """The teacher's logits `(batch, num_labels)`, block outputs (empty without a recorder) and final tokens (None
    without a `final_tokens` recorder), computed in one forward pass on `inputs` (the forward's keyword arguments,
    `data.model_inputs` of a batch)."""
    if recorder is not None:
        recorder.clear()
    logits = teacher(**inputs).logits
    blocks = recorder.pop() if recorder is not None else []
    return logits, blocks, (final_tokens.tokens if final_tokens is not None else None)


def student_loss(
    student: nn.Module,
    recorder: BlockOutputRecorder | None,
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor | None,
    teacher_logits: torch.Tensor,
    teacher_blocks: list[torch.Tensor],
    args: DistillationConfig,
    teacher_tokens: torch.Tensor | None = None,
):
    """Run `student` on `inputs` (the forward's keyword arguments) and return `(loss, outputs)` against the teacher's
    targets; a Lift / WideLast student is distilled with `bridged_distillation_loss` on its bridged tokens."""
    if recorder is not None:
        recorder.clear()
    outputs = student(**inputs)
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
            label_smoothing=args.label_smoothing_factor,
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
        token_mask=inputs.get("attention_mask") if args.feature_tokens == "attended" else None,
        feature_normalization=args.feature_normalization,
        label_smoothing=args.label_smoothing_factor,
    )
    return loss, outputs
