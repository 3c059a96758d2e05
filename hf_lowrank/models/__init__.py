"""The students as transformers models, and the module surgery that builds them.

This folder is the `trust_remote_code` unit: the modeling files import only torch, transformers and flat siblings
(`from .factorize import ...`), so `save_pretrained` can copy them next to a checkpoint. Nothing here imports the
rest of hf_lowrank.

The sweep-only factorization tools that once lived here (`collect_input_statistics`, `allocate_ranks`,
`budget_parameters`, `plan_parameters`, `uniform_rank_within`, `LayerSpectrum`) are in `hf_lowrank.factorization`;
their old names here still resolve (a `FutureWarning` names the new place).
"""

import importlib
import warnings

from .accounting import VIT_B32_CIFAR100, count_parameters, linear_parameters, vit_forward_flops
from .architectures import BLOCK_LAYOUTS, BlockLayout, block_layout, block_output_modules, find_blocks, layout_of
from .checkpoint_loading import FactorizedCheckpointMixin, dense_layers_in_place_of_factors
from .cnn_student import CNN_CAPACITIES, CNNEmbeddingStudent, CNNStudentOutput
from .configuration_bridged_vit import BRIDGES, BridgedViTConfig
from .configuration_factorized_vit import FactorizedViTConfig
from .configuration_lowrank import LowRankConfig
from .decomposition import (
    DATA_AWARE_INITS,
    INITS,
    InputStatistics,
    LinearDecomposition,
    decompose_layers,
    decompose_linear,
    fallback_summary,
    teacher_decompositions,
    whitening_factor,
)
from .factor_init import init_factors
from .factorize import (
    DEFAULT_EXCLUDE_MODULES,
    FactorizationReport,
    LayerFactorization,
    break_even_rank,
    energy_rank,
    factorization_report,
    factorize_model,
    merge_factorized,
    name_matches,
    plan_factorization,
    truncate_factorized,
)
from .factorized_linear import FactorizedLinear, check_rank
from .inference_layout import DEFAULT_MERGE_AT, INFERENCE_BACKENDS, check_backend, inference_layout
from .modeling_bridged_vit import BridgedViTForImageClassification, BridgedViTOutput, BridgedViTPreTrainedModel
from .modeling_factorized_vit import (
    FactorizedViTForImageClassification,
    FactorizedViTModel,
    FactorizedViTPreTrainedModel,
)
from .modeling_lowrank import (
    LowRankForImageClassification,
    LowRankForSequenceClassification,
    LowRankModel,
    LowRankPreTrainedModel,
    backbone_of,
    block_names,
)
from .nested import largest_rank, truncated_student, truncated_view
from .pretrained_source import PretrainedSource, check_safetensors_files, is_repo_id, resolve_pretrained_source
from .registration import register_auto_classes
from .teacher_weights import copy_teacher_weights


__all__ = [
    "DEFAULT_MERGE_AT",
    "INFERENCE_BACKENDS",
    "break_even_rank",
    "check_backend",
    "inference_layout",
    "merge_factorized",
    "largest_rank",
    "truncated_student",
    "truncated_view",
    "truncate_factorized",
    "DATA_AWARE_INITS",
    "INITS",
    "InputStatistics",
    "LinearDecomposition",
    "decompose_layers",
    "decompose_linear",
    "fallback_summary",
    "teacher_decompositions",
    "whitening_factor",
    "BLOCK_LAYOUTS",
    "BRIDGES",
    "BlockLayout",
    "BridgedViTConfig",
    "BridgedViTForImageClassification",
    "BridgedViTOutput",
    "BridgedViTPreTrainedModel",
    "CNNEmbeddingStudent",
    "CNNStudentOutput",
    "CNN_CAPACITIES",
    "block_layout",
    "block_output_modules",
    "DEFAULT_EXCLUDE_MODULES",
    "FactorizationReport",
    "FactorizedCheckpointMixin",
    "FactorizedLinear",
    "FactorizedViTConfig",
    "FactorizedViTForImageClassification",
    "FactorizedViTModel",
    "FactorizedViTPreTrainedModel",
    "LayerFactorization",
    "LowRankConfig",
    "LowRankForImageClassification",
    "LowRankForSequenceClassification",
    "LowRankModel",
    "LowRankPreTrainedModel",
    "PretrainedSource",
    "VIT_B32_CIFAR100",
    "check_rank",
    "check_safetensors_files",
    "copy_teacher_weights",
    "count_parameters",
    "dense_layers_in_place_of_factors",
    "backbone_of",
    "block_names",
    "energy_rank",
    "factorization_report",
    "factorize_model",
    "find_blocks",
    "init_factors",
    "is_repo_id",
    "layout_of",
    "linear_parameters",
    "name_matches",
    "plan_factorization",
    "register_auto_classes",
    "resolve_pretrained_source",
    "vit_forward_flops",
]

MOVED_TO_FACTORIZATION = (
    "LayerSpectrum",
    "allocate_ranks",
    "budget_parameters",
    "collect_input_statistics",
    "plan_parameters",
    "uniform_rank_within",
)


def __getattr__(name: str):
    """The old `hf_lowrank.models.NAME` of a name moved to `hf_lowrank.factorization` (imported only when asked for,
    so this folder still imports nothing else of hf_lowrank)."""
    if name in MOVED_TO_FACTORIZATION:
        warnings.warn(
            f"hf_lowrank.models.{name} moved to hf_lowrank.factorization.{name}; import it from there.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("hf_lowrank.factorization"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
