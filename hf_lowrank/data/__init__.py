"""Datasets for the sweep: loading image-classification sources (`datasets`) and making model inputs
(`preprocess`)."""

from .datasets import (
    DIGITS,
    ImageClassificationData,
    find_columns,
    load_digits_dataset,
    load_image_classification_data,
)
from .preprocess import collate_pixel_values, preprocess


__all__ = [
    "DIGITS",
    "ImageClassificationData",
    "collate_pixel_values",
    "find_columns",
    "load_digits_dataset",
    "load_image_classification_data",
    "preprocess",
]
