"""The inference layout of a student: what runs fastest for the same function.

A factorized layer at or above its break-even rank costs more than the dense layer it replaced, in parameters and in
multiply-accumulates; `inference_layout` merges each such layer back to a dense `nn.Linear` (`merge_factorized`, the
function unchanged) and, with the ``"inductor"`` backend, compiles the model with `torch.compile`: Inductor fuses the
bias additions and activations into one pass after each matrix product (on the CPU, the bias broadcast into the
output buffer and the separate GELU pass over the 4x-wide MLP activations are most of what the rank does not shrink),
and the layer norms with the residual additions.

Only imports torch and flat siblings (the `trust_remote_code` unit).
"""

from torch import nn

from .factorize import merge_factorized


__all__ = ["INFERENCE_BACKENDS", "check_backend", "inference_layout"]

# backend -> what it does beyond merging the layers at or above their break-even rank
INFERENCE_BACKENDS = {
    "eager": "no compilation (saves and loads as an ordinary model)",
    "inductor": "torch.compile(backend='inductor'): biases, activations and norms fused (compiled in memory; the "
    "weights save and load as the eager layout)",
}


def check_backend(backend) -> str:
    if backend not in INFERENCE_BACKENDS:
        supported = "; ".join(f"{name!r}: {what}" for name, what in INFERENCE_BACKENDS.items())
        raise ValueError(f"backend {backend!r} is not an inference backend hf_lowrank supports ({supported}).")
    return backend


def inference_layout(model: nn.Module, backend: str = "eager", compile_options: dict | None = None) -> nn.Module:
    """`model` in its inference layout, in place: eval mode, every factorized layer at or above its break-even rank
    merged back to a dense `nn.Linear`, recorded in its config by the student's `record_merge` when the class has
    one, and compiled in place (`nn.Module.compile`) with `backend` ``"inductor"`` (`compile_options`: further
    `torch.compile` arguments, e.g. ``{"mode": "max-autotune"}``). Returns `model`.

    Raises ValueError for a backend other than `INFERENCE_BACKENDS`, before anything is changed."""
    check_backend(backend)
    if compile_options and backend != "inductor":
        raise ValueError(f"compile_options {compile_options!r} need backend='inductor'; got backend {backend!r}.")
    merged = merge_factorized(model)
    if merged and hasattr(model, "record_merge"):
        model.record_merge(merged)
    model.eval()
    if backend == "inductor":
        model.compile(**{"backend": "inductor", **(compile_options or {})})
    return model
