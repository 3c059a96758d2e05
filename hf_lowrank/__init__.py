"""hf_lowrank: how much of a vision transformer's capacity a task really uses.

Importing the package registers `FactorizedViTConfig`, `BridgedViTConfig` and their models with the transformers
Auto classes (AutoConfig, AutoModel, AutoModelForImageClassification, AutoImageProcessor), and marks them for
`trust_remote_code` saving. The layers of the package are described in ARCHITECTURE.md.
"""

__version__ = "0.1.0"

from .distillation import DistillationConfig, DistillationTrainer  # noqa: E402
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
    copy_teacher_weights,
    count_parameters,
    energy_rank,
    factorization_report,
    factorize_model,
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
    "SweepResults",
    "copy_teacher_weights",
    "count_parameters",
    "energy_rank",
    "factorization_report",
    "factorize_model",
    "linear_parameters",
    "plan_factorization",
    "vit_forward_flops",
]

register_auto_classes()
