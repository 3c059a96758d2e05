"""Images to model inputs: `pixel_values` made once with the teacher's image processor (a cached map, or on the fly
for datasets too large to cache), and the collate function every data loader uses."""

import numpy as np
import torch
from datasets import Array3D, DatasetDict, Features, Value

from .datasets import ImageClassificationData


__all__ = ["collate_pixel_values", "preprocess"]


def preprocess(data: ImageClassificationData, image_processor, cache_limit_gb: float = 2.0) -> DatasetDict:
    """Every split as rows of `pixel_values` (float32, C x H x W), `labels` and `index` (the row number, to put
    gathered predictions back in dataset order), made with `image_processor`.

    When all the processed pixels fit in `cache_limit_gb`, they are computed once and cached (a `map`, stored as a
    fixed-shape Array3D so a batch comes out of Arrow as one array). Larger datasets (CIFAR-100 at 224x224 would be
    30 GB) are processed on the fly, batch by batch, as the data loader asks for them.
    """

    def pixels(batch) -> np.ndarray:
        images = [image.convert("RGB") for image in batch[data.image_column]]
        return image_processor(images, return_tensors="np")["pixel_values"].astype(np.float32)  # (B, C, H, W)

    shape = pixels(data.splits["train"][:1]).shape[1:]
    total_bytes = 4 * int(np.prod(shape)) * sum(len(split) for split in data.splits.values())
    processed = DatasetDict()
    for name, split in data.splits.items():
        if total_bytes <= cache_limit_gb * 2**30:
            features = Features(
                {"pixel_values": Array3D(shape, "float32"), "labels": Value("int64"), "index": Value("int64")}
            )
            processed[name] = split.map(
                lambda batch, indices: {
                    "pixel_values": pixels(batch),
                    "labels": batch[data.label_column],
                    "index": indices,
                },
                batched=True,
                with_indices=True,
                remove_columns=split.column_names,
                features=features,
                desc=f"preprocessing {name}",
            ).with_format("torch")
        else:
            indexed = split.add_column("index", list(range(len(split))))
            processed[name] = indexed.with_transform(
                lambda batch: {
                    "pixel_values": torch.from_numpy(pixels(batch)),
                    "labels": torch.tensor(batch[data.label_column]),
                    "index": torch.tensor(batch["index"]),
                }
            )
    return processed


def collate_pixel_values(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack `pixel_values` (B, C, H, W), `labels` (B,) and `index` (B,)."""
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([int(e["labels"]) for e in examples]),
        "index": torch.tensor([int(e["index"]) for e in examples]),
    }
