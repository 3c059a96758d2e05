"""Measured latency of a model's forward pass: median wall time of repeated passes after warm-up, with what it was
measured on (device, threads, torch version, layout), so that a figure is never read without its conditions."""

import platform
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from time import perf_counter

import torch
from torch import nn


__all__ = ["LatencyMeasurement", "device_name", "measure_latencies", "measure_latency", "measure_side_by_side"]


@dataclass
class LatencyMeasurement:
    """Median forward-pass time of one model at one or more batch sizes, and the conditions it was measured under.

    `milliseconds`: str(batch size) -> median wall time of one forward pass of that many examples (ms)."""

    milliseconds: dict[str, float]
    layout: str  # what ran, e.g. "eager, 4 of 12 factorized layers merged to dense"
    device: str  # e.g. "cpu (Intel Xeon ...)" or "cuda (NVIDIA H100 80GB HBM3)"
    threads: int  # torch.get_num_threads() at measurement
    torch_version: str
    dtype: str
    warmup: int
    repeats: int
    # str(batch size) -> the reference model's (the teacher's) median, measured side by side with this model's
    reference_milliseconds: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def conditions(self) -> str:
        """The conditions in words: "cpu (Intel Xeon), 2 threads, torch 2.13.0, float32, median of 10 after 3
        warm-up passes"."""
        return (
            f"{self.device}, {self.threads} threads, torch {self.torch_version}, {self.dtype}, median of "
            f"{self.repeats} after {self.warmup} warm-up passes"
        )


def device_name(device: torch.device) -> str:
    """The device in words: its type and the processor or GPU model."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    processor = _cpu_model() or platform.processor() or platform.machine()
    return f"{device.type} ({processor})"


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(model: nn.Module, inputs: Mapping[str, torch.Tensor], repeats: int = 10, warmup: int = 3) -> float:
    """Median wall time (ms) of `model(**inputs)` over `repeats` passes after `warmup` untimed ones (CUDA
    synchronised around each pass). `inputs` are on the model's device. Raises ValueError for `repeats` < 1 or
    `warmup` < 0, naming the argument."""
    return measure_side_by_side({"model": model}, inputs, repeats, warmup)["model"]


@torch.inference_mode()
def measure_side_by_side(
    models: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor], repeats: int = 10, warmup: int = 3
) -> dict[str, float]:
    """name -> median wall time (ms) of `model(**inputs)`, the models' passes interleaved (one pass of each per
    repeat, after `warmup` of each), so that drift in the machine's load hits them alike and their ratio is fair."""
    _check_count("repeats", repeats, 1)
    _check_count("warmup", warmup, 0)
    device = next(iter(inputs.values())).device
    for model in models.values():
        for _ in range(warmup):
            model(**inputs)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            _synchronize(device)
            start = perf_counter()
            model(**inputs)
            _synchronize(device)
            times[name].append(perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def measure_latencies(
    model: nn.Module,
    batches: Mapping[int, Mapping[str, torch.Tensor]],
    layout: str,
    repeats: int = 10,
    warmup: int = 3,
    reference: nn.Module | None = None,
) -> LatencyMeasurement:
    """The latency of `model` at each batch size of `batches` (batch size -> the inputs of a batch that size), with
    the conditions (`layout`: what `model` is, in words); with a `reference` model (the teacher), its latency too,
    measured side by side (`measure_side_by_side`), in `reference_milliseconds`."""
    _check_count("repeats", repeats, 1)
    parameter = next(model.parameters())
    models = {"model": model} if reference is None else {"model": model, "reference": reference}
    measured = {
        str(size): measure_side_by_side(models, inputs, repeats, warmup) for size, inputs in sorted(batches.items())
    }
    return LatencyMeasurement(
        milliseconds={size: times["model"] for size, times in measured.items()},
        reference_milliseconds={size: times["reference"] for size, times in measured.items()} if reference else None,
        layout=layout,
        device=device_name(parameter.device),
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        dtype=str(parameter.dtype).removeprefix("torch."),
        warmup=warmup,
        repeats=repeats,
    )
