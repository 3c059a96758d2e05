"""The embedded default: a small teacher of one of six families, trained from scratch on scikit-learn's 8x8 digits,
and the default rank list.

Every family is built at width 48 and depth 3 where it allows: the ViT-likes (ViT, DeiT, BEiT, DINOv2) as 16
patches of 2x2 with 4 heads and an MLP of 96; Swin and ConvNeXt, hierarchical, as two stages (two blocks at width 48
on a 4x4 grid, one at 96 on 2x2). Swin keeps an MLP ratio of 2 (96), ConvNeXt its fixed 4 (192).
"""

from transformers import (
    BeitConfig,
    BeitForImageClassification,
    ConvNextConfig,
    ConvNextForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    Dinov2Config,
    Dinov2ForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
)

from .arguments import EMBEDDED_ARCHITECTURES


__all__ = ["EMBEDDED_NAMES", "EMBEDDED_WIDTH", "default_ranks", "embedded_config", "embedded_teacher"]

EMBEDDED_WIDTH, EMBEDDED_DEPTH, EMBEDDED_HEADS, EMBEDDED_MLP = 48, 3, 4, 96
_PATCHES = {"image_size": 8, "patch_size": 2, "num_channels": 3}
_VIT_LIKE = {
    "hidden_size": EMBEDDED_WIDTH,
    "num_hidden_layers": EMBEDDED_DEPTH,
    "num_attention_heads": EMBEDDED_HEADS,
    "intermediate_size": EMBEDDED_MLP,
}

CLASSIFIERS = {
    "vit": ViTForImageClassification,
    "deit": DeiTForImageClassification,
    "beit": BeitForImageClassification,
    "dinov2": Dinov2ForImageClassification,
    "swin": SwinForImageClassification,
    "convnext": ConvNextForImageClassification,
}

EMBEDDED_NAMES = {
    "vit": "ViT",
    "deit": "DeiT",
    "beit": "BEiT",
    "dinov2": "DINOv2",
    "swin": "Swin",
    "convnext": "ConvNeXt",
}


def default_ranks(width: int) -> list[int]:
    """Powers of two below `width`, then `width` itself: 1, 2, 4, ..., width."""
    ranks, rank = [], 1
    while rank < width:
        ranks.append(rank)
        rank *= 2
    return ranks + [width]


def embedded_config(architecture: str, label_names: list[str]) -> PretrainedConfig:
    """The config of the embedded teacher of `architecture` (one of `EMBEDDED_ARCHITECTURES`) for `label_names`."""
    labels = {"id2label": dict(enumerate(label_names)), "label2id": {name: i for i, name in enumerate(label_names)}}
    if architecture == "vit":
        return ViTConfig(**_PATCHES, **_VIT_LIKE, **labels)
    if architecture == "deit":
        return DeiTConfig(**_PATCHES, **_VIT_LIKE, **labels)
    if architecture == "beit":
        return BeitConfig(**_PATCHES, **_VIT_LIKE, **labels)
    if architecture == "dinov2":
        vit_like = {key: value for key, value in _VIT_LIKE.items() if key != "intermediate_size"}
        return Dinov2Config(**_PATCHES, **vit_like, mlp_ratio=EMBEDDED_MLP // EMBEDDED_WIDTH, **labels)
    if architecture == "swin":
        stages = {"depths": [2, 1], "num_heads": [EMBEDDED_HEADS, EMBEDDED_HEADS]}
        return SwinConfig(**_PATCHES, embed_dim=EMBEDDED_WIDTH, window_size=2, mlp_ratio=2.0, **stages, **labels)
    if architecture == "convnext":
        stages = {"num_stages": 2, "hidden_sizes": [EMBEDDED_WIDTH, 2 * EMBEDDED_WIDTH], "depths": [2, 1]}
        return ConvNextConfig(**_PATCHES, **stages, **labels)
    raise ValueError(f"architecture {architecture!r}: must be one of {list(EMBEDDED_ARCHITECTURES)}.")


def embedded_teacher(
    label_names: list[str], architecture: str = "vit"
) -> tuple[PreTrainedModel, ViTImageProcessorPil]:
    """The untrained embedded teacher of `architecture` and its image processor (8x8 RGB, scaled to [-1, 1])."""
    processor = ViTImageProcessorPil(
        size={"height": 8, "width": 8}, resample=0, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    config = embedded_config(architecture, label_names)
    return CLASSIFIERS[architecture](config), processor
