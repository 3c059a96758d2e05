"""hf_lowrank: how much of a vision transformer's capacity a task really uses.

Importing the package registers `FactorizedViTConfig` and its models with the transformers Auto classes (AutoConfig,
AutoModel, AutoModelForImageClassification, AutoImageProcessor), and marks them for `trust_remote_code` saving.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    ViTImageProcessorPil,
)
from transformers.utils import is_torchvision_available

from .accounting import count_parameters, linear_parameters, vit_forward_flops
from .configuration_bridged_vit import BridgedViTConfig
from .configuration_factorized_vit import FactorizedViTConfig
from .distillation import DistillationConfig, DistillationTrainer
from .factorize import (
    DEFAULT_EXCLUDE_MODULES,
    FactorizationReport,
    LayerFactorization,
    energy_rank,
    factorization_report,
    factorize_model,
    plan_factorization,
)
from .factorized_linear import FactorizedLinear
from .modeling_bridged_vit import BridgedViTForImageClassification
from .modeling_factorized_vit import (
    FactorizedViTForImageClassification,
    FactorizedViTModel,
    FactorizedViTPreTrainedModel,
)


__version__ = "0.1.0"

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
    "count_parameters",
    "energy_rank",
    "factorization_report",
    "factorize_model",
    "linear_parameters",
    "plan_factorization",
    "vit_forward_flops",
]


def _register_auto_classes() -> None:
    AutoConfig.register(FactorizedViTConfig.model_type, FactorizedViTConfig, exist_ok=True)
    AutoModel.register(FactorizedViTConfig, FactorizedViTModel, exist_ok=True)
    AutoModelForImageClassification.register(FactorizedViTConfig, FactorizedViTForImageClassification, exist_ok=True)
    # ViT's processors: the PIL one works without torchvision.
    processors = {"pil": ViTImageProcessorPil}
    if is_torchvision_available():
        from transformers import ViTImageProcessor

        processors["torchvision"] = ViTImageProcessor
    AutoImageProcessor.register(FactorizedViTConfig, image_processor_classes=processors, exist_ok=True)
    # A saved student records these in config.json's auto_map and ships the code, so it loads with
    # trust_remote_code=True where hf_lowrank is not installed.
    AutoConfig.register(BridgedViTConfig.model_type, BridgedViTConfig, exist_ok=True)
    AutoModelForImageClassification.register(BridgedViTConfig, BridgedViTForImageClassification, exist_ok=True)
    AutoImageProcessor.register(BridgedViTConfig, image_processor_classes=processors, exist_ok=True)
    BridgedViTConfig.register_for_auto_class()
    BridgedViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    FactorizedViTConfig.register_for_auto_class()
    FactorizedViTModel.register_for_auto_class("AutoModel")
    FactorizedViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")


_register_auto_classes()
