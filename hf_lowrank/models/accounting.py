"""Parameter and FLOP accounting shared by the factorization report, the benchmarks and (later) the model cards.

Only imports torch and `.factorized_linear` (flat), so the modeling code can use it under `trust_remote_code`.
"""

from collections.abc import Iterable
from numbers import Integral

from torch import nn

from .factorized_linear import FactorizedLinear


__all__ = ["VIT_B32_CIFAR100", "count_parameters", "linear_parameters", "parameter_change", "vit_forward_flops"]

# The paper's geometry: ViT-B/32 (224x224 inputs, 12 blocks of width 768, MLP 3072) with a 100-class head.
VIT_B32_CIFAR100 = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    image_size=224,
    patch_size=32,
    num_labels=100,
)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in `module` (shared tensors counted once)."""
    seen, total = set(), 0
    for param in module.parameters():
        if id(param) in seen or (trainable_only and not param.requires_grad):
            continue
        seen.add(id(param))
        total += param.numel()
    return total


def parameter_change(params_before: int, params_after: int) -> str:
    """How a parameter count changed, as a ratio above 1 in the right direction: "11.00x fewer parameters" for a
    smaller student, "1.16x more parameters" for a larger one (never "0.86x fewer"), "as many parameters" when
    equal."""
    for name, value in (("params_before", params_before), ("params_after", params_after)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
            raise ValueError(f"{name} must be a positive parameter count; got {value!r}.")
    if params_after < params_before:
        return f"{params_before / params_after:.2f}x fewer parameters"
    if params_after > params_before:
        return f"{params_after / params_before:.2f}x more parameters"
    return "as many parameters"


def linear_parameters(in_features: int, out_features: int, rank: int | None = None, bias: bool = True) -> int:
    """Parameters of a dense (`rank=None`) or rank-`rank` factorized linear layer."""
    weights = in_features * out_features if rank is None else rank * (in_features + out_features)
    return weights + (out_features if bias else 0)


def _macs_per_token(modules: Iterable[nn.Module]) -> int:
    """Multiply-accumulates one token costs through every dense or factorized linear layer in `modules`."""
    macs = 0
    for module in modules:
        if isinstance(module, FactorizedLinear):
            macs += module.rank * (module.in_features + module.out_features)
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
    return macs


def vit_forward_flops(model: nn.Module) -> int:
    """Analytic FLOPs (2 x multiply-accumulates) of one image through a ViT image classifier.

    Counts the patch-embedding convolution, every encoder linear layer (dense or factorized) on all N = patches + 1
    tokens, the two attention products (QK^T and AV, N^2 x hidden each) per block, and the classifier on the CLS
    token. Layer norms, softmax, GELU and residual additions (O(N x hidden)) are left out.
    """
    config = getattr(model.config, "base_config", model.config)  # a LowRank student: its ViT's config
    base = model.base_model
    patch = base.embeddings.patch_embeddings
    num_patches = patch.num_patches
    tokens = num_patches + 1
    conv = patch.projection  # Conv2d(num_channels, hidden, kernel=patch, stride=patch)
    macs = num_patches * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    for layer in base.layers:
        macs += tokens * _macs_per_token(layer.modules())
        macs += 2 * tokens * tokens * config.hidden_size  # QK^T and AV
    head = getattr(getattr(model, "model", model), "classifier", None)  # a LowRank student holds its ViT as `model`
    if isinstance(head, nn.Linear):
        macs += _macs_per_token([head])  # CLS token only
    return 2 * macs
