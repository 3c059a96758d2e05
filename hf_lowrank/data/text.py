"""Text-classification datasets (local CSV/TSV/JSON files, directories of them, Hub datasets) as train/test splits
with a string column and a `ClassLabel` column; and `load_classification_data`, which loads any source once and
checks that it is of the teacher's kind, image or text.

Source loading and split making are those of the image datasets (`sources.load_source`,
`splits.classification_splits`); only the columns differ.
"""

from dataclasses import dataclass

import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Image, Value

from .datasets import (
    LABEL_COLUMN_CANDIDATES,
    ImageClassificationData,
    describe_columns,
    image_classification_data,
    pick_column,
)
from .sources import ClassificationSource, load_source
from .splits import TRAIN_SPLITS, SplitOptions, classification_splits, pick_split


__all__ = [
    "MODALITIES",
    "TextClassificationData",
    "dataset_modality",
    "find_text_columns",
    "is_string_feature",
    "load_classification_data",
    "load_text_classification_data",
    "text_classification_data",
]

MODALITIES = ("image", "text")
TEXT_COLUMN_CANDIDATES = (
    "text",
    "sentence",
    "content",
    "review",
    "document",
    "question",
    "sentence1",
    "premise",
    "body",
    "comment",
    "tweet",
    "utterance",
)
TEXT_LABEL_COLUMN_CANDIDATES = LABEL_COLUMN_CANDIDATES + ("sentiment", "category", "intent")
# Second halves of sentence-pair datasets (MNLI, QQP, ...): a classifier of one text column would silently drop them.
PAIR_COLUMNS = ("sentence2", "hypothesis", "question2", "text_b", "text_pair")


@dataclass
class TextClassificationData:
    """Train/test splits with their column names (a string text column, a `ClassLabel` label column) and the label
    names (index = class id)."""

    splits: DatasetDict
    text_column: str
    label_column: str
    label_names: list[str]


def is_string_feature(feature) -> bool:
    """Whether `feature` is a string `Value` (``string`` or ``large_string``)."""
    return isinstance(feature, Value) and feature.dtype in ("string", "large_string")


def find_text_columns(
    dataset: Dataset, text_column: str | None = None, label_column: str | None = None
) -> tuple[str, str]:
    """The (text, label) column names of `dataset`. Label: `label_column`, else the single `ClassLabel`, else the
    first usual name (``label``, ``labels``, ``class``, ``target``, ``sentiment``...). Text: `text_column`, else the
    single string column that is not the label, else the first usual name (``text``, ``sentence``, ``content``,
    ``review``...). A ValueError naming the argument and the columns found when there is none, or when the text
    column is not of strings."""
    pairs = [name for name in PAIR_COLUMNS if name in dataset.column_names]
    if text_column is None and pairs:
        raise ValueError(
            f"the dataset looks like a sentence-pair task (it has {pairs}; columns found: "
            f"{describe_columns(dataset)}), and hf_lowrank classifies one text per example: name the one column to "
            "classify with --text_column, or join the pair into one column first."
        )
    label = pick_column(
        dataset,
        label_column,
        "label",
        lambda f: isinstance(f, ClassLabel),
        "ClassLabel",
        TEXT_LABEL_COLUMN_CANDIDATES,
    )
    text = pick_column(
        dataset, text_column, "text", is_string_feature, "string", TEXT_COLUMN_CANDIDATES, exclude=(label,)
    )
    if text == label:
        raise ValueError(
            f"text_column={text!r} is also the label column: give two different columns; columns found: "
            f"{describe_columns(dataset)}."
        )
    if not is_string_feature(dataset.features[text]):
        strings = [name for name, feature in dataset.features.items() if is_string_feature(feature)]
        raise ValueError(
            f"the text column {text!r} is not a column of strings; columns found: {describe_columns(dataset)}. Name "
            f"a string column ({', '.join(strings) or 'there is none'}) with --text_column."
        )
    return text, label


def _require_texts(splits: DatasetDict, text: str, dataset: str) -> None:
    """Raise a ValueError naming the split and the first row whose text is missing (an empty CSV cell, a JSON
    null)."""
    for name, split in splits.items():
        column = split.with_format("arrow")[text]  # the rows of `split` (after select), as one Arrow array
        if column.null_count:
            first = pc.index(pc.is_null(column), True).as_py()
            raise ValueError(
                f"the text column {text!r} of dataset {dataset!r} has no text in {column.null_count} rows of the "
                f"{name} split (first: row {first}): give every example a text."
            )


def text_classification_data(
    source: ClassificationSource,
    dataset: str,
    text_column: str | None = None,
    label_column: str | None = None,
    options: SplitOptions = SplitOptions(),
) -> TextClassificationData:
    """The text-classification data of a loaded `source` (`dataset` names it in the messages): its columns found
    (`find_text_columns`), then its splits made (`datasets.classification_splits`: labels cast to a `ClassLabel`
    with sorted names, the test split or an 80/20 stratified split with `seed`, cut to `max_*_samples`)."""
    train_name = pick_split(source.splits, TRAIN_SPLITS, "train", options.train_split)
    text, label = find_text_columns(source.splits[train_name], text_column, label_column)
    splits, names = classification_splits(source.splits, train_name, label, dataset, options)
    _require_texts(splits, text, dataset)
    return TextClassificationData(splits, text, label, names)


def dataset_modality(splits: DatasetDict, train_split: str | None = None) -> str:
    """``"image"`` when the train split (`train_split`, else ``train``/``training``) has an `Image` feature,
    ``"text"`` when it has a string column and no image; else a ValueError listing the columns and their types."""
    name = pick_split(splits, TRAIN_SPLITS, "train", train_split)
    features = splits[name].features
    if any(isinstance(feature, Image) for feature in features.values()):
        return "image"
    if any(is_string_feature(feature) for feature in features.values()):
        return "text"
    raise ValueError(
        f"the {name} split has neither an Image column nor a string column, so it is neither an image nor a text "
        f"dataset; columns found: {describe_columns(splits[name])}."
    )


def _an(modality: str) -> str:
    return f"an {modality}" if modality[0] in "aeiou" else f"a {modality}"


def _require_modality(source: ClassificationSource, dataset: str, wanted: str, train_split: str | None, why: str):
    """Raise a ValueError, naming the columns found, when `source` is not a `wanted` dataset; `why` ends the
    sentence (``"but the teacher is ..."``)."""
    try:
        found = dataset_modality(source.splits, train_split)
    except ValueError as error:
        raise ValueError(f"dataset {dataset!r}: {error} Give {_an(wanted)} dataset.") from error
    if found != wanted:
        train = source.splits[pick_split(source.splits, TRAIN_SPLITS, "train", train_split)]
        raise ValueError(f"dataset {dataset!r} is {_an(found)} dataset (columns: {describe_columns(train)}), {why}")


def load_text_classification_data(
    dataset: str,
    text_column: str | None = None,
    label_column: str | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
    seed: int = 0,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> TextClassificationData:
    """Load the text dataset `dataset`: a local ``.csv``, ``.tsv``, ``.json`` or ``.jsonl`` file, a local directory
    (``load_dataset(dir)``) or a Hub dataset id (see `datasets.load_source`).

    A source with a train split only is split 80/20, stratified, with `seed`; string or integer labels become a
    `ClassLabel` with sorted names. A ValueError naming what is wrong (an unsupported file, a missing column, an
    image dataset, fewer than two classes, an empty split, a missing text) before any training.
    """
    source = load_source(dataset, seed)
    why = "not a text dataset: give a text dataset (an image one is for load_image_classification_data)."
    _require_modality(source, dataset, "text", train_split, why)
    options = SplitOptions(train_split, test_split, seed, max_train_samples, max_test_samples)
    return text_classification_data(source, dataset, text_column, label_column, options)


def load_classification_data(
    dataset: str,
    modality: str,
    image_column: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
    seed: int = 0,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> ImageClassificationData | TextClassificationData:
    """Load `dataset` (``"digits"``, an image folder, a text file, a directory or a Hub dataset id) for a teacher of
    `modality` (``"image"`` or ``"text"``): the source is loaded once, its kind found (`dataset_modality`), and a
    source of the other kind is a ValueError naming its columns. Returns `ImageClassificationData` or
    `TextClassificationData`; the other arguments are those of `load_image_classification_data` and
    `load_text_classification_data`."""
    if modality not in MODALITIES:
        raise ValueError(f"modality={modality!r} is not a kind of teacher: give one of {list(MODALITIES)}.")
    other = MODALITIES[1 - MODALITIES.index(modality)]
    stray = text_column if modality == "image" else image_column
    if stray is not None:
        raise ValueError(
            f"{other}_column={stray!r} is for {_an(other)} teacher, but the teacher is {_an(modality)} classifier: "
            f"leave --{other}_column out."
        )
    source = load_source(dataset, seed)
    why = f"but the teacher is {_an(modality)} classifier: give {_an(modality)} dataset, or {_an(other)} teacher."
    _require_modality(source, dataset, modality, train_split, why)
    options = SplitOptions(train_split, test_split, seed, max_train_samples, max_test_samples)
    if modality == "image":
        return image_classification_data(source, dataset, image_column, label_column, options)
    return text_classification_data(source, dataset, text_column, label_column, options)
