"""Registration of the students with the transformers Auto classes (run once, by `import hf_lowrank`)."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    ViTImageProcessorPil,
)
from transformers.utils import is_torchvision_available

from .configuration_bridged_vit import BridgedViTConfig
from .configuration_factorized_vit import FactorizedViTConfig
from .configuration_lowrank import LowRankConfig
from .modeling_bridged_vit import BridgedViTForImageClassification
from .modeling_factorized_vit import FactorizedViTForImageClassification, FactorizedViTModel
from .modeling_lowrank import LowRankForImageClassification, LowRankForSequenceClassification, LowRankModel


__all__ = ["register_auto_classes"]


def register_auto_classes() -> None:
    """AutoConfig / AutoModel / AutoModelForImageClassification / AutoImageProcessor for both students, and the
    `auto_map` a saved student records so that it loads with `trust_remote_code=True` where hf_lowrank is absent."""
    AutoConfig.register(FactorizedViTConfig.model_type, FactorizedViTConfig, exist_ok=True)
    AutoModel.register(FactorizedViTConfig, FactorizedViTModel, exist_ok=True)
    AutoModelForImageClassification.register(FactorizedViTConfig, FactorizedViTForImageClassification, exist_ok=True)
    # ViT's processors: the PIL one works without torchvision.
    processors = {"pil": ViTImageProcessorPil}
    if is_torchvision_available():
        from transformers import ViTImageProcessor

        processors["torchvision"] = ViTImageProcessor
    AutoImageProcessor.register(FactorizedViTConfig, image_processor_classes=processors, exist_ok=True)
    AutoConfig.register(BridgedViTConfig.model_type, BridgedViTConfig, exist_ok=True)
    AutoModelForImageClassification.register(BridgedViTConfig, BridgedViTForImageClassification, exist_ok=True)
    AutoImageProcessor.register(BridgedViTConfig, image_processor_classes=processors, exist_ok=True)
    BridgedViTConfig.register_for_auto_class()
    BridgedViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    FactorizedViTConfig.register_for_auto_class()
    FactorizedViTModel.register_for_auto_class("AutoModel")
    FactorizedViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    AutoConfig.register(LowRankConfig.model_type, LowRankConfig, exist_ok=True)
    AutoModel.register(LowRankConfig, LowRankModel, exist_ok=True)
    AutoModelForImageClassification.register(LowRankConfig, LowRankForImageClassification, exist_ok=True)
    AutoModelForSequenceClassification.register(LowRankConfig, LowRankForSequenceClassification, exist_ok=True)
    LowRankConfig.register_for_auto_class()
    LowRankModel.register_for_auto_class("AutoModel")
    LowRankForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    LowRankForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
