"""Classification datasets for the sweep: loading a source (the embedded digits default, an image folder, a local
text file, a Hub dataset) and making its train/test splits, shared by the image and text loaders.

Every source becomes a `datasets.DatasetDict` with `train` and `test` splits and a `ClassLabel` column (plus an
`Image` column here, a string column in `text`); `preprocess` then turns the examples into model inputs.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset
from PIL import Image as PILImage

from ..models import is_repo_id


__all__ = [
    "DIGITS",
    "LABEL_COLUMN_CANDIDATES",
    "TEXT_FILE_EXTENSIONS",
    "TRAIN_SPLITS",
    "ClassificationSource",
    "ImageClassificationData",
    "as_class_labels",
    "classification_splits",
    "describe_columns",
    "find_columns",
    "find_test_split",
    "image_classification_data",
    "load_digits_dataset",
    "load_image_classification_data",
    "load_source",
    "pick_column",
    "pick_split",
    "require_examples",
    "stratified_split",
    "truncate_splits",
]

DIGITS = "digits"
IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "picture", "photo")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "fine_label", "coarse_label", "class", "target")
TRAIN_SPLITS = ("train", "training")
TEST_SPLITS = ("test", "validation", "valid", "val", "eval")
# Directory names `imagefolder` reads as splits rather than classes.
SPLIT_DIRECTORY_NAMES = frozenset(TRAIN_SPLITS + TEST_SPLITS + ("testing", "evaluation", "dev"))
# Local files read as text datasets: extension -> (`load_dataset` builder, its keyword arguments).
TEXT_FILE_EXTENSIONS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}
TEST_FRACTION = 0.2


@dataclass
class ImageClassificationData:
    """Train/test splits with their column names and the label names (index = class id)."""

    splits: DatasetDict
    image_column: str
    label_column: str
    label_names: list[str]


@dataclass
class ClassificationSource:
    """A source as loaded, before any split is picked: its splits as they come, and the directory when it was read
    as an image folder (to explain a folder without class subfolders), else None."""

    splits: DatasetDict
    image_folder: str | None = None


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


def pick_split(splits: DatasetDict, candidates: tuple[str, ...], kind: str, requested: str | None) -> str:
    """The name of the `kind` split (``"train"``, ``"test"``): `requested` when it is a split, else the first of
    `candidates` present; a ValueError naming ``--{kind}_split`` and the splits found otherwise."""
    if requested is not None:
        if requested not in splits:
            raise ValueError(f"{kind}_split={requested!r} is not a split; splits found: {list(splits)}.")
        return requested
    for name in candidates:
        if name in splits:
            return name
    raise ValueError(f"no {kind} split among {list(splits)}; name one with --{kind}_split.")


def _valid_sources() -> str:
    extensions = ", ".join(TEXT_FILE_EXTENSIONS)
    return (
        f"give {DIGITS!r}, the directory of an image folder (one subfolder per class), a text file ({extensions}), "
        "a directory of text files or a Hub dataset id"
    )


def _load_text_file(dataset: str, path: str) -> DatasetDict:
    """The local file `path` (the value `dataset` as given) as a `train` split, read by its extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in TEXT_FILE_EXTENSIONS:
        raise ValueError(
            f"dataset {dataset!r} is a file with extension {extension or '(none)'!r}, which is not supported: "
            f"supported files are {', '.join(TEXT_FILE_EXTENSIONS)}; or give a directory or a Hub dataset id."
        )
    builder, kwargs = TEXT_FILE_EXTENSIONS[extension]
    try:
        return DatasetDict(load_dataset(builder, data_files=path, **kwargs))
    except Exception as error:  # pyarrow and pandas parse errors have no common base below Exception
        raise ValueError(
            f"cannot read dataset file {dataset!r} as {extension}: {type(error).__name__}: {error}"
        ) from error


def _holds_images(folder: str) -> bool:
    """Whether any file under `folder` is an image (by extension): the directory is then an image folder."""
    extensions = {extension.lower() for extension in PILImage.registered_extensions()}
    return any(path.suffix.lower() in extensions and path.is_file() for path in Path(folder).rglob("*"))


def _load_directory(dataset: str, folder: str) -> ClassificationSource:
    """A local directory: an image folder (`imagefolder`) when it holds images, else whatever `load_dataset` reads
    in it (CSV, JSON, Parquet... files)."""
    if _holds_images(folder):
        return ClassificationSource(DatasetDict(load_dataset("imagefolder", data_dir=folder)), folder)
    try:
        return ClassificationSource(DatasetDict(load_dataset(folder)))
    except FileNotFoundError as error:  # EmptyDatasetError: no data files in it
        raise ValueError(
            f"dataset {dataset!r} is a directory with no data files in it: {_valid_sources()}."
        ) from error


def load_source(dataset: str, seed: int = 0) -> ClassificationSource:
    """`dataset` loaded as it comes: ``"digits"`` (embedded, split with `seed`), a local text file (``.csv``,
    ``.tsv``, ``.json``, ``.jsonl``), a local directory (an image folder when it holds images, else
    ``load_dataset(dir)``), else a Hub dataset id (``~`` expanded for local paths). A path that is none of these,
    a file of another extension or an unreadable file is a ValueError saying so."""
    if dataset == DIGITS:
        return ClassificationSource(load_digits_dataset(seed=seed))
    path = os.path.expanduser(dataset)
    if os.path.isdir(path):
        return _load_directory(dataset, path)
    if os.path.exists(path):
        return ClassificationSource(_load_text_file(dataset, path))
    local = "file" if os.path.splitext(path)[1].lower() in TEXT_FILE_EXTENSIONS else "directory"
    if not is_repo_id(dataset):
        raise ValueError(
            f"dataset {dataset!r} does not exist: there is no such local {local}, and it is not a Hub dataset id "
            f"('name' or 'namespace/name') either; {_valid_sources()}."
        )
    try:
        return ClassificationSource(DatasetDict(load_dataset(dataset)))
    except (FileNotFoundError, ConnectionError) as error:
        raise ValueError(
            f"dataset {dataset!r}: no local {local} {dataset!r} and no Hub dataset {dataset!r}: {error}"
        ) from error


def as_class_labels(splits: DatasetDict, label: str) -> DatasetDict:
    """`splits` with the `label` column a `ClassLabel`: kept when it is one; string or integer labels become one with
    the sorted distinct values of all splits as names (integers sorted as numbers, named ``"3"``, ``"7"``...).
    A missing label or another feature type is a ValueError naming the column."""
    feature = next(iter(splits.values())).features[label]
    if isinstance(feature, ClassLabel):
        return splits
    is_int = isinstance(feature, Value) and feature.dtype.startswith(("int", "uint"))
    if not (is_int or (isinstance(feature, Value) and feature.dtype in ("string", "large_string"))):
        raise ValueError(
            f"the label column {label!r} is of type {feature!r}: give a ClassLabel, string or integer column with "
            "--label_column."
        )
    values = {name: list(split[label]) for name, split in splits.items()}
    for name, column in values.items():
        if None in column:
            raise ValueError(
                f"the label column {label!r} has no value in {column.count(None)} rows of the {name} split "
                f"(first: row {column.index(None)}): give every example a label."
            )
    names = [str(value) for value in sorted(set().union(*values.values()))]
    if is_int:  # through strings, so that 3 and 7 become classes 0 and 1, not indices 3 and 7
        splits = splits.cast_column(label, Value("string"))
    return splits.cast_column(label, ClassLabel(names=names))


def find_test_split(splits: DatasetDict, test_split: str | None = None) -> str | None:
    """The name of the test split: `test_split` (a ValueError naming ``--test_split`` when it is not a split), else
    the first of the usual names (``test``, ``validation``...) present, else None (then the train split is split)."""
    if test_split is None and not any(name in splits for name in TEST_SPLITS):
        return None
    return pick_split(splits, TEST_SPLITS, "test", test_split)


def stratified_split(train: Dataset, label: str, dataset: str, seed: int = 0) -> DatasetDict:
    """``{"train", "test"}``: `train` split 80/20, stratified by its `ClassLabel` column `label`, with `seed`.
    A ValueError, naming `dataset`, when it is empty or cannot be split so (a class with a single example, fewer
    test examples than classes)."""
    require_examples(DatasetDict({"train": train}), dataset)
    try:
        return train.train_test_split(test_size=TEST_FRACTION, stratify_by_column=label, seed=seed)
    except ValueError as error:
        raise ValueError(
            f"dataset {dataset!r} has no test split, and its {len(train)} train examples cannot be split 80/20 "
            f"stratified by {label!r}: {error} Name a test split with --test_split, or give more examples of each "
            "class."
        ) from error


def truncate_splits(
    splits: DatasetDict, max_train_samples: int | None = None, max_test_samples: int | None = None
) -> DatasetDict:
    """`splits` with the train and test splits cut to their first `max_*_samples` rows (None: all of them)."""
    limits = {"train": max_train_samples, "test": max_test_samples}
    return DatasetDict(
        {
            name: split if limits.get(name) is None else split.select(range(min(limits[name], len(split))))
            for name, split in splits.items()
        }
    )


def require_examples(splits: DatasetDict, dataset: str) -> None:
    """Raise a ValueError naming the first split of `splits` that has no rows."""
    for name, split in splits.items():
        if len(split) == 0:
            raise ValueError(f"the {name} split of {dataset!r} is empty.")


def _require_two_classes(feature: ClassLabel, label: str, dataset: str) -> None:
    if len(feature.names) < 2:
        found = f"one class, {feature.names[0]!r}" if feature.names else "no classes"
        raise ValueError(
            f"the label column {label!r} of dataset {dataset!r} has {found}: classification needs at least two "
            "classes."
        )


def classification_splits(
    splits: DatasetDict,
    train_name: str,
    label: str,
    dataset: str,
    test_split: str | None = None,
    seed: int = 0,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> tuple[DatasetDict, list[str]]:
    """The ``{"train", "test"}`` splits of a loaded source (train = `train_name`) and the label names (index =
    class id): the labels made a `ClassLabel` (`as_class_labels`), at least two classes, the test split found or made
    (`find_test_split`, else `stratified_split`), cut to `max_*_samples`, neither empty. `dataset` names the source
    in the messages."""
    test_name = find_test_split(splits, test_split)
    chosen = DatasetDict({"train": splits[train_name]} | ({"test": splits[test_name]} if test_name else {}))
    chosen = as_class_labels(chosen, label)
    feature = chosen["train"].features[label]
    _require_two_classes(feature, label, dataset)
    if test_name is None:
        chosen = stratified_split(chosen["train"], label, dataset, seed)
    chosen = truncate_splits(chosen, max_train_samples, max_test_samples)
    require_examples(chosen, dataset)
    return chosen, list(feature.names)


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
    train_split: str | None = None,
    test_split: str | None = None,
    seed: int = 0,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> ImageClassificationData:
    """The image-classification data of a loaded `source` (`dataset` names it in the messages): its columns found
    (`find_columns`), then its splits made (`classification_splits`); arguments as `load_image_classification_data`.
    """
    train_name = pick_split(source.splits, TRAIN_SPLITS, "train", train_split)
    try:
        image, label = find_columns(source.splits[train_name], image_column, label_column)
    except ValueError:
        if source.image_folder is not None and label_column is None:
            _refuse_folder_without_classes(dataset, source.image_folder)
        raise
    splits, names = classification_splits(
        source.splits, train_name, label, dataset, test_split, seed, max_train_samples, max_test_samples
    )
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
    return image_classification_data(
        load_source(dataset, seed),
        dataset,
        image_column,
        label_column,
        train_split,
        test_split,
        seed,
        max_train_samples,
        max_test_samples,
    )
