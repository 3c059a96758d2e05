"""What a batch of preprocessed rows holds: the model's inputs, and the bookkeeping columns beside them."""

import torch


__all__ = ["BOOKKEEPING_COLUMNS", "batch_size", "model_inputs"]

# Columns every preprocessed split carries that are not model inputs: the class id and the row number.
BOOKKEEPING_COLUMNS = ("labels", "index")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments of the model's forward in `batch`: `pixel_values` for images, `input_ids`,
    `attention_mask` (and `token_type_ids`) for text; everything but the bookkeeping columns."""
    return {key: value for key, value in batch.items() if key not in BOOKKEEPING_COLUMNS}


def batch_size(batch: dict[str, torch.Tensor]) -> int:
    """The number of examples in `batch` (the length of its `labels`)."""
    return int(batch["labels"].shape[0])
