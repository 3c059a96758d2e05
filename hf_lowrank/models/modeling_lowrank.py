"""PyTorch LowRank: any transformers architecture with some of its linear layers factorized, as one generic student.

A `LowRank*` model holds the base architecture's own model (`self.model`, built from `config.base_config` as
`config.base_architecture`) with the layers of `config.factorized_layers` swapped for `FactorizedLinear` by
`factorize_model` (the one place for module surgery). Forward passes, outputs, attention backends and hidden states
are therefore exactly the base architecture's. Relative imports stay flat (`from .module import name`):
`save_pretrained` copies this file and the ones it imports next to the weights for `trust_remote_code=True` loading.
"""

import os
import re
from collections.abc import Mapping, Sequence

import torch
import transformers
from torch import nn
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from .architectures import BlockLayout, find_blocks, layout_of
from .checkpoint_loading import FactorizedCheckpointMixin
from .configuration_lowrank import LowRankConfig
from .decomposition import InputStatistics, LinearDecomposition, teacher_decompositions
from .factor_init import init_factors
from .factorize import DEFAULT_EXCLUDE_MODULES, factorize_model, plan_factorization
from .inference_layout import DEFAULT_MERGE_AT, inference_layout
from .pretrained_source import HUB_KWARGS, resolve_pretrained_source
from .teacher_weights import copy_teacher_weights


__all__ = [
    "LowRankForImageClassification",
    "LowRankForSequenceClassification",
    "LowRankModel",
    "LowRankPreTrainedModel",
    "backbone_of",
    "base_model_class",
    "block_names",
]


def base_model_class(config: LowRankConfig) -> type[PreTrainedModel]:
    """The transformers class `config.base_architecture` names; an error naming the field when there is none."""
    model_class = getattr(transformers, config.base_architecture, None)
    if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
        raise ValueError(
            f"`base_architecture` {config.base_architecture!r} is not a transformers model class "
            f"(transformers {transformers.__version__})."
        )
    return model_class


def task_class_names(mapping: dict) -> tuple[str, ...]:
    """The class names of a transformers Auto mapping (`MODEL_FOR_*_MAPPING_NAMES`; some entries are tuples)."""
    names = []
    for value in mapping.values():
        names.extend(value if isinstance(value, (tuple, list)) else [value])
    return tuple(dict.fromkeys(names))


def block_names(model: nn.Module, layout: BlockLayout | None = None) -> list[str]:
    """The block patterns that select `model`'s encoder linears: the names of its blocks (`find_blocks`), for
    `plan_factorization(target_modules=...)`."""
    return [name for name, _ in find_blocks(model, layout)]


class FactorAwareInit:
    """The `_init_weights` of a transformers model inside a LowRank student: `init_factors` for a
    `FactorizedLinear`, the model class's own `_init_weights` for everything else. A plain object holding its owner
    (not a closure), so the student pickles and deep-copies with it."""

    def __init__(self, owner: PreTrainedModel, initializer_range: float):
        self.owner = owner
        self.initializer_range = initializer_range

    def __call__(self, module: nn.Module) -> None:
        if not init_factors(module, self.initializer_range):
            type(self.owner)._init_weights(self.owner, module)


def _add_factor_init(model: nn.Module, initializer_range: float) -> None:
    """Extend the `_init_weights` of every transformers model in `model` to `FactorizedLinear` (`init_factors`):
    `PreTrainedModel.initialize_weights` dispatches each sub-model to its own `_init_weights`."""
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module._init_weights = FactorAwareInit(module, initializer_range)


def backbone_of(task_model: nn.Module, layout: BlockLayout | None) -> tuple[str, nn.Module] | None:
    """`(attribute, module)` of a task model's backbone: its `base_model_prefix` attribute (``vit``, ``bert``), else
    the one child holding every block (CLIP's and SigLIP's ``vision_model``); None for a model that is its own
    backbone (a bare `BertModel`) or whose blocks are unknown."""
    prefix = task_model.base_model_prefix
    child = getattr(task_model, prefix, None) if prefix else None
    if isinstance(child, nn.Module):
        return prefix, child
    if layout is None or "For" not in type(task_model).__name__:
        return None
    holders = {name.split(".")[0] for name, _ in find_blocks(task_model, layout)}
    if len(holders) != 1:
        return None
    name = holders.pop()
    return name, task_model.get_submodule(name)


class _Backbone(nn.Module):
    """Holds a task model's backbone under the task model's own attribute name (e.g. ``vit``), so that a
    `LowRankModel` has exactly the parameter names of the `LowRank*For*` model it shares a checkpoint with."""

    def __init__(self, name: str, backbone: nn.Module):
        super().__init__()
        self.name = name
        self.add_module(name, backbone)

    def forward(self, *args, **kwargs):
        return getattr(self, self.name)(*args, **kwargs)

    def get_input_embeddings(self):
        return getattr(self, self.name).get_input_embeddings()


class LowRankPreTrainedModel(FactorizedCheckpointMixin, PreTrainedModel):
    config: LowRankConfig
    config_class = LowRankConfig
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _auto_teacher_class = None  # the Auto class `from_teacher` loads a teacher path with
    _task_classes: tuple[str, ...] = ()  # the base architectures this task class wraps (empty: any)
    _task = "any"

    def record_truncation(self, ranks: dict[str, int]) -> None:
        """Make the config say what `truncate_factorized` left (`ranks`: factorized layer name -> its new rank)."""
        self.config.factorized_layers = {name.removeprefix("model."): r for name, r in ranks.items()}

    def record_merge(self, merged: dict[str, int]) -> None:
        """Make the config say which factorized layers `for_inference` merged to dense (`merged`: name -> rank)."""
        merged = {name.removeprefix("model."): rank for name, rank in merged.items()}
        self.config.merged_layers = {**(self.config.merged_layers or {}), **merged}
        self.config.factorized_layers = {
            name: rank for name, rank in (self.config.factorized_layers or {}).items() if name not in merged
        }

    def for_inference(
        self, backend: str = "eager", merge_at: float = DEFAULT_MERGE_AT, compile_options: dict | None = None
    ) -> "LowRankPreTrainedModel":
        """This student in its inference layout, in place (see `inference_layout`): every factorized layer whose rank
        is at least `merge_at` (0.8) times its break-even rank merged back to a dense `nn.Linear` (same logits), the
        config updated (`merged_layers`), so that `save_pretrained` / `from_pretrained` give the same model; compiled
        with ``backend="inductor"``.

        Example:

        ```python
        >>> student = LowRankForImageClassification.from_pretrained("out/rank-032").for_inference("inductor")
        >>> logits = student(pixel_values).logits  # the first call compiles (tens of seconds for a ViT-B)
        ```"""
        return inference_layout(self, backend, merge_at, compile_options)

    def __init__(self, config: LowRankConfig):
        super().__init__(config)
        if self._task_classes and config.base_architecture not in self._task_classes:
            raise ValueError(
                f"{type(self).__name__} wraps {self._task} models, but `base_architecture` is "
                f"{config.base_architecture!r}: load or build it with the class of its task (LowRankModel for a "
                f"backbone), or give a base architecture among transformers' {self._task} classes (e.g. "
                f"{', '.join(self._task_classes[:3])})."
            )
        self.model = self._build_base(config)
        _add_factor_init(self.model, getattr(config.base_config, "initializer_range", 0.02))
        if config.factorized_layers:
            factorize_model(
                self.model,
                {re.escape(name): rank for name, rank in config.factorized_layers.items()},
                target_modules=list(config.factorized_layers),
                exclude_modules=(),
                init="random",
            )
        model_class = base_model_class(config)
        self.main_input_name = model_class.main_input_name  # e.g. pixel_values
        self.supports_gradient_checkpointing = model_class.supports_gradient_checkpointing
        self.post_init()

    def _build_base(self, config: LowRankConfig) -> nn.Module:
        """The base architecture's task model, randomly initialised."""
        return base_model_class(config)(config.base_config)

    @torch.no_grad()
    def _init_weights(self, module):
        """Nothing of its own: every module sits in the base architecture's model, which initialises it (its
        `_init_weights`, extended to `FactorizedLinear` by `_add_factor_init`)."""

    @property
    def base_model(self) -> nn.Module:
        """The base architecture's backbone (e.g. its `ViTModel`; see `backbone_of`), else its whole model."""
        if isinstance(self.model, _Backbone):
            return getattr(self.model, self.model.name)
        found = backbone_of(self.model, self.config.layout())
        return found[1] if found is not None else self.model

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with every LowRank class of this checkpoint in `auto_map`, so that
        `trust_remote_code=True` loads it as its task model and as the bare backbone (`AutoModel`)."""
        self.config.auto_map = {
            **(getattr(self.config, "auto_map", None) or {}),
            "AutoModel": "modeling_lowrank.LowRankModel",
        }
        return super().save_pretrained(save_directory, *args, **kwargs)

    def forward(self, *args, **kwargs: Unpack[TransformersKwargs]):
        """The base architecture's forward, with the same inputs and outputs."""
        return self.model(*args, **kwargs)

    @classmethod
    @torch.no_grad()
    def from_teacher(
        cls,
        teacher: PreTrainedModel | str | os.PathLike,
        rank: int | float | dict[str, int | float] = 32,
        exclude_modules: Sequence[str] | None = None,
        layout: BlockLayout | None = None,
        init: str = "svd",
        calibration: Mapping[str, InputStatistics] | None = None,
        alpha: float = 0.5,
        decompositions: Mapping[str, LinearDecomposition] | None = None,
        **from_pretrained_kwargs,
    ) -> "LowRankPreTrainedModel":
        """A student of `teacher` (any transformers model whose blocks hf_lowrank's table knows, or `layout`): the
        encoder linears (every `nn.Linear` inside a block) factorized at `rank` and SVD-initialised, every other
        weight copied.

        Args:
            teacher: a transformers model, or a local directory / Hub id to load one from (with
                `from_pretrained_kwargs`) with this class's Auto class.
            rank: an integer (every encoder linear), a float in (0, 1] (per layer, the smallest rank keeping that
                fraction of the teacher weight's spectral energy) or a pattern -> rank mapping (layers matching no
                pattern stay dense); resolved against the teacher and stored per layer in `factorized_layers`.
            exclude_modules: patterns of encoder linears to keep dense (heads and poolers always are).
            layout: the blocks of a family hf_lowrank's table does not know (see `BlockLayout`).
            init: the factors' start: ``"svd"`` (truncated SVD of each weight), ``"whitened"``, ``"activation"`` or
                ``"fisher"`` (weighted by `calibration`; see `decomposition.py`).
            calibration: teacher layer name -> `InputStatistics` (`collect_input_statistics` on the teacher).
            alpha: the ``"activation"`` init's exponent.
            decompositions: the teacher's precomputed `LinearDecomposition`s (`decompose_layers`) of `init`: a
                sweep decomposes once and builds every rank from them.

        Returns:
            The student, on the teacher's device and in its dtype, in eval mode as `from_pretrained` returns.
        """
        if isinstance(teacher, (str, os.PathLike)):
            teacher = cls._load_teacher(teacher, **from_pretrained_kwargs)
        if not isinstance(teacher, PreTrainedModel):
            raise TypeError(f"from_teacher expects a transformers PreTrainedModel, got {type(teacher).__name__}.")
        layout = layout_of(teacher, layout)
        plan = plan_factorization(
            teacher,
            rank,
            target_modules=block_names(teacher, layout),
            exclude_modules=tuple(DEFAULT_EXCLUDE_MODULES) + tuple(exclude_modules or ()),
        )
        config = LowRankConfig(
            base_config=_plain_config(teacher.config),
            base_architecture=type(teacher).__name__,
            factorized_layers={layer.name: layer.rank for layer in plan},
            block_layout=dict(vars(layout)),
        )
        weight = next(teacher.parameters())
        student = cls(config).to(device=weight.device, dtype=weight.dtype)
        decompositions = teacher_decompositions(
            teacher, [layer.name for layer in plan], init, calibration, alpha, decompositions
        )
        uncovered = copy_teacher_weights(student.model, teacher, decompositions=decompositions)
        if uncovered:
            raise ValueError(f"the teacher has no weights for student parameters {uncovered[:8]}.")
        return student.eval()

    @classmethod
    def _load_teacher(cls, teacher: str | os.PathLike, **from_pretrained_kwargs) -> PreTrainedModel:
        hub_kwargs = {key: from_pretrained_kwargs[key] for key in HUB_KWARGS if key in from_pretrained_kwargs}
        source = resolve_pretrained_source(teacher, "teacher", model_types=None, **hub_kwargs)
        return cls._auto_teacher_class.from_pretrained(source.name_or_path, **from_pretrained_kwargs)


def _plain_config(config: PretrainedConfig) -> PretrainedConfig:
    """A copy of a teacher's config without the fields a saved checkpoint adds (its architectures, auto_map)."""
    copied = config.__class__.from_dict(config.to_dict())
    copied.architectures = None
    return copied


class LowRankForImageClassification(LowRankPreTrainedModel):
    """An image classifier of any supported family with factorized encoder linears (its inputs and outputs)."""

    main_input_name = "pixel_values"
    _auto_teacher_class = AutoModelForImageClassification
    _task_classes = task_class_names(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)
    _task = "image-classification"

    def forward(self, pixel_values=None, labels=None, **kwargs: Unpack[TransformersKwargs]):
        """The base classifier's forward: `pixel_values` `(batch, channels, height, width)`, optional `labels`
        `(batch,)`; its outputs (logits `(batch, num_labels)`)."""
        return self.model(pixel_values=pixel_values, labels=labels, **kwargs)


class LowRankForSequenceClassification(LowRankPreTrainedModel):
    """A sequence classifier of any supported family with factorized encoder linears (its inputs and outputs)."""

    main_input_name = "input_ids"
    _auto_teacher_class = AutoModelForSequenceClassification
    _task_classes = task_class_names(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)
    _task = "sequence-classification"

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        **kwargs: Unpack[TransformersKwargs],
    ):
        """The base classifier's forward: token ids (or embeddings) `(batch, tokens)`, their masks, optional
        `labels` `(batch,)`; its outputs (logits `(batch, num_labels)`). Inputs left None are not passed (a
        DistilBERT takes no `token_type_ids`)."""
        named = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
            "labels": labels,
        }
        return self.model(**{key: value for key, value in named.items() if value is not None}, **kwargs)


class LowRankModel(LowRankPreTrainedModel):
    """The bare backbone of a LowRank task model (the task model's `base_model`, same parameter names; a task model
    without a separate backbone is kept whole)."""

    _auto_teacher_class = transformers.AutoModel

    def _build_base(self, config: LowRankConfig) -> nn.Module:
        """The task model's backbone (`backbone_of`), or the whole task model when it has none of its own."""
        task_model = super()._build_base(config)
        found = backbone_of(task_model, config.layout())
        if found is None:
            return task_model
        name, backbone = found
        if not isinstance(backbone, PreTrainedModel):  # CLIP's vision_model: initialised as its task model does
            self._base_init_weights = task_model._init_weights
        return _Backbone(name, backbone)

    @torch.no_grad()
    def _init_weights(self, module):
        """A backbone that is not a transformers model itself is initialised by its task model's `_init_weights`."""
        base_init = self.__dict__.get("_base_init_weights")
        if base_init is not None and not init_factors(
            module, getattr(self.config.base_config, "initializer_range", 0.02)
        ):
            base_init(module)
