"""Calibration statistics of a model's linear layers, gathered with forward hooks in one pass over a few batches
(and, for the Fisher weights, one backward per batch): what the data-aware inits weight the
SVD with (`models.decomposition`).
"""

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..models.decomposition import InputStatistics


__all__ = ["collect_input_statistics"]


def collect_input_statistics(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    layer_names: Sequence[str],
    fisher: bool = False,
    loss_of: Callable | None = None,
    mask_key: str | None = "attention_mask",
) -> dict[str, InputStatistics]:
    """Run `model` on `batches` and return, per `nn.Linear` named in `layer_names`, the float64 statistics of its
    inputs (`InputStatistics`: the sum of `x x^T`, of `|x|`, the token count).

    Args:
        batches: forward keyword arguments of `model` (e.g. ``{"pixel_values": ...}``), on the model's device.
            With `fisher`, each must also hold ``labels`` (or `loss_of` computes the loss).
        fisher: also gather the per-row Fisher weights of each layer's weight: the sum over batches of the squared
            gradient of the task loss, summed over each row (one backward per batch; the model's parameters keep
            their `requires_grad` and get no `.grad` left behind).
        loss_of: `loss_of(outputs, batch) -> scalar`; default `outputs.loss`.
        mask_key: a batch's padding mask `(batch, seq)` (1: a real token): a layer input of shape
            `(batch, seq, in_features)` then contributes only its real tokens (padding is not calibration data).
            Inputs of other shapes (pooled, windowed) are taken whole.

    The model runs in eval mode (its mode is restored afterwards); the hooks are removed even on an error.
    """
    layers = {}
    for name in layer_names:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear):
            raise TypeError(f"calibration statistics are for nn.Linear layers; {name!r} is a {type(module).__name__}.")
        layers[name] = module
    if not layers:
        raise ValueError("layer_names is empty: name at least one nn.Linear layer to gather statistics for.")
    statistics = {
        name: InputStatistics.empty(module.in_features, module.weight.device) for name, module in layers.items()
    }
    if fisher:
        for name, module in layers.items():
            statistics[name].row_fisher = torch.zeros(
                module.out_features, dtype=torch.float64, device=module.weight.device
            )

    current_mask = [None]  # the running batch's padding mask (batch, seq), if any

    def hook_for(name):
        def hook(module, args):
            inputs, mask = args[0], current_mask[0]  # (..., in_features)
            if mask is not None and inputs.dim() == 3 and tuple(inputs.shape[:2]) == tuple(mask.shape):
                inputs = inputs[mask.bool()]  # (real tokens, in_features)
            statistics[name].add(inputs)

        return hook

    was_training = model.training
    requires_grad = {name: module.weight.requires_grad for name, module in layers.items()}
    handles = [module.register_forward_pre_hook(hook_for(name)) for name, module in layers.items()]
    seen = 0
    try:
        model.eval()
        for batch in batches:
            seen += 1
            current_mask[0] = batch.get(mask_key) if mask_key else None
            if not fisher:
                with torch.no_grad():
                    model(**batch)
                continue
            for module in layers.values():
                module.weight.requires_grad_(True)
            with torch.enable_grad():
                outputs = model(**batch)
                loss = loss_of(outputs, batch) if loss_of else outputs.loss
                if loss is None:
                    raise ValueError("fisher=True needs a loss: give batches with labels, or loss_of.")
                weights = [module.weight for module in layers.values()]
                gradients = torch.autograd.grad(loss, weights, allow_unused=True)
            for name, gradient in zip(layers, gradients):
                if gradient is not None:
                    statistics[name].row_fisher += (gradient.detach().to(torch.float64) ** 2).sum(dim=1)  # (out,)
    finally:
        for handle in handles:
            handle.remove()
        for name, module in layers.items():
            module.weight.requires_grad_(requires_grad[name])
        model.train(was_training)
    if seen == 0:
        raise ValueError("batches is empty: calibration needs at least one batch.")
    return statistics
