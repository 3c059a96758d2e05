"""`DistillationConfig`: `TrainingArguments` plus the distillation method's own fields."""

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .losses import DISTILLATION_MODES, FEATURE_NORMALIZATIONS, FEATURE_TOKENS


__all__ = ["DistillationConfig"]


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
    feature_tokens: str = field(
        default="attended",
        metadata={
            "help": "Tokens the geometric block terms count: attended (those a text batch's attention mask keeps; "
            "every token of an image) or all (padding positions too, as earlier versions did).",
            "choices": list(FEATURE_TOKENS),
        },
    )
    feature_normalization: str = field(
        default="none",
        metadata={
            "help": "Scale of each block output's MSE in the geometric mode: none (the paper's plain MSE), block "
            "(divided by the teacher's mean square of that output) or channel (each channel's error divided by "
            "the teacher's mean square of that channel, so that a few very large channels do not dominate).",
            "choices": list(FEATURE_NORMALIZATIONS),
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature T of the kd mode (> 0)."})
    ce_weight: float = field(
        default=0.0, metadata={"help": "Weight of an added cross-entropy on the labels (>= 0; 0 turns it off)."}
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop a student after this many evaluations without improvement of its --metric_for_best_model "
            "(transformers' EarlyStoppingCallback meaning, applied to each student alone: the others go on). Needs "
            "evaluation during training (--eval_strategy and a validation split). Default: no early stopping."
        },
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata={"help": "How much a student's metric must improve to reset its early-stopping patience (>= 0)."},
    )
    # Inputs are pixel_values plus bookkeeping columns (labels, index) that the loss reads; keep them.
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Trainer's column pruning; off, since the loss reads `labels`."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.distillation_mode not in DISTILLATION_MODES:
            raise ValueError(f"distillation_mode must be one of {DISTILLATION_MODES}, got {self.distillation_mode!r}.")
        if self.feature_tokens not in FEATURE_TOKENS:
            raise ValueError(f"feature_tokens must be one of {FEATURE_TOKENS}, got {self.feature_tokens!r}.")
        if self.feature_normalization not in FEATURE_NORMALIZATIONS:
            raise ValueError(
                f"feature_normalization must be one of {FEATURE_NORMALIZATIONS}, got {self.feature_normalization!r}."
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}.")
        if not self.ce_weight >= 0:
            raise ValueError(f"ce_weight must be >= 0, got {self.ce_weight!r}.")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be >= 1 (or unset), got {self.early_stopping_patience!r}.")
        if not self.early_stopping_threshold >= 0:
            raise ValueError(f"early_stopping_threshold must be >= 0, got {self.early_stopping_threshold!r}.")
