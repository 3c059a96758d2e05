"""The inference layout of a student: the same function, in the form that runs fastest.

A factorized layer runs two matrix products, the second writing the full output; near its break-even rank
(`break_even_rank`) it saves too few multiply-accumulates to pay for that, and at or above it none at all.
`inference_layout` merges every layer whose rank is at least `merge_at` times its break-even rank back to a dense
`nn.Linear` (`merge_factorized`: the logits unchanged to float round-off) and, with the ``"inductor"`` backend,
compiles the model with `torch.compile`. What Inductor changes on a CPU (`benchmarks/bench_inference.py`, the
profile of the rank-32 ViT-B/32 student): the GELU over the 4x-wide MLP activations, the layer norms and the residual
additions run fused into a few passes (eager mode spent 7-21% of its time on GELU alone in the profiles); and each
factorized layer's bias, added after its second product (`FactorizedLinear.bias_epilogue`) rather than broadcast
into the output buffer by `addmm` first, joins the next of those passes. The matrix products, attention and the patch
embedding stay as they are.

Only imports torch and flat siblings (the `trust_remote_code` unit).
"""

from torch import nn

from .factorize import merge_factorized
from .factorized_linear import FactorizedLinear


__all__ = ["DEFAULT_MERGE_AT", "INFERENCE_BACKENDS", "check_backend", "inference_layout"]

# backend -> what it does beyond merging layers
INFERENCE_BACKENDS = {
    "eager": "no compilation (saves and loads as an ordinary model)",
    "inductor": "torch.compile(backend='inductor') in place: biases, activations, norms and residual additions fused "
    "(the weights save and load as the eager layout)",
}

# A layer is merged at or above this fraction of its break-even rank. A 768 -> 3072 layer at 0.83 of it (rank 512,
# 1.2x fewer multiply-accumulates) measured 0.96x, 1.15x and 1.18x the dense layer's speed in three runs of
# `benchmarks/bench_inference.py` on a 2-core CPU: at most a small gain, and not a sure one, where dense is sure.
DEFAULT_MERGE_AT = 0.8


def check_backend(backend) -> str:
    if backend not in INFERENCE_BACKENDS:
        supported = "; ".join(f"{name!r}: {what}" for name, what in INFERENCE_BACKENDS.items())
        raise ValueError(f"backend {backend!r} is not an inference backend hf_lowrank supports ({supported}).")
    return backend


def inference_layout(
    model: nn.Module,
    backend: str = "eager",
    merge_at: float = DEFAULT_MERGE_AT,
    compile_options: dict | None = None,
) -> nn.Module:
    """`model` in its inference layout, in place, and returned: eval mode; every factorized layer whose rank is at
    least `merge_at` times its break-even rank (its multiply-accumulates at least that fraction of the dense
    layer's) merged back to a dense `nn.Linear`, recorded in the config by the student's `record_merge` when its class
    has one; compiled in place (`nn.Module.compile`) with `backend` ``"inductor"`` (`compile_options`: further
    `torch.compile` arguments, e.g. ``{"dynamic": False}``).

    `merge_at` 1 merges only the layers at or above break-even, so the parameter count never grows; the default 0.8
    also merges those whose factorization saves under a fifth of the dense layer's work, which measured slower.
    Compiled students of one class share a forward: more than `torch._dynamo.config.recompile_limit` (8) of them in
    one process fall back to eager for the rest unless that limit is raised.

    Raises ValueError for a backend other than `INFERENCE_BACKENDS` or a `merge_at` that is not a finite number > 0,
    before anything is changed."""
    check_backend(backend)
    if compile_options and backend != "inductor":
        raise ValueError(f"compile_options {compile_options!r} need backend='inductor'; got backend {backend!r}.")
    merged = merge_factorized(model, merge_at)  # checks merge_at before changing anything
    if merged and hasattr(model, "record_merge"):
        model.record_merge(merged)
    model.eval()
    if backend == "inductor":
        for module in model.modules():
            if isinstance(module, FactorizedLinear):
                module.bias_epilogue = True  # fused into the next element-wise pass by Inductor
        model.compile(**{"backend": "inductor", **(compile_options or {})})
    return model
