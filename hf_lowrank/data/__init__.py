"""Datasets for the sweep: loading a source (`sources`), making its train/test splits (`splits`), image- and
text-classification data (`datasets`, `text`), model inputs (`preprocess`) and reading batches (`batches`)."""

from .batches import BOOKKEEPING_COLUMNS, batch_size, model_inputs
from .datasets import ImageClassificationData, find_columns, load_image_classification_data
from .preprocess import collate_examples, collate_pixel_values, preprocess, preprocess_images, preprocess_text
from .sources import DIGITS, ClassificationSource, load_digits_dataset, load_source
from .splits import SplitOptions, validation_count, validation_indices
from .text import (
    MODALITIES,
    TextClassificationData,
    dataset_modality,
    find_text_columns,
    load_classification_data,
    load_text_classification_data,
)


__all__ = [
    "BOOKKEEPING_COLUMNS",
    "DIGITS",
    "MODALITIES",
    "ClassificationSource",
    "ImageClassificationData",
    "SplitOptions",
    "TextClassificationData",
    "batch_size",
    "collate_examples",
    "collate_pixel_values",
    "dataset_modality",
    "find_columns",
    "find_text_columns",
    "load_classification_data",
    "load_digits_dataset",
    "load_image_classification_data",
    "load_source",
    "load_text_classification_data",
    "model_inputs",
    "preprocess",
    "preprocess_images",
    "preprocess_text",
    "validation_count",
    "validation_indices",
]
