"""hf_lowrank: how much of a transformer's capacity a task really uses (ViT and every family of the block table).

Importing the package registers `FactorizedViTConfig`, `BridgedViTConfig`, `LowRankConfig` and their models with the
transformers Auto classes (AutoConfig, AutoModel, AutoModelForImageClassification, AutoModelForSequenceClassification,
AutoImageProcessor), and marks them for
`trust_remote_code` saving. The layers of the package are described in ARCHITECTURE.md.
"""

__version__ = "0.1.0"

from .distillation import DistillationConfig, DistillationTrainer  # noqa: E402
from .factorization import allocate_ranks, collect_input_statistics  # noqa: E402
from .models import (  # noqa: E402
    DEFAULT_EXCLUDE_MODULES,
    BridgedViTConfig,
    BridgedViTForImageClassification,
    FactorizationReport,
    FactorizedLinear,
    FactorizedViTConfig,
    FactorizedViTForImageClassification,
    FactorizedViTModel,
    FactorizedViTPreTrainedModel,
    LayerFactorization,
    LowRankConfig,
    LowRankForImageClassification,
    LowRankForSequenceClassification,
    LowRankModel,
    copy_teacher_weights,
    count_parameters,
    decompose_layers,
    energy_rank,
    factorization_report,
    factorize_model,
    inference_layout,
    linear_parameters,
    plan_factorization,
    register_auto_classes,
    vit_forward_flops,
)
from .results import SweepResults  # noqa: E402


__all__ = [
    "BridgedViTConfig",
    "BridgedViTForImageClassification",
    "DEFAULT_EXCLUDE_MODULES",
    "DistillationConfig",
    "DistillationTrainer",
    "FactorizationReport",
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
    "SweepResults",
    "allocate_ranks",
    "collect_input_statistics",
    "copy_teacher_weights",
    "count_parameters",
    "decompose_layers",
    "energy_rank",
    "factorization_report",
    "factorize_model",
    "inference_layout",
    "linear_parameters",
    "plan_factorization",
    "vit_forward_flops",
]

register_auto_classes()
