"""Images to model inputs: `pixel_values` made once with the teacher's image processor (a cached map, or on the fly
for datasets too large to cache), and the collate function every data loader uses."""

import numpy as np
import torch
from datasets import Array3D, Dataset, DatasetDict, Features, Image, Value

from .datasets import ImageClassificationData


__all__ = ["collate_pixel_values", "preprocess"]


def preprocess(data: ImageClassificationData, image_processor, cache_limit_gb: float = 2.0) -> DatasetDict:
    """Every split as rows of `pixel_values` (float32, C x H x W), `labels` and `index` (the row number, to put
    gathered predictions back in dataset order), made with `image_processor`.

    When all the processed pixels fit in `cache_limit_gb`, they are computed once and cached (a `map`, stored as a
    fixed-shape Array3D so a batch comes out of Arrow as one array). Larger datasets (CIFAR-100 at 224x224 would be
    30 GB) are processed on the fly, batch by batch, as the data loader asks for them.

    An image that cannot be read (a corrupt or truncated file) stops preprocessing with a ValueError naming the split,
    the example's index and the file; it is never skipped silently.
    """
    splits = DatasetDict({name: _undecoded(split, data.image_column) for name, split in data.splits.items()})

    def pixels(batch, indices, split_name: str) -> np.ndarray:
        images = [_open_image(value, split_name, index) for value, index in zip(batch[data.image_column], indices)]
        return image_processor(images, return_tensors="np")["pixel_values"].astype(np.float32)  # (B, C, H, W)

    shape = pixels(splits["train"][:1], [0], "train").shape[1:]
    total_bytes = 4 * int(np.prod(shape)) * sum(len(split) for split in splits.values())
    processed = DatasetDict()
    for name, split in splits.items():
        if total_bytes <= cache_limit_gb * 2**30:
            features = Features(
                {"pixel_values": Array3D(shape, "float32"), "labels": Value("int64"), "index": Value("int64")}
            )
            processed[name] = split.map(
                lambda batch, indices, name=name: {
                    "pixel_values": pixels(batch, indices, name),
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
                lambda batch, name=name: {
                    "pixel_values": torch.from_numpy(pixels(batch, batch["index"], name)),
                    "labels": torch.tensor(batch[data.label_column]),
                    "index": torch.tensor(batch["index"]),
                }
            )
    return processed


def _undecoded(split: Dataset, column: str) -> Dataset:
    """`split` with its `Image` column left undecoded (``{"path", "bytes"}``), so that `_open_image` decodes each
    image knowing which file it is; any other column as it is."""
    feature = split.features[column]
    return split.cast_column(column, Image(decode=False)) if isinstance(feature, Image) and feature.decode else split


def _open_image(value, split: str, index: int):
    """The RGB image of example `index` of `split`, from an undecoded `Image` value or an image; a ValueError naming
    the example and its file when it cannot be read."""
    path = value.get("path") if isinstance(value, dict) else getattr(value, "filename", None)
    try:
        image = Image().decode_example(value) if isinstance(value, dict) else value
        return image.convert("RGB")  # loads the pixels: a truncated file fails here, not later
    except Exception as error:
        where = f"file {path!r}" if path else "image bytes stored in the dataset, no file path"
        raise ValueError(
            f"cannot read the image of example {int(index)} of the {split} split ({where}): "
            f"{type(error).__name__}: {error}. Preprocessing stops here rather than skipping the example: remove or "
            "replace the file, then run again."
        ) from error


def collate_pixel_values(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack `pixel_values` (B, C, H, W), `labels` (B,) and `index` (B,)."""
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([int(e["labels"]) for e in examples]),
        "index": torch.tensor([int(e["index"]) for e in examples]),
    }
