"""Collect a model's representations on a dataset and summarise them with `hf_lowrank.diagnostics`.

Works on any model whose forward accepts `output_hidden_states=True`: ViT-like hidden states `(batch, tokens, dim)`
are used as they are; convolutional ones `(batch, channels, height, width)` become `height * width` tokens of
`channels` dimensions. The pooled representation is the model's `pooler_output` when it has one (the bridged CLS
token of a Lift / WideLast student), else the CLS token of its final (normalised) hidden state. Per layer, the entropy
effective rank of the class token is given only for a model that has one (a `cls_token` or `class_embedding`
parameter: ViT, DeiT, BEiT, DINOv2, CLIP); for Swin, ConvNeXt and SigLIP token 0 is a patch, so it is None there, and
every layer also gives the rank of its mean token (the average pool those families classify from).
"""

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import collate_examples, model_inputs
from ..models import backbone_of, layout_of
from .spectra import (
    dataset_pca_retention,
    entropy_effective_rank,
    sample_svd_ranks,
    shared_dimension,
    spectral_bandwidth,
    token_spectral_energy,
)


__all__ = ["RepresentationError", "collect_representations", "diagnose_model", "has_class_token"]

ENERGIES = (0.95, 0.99)
ALPHAS = (0.5, 0.7, 0.9)


class RepresentationError(ValueError):
    """A model whose outputs do not carry what a diagnostic needs."""


def _as_tokens(hidden: torch.Tensor) -> torch.Tensor | None:
    if hidden.ndim == 3:
        return hidden  # (batch, tokens, dim)
    if hidden.ndim == 4:
        return hidden.flatten(2).transpose(1, 2)  # (batch, channels, h, w) -> (batch, h*w, channels)
    return None


def _backbone(model: nn.Module) -> nn.Module:
    """The model's backbone: its `base_model`, else (CLIP's and SigLIP's classifiers, which have no attribute of
    their `base_model_prefix`) the child holding its blocks; the model itself when neither is found."""
    base = getattr(model, "base_model", model)
    if base is not model:
        return base
    try:
        found = backbone_of(model, layout_of(model))
    except ValueError:  # a family the block table does not know
        found = None
    return found[1] if found is not None else model


def _pooled(model: nn.Module, outputs, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """`(batch, dim)`: the pooler output (of the model, else of its base model), else the CLS token of the base
    model's final normalised hidden state."""
    if getattr(outputs, "pooler_output", None) is not None:
        return outputs.pooler_output.flatten(1)
    if getattr(outputs, "bridged_tokens", None) is not None:  # Lift / WideLast: the CLS token the classifier reads
        return outputs.bridged_tokens[:, 0]
    base_outputs = _backbone(model)(**inputs)
    if getattr(base_outputs, "pooler_output", None) is not None:
        return base_outputs.pooler_output.flatten(1)  # e.g. a CNN's global average pool
    if getattr(base_outputs, "last_hidden_state", None) is None:
        raise RepresentationError(
            f"{type(model).__name__}: found no backbone whose outputs hold a pooled or final hidden state."
        )
    return base_outputs.last_hidden_state[:, 0]


@torch.no_grad()
def collect_representations(model: nn.Module, dataset, max_examples: int = 256, batch_size: int = 64):
    """Token matrices per layer, `[(n, tokens, dim)]` (None for a layer without a token axis), and pooled features
    `(n, dim)`, on the first `max_examples` rows of `dataset` (rows with `pixel_values`)."""
    model.eval()
    rows = dataset.select(range(min(max_examples, len(dataset))))
    layers, pooled = None, []
    for batch in DataLoader(rows, batch_size=batch_size, collate_fn=collate_examples):
        inputs = model_inputs(batch)
        try:
            outputs = model(**inputs, output_hidden_states=True)
        except TypeError as error:
            raise RepresentationError(
                f"{type(model).__name__} does not take output_hidden_states: every diagnostic needs the hidden "
                "states (per-image SVD, dataset PCA and spectral energy need token matrices, the entropy effective "
                "rank needs pooled features)."
            ) from error
        hidden_states = getattr(outputs, "hidden_states", None)
        if not hidden_states:
            raise RepresentationError(
                f"{type(model).__name__} returned no hidden_states; every diagnostic needs them."
            )
        tokens = [_as_tokens(h) for h in hidden_states]
        layers = [[] for _ in tokens] if layers is None else layers
        for store, layer in zip(layers, tokens):
            store.append(None if layer is None else layer.float().cpu().numpy())
        pooled.append(_pooled(model, outputs, inputs).float().cpu().numpy())
    matrices = [None if any(part is None for part in layer) else np.concatenate(layer) for layer in layers]
    return matrices, np.concatenate(pooled)


def has_class_token(model: nn.Module) -> bool:
    """Whether `model`'s token 0 is a class token: it has a `cls_token` (ViT, DeiT, BEiT, DINOv2) or
    `class_embedding` (CLIP) parameter. Swin, ConvNeXt and SigLIP have none: their token 0 is a patch."""
    return any(name.endswith(("cls_token", "class_embedding")) for name, _ in model.named_parameters())


def _summarise_tokens(tokens: np.ndarray, with_curve: bool, class_token: bool = True) -> dict:
    ranks = sample_svd_ranks(tokens, ENERGIES)
    retention = dataset_pca_retention(tokens)
    bandwidth, cumulative = token_spectral_energy(tokens)
    summary = {
        "dim": int(tokens.shape[-1]),
        "tokens": int(tokens.shape[1]),
        "svd_rank_p99": {str(e): float(np.percentile(ranks[e], 99)) for e in ENERGIES},
        "svd_rank_median": {str(e): float(np.median(ranks[e])) for e in ENERGIES},
        "shared_dimension": shared_dimension(retention, 0.99, 0.95),
        "bandwidth": {str(a): spectral_bandwidth(bandwidth, cumulative, a) for a in ALPHAS},
        # (n, dim) class tokens, where token 0 is one; else None (a patch says nothing of the image as a whole)
        "cls_entropy_rank": entropy_effective_rank(tokens[:, 0]) if class_token else None,
        "mean_token_entropy_rank": entropy_effective_rank(tokens.mean(axis=1)),  # (n, dim) average-pooled tokens
    }
    if with_curve:
        summary["svd_ranks"] = {str(e): ranks[e].tolist() for e in ENERGIES}
        summary["pca_retention_at_svd_rank"] = retention.mean(axis=0).tolist()
        summary["sep_curve"] = {"bandwidth": bandwidth.tolist(), "cumulative": cumulative.tolist()}
    return summary


def diagnose_model(model: nn.Module, dataset, max_examples: int = 256, batch_size: int = 64) -> dict:
    """Every diagnostic, per layer (hidden state 0 = embeddings) and for the pooled representation.

    The final layer also keeps its full distributions (per-image ranks, SEP curve) for plotting."""
    matrices, pooled = collect_representations(model, dataset, max_examples, batch_size)
    class_token = has_class_token(model)
    layers = []
    for depth, tokens in enumerate(matrices):
        if tokens is None:
            layers.append({"depth": depth, "skipped": "no token axis: per-image SVD, PCA and SEP need one"})
        else:
            last = depth == len(matrices) - 1
            layers.append({"depth": depth, **_summarise_tokens(tokens, with_curve=last, class_token=class_token)})
    return {
        "num_examples": int(len(pooled)),
        "pooled_entropy_rank": entropy_effective_rank(pooled),
        "pooled_dim": int(pooled.shape[1]),
        "layers": layers,
    }
