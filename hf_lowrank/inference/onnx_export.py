"""ONNX export of a student (any family) or a teacher, verified with onnxruntime before it is handed back.

`export_onnx` exports the model's logits with the `torch.onnx` exporter (torch.export-based, `dynamo=True`) with a
dynamic batch axis (and sequence axis for text), then loads the file in onnxruntime and compares its logits with
PyTorch's on the example inputs: a file that does not reproduce them within `atol`, or whose batch axis the exporter
silently fixed, is an error rather than a result. A module the exporter cannot trace is named in the error.
"""

import copy
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


__all__ = ["OnnxExport", "OnnxExportError", "export_onnx"]

INSTALL_HINT = 'pip install "hf_lowrank[onnx]" (onnx, onnxscript, onnxruntime)'


class OnnxExportError(RuntimeError):
    """The model could not be exported, or its ONNX file does not reproduce the model."""


@dataclass
class OnnxExport:
    """An exported and verified ONNX file."""

    path: Path
    input_names: list[str]
    max_abs_difference: float  # largest |logits(onnxruntime) - logits(torch)| on the example inputs
    attention: str  # the attention implementation exported ("sdpa", "eager", ...)
    export_seconds: float


class _ImageLogits(nn.Module):
    """`model(pixel_values).logits`: one named input, one output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits  # (batch, num_labels)


class _TextLogits(nn.Module):
    """`model(input_ids, attention_mask).logits`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (batch, num_labels)


def _wrapped(model: nn.Module, inputs: dict) -> tuple[nn.Module, dict, dict]:
    """The logits-only module, its example inputs and their dynamic axes (batch; and sequence for text)."""
    from torch.export import Dim

    batch = Dim("batch")
    if "pixel_values" in inputs:
        return _ImageLogits(model), {"pixel_values": inputs["pixel_values"]}, {"pixel_values": {0: batch}}
    if "input_ids" in inputs:
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask", torch.ones_like(ids))
        axes = {0: batch, 1: Dim("sequence", max=4096)}
        return (
            _TextLogits(model),
            {"input_ids": ids, "attention_mask": mask},
            {"input_ids": axes, "attention_mask": axes},
        )
    raise ValueError(
        "export_onnx needs `pixel_values` (image models) or `input_ids` (text models) in inputs; got "
        f"{sorted(inputs)}."
    )


def _onnx_modules():
    try:
        import onnxruntime
        import onnxscript  # noqa: F401 (the torch.export-based exporter needs it)
    except ImportError as error:
        raise ImportError(f"ONNX export needs onnxscript and onnxruntime: {INSTALL_HINT}.") from error
    return onnxruntime


def export_onnx(model: nn.Module, inputs: dict, path, atol: float = 1e-4, threads: int | None = None) -> OnnxExport:
    """Export `model`'s logits to the ONNX file `path` and verify it with onnxruntime (CPU) on `inputs`.

    Args:
        model: a transformers classifier (a student of any family, or a teacher) on the CPU, in float32.
        inputs: example inputs of its forward: ``{"pixel_values": (batch, channels, height, width)}`` or
            ``{"input_ids": (batch, tokens), "attention_mask": (batch, tokens)}``.
        path: the `.onnx` file to write (weights inside it).
        atol: the largest |logit difference| between onnxruntime and PyTorch accepted.
        threads: onnxruntime's intra-op threads for the check (default: its own choice).

    The batch axis (and for text the sequence axis) is dynamic. A model whose attention implementation does not
    export is exported with its eager attention, the same function (`OnnxExport.attention` says which). Raises
    `OnnxExportError` naming the module the exporter could not trace, or when the file does not reproduce the logits
    within `atol` or fixed the batch size; `path` is then left as it was.
    """
    onnxruntime = _onnx_modules()
    if not (isinstance(atol, (int, float)) and atol > 0):
        raise ValueError(f"atol must be a positive number, got {atol!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside `path` and moved onto it only once verified: a failed export leaves a file already there intact.
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        start = time.perf_counter()
        model, attention = _export_with_eager_fallback(model.eval(), inputs, partial)
        seconds = time.perf_counter() - start
        names, difference = _verify(onnxruntime, partial, path, model, inputs, threads)
        if not difference <= atol:
            raise OnnxExportError(
                f"{path}: onnxruntime's logits differ from PyTorch's by {difference:.3g} (more than atol={atol:g})."
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return OnnxExport(path, names, difference, attention, seconds)


def _export_with_eager_fallback(model: nn.Module, inputs: dict, path: Path) -> tuple[nn.Module, str]:
    """Export to `path`; when that fails and the model's attention is not eager, once more with a copy of it in eager
    attention. Returns the model exported and its attention implementation; `OnnxExportError` naming the module
    the exporter could not trace."""
    attention = getattr(getattr(model, "config", None), "_attn_implementation", None) or "eager"
    try:
        _export(model, inputs, path)
        return model, attention
    except Exception as first:  # noqa: BLE001 (every exporter failure is retried once, then reported)
        if attention == "eager" or not hasattr(model, "set_attn_implementation"):
            raise _untraceable(first, model) from first
    model = copy.deepcopy(model)
    model.set_attn_implementation("eager")
    try:
        _export(model, inputs, path)
    except Exception as second:  # noqa: BLE001
        raise _untraceable(second, model) from second
    return model, "eager"


def _export(model: nn.Module, inputs: dict, path: Path) -> None:
    wrapper, example, dynamic = _wrapped(model, inputs)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (),
            kwargs=example,
            f=str(path),
            dynamo=True,
            dynamic_shapes=dynamic,
            external_data=False,
            input_names=list(example),
            output_names=["logits"],
            verbose=False,
        )


def _verify(
    onnxruntime, path: Path, final: Path, model: nn.Module, inputs: dict, threads: int | None
) -> tuple[list[str], float]:
    """The ONNX inputs of the file at `path` and the largest |logit difference| from PyTorch on `inputs`; an error
    (naming `final`, where the file was to go) when the exporter fixed the batch axis to the example's size."""
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    if not isinstance(first.shape[0], str):
        raise OnnxExportError(
            f"{final}: the exporter fixed the batch size to {first.shape[0]} (a module reads a tensor's values as "
            "Python numbers, e.g. .tolist()): the file would refuse any other batch size."
        )
    wrapper, example, _ = _wrapped(model, inputs)
    with torch.no_grad():
        expected = wrapper(**example).float().numpy()
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {name: example[name].numpy() for name in names})[0]
    return names, float(np.abs(got - expected).max())


def _untraceable(error: Exception, model: nn.Module) -> OnnxExportError:
    """The exporter's failure with the module it could not trace named, and what to try."""
    found = _offending_module(error, model)
    where = f" in module {found[0]!r} ({found[1]})" if found else ""
    cause = _root(error)
    return OnnxExportError(
        f"the ONNX exporter could not trace {type(model).__name__}{where}: {type(cause).__name__}: "
        f"{str(cause).strip().splitlines()[0][:300]}. What to try: make that module's forward free of Python "
        "control flow on tensor values (`if tensor...`, `.item()`, `.tolist()`, `.numpy()`), e.g. with torch.where "
        "or torch.cond; or give it eager attention (`model.set_attn_implementation('eager')`)."
    )


def _chain(error: BaseException):
    seen, pending = set(), [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]


def _root(error: BaseException) -> BaseException:
    return list(_chain(error))[-1]


def _offending_module(error: BaseException, model: nn.Module) -> tuple[str, str] | None:
    """(name, class) of the innermost module of `model` the failure happened in: a traceback frame whose `self` is
    one of its modules (a failure while tracing its Python), else the module stack of the fx node being converted
    (a failure on the captured graph)."""
    names = {id(module): name for name, module in model.named_modules()}
    innermost = None
    for current in _chain(error):
        for frame, _ in traceback.walk_tb(current.__traceback__):
            owner = frame.f_locals.get("self")
            if isinstance(owner, nn.Module) and id(owner) in names and names[id(owner)]:
                innermost = (names[id(owner)], type(owner).__name__)
    if innermost is not None:
        return innermost
    for current in _chain(error):
        for frame, _ in traceback.walk_tb(current.__traceback__):
            for value in frame.f_locals.values():
                if isinstance(value, torch.fx.Node) and value.meta.get("nn_module_stack"):
                    path, cls = list(value.meta["nn_module_stack"].values())[-1]
                    path = path.removeprefix("model.")  # relative to `model`, not to its logits wrapper
                    innermost = (path, getattr(cls, "__name__", str(cls)))
    return innermost
