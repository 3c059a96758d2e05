"""The embedded default: the small ViT teacher trained on scikit-learn's digits, and the default rank list."""

from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil


__all__ = ["default_ranks", "embedded_teacher"]


def default_ranks(width: int) -> list[int]:
    """Powers of two below `width`, then `width` itself: 1, 2, 4, ..., width."""
    ranks, rank = [], 1
    while rank < width:
        ranks.append(rank)
        rank *= 2
    return ranks + [width]


def embedded_teacher(label_names: list[str]) -> tuple[ViTForImageClassification, ViTImageProcessorPil]:
    """The small ViT the embedded default trains on 8x8 digits: 16 patches of 2x2, width 48, 3 blocks."""
    config = ViTConfig(
        image_size=8,
        patch_size=2,
        num_channels=3,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )
    processor = ViTImageProcessorPil(
        size={"height": 8, "width": 8}, resample=0, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return ViTForImageClassification(config), processor
