"""PyTorch FactorizedViT: a ViT whose encoder linear layers are low-rank factorizations.

The ViT student of hf_lowrank 0.1.0 (model type `factorized_vit`), kept so that its checkpoints and those of earlier
sweeps load, and as the backbone of the BridgedViT (Lift / WideLast) students. New students of every family, ViT
included, are `LowRank*` (`modeling_lowrank.py`).

The blocks are transformers' own `ViTLayer`s with their `nn.Linear`s swapped for `FactorizedLinear` by
`factorize_model` (one place for module surgery), so forward passes, attention backends, hidden-state capture and
gradient checkpointing are exactly ViT's. Relative imports stay flat (`from .module import name`): `save_pretrained`
copies this file and the ones it imports next to the weights for `trust_remote_code=True` loading.
"""

import os
from collections.abc import Mapping

import torch
from torch import nn
from transformers import ViTForImageClassification
from transformers.models.vit.modeling_vit import ViTEmbeddings, ViTLayer, ViTModel, ViTPooler, ViTPreTrainedModel

from .checkpoint_loading import FactorizedCheckpointMixin
from .configuration_factorized_vit import FactorizedViTConfig
from .decomposition import InputStatistics, LinearDecomposition, teacher_decompositions
from .factor_init import init_factors
from .factorize import factorize_model, plan_factorization
from .factorized_linear import FactorizedLinear, as_integer
from .pretrained_source import load_vit_teacher
from .teacher_weights import copy_teacher_weights


__all__ = ["FactorizedViTForImageClassification", "FactorizedViTModel", "FactorizedViTPreTrainedModel"]

ENCODER_LAYERS = "layers"  # the ModuleList of ViTLayer blocks inside a ViTModel / FactorizedViTModel


def factorize_encoder(model: nn.Module, config: FactorizedViTConfig):
    """Swap every selected encoder `nn.Linear` of `model` (a ViT base model) for a random `FactorizedLinear`."""
    return factorize_model(
        model,
        config.rank_spec(),
        target_modules=[ENCODER_LAYERS],
        exclude_modules=config.exclude_modules or (),
        init="random",
    )


class FactorizedViTPreTrainedModel(FactorizedCheckpointMixin, ViTPreTrainedModel):
    config: FactorizedViTConfig
    config_class = FactorizedViTConfig
    _no_split_modules = ["ViTEmbeddings", "ViTLayer"]
    checkpoint_conversion_model = "ViTModel"  # dense ViT checkpoints may keep transformers' older key layout

    def record_truncation(self, ranks: dict[str, int], rank: int) -> None:
        """Make the config say what `truncate_factorized` left: every rank capped at `rank`."""
        self.config.rank = min(self.config.rank, rank)
        if self.config.rank_pattern:
            self.config.rank_pattern = {key: min(value, rank) for key, value in self.config.rank_pattern.items()}

    @torch.no_grad()
    def _init_weights(self, module):
        """ViT's init; a random `FactorizedLinear` gets `up @ down` entries of std `initializer_range`."""
        if not init_factors(module, self.config.initializer_range):
            super()._init_weights(module)


def resolve_rank_plan(encoder: nn.Module, rank, exclude_modules: list[str] | None):
    """A fraction or mapping `rank` resolved against the teacher's `encoder` (a ViT base model): the largest rank,
    every layer's rank as `rank_pattern`, and `exclude_modules` extended by the encoder linears the plan leaves
    dense. Returns `(rank, rank_pattern, exclude_modules)` for a `FactorizedViTConfig`."""
    plan = plan_factorization(encoder, rank, target_modules=[ENCODER_LAYERS], exclude_modules=exclude_modules or ())
    rank_pattern = {layer.name: layer.rank for layer in plan}
    dense_layers = [
        name
        for name, module in encoder.named_modules()
        if isinstance(module, nn.Linear) and name.startswith(f"{ENCODER_LAYERS}.") and name not in rank_pattern
    ]
    return max(rank_pattern.values()), rank_pattern, list(exclude_modules or []) + dense_layers


def _plain(value):
    """An integer of any kind as a plain int; anything else unchanged (the config refuses it by name)."""
    integer = as_integer(value)
    return value if integer is None else integer


class FactorizedViTModel(FactorizedViTPreTrainedModel):
    """`ViTModel` with factorized encoder linears (same inputs, outputs and forward)."""

    def __init__(self, config: FactorizedViTConfig, add_pooling_layer: bool = True, use_mask_token: bool = False):
        super().__init__(config)
        self.config = config
        self.embeddings = ViTEmbeddings(config, use_mask_token=use_mask_token)
        self.layers = nn.ModuleList([ViTLayer(config) for _ in range(config.num_hidden_layers)])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTPooler(config) if add_pooling_layer else None
        factorize_encoder(self, config)
        # Initialize weights and apply final processing
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.patch_embeddings

    forward = ViTModel.forward


class FactorizedViTForImageClassification(FactorizedViTPreTrainedModel):
    """`ViTForImageClassification` with factorized encoder linears: a linear head on the final CLS token."""

    def __init__(self, config: FactorizedViTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = FactorizedViTModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        # Initialize weights and apply final processing
        self.post_init()

    forward = ViTForImageClassification.forward

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
    ) -> "FactorizedViTForImageClassification":
        """A student of `teacher`: every dense weight copied, every factorized layer SVD-initialised.

        Args:
            teacher: a `ViTForImageClassification`, or a local directory / Hub id to load one from (with
                `from_pretrained_kwargs`; see `load_vit_teacher`: a checkpoint of another family is refused).
            rank: an integer (every factorized layer), a float in (0, 1] (per layer, the smallest rank keeping that
                fraction of the teacher weight's spectral energy), or a pattern -> rank mapping (layers matching no
                pattern stay dense). Fractions and mappings are resolved against the teacher's weights and stored
                per layer in `config.rank_pattern`.
            rank_pattern: per-layer overrides of an int `rank` (pattern -> int).
            exclude_modules: patterns of encoder linears to keep dense (e.g. ``["o_proj"]``).
            init, calibration, alpha, decompositions: how the factors start, as in
                `LowRankForImageClassification.from_teacher` (default: the truncated SVD of each weight).

        Returns:
            The student, on the teacher's device and in its dtype, in eval mode as `from_pretrained` returns.
        """
        if isinstance(teacher, (str, os.PathLike)):
            teacher = load_vit_teacher(teacher, **from_pretrained_kwargs)
        if not isinstance(teacher, ViTForImageClassification):
            raise TypeError(
                "from_teacher supports ViTForImageClassification teachers (model_type 'vit'), got "
                f"{type(teacher).__name__}."
            )
        if as_integer(rank) is not None:  # np.int64(4), torch.tensor(4): the config stores a plain int
            rank = as_integer(rank)
            rank_pattern = {key: _plain(value) for key, value in (rank_pattern or {}).items()}
        else:
            if rank_pattern:
                raise ValueError(
                    "rank_pattern overrides an int rank; with a fraction or mapping rank, pass only rank."
                )
            rank, rank_pattern, exclude_modules = resolve_rank_plan(teacher.vit, rank, exclude_modules)
        config_dict = teacher.config.to_dict()
        for key in ("model_type", "architectures", "transformers_version", "auto_map"):
            config_dict.pop(key, None)
        config = FactorizedViTConfig(
            **config_dict, rank=rank, rank_pattern=rank_pattern or None, exclude_modules=exclude_modules or None
        )
        weight = next(teacher.parameters())
        student = cls(config).to(device=weight.device, dtype=weight.dtype)
        factorized = [name for name, module in student.named_modules() if isinstance(module, FactorizedLinear)]
        decompositions = teacher_decompositions(teacher, factorized, init, calibration, alpha, decompositions)
        uncovered = copy_teacher_weights(student, teacher, decompositions=decompositions)
        if uncovered:
            raise ValueError(f"the teacher has no weights for student parameters {uncovered[:8]}.")
        student.eval()
        return student
