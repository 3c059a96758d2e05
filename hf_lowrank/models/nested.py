"""Nested (ordered) low-rank students: one factorized model whose every rank-r prefix is a student.

`truncated_view(model, r)` makes every `FactorizedLinear` of `model` compute with its first r directions only (its
first r rows of `down` and columns of `up`), in place and undone on exit: what nested training distils at each rank.
`truncated_student(model, r)` is the ordinary student of rank r holding those same directions (a copy, with its
config saying rank r), saved and loaded like any other.

Only imports torch, transformers and flat siblings (the `trust_remote_code` unit).
"""

import contextlib
import copy

import torch
from torch import nn

from .factorize import truncate_factorized
from .factorized_linear import FactorizedLinear


__all__ = ["largest_rank", "truncated_student", "truncated_view"]


def _factorized(model: nn.Module) -> list[FactorizedLinear]:
    model = getattr(model, "module", model)  # DDP-wrapped
    return [m for m in model.modules() if isinstance(m, FactorizedLinear)]


def largest_rank(model: nn.Module) -> int:
    """The largest rank of `model`'s factorized layers (ValueError when it has none)."""
    layers = _factorized(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no FactorizedLinear layer: nothing to truncate.")
    return max(layer.rank for layer in layers)


@contextlib.contextmanager
def truncated_view(model: nn.Module, rank: int | None):
    """Inside the block, every factorized layer of `model` computes with min(rank, its rank) directions (None: all
    of them). Gradients reach only the used directions."""
    layers = _factorized(model)
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be a positive integer, got {rank!r}.")
    before = [layer.active_rank for layer in layers]
    try:
        for layer in layers:
            layer.active_rank = rank
        yield model
    finally:
        for layer, value in zip(layers, before):
            layer.active_rank = value


@torch.no_grad()
def truncated_student(model: nn.Module, rank: int) -> nn.Module:
    """A copy of `model` (a LowRank student) whose factorized layers keep their first
    min(rank, layer rank) directions, with its config updated to say so: the ordinary rank-`rank` student that
    `truncated_view(model, rank)` computes."""
    model = getattr(model, "module", model)
    student = copy.deepcopy(model)
    ranks = truncate_factorized(student, rank)  # name -> new rank (an error for a model without factors)
    if not hasattr(student, "record_truncation"):  # each student class says how its config records its ranks
        raise ValueError(
            f"truncated_student supports the students with `record_truncation` (LowRank*), got {type(model).__name__}."
        )
    student.record_truncation(ranks)
    return student.eval()
