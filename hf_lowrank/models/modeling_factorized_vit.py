"""FactorizedViT: the ViT student classes of hf_lowrank 0.1.0, now thin aliases of the one student implementation.

`FactorizedViTConfig` checkpoints (model type `factorized_vit`: 0.1.0 and the sweeps before every family's students
were `LowRank*`) keep loading: `from_pretrained` turns the config into the equivalent `LowRankConfig`
(`lowrank_config_of`) and the checkpoint's keys (`vit.*`, `classifier.*`, or a bare backbone's `embeddings.*`,
`layers.*`) into the LowRank student's (`model.vit.*`, `model.classifier.*`), and returns a
`LowRankForImageClassification` (`LowRankModel` for the backbone). Constructing one from a config and `from_teacher`
return LowRank students too, so there is one student implementation; they save as LowRank checkpoints. Relative
imports stay flat (`from .module import name`) for `trust_remote_code` loading.
"""

import os
import re
from collections.abc import Mapping

import torch
from transformers import PretrainedConfig, ViTConfig, ViTForImageClassification, ViTModel

from .architectures import BLOCK_LAYOUTS
from .checkpoint_loading import check_checkpoint_path
from .configuration_factorized_vit import FactorizedViTConfig
from .configuration_lowrank import LowRankConfig
from .decomposition import InputStatistics, LinearDecomposition
from .factorize import plan_factorization
from .factorized_linear import as_integer
from .modeling_lowrank import LowRankForImageClassification, LowRankModel, LowRankPreTrainedModel
from .pretrained_source import HUB_KWARGS, load_vit_teacher


__all__ = [
    "FactorizedViTForImageClassification",
    "FactorizedViTModel",
    "FactorizedViTPreTrainedModel",
    "lowrank_config_of",
]

ENCODER_LAYERS = "layers"  # the ModuleList of ViTLayer blocks inside a ViTModel
OWN_FIELDS = ("rank", "rank_pattern", "exclude_modules")  # FactorizedViTConfig's fields beyond ViTConfig's
SAVED_ONLY = ("model_type", "architectures", "auto_map", "transformers_version")
# A FactorizedViT checkpoint's keys (a task model's, or a bare backbone's) -> the LowRank student's.
FACTORIZED_VIT_KEYS = {
    r"^vit\.": "model.vit.",
    r"^classifier\.": "model.classifier.",
    r"^(embeddings|layers|layernorm|pooler)\.": r"model.vit.\1.",
}


def lowrank_config_of(config: FactorizedViTConfig | LowRankConfig) -> LowRankConfig:
    """The `LowRankConfig` of the student a `FactorizedViTConfig` describes: its ViT fields as the base config, and
    every encoder linear its `rank`, `rank_pattern` and `exclude_modules` factorize, at its rank (resolved as 0.1.0
    did, against the encoder's layer names). A `LowRankConfig` is returned as it is."""
    if isinstance(config, LowRankConfig):
        return config
    if not isinstance(config, FactorizedViTConfig):
        raise TypeError(f"expected a FactorizedViTConfig or a LowRankConfig, got {type(config).__name__}.")
    vit_config = ViTConfig()
    for key, value in config.to_dict().items():  # set, as the config's own were: not validated again together
        if key not in OWN_FIELDS + SAVED_ONLY:
            setattr(vit_config, key, value)
    vit_config._attn_implementation = config._attn_implementation
    with torch.device("meta"):  # the layer names and shapes only: no memory, no initialisation
        encoder = ViTModel(vit_config, add_pooling_layer=False)
    plan = plan_factorization(
        encoder, config.rank_spec(), target_modules=[ENCODER_LAYERS], exclude_modules=config.exclude_modules or ()
    )
    lowrank = LowRankConfig(
        base_config=vit_config,
        base_architecture="ViTForImageClassification",
        factorized_layers={f"vit.{layer.name}": layer.rank for layer in plan},
        block_layout=dict(vars(BLOCK_LAYOUTS["vit"])),
    )
    lowrank._attn_implementation = config._attn_implementation
    return lowrank


class FactorizedViTPreTrainedModel(LowRankPreTrainedModel):
    """An alias: `cls(config)` and `cls.from_pretrained(...)` return the `_lowrank_class` student (see the module
    docstring). `config_class` stays `FactorizedViTConfig`, so the Auto classes load `factorized_vit` checkpoints
    through it."""

    config_class = FactorizedViTConfig
    _lowrank_class: type[LowRankPreTrainedModel] = LowRankPreTrainedModel

    def __new__(cls, config, *args, **kwargs):
        return cls._lowrank_class(lowrank_config_of(config))

    @classmethod
    def _from_config(cls, config, **kwargs):
        return cls._lowrank_class._from_config(lowrank_config_of(config), **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs):
        """The LowRank student saved at `pretrained_model_name_or_path`: a LowRank checkpoint as it is; a
        `factorized_vit` one through transformers' own loading of its config (with the usual config overrides,
        e.g. `num_labels=3`), built as the LowRank student (`cls(config)`) with its keys renamed."""
        check_checkpoint_path(pretrained_model_name_or_path, kwargs)  # before the config is read
        config = kwargs.get("config")
        if config is None:
            hub = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
            model_type = PretrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub)[0].get("model_type")
        else:
            model_type = config.model_type
        if model_type == LowRankConfig.model_type:
            return cls._lowrank_class.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        kwargs.setdefault("key_mapping", FACTORIZED_VIT_KEYS)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


class FactorizedViTModel(FactorizedViTPreTrainedModel, LowRankModel):
    """The backbone of a FactorizedViT student: a `LowRankModel` of a ViT (its `ViTModel` without a pooler)."""

    main_input_name = "pixel_values"
    _lowrank_class = LowRankModel

    def forward(self, pixel_values=None, **kwargs):  # the signature the class shows; instances are LowRankModel
        return LowRankModel.forward(self, pixel_values=pixel_values, **kwargs)


class FactorizedViTForImageClassification(FactorizedViTPreTrainedModel, LowRankForImageClassification):
    """A FactorizedViT student: a `LowRankForImageClassification` of a ViT."""

    _lowrank_class = LowRankForImageClassification

    @classmethod
    @torch.no_grad()
    def from_teacher(
        cls,
        teacher: ViTForImageClassification | str | os.PathLike,
        rank: int | float | dict[str, int | float] = 32,
        rank_pattern: dict[str, int] | None = None,
        exclude_modules: list[str] | None = None,
        init: str = "svd",
        calibration: Mapping[str, InputStatistics] | None = None,
        alpha: float = 0.5,
        decompositions: Mapping[str, LinearDecomposition] | None = None,
        **from_pretrained_kwargs,
    ) -> LowRankForImageClassification:
        """`LowRankForImageClassification.from_teacher` for a ViT teacher, with 0.1.0's `rank_pattern` (per-layer
        overrides of an int `rank`, patterns relative to the encoder, e.g. ``"layers.3"`` or ``"fc2"``).

        Args:
            teacher: a `ViTForImageClassification`, or a local directory / Hub id to load one from (a checkpoint of
                another family is refused).
            rank, exclude_modules, init, calibration, alpha, decompositions: as in
                `LowRankForImageClassification.from_teacher`.
        """
        if isinstance(teacher, (str, os.PathLike)):
            teacher = load_vit_teacher(teacher, **from_pretrained_kwargs)
        if not isinstance(teacher, ViTForImageClassification):
            raise TypeError(
                "from_teacher supports ViTForImageClassification teachers (model_type 'vit'), got "
                f"{type(teacher).__name__}."
            )
        if rank_pattern:
            if as_integer(rank) is None:
                raise ValueError(
                    "rank_pattern overrides an int rank; with a fraction or mapping rank, pass only rank."
                )
            spec = {**rank_pattern, ".*": as_integer(rank)}
            plan = plan_factorization(
                teacher.vit, spec, target_modules=[ENCODER_LAYERS], exclude_modules=exclude_modules or ()
            )
            rank = {re.escape(f"vit.{layer.name}"): layer.rank for layer in plan}  # exact names, as planned
        return LowRankForImageClassification.from_teacher(
            teacher,
            rank=rank,
            exclude_modules=exclude_modules,
            init=init,
            calibration=calibration,
            alpha=alpha,
            decompositions=decompositions,
        )
