"""BridgedViT configuration: a student ViT whose final tokens reach the teacher's width through a bridge."""

from huggingface_hub.dataclasses import strict
from transformers import ViTConfig


__all__ = ["BRIDGES", "BridgedViTConfig"]

BRIDGES = ("lift", "widelast")


@strict
class BridgedViTConfig(ViTConfig):
    r"""
    Configuration of a [`BridgedViTForImageClassification`], the students of the encoding-mismatch paper: a ViT of
    width `hidden_size` (the student's, at most the teacher's) whose final tokens are brought to the teacher's width
    `teacher_hidden_size`, where the classifier and the feature distillation work. Every other field is
    [`ViTConfig`]'s.

    bridge (`str`, *optional*, defaults to `"lift"`):
        `"lift"`: all blocks at the student's width, then a linear projector to the teacher's width, kept at
        inference. `"widelast"`: the blocks before the last at the student's width, a linear widening, and only the
        last block at the teacher's width (`teacher_num_attention_heads`, `teacher_intermediate_size`).
    teacher_hidden_size (`int`, *optional*, defaults to 768):
        Width of the teacher's tokens.
    teacher_num_attention_heads (`int`, *optional*, defaults to 12):
        Heads of the WideLast block.
    teacher_intermediate_size (`int`, *optional*, defaults to 3072):
        MLP width of the WideLast block.
    rank (`int`, *optional*):
        When set, every linear layer of the student-width blocks is factorized at this rank (as in
        [`FactorizedViTConfig`]); the bridge and the WideLast block stay dense.
    """

    model_type = "bridged_vit"

    bridge: str = "lift"
    teacher_hidden_size: int = 768
    teacher_num_attention_heads: int = 12
    teacher_intermediate_size: int = 3072
    rank: int | None = None

    def validate_bridge(self):
        if self.bridge not in BRIDGES:
            raise ValueError(f"`bridge` must be one of {BRIDGES}, got {self.bridge!r}.")
        if self.hidden_size > self.teacher_hidden_size:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) is wider than `teacher_hidden_size` "
                f"({self.teacher_hidden_size}): Lift and WideLast bring a narrower student up to the teacher's width."
            )
        if self.bridge == "widelast":
            if self.num_hidden_layers < 2:
                raise ValueError(
                    f"`num_hidden_layers` must be at least 2 for WideLast (narrow blocks, then the wide last block), "
                    f"got {self.num_hidden_layers}."
                )
            if self.teacher_hidden_size % self.teacher_num_attention_heads:
                raise ValueError(
                    f"`teacher_hidden_size` ({self.teacher_hidden_size}) is not a multiple of "
                    f"`teacher_num_attention_heads` ({self.teacher_num_attention_heads})."
                )

    def validate_rank(self):
        if self.rank is not None and (isinstance(self.rank, bool) or self.rank < 1):
            raise ValueError(f"`rank` must be a positive integer or None, got {self.rank!r}.")
