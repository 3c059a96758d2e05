"""Image-classification datasets for the sweep: the embedded digits default, Hub datasets and image folders.

Every source becomes a `datasets.DatasetDict` with `train` and `test` splits, an `Image` column and a `ClassLabel`
column (`preprocess` then turns the images into model inputs).
"""

from dataclasses import dataclass

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from PIL import Image as PILImage


__all__ = [
    "DIGITS",
    "ImageClassificationData",
    "find_columns",
    "load_digits_dataset",
    "load_image_classification_data",
]

DIGITS = "digits"
IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "picture", "photo")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "fine_label", "coarse_label", "class", "target")
TRAIN_SPLITS = ("train", "training")
TEST_SPLITS = ("test", "validation", "valid", "val", "eval")


@dataclass
class ImageClassificationData:
    """Train/test splits with their column names and the label names (index = class id)."""

    splits: DatasetDict
    image_column: str
    label_column: str
    label_names: list[str]


def load_digits_dataset(test_size: float = 0.2, seed: int = 0) -> DatasetDict:
    """scikit-learn's 1,797 real 8x8 handwritten digits as RGB `Image`s with a `ClassLabel`, split stratified.

    Pixel intensities 0..16 are scaled to 0..255; the split is a fixed function of `seed`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    names = [str(d) for d in range(10)]
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    images = [PILImage.fromarray(p, mode="L").convert("RGB") for p in pixels]
    dataset = Dataset.from_dict({"image": images, "label": digits.target.tolist()}, features=features)
    return dataset.train_test_split(test_size=test_size, stratify_by_column="label", seed=seed)


def find_columns(dataset: Dataset, image_column: str | None = None, label_column: str | None = None):
    """The image and label column names: the ones given, or found by feature type, then by usual names."""
    columns = list(dataset.column_names)
    features = dataset.features

    def pick(given, kind, feature_type, candidates):
        if given is not None:
            if given not in columns:
                raise ValueError(f"{kind}_column={given!r} is not a column of the dataset; columns found: {columns}.")
            return given
        typed = [c for c in columns if isinstance(features[c], feature_type)]
        if len(typed) == 1:
            return typed[0]
        named = [c for c in candidates if c in columns]
        if named:
            return named[0]
        raise ValueError(
            f"cannot find the {kind} column: no single {feature_type.__name__} feature and none of {candidates}; "
            f"columns found: {columns}. Name it with --{kind}_column."
        )

    image = pick(image_column, "image", Image, IMAGE_COLUMN_CANDIDATES)
    label = pick(label_column, "label", ClassLabel, LABEL_COLUMN_CANDIDATES)
    return image, label


def _pick_split(splits: DatasetDict, candidates: tuple[str, ...], kind: str, requested: str | None) -> str:
    if requested is not None:
        if requested not in splits:
            raise ValueError(f"{kind}_split={requested!r} is not a split; splits found: {list(splits)}.")
        return requested
    for name in candidates:
        if name in splits:
            return name
    raise ValueError(f"no {kind} split among {list(splits)}; name one with --{kind}_split.")


def load_image_classification_data(
    dataset: str = DIGITS,
    image_column: str | None = None,
    label_column: str | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
    seed: int = 0,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> ImageClassificationData:
    """Load `dataset`: ``"digits"`` (embedded, offline), a local image folder, or a Hub dataset id.

    A source with a train split only is split 80/20, stratified, with `seed`. Raises a ValueError naming what is
    wrong (missing column, empty split, labels that are not a ClassLabel) before any training.
    """
    if dataset == DIGITS:
        splits = load_digits_dataset(seed=seed)
    else:
        import os

        loaded = load_dataset("imagefolder", data_dir=dataset) if os.path.isdir(dataset) else load_dataset(dataset)
        splits = DatasetDict(loaded)
    train_name = _pick_split(splits, TRAIN_SPLITS, "train", train_split)
    image, label = find_columns(splits[train_name], image_column, label_column)
    try:
        test_name = _pick_split(splits, TEST_SPLITS, "test", test_split)
        splits = DatasetDict({"train": splits[train_name], "test": splits[test_name]})
    except ValueError:
        if test_split is not None:
            raise
        stratify = label if isinstance(splits[train_name].features[label], ClassLabel) else None
        splits = splits[train_name].train_test_split(test_size=0.2, stratify_by_column=stratify, seed=seed)

    feature = splits["train"].features[label]
    if not isinstance(feature, ClassLabel):
        names = sorted(set(splits["train"][label]) | set(splits["test"][label]))
        splits = splits.cast_column(label, ClassLabel(names=[str(n) for n in names]))
        feature = splits["train"].features[label]
    if max_train_samples is not None:
        splits["train"] = splits["train"].select(range(min(max_train_samples, len(splits["train"]))))
    if max_test_samples is not None:
        splits["test"] = splits["test"].select(range(min(max_test_samples, len(splits["test"]))))
    for name, split in splits.items():
        if len(split) == 0:
            raise ValueError(f"the {name} split of {dataset!r} is empty.")
    return ImageClassificationData(splits, image, label, list(feature.names))
