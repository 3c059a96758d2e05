"""Register the hf_lowrank models in transformers' static name mappings, as an in-tree model would be."""

from transformers.models.auto import modeling_auto as m


m.MODEL_MAPPING_NAMES["factorized_vit"] = "FactorizedViTModel"
m.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES["factorized_vit"] = "FactorizedViTForImageClassification"
m.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES["bridged_vit"] = "BridgedViTForImageClassification"
m.MODEL_MAPPING_NAMES["lowrank"] = "LowRankModel"
m.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES["lowrank"] = "LowRankForImageClassification"
m.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES["lowrank"] = "LowRankForSequenceClassification"
