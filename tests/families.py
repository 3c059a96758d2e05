"""Tiny classifiers of every family in hf_lowrank's block table (seeded, odd sizes), and example inputs for each:
the model helpers the architecture, student and sweep tests share."""

import torch
from torch import nn
from transformers import (
    BeitConfig,
    BeitForImageClassification,
    BertConfig,
    BertForSequenceClassification,
    CLIPConfig,
    CLIPForImageClassification,
    ConvNextConfig,
    ConvNextForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    Dinov2Config,
    Dinov2ForImageClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    SiglipConfig,
    SiglipForImageClassification,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)


# Odd sizes catch shape bugs: width 12, 3 heads, MLP 20, 2 blocks, 3 labels.
TRANSFORMER = dict(hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20)
IMAGE = dict(image_size=8, patch_size=4, num_channels=3)


def tiny_classifier(model_type: str, num_labels: int = 3) -> nn.Module:
    """A tiny randomly initialised classifier of `model_type` (seeded): 2 blocks, width 12, 3 heads, MLP 20, 3 labels
    (Swin and ConvNeXt: 2 stages of one block, widths 6 and 12 / 10), in eval mode."""
    torch.manual_seed(0)
    builders = {
        "vit": lambda: ViTForImageClassification(ViTConfig(**TRANSFORMER, **IMAGE, num_labels=num_labels)),
        "deit": lambda: DeiTForImageClassification(DeiTConfig(**TRANSFORMER, **IMAGE, num_labels=num_labels)),
        "beit": lambda: BeitForImageClassification(BeitConfig(**TRANSFORMER, **IMAGE, num_labels=num_labels)),
        "dinov2": lambda: Dinov2ForImageClassification(
            Dinov2Config(
                hidden_size=12, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2, **IMAGE, num_labels=num_labels
            )
        ),
        "swin": lambda: SwinForImageClassification(
            SwinConfig(
                image_size=8,
                patch_size=2,
                embed_dim=6,
                depths=[1, 1],
                num_heads=[1, 2],
                window_size=2,
                num_labels=num_labels,
            )
        ),
        "convnext": lambda: ConvNextForImageClassification(
            ConvNextConfig(num_stages=2, hidden_sizes=[6, 10], depths=[1, 1], num_labels=num_labels)
        ),
        "clip": lambda: CLIPForImageClassification(
            CLIPConfig(
                vision_config=dict(**TRANSFORMER, **IMAGE), text_config=dict(**TRANSFORMER), num_labels=num_labels
            )
        ),
        "siglip": lambda: SiglipForImageClassification(
            SiglipConfig(
                vision_config=dict(**TRANSFORMER, **IMAGE), text_config=dict(**TRANSFORMER), num_labels=num_labels
            )
        ),
        "bert": lambda: BertForSequenceClassification(BertConfig(vocab_size=40, **TRANSFORMER, num_labels=num_labels)),
        "roberta": lambda: RobertaForSequenceClassification(
            RobertaConfig(vocab_size=40, **TRANSFORMER, num_labels=num_labels)
        ),
        "distilbert": lambda: DistilBertForSequenceClassification(
            DistilBertConfig(vocab_size=40, dim=12, n_layers=2, n_heads=3, hidden_dim=20, num_labels=num_labels)
        ),
    }
    return builders[model_type]().eval()


TEXT_MODEL_TYPES = ("bert", "roberta", "distilbert", "electra")


def example_inputs(model: nn.Module) -> dict:
    """Two seeded examples for `model`'s forward: `input_ids` (2, 7) over a 40-token vocabulary for text families,
    `pixel_values` (2, 3, 8, 8) otherwise."""
    generator = torch.Generator().manual_seed(1)
    if model.config.model_type in TEXT_MODEL_TYPES:
        return {"input_ids": torch.randint(3, 40, (2, 7), generator=generator)}
    return {"pixel_values": torch.randn(2, 3, 8, 8, generator=generator)}
