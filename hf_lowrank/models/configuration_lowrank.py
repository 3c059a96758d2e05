"""LowRank configuration: any transformers architecture with some of its linear layers factorized at given ranks."""

import re

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .architectures import BLOCK_LAYOUTS, BlockLayout


__all__ = ["LowRankConfig"]


@strict
class LowRankConfig(PretrainedConfig):
    r"""
    Configuration of a [`LowRankForImageClassification`], [`LowRankForSequenceClassification`] or [`LowRankModel`]:
    the architecture `base_architecture` built from `base_config`, with each linear layer named in
    `factorized_layers` replaced by a rank-r factorization. Every other module is the base architecture's own.

    base_config (`dict` or `PretrainedConfig`, *optional*):
        The base architecture's config (any transformers `model_type`). Defaults to a `ViTConfig`.
    base_architecture (`str`, *optional*, defaults to `"ViTForImageClassification"`):
        The transformers class the student is built from (its task model; `LowRankModel` keeps its backbone).
    factorized_layers (`dict[str, int]`, *optional*):
        Layer name (relative to the base architecture, e.g. ``"vit.layers.0.attention.q_proj"``) -> rank.
    block_layout (`dict`, *optional*):
        The `BlockLayout` (blocks, attention_output, mlp_output) of the base architecture, recorded so that a
        loaded student knows its blocks; defaults to hf_lowrank's table entry for the base `model_type`.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from hf_lowrank import LowRankConfig, LowRankForSequenceClassification
    >>> config = LowRankConfig(
    ...     base_config=BertConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96),
    ...     base_architecture="BertForSequenceClassification",
    ...     factorized_layers={"bert.encoder.layer.0.intermediate.dense": 8},
    ... )
    >>> model = LowRankForSequenceClassification(config)
    ```"""

    model_type = "lowrank"
    sub_configs_defaults = {"base_config": SubConfigSpec(config_class=AutoConfig, model_type="vit")}

    base_config: dict | PretrainedConfig | None = None
    base_architecture: str = "ViTForImageClassification"
    factorized_layers: dict[str, int] | None = None
    block_layout: dict | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The task head is the base architecture's: its labels are the student's (pipelines read config.id2label).
        self.id2label = dict(self.base_config.id2label or {}) or self.id2label
        self.label2id = dict(self.base_config.label2id or {}) or self.label2id
        if self.block_layout is None and self.base_config.model_type in BLOCK_LAYOUTS:
            self.block_layout = dict(vars(BLOCK_LAYOUTS[self.base_config.model_type]))

    def validate_base_architecture(self):
        if not isinstance(self.base_architecture, str) or not re.fullmatch(r"[A-Za-z_]\w*", self.base_architecture):
            raise ValueError(
                f"`base_architecture` must name a transformers model class (e.g. 'ViTForImageClassification'), "
                f"got {self.base_architecture!r}."
            )

    def validate_factorized_layers(self):
        for name, rank in (self.factorized_layers or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"`factorized_layers` keys must be layer names, got {name!r}.")
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
                raise ValueError(f"`factorized_layers[{name!r}]` must be a positive integer rank, got {rank!r}.")

    def validate_block_layout(self):
        if self.block_layout is None:
            return
        fields = {"blocks", "attention_output", "mlp_output"}
        if not isinstance(self.block_layout, dict) or set(self.block_layout) != fields:
            raise ValueError(
                f"`block_layout` must be a dict with exactly the keys {sorted(fields)}, got {self.block_layout!r}."
            )
        try:
            re.compile(self.block_layout["blocks"])
        except (re.error, TypeError) as error:
            raise ValueError(f"`block_layout['blocks']` is not a valid regular expression: {error}.") from error

    def layout(self) -> BlockLayout | None:
        """The base architecture's `BlockLayout` (None when neither recorded nor in hf_lowrank's table)."""
        return BlockLayout(**self.block_layout) if self.block_layout is not None else None
