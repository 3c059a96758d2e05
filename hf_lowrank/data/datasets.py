"""Image-classification datasets, and the column finding every loader shares: a source (`sources`) becomes
train/test splits (`splits`) with an `Image` column and a `ClassLabel` column; `preprocess` then makes the model
inputs. Text datasets are in `text`.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datasets import ClassLabel, Dataset, DatasetDict, Image, Value
from PIL import Image as PILImage

from .sources import DIGITS, TEXT_FILE_EXTENSIONS, ClassificationSource, load_source
from .splits import TEST_SPLITS, TRAIN_SPLITS, SplitOptions, classification_splits, pick_split


__all__ = [
    "LABEL_COLUMN_CANDIDATES",
    "ImageClassificationData",
    "describe_columns",
    "find_columns",
    "image_classification_data",
    "load_image_classification_data",
    "pick_column",
]

IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "picture", "photo")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "fine_label", "coarse_label", "class", "target")
# Directory names `imagefolder` reads as splits rather than classes.
SPLIT_DIRECTORY_NAMES = frozenset(TRAIN_SPLITS + TEST_SPLITS + ("testing", "evaluation", "dev"))


@dataclass
class ImageClassificationData:
    """Train/test splits with their column names and the label names (index = class id)."""

    splits: DatasetDict
    image_column: str
    label_column: str
    label_names: list[str]


def describe_columns(dataset: Dataset) -> str:
    """The columns of `dataset` with their feature types, for messages: ``"text (string), label (ClassLabel)"``
    (``large_string`` reads ``string``)."""

    def kind(feature) -> str:
        if isinstance(feature, Value):
            return "string" if feature.dtype == "large_string" else feature.dtype
        return type(feature).__name__

    return ", ".join(f"{name} ({kind(feature)})" for name, feature in dataset.features.items())


def pick_column(
    dataset: Dataset,
    given: str | None,
    kind: str,
    matches: Callable[[object], bool],
    type_name: str,
    candidates: tuple[str, ...],
    exclude: tuple[str, ...] = (),
) -> str:
    """The name of the `kind` column (``"image"``, ``"label"``, ``"text"``) of `dataset`: `given` when it is a
    column, else the single column whose feature `matches` (`type_name` says which, in the message), else the first
    of `candidates` that is a column. Columns in `exclude` (already taken) are never picked. A ValueError naming
    ``--{kind}_column`` and the columns found otherwise."""
    columns = list(dataset.column_names)
    if given is not None:
        if given not in columns:
            raise ValueError(f"{kind}_column={given!r} is not a column of the dataset; columns found: {columns}.")
        return given
    free = [c for c in columns if c not in exclude]
    typed = [c for c in free if matches(dataset.features[c])]
    if len(typed) == 1:
        return typed[0]
    named = [c for c in candidates if c in free]
    if named:
        return named[0]
    raise ValueError(
        f"cannot find the {kind} column: no single {type_name} feature and none of {candidates}; "
        f"columns found: {columns}. Name it with --{kind}_column."
    )


def find_columns(dataset: Dataset, image_column: str | None = None, label_column: str | None = None):
    """The image and label column names: the ones given, or found by feature type, then by usual names."""
    image = pick_column(
        dataset, image_column, "image", lambda f: isinstance(f, Image), "Image", IMAGE_COLUMN_CANDIDATES
    )
    label = pick_column(
        dataset, label_column, "label", lambda f: isinstance(f, ClassLabel), "ClassLabel", LABEL_COLUMN_CANDIDATES
    )
    return image, label


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


def image_classification_data(
    source: ClassificationSource,
    dataset: str,
    image_column: str | None = None,
    label_column: str | None = None,
    options: SplitOptions = SplitOptions(),
) -> ImageClassificationData:
    """The image-classification data of a loaded `source` (`dataset` names it in the messages): its columns found
    (`find_columns`), then its splits made (`classification_splits`)."""
    train_name = pick_split(source.splits, TRAIN_SPLITS, "train", options.train_split)
    try:
        image, label = find_columns(source.splits[train_name], image_column, label_column)
    except ValueError:
        if source.image_folder is not None and label_column is None:
            _refuse_folder_without_classes(dataset, source.image_folder)
        raise
    splits, names = classification_splits(source.splits, train_name, label, dataset, options)
    return ImageClassificationData(splits, image, label, names)


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
    is neither (an absolute or ``./`` path that does not exist) is an error saying so, and so is a file (a text
    file is a text dataset: `load_text_classification_data`). A source with a train split only is split 80/20,
    stratified, with `seed`. Raises a ValueError naming what is wrong (a path that does not exist, missing column,
    an image folder without two class subfolders, fewer than two classes, empty split) before any training.
    """
    if os.path.isfile(os.path.expanduser(dataset)):
        raise ValueError(
            f"dataset {dataset!r} is a file, not a directory: give {DIGITS!r}, the directory of an image folder (one "
            f"subfolder per class) or a Hub dataset id (a {', '.join(TEXT_FILE_EXTENSIONS)} file is a text dataset, "
            "for a text teacher)."
        )
    options = SplitOptions(train_split, test_split, seed, max_train_samples, max_test_samples)
    return image_classification_data(load_source(dataset, seed), dataset, image_column, label_column, options)
