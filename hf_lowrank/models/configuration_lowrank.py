"""LowRank configuration: any transformers architecture with some of its linear layers factorized at given ranks."""

import copy
import re

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .architectures import BLOCK_LAYOUTS, BlockLayout


__all__ = ["LowRankConfig"]

# Fields of the wrapper config that the base architecture's model reads from its own config.
SHARED_WITH_BASE = ("id2label", "label2id", "problem_type", "output_hidden_states", "return_dict")


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
    merged_layers (`dict[str, int]`, *optional*):
        Layer name -> the rank it had, for the layers `for_inference` merged back to a dense `nn.Linear` (at or near
        their break-even rank, where dense runs faster: the same function). Not in `factorized_layers`.
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
    merged_layers: dict[str, int] | None = None
    block_layout: dict | None = None

    def __post_init__(self, **kwargs):
        if isinstance(self.base_config, PretrainedConfig):  # its own copy: a teacher's config is never changed
            self.base_config = copy.deepcopy(self.base_config)
        given_labels = self.id2label is not None or kwargs.get("num_labels") is not None
        given_problem = self.problem_type is not None
        super().__post_init__(**kwargs)
        # The task head is the base architecture's, and one set of labels serves both configs (pipelines read
        # config.id2label, the head base_config's): the ones given here, else the base config's.
        if given_labels:
            self.base_config.id2label, self.base_config.label2id = dict(self.id2label), dict(self.label2id)
        else:
            self.id2label = dict(self.base_config.id2label or {}) or self.id2label
            self.label2id = dict(self.base_config.label2id or {}) or self.label2id
        if given_problem:
            self.base_config.problem_type = self.problem_type
        else:
            self.problem_type = self.base_config.problem_type
        if self.block_layout is None and self.base_config.model_type in BLOCK_LAYOUTS:
            self.block_layout = dict(vars(BLOCK_LAYOUTS[self.base_config.model_type]))

    def __setattr__(self, key, value):
        super().__setattr__(key, value)
        # After construction, what the task head and the forward read is kept in step with the base config.
        if key in SHARED_WITH_BASE and self.__dict__.get("_post_init_done"):
            base = self.__dict__.get("base_config")
            if isinstance(base, PretrainedConfig):
                setattr(base, key, copy.copy(value))

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The base architecture's text config (its vocabulary, for `resize_token_embeddings`)."""
        return self.base_config.get_text_config(decoder=decoder, encoder=encoder)

    def validate_base_architecture(self):
        if not isinstance(self.base_architecture, str) or not re.fullmatch(r"[A-Za-z_]\w*", self.base_architecture):
            raise ValueError(
                f"`base_architecture` must name a transformers model class (e.g. 'ViTForImageClassification'), "
                f"got {self.base_architecture!r}."
            )

    def validate_factorized_layers(self):
        _check_layer_ranks("factorized_layers", self.factorized_layers)

    def validate_merged_layers(self):
        _check_layer_ranks("merged_layers", self.merged_layers)
        both = sorted(set(self.merged_layers or {}) & set(self.factorized_layers or {}))
        if both:
            raise ValueError(
                f"`merged_layers` and `factorized_layers` both name {both[:4]}: a layer is one or the other."
            )

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


def _check_layer_ranks(field: str, ranks) -> None:
    """A layer name -> positive integer rank mapping (or None), the error naming `field` and the entry."""
    for name, rank in (ranks or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"`{field}` keys must be layer names, got {name!r}.")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"`{field}[{name!r}]` must be a positive integer rank, got {rank!r}.")
