"""Loading a classification source as it comes: the embedded digits, a local text file, a local directory (an image
folder, or files `load_dataset` reads) or a Hub dataset; no split chosen yet (`splits`)."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from PIL import Image as PILImage

from ..models import is_repo_id
from .file_errors import locate_parse_error


__all__ = ["DIGITS", "TEXT_FILE_EXTENSIONS", "ClassificationSource", "load_digits_dataset", "load_source"]

DIGITS = "digits"
# Local files read as text datasets: extension -> (`load_dataset` builder, its keyword arguments).
TEXT_FILE_EXTENSIONS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}


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
        where = locate_parse_error(path, extension)
        reason = where or f"{type(_innermost(error)).__name__}: {_innermost(error)}"
        raise ValueError(f"cannot read dataset file {dataset!r} as {extension}: {reason}") from error


def _innermost(error: BaseException) -> BaseException:
    """The first cause of `error` (datasets wraps a parser's error in "An error occurred while generating")."""
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ or error.__context__
    return error


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
