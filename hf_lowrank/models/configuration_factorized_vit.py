"""FactorizedViT configuration: a `ViTConfig` plus the rank of its factorized encoder linears."""

import re

from huggingface_hub.dataclasses import strict
from transformers import ViTConfig

from .architectures import BLOCK_LAYOUTS


__all__ = ["FactorizedViTConfig"]


@strict
class FactorizedViTConfig(ViTConfig):
    r"""
    Configuration of a [`FactorizedViTModel`]: a ViT whose encoder linear layers (query, key, value, attention output,
    MLP fc1 and fc2 of every block) are rank-`rank` factorizations. Embeddings, layer norms, pooler and classifier stay
    dense. Every other field is [`ViTConfig`]'s.

    Layer names are relative to the encoder model, e.g. ``"layers.3.mlp.fc1"``; a pattern names a layer when it is a
    run of whole dotted components of its name (``"fc1"``, ``"layers.3"``) or fully matches it as a regular
    expression.

    rank (`int`, *optional*, defaults to 32):
        Bottleneck width of every factorized layer not named in `rank_pattern`. At most `min(in, out)` of each layer.
    rank_pattern (`dict[str, int]`, *optional*):
        Per-layer overrides: pattern -> rank, the first matching pattern wins.
    exclude_modules (`list[str]`, *optional*):
        Patterns of encoder linear layers to keep dense (e.g. ``["o_proj"]`` or ``["layers.0"]``).

    Example:

    ```python
    >>> from hf_lowrank import FactorizedViTConfig, FactorizedViTForImageClassification
    >>> config = FactorizedViTConfig(rank=32, rank_pattern={"fc2": 64})
    >>> model = FactorizedViTForImageClassification(config)
    ```"""

    model_type = "factorized_vit"
    # Its blocks are ViT's (a class attribute, not a saved field): geometric distillation reads it.
    block_layout = dict(vars(BLOCK_LAYOUTS["vit"]))

    rank: int = 32
    rank_pattern: dict[str, int] | None = None
    exclude_modules: list[str] | None = None

    def validate_rank(self):
        if isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(f"`rank` must be a positive integer, got {self.rank!r}.")

    def validate_rank_pattern(self):
        for pattern, value in (self.rank_pattern or {}).items():
            _check_pattern("rank_pattern", pattern)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`rank_pattern[{pattern!r}]` must be a positive integer, got {value!r}.")

    def validate_exclude_modules(self):
        for pattern in self.exclude_modules or []:
            _check_pattern("exclude_modules", pattern)

    def rank_spec(self) -> dict[str, int]:
        """Pattern -> rank mapping for `factorize_model`: the overrides first, then `rank` for every other layer."""
        return {**(self.rank_pattern or {}), ".*": self.rank}


def _check_pattern(field: str, pattern) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"`{field}` entries must be non-empty strings, got {pattern!r}.")
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"`{field}` entry {pattern!r} is not a valid pattern: {error}.") from error
