"""Examples to model inputs: images to `pixel_values`, made once with the teacher's image processor (a cached map,
or on the fly for datasets too large to cache); texts to `input_ids` and `attention_mask` padded to one length, made
with the teacher's tokenizer; and the collate functions the data loaders use."""

import numpy as np
import torch
from datasets import Array3D, Dataset, DatasetDict, Features, Image, List, Value

from .datasets import ImageClassificationData
from .text import TextClassificationData


__all__ = [
    "collate_examples",
    "collate_pixel_values",
    "padded_length",
    "preprocess",
    "preprocess_images",
    "preprocess_text",
]

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def preprocess(
    data: ImageClassificationData | TextClassificationData,
    processor,
    cache_limit_gb: float = 2.0,
    max_length: int = 128,
) -> DatasetDict:
    """Every split as model-input rows: `preprocess_images(data, processor, cache_limit_gb)` for image data
    (`processor` an image processor), `preprocess_text(data, processor, max_length)` for text data (`processor` a
    tokenizer)."""
    if isinstance(data, TextClassificationData):
        return preprocess_text(data, processor, max_length)
    return preprocess_images(data, processor, cache_limit_gb)


def preprocess_images(data: ImageClassificationData, image_processor, cache_limit_gb: float = 2.0) -> DatasetDict:
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
            processed[name] = _map_rows(
                split,
                lambda batch, indices, name=name: {
                    "pixel_values": pixels(batch, indices, name),
                    "labels": batch[data.label_column],
                    "index": indices,
                },
                features,
                f"preprocessing {name}",
            )
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


def _map_rows(split: Dataset, make_rows, features: Features, description: str) -> Dataset:
    """`split` replaced, batch by batch, by the rows `make_rows(batch, indices)` returns (of `features`), cached by
    `datasets` and read back as torch tensors."""
    return split.map(
        make_rows,
        batched=True,
        with_indices=True,
        remove_columns=split.column_names,
        features=features,
        desc=description,
    ).with_format("torch")


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


def padded_length(data: TextClassificationData, tokenizer, max_length: int = 128) -> int:
    """The length, in tokens (special tokens included), of the longest text of all the splits of `data` as
    `tokenizer` encodes it, capped at `max_length`: the one length every example is padded to."""
    longest = 0
    for split in data.splits.values():
        for batch in split.select_columns([data.text_column]).iter(batch_size=1000):
            encoded = tokenizer(batch[data.text_column], truncation=True, max_length=max_length)
            longest = max(longest, max((len(ids) for ids in encoded["input_ids"]), default=0))
    return longest


def preprocess_text(data: TextClassificationData, tokenizer, max_length: int = 128) -> DatasetDict:
    """Every split as rows of `input_ids`, `attention_mask` (and `token_type_ids` when `tokenizer` makes them), each
    (L,), `labels` and `index` (the row number), all int64, in torch format. L = `padded_length` (the longest example
    of all the splits, at most `max_length` and the tokenizer's `model_max_length`), the same for every split so
    every batch stacks; longer texts are truncated. A tokenizer without a pad token, or a `max_length` under 1, is a
    ValueError."""
    if max_length < 1:
        raise ValueError(f"max_length={max_length!r}: give a positive number of tokens.")
    if tokenizer.pad_token is None:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}) has no pad token, and every text is padded to one length: "
            "set one first (tokenizer.pad_token = tokenizer.eos_token, for a tokenizer without one)."
        )
    model_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_limit, int) and 0 < model_limit < 1_000_000:  # unset limits are huge sentinels
        max_length = min(max_length, model_limit)
    length = padded_length(data, tokenizer, max_length)

    def encode(texts: list[str]) -> dict:
        return tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_attention_mask=True)

    keys = [key for key in TEXT_INPUTS if key in encode(data.splits["train"][:1][data.text_column])]
    features = Features(
        {key: List(Value("int64"), length=length) for key in keys}
        | {"labels": Value("int64"), "index": Value("int64")}
    )
    processed = DatasetDict()
    for name, split in data.splits.items():
        processed[name] = _map_rows(
            split,
            lambda batch, indices: {
                **{key: values for key, values in encode(batch[data.text_column]).items() if key in keys},
                "labels": batch[data.label_column],
                "index": indices,
            },
            features,
            f"tokenizing {name}",
        )
    return processed


def collate_examples(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Every key of the rows stacked into a batch: tensors with `torch.stack` ((B, ...) from (...)), arrays with
    `np.stack`, numbers and lists with `torch.tensor`. For image rows (`pixel_values` (B, C, H, W), `labels` (B,),
    `index` (B,)) and text rows (`input_ids`, `attention_mask`... (B, L)) alike. Rows with different keys, or no
    rows, are a ValueError."""
    if not examples:
        raise ValueError("collate_examples got no examples: give a batch of at least one row.")
    keys = list(examples[0])
    for position, example in enumerate(examples):
        if set(example) != set(keys):
            raise ValueError(f"example {position} of the batch has keys {sorted(example)}, example 0 {sorted(keys)}.")
    return {key: _stack([example[key] for example in examples]) for key in keys}


def _stack(values: list) -> torch.Tensor:
    """One key of a batch's rows as one tensor with the batch first."""
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    if isinstance(values[0], np.ndarray):
        return torch.from_numpy(np.stack(values))
    return torch.tensor(values)


# The name image-only callers know: image rows (pixel_values (B, C, H, W), labels (B,), index (B,)) collate the same.
collate_pixel_values = collate_examples
