"""The random initialisation of a `FactorizedLinear` inside a transformers model, shared by every student's
`_init_weights` (through `transformers.initialization`, so weights loaded from a checkpoint are left alone).

Only imports torch, transformers and a flat sibling (the `trust_remote_code` unit).
"""

import torch
from torch import nn
from transformers import initialization as init

from .factorized_linear import FactorizedLinear


__all__ = ["init_factors"]


@torch.no_grad()
def init_factors(module: nn.Module, initializer_range: float) -> bool:
    """Draw a random `FactorizedLinear` so that `up @ down` has entries of std `initializer_range`, as the dense layer
    it replaces (bias zero); False (nothing done) for any other module."""
    if not isinstance(module, FactorizedLinear):
        return False
    std = (initializer_range / module.rank**0.5) ** 0.5
    init.normal_(module.down, mean=0.0, std=std)
    init.normal_(module.up, mean=0.0, std=std)
    if module.bias is not None:
        init.zeros_(module.bias)
    return True
