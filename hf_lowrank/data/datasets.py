"""Image-classification datasets for the sweep: the embedded digits default, Hub datasets and image folders.

Every source becomes a `datasets.DatasetDict` with `train` and `test` splits, an `Image` column and a `ClassLabel`
column (`preprocess` then turns the images into model inputs).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from PIL import Image as PILImage

from ..models import is_repo_id


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
# Directory names `imagefolder` reads as splits rather than classes.
SPLIT_DIRECTORY_NAMES = frozenset(TRAIN_SPLITS + TEST_SPLITS + ("testing", "evaluation", "dev"))


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


def _load_source(dataset: str) -> tuple[DatasetDict, str | None]:
    """`dataset` (not ``"digits"``) loaded: an image folder (also returned, to explain a folder without labels) or a
    Hub dataset id; a path that exists as neither says so."""
    folder = os.path.expanduser(dataset)
    if os.path.isdir(folder):
        return DatasetDict(load_dataset("imagefolder", data_dir=folder)), folder
    valid = f"give {DIGITS!r}, the directory of an image folder (one subfolder per class) or a Hub dataset id"
    if os.path.exists(folder):
        raise ValueError(f"dataset {dataset!r} is a file, not a directory: {valid}.")
    if not is_repo_id(dataset):
        raise ValueError(
            f"dataset {dataset!r} does not exist: there is no such local directory, and it is not a Hub dataset id "
            f"('name' or 'namespace/name') either; {valid}."
        )
    try:
        return DatasetDict(load_dataset(dataset)), None
    except (FileNotFoundError, ConnectionError) as error:
        raise ValueError(
            f"dataset {dataset!r}: no local directory {dataset!r} and no Hub dataset {dataset!r}: {error}"
        ) from error


def _folder_classes(folder: str) -> dict[str, int]:
    """Class name -> image count of an image folder, as `imagefolder` labels it: the directory holding each image,
    unless that is the folder itself or a split directory (``train/``, ``test/``, ...)."""
    extensions = {extension.lower() for extension in PILImage.registered_extensions()}
    counts: dict[str, int] = {}
    root = Path(folder)
    for path in root.rglob("*"):
        if path.is_file() and path.suffix.lower() in extensions:
            parent = path.parent
            if parent != root and parent.name.lower() not in SPLIT_DIRECTORY_NAMES:
                counts[parent.name] = counts.get(parent.name, 0) + 1
    return counts


def _refuse_folder_without_classes(dataset: str, folder: str) -> None:
    """Raise when the image folder has fewer than two class subfolders (then `imagefolder` gives it no labels)."""
    classes = _folder_classes(folder)
    layout = f"put each class's images in its own subfolder ({os.path.join(dataset, '<class>', '<image>')})"
    if len(classes) == 1:
        ((name, count),) = classes.items()
        raise ValueError(
            f"image folder {dataset!r} has one class, {name!r} ({count} images): classification needs at least two "
            f"classes; {layout}, with at least two subfolders."
        )
    if not classes:
        raise ValueError(
            f"image folder {dataset!r} has no class subfolders, so its images have no labels: classification needs "
            f"at least two classes; {layout}, with at least two subfolders."
        )


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

    `dataset` is ``"digits"``, else a local directory when one exists (``~`` expanded), else a Hub id; a string that
    is neither (an absolute or ``./`` path that does not exist) is an error saying so. A source with a train split
    only is split 80/20, stratified, with `seed`. Raises a ValueError naming what is wrong (a path that does not
    exist, missing column, an image folder without two class subfolders, fewer than two classes, empty split)
    before any training.
    """
    folder = None
    if dataset == DIGITS:
        splits = load_digits_dataset(seed=seed)
    else:
        splits, folder = _load_source(dataset)
    train_name = _pick_split(splits, TRAIN_SPLITS, "train", train_split)
    try:
        image, label = find_columns(splits[train_name], image_column, label_column)
    except ValueError:
        if folder is not None and label_column is None:
            _refuse_folder_without_classes(dataset, folder)
        raise
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
    if len(feature.names) < 2:
        found = f"one class, {feature.names[0]!r}" if feature.names else "no classes"
        raise ValueError(
            f"the label column {label!r} of dataset {dataset!r} has {found}: classification needs at least two "
            "classes."
        )
    if max_train_samples is not None:
        splits["train"] = splits["train"].select(range(min(max_train_samples, len(splits["train"]))))
    if max_test_samples is not None:
        splits["test"] = splits["test"].select(range(min(max_test_samples, len(splits["test"]))))
    for name, split in splits.items():
        if len(split) == 0:
            raise ValueError(f"the {name} split of {dataset!r} is empty.")
    return ImageClassificationData(splits, image, label, list(feature.names))
