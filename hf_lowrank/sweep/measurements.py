"""Measurements every model of a sweep gets besides accuracy: calibration, noise robustness, representation
diagnostics and latency."""

import copy
import time

from ..data import collate_examples, model_inputs
from ..diagnostics import diagnose_model
from ..distillation import EvalResult
from ..inference import measure_latencies
from ..models import FactorizedLinear, inference_layout
from ..results import atomic_write_json
from .context import SweepContext


__all__ = ["diagnose", "latency", "robustness"]

LATENCY_WARMUP = 3  # untimed passes before the timed ones (allocator, caches, lazy initialisation)


def robustness(evaluation: EvalResult) -> dict:
    """`ece` and `noise_accuracy` (str(sigma) -> accuracy) of a result record."""
    return {
        "ece": evaluation.ece,
        "noise_accuracy": {str(sigma): accuracy for sigma, accuracy in evaluation.noise_accuracy.items()},
    }


def diagnose(ctx: SweepContext, model_dir: str, model) -> dict | None:
    """Representation diagnostics of `model` on the test split: written in full to MODEL_DIR/diagnostics.json,
    summarised (final layer, pooled representation) for results.json. Main process only; None when turned off."""
    if not ctx.sweep.diagnostics_examples or not ctx.accelerator.is_main_process:
        return None
    full = diagnose_model(ctx.accelerator.unwrap_model(model), ctx.processed["test"], ctx.sweep.diagnostics_examples)
    atomic_write_json(ctx.store.dir / model_dir / "diagnostics.json", full)
    final = full["layers"][-1]
    return {
        "pooled_entropy_rank": full["pooled_entropy_rank"],
        "svd_rank_p99": final["svd_rank_p99"],
        "shared_dimension": final["shared_dimension"],
        "bandwidth": final["bandwidth"],
        "num_examples": full["num_examples"],
    }


def latency(ctx: SweepContext, model, teacher: bool = False) -> dict | None:
    """`LatencyMeasurement.to_dict()` of `model` at batch 1 and the eval batch (the first test rows) on the sweep's
    device: a student in its eager inference layout (a copy: `inference_layout`, the layers at or above 0.8 of their
    break-even rank merged to dense), with the teacher measured side by side (`reference_milliseconds`, what its
    speedup is read from); the teacher alone. Main process only; None with `--measure_latency false`."""
    if not ctx.sweep.measure_latency or not ctx.accelerator.is_main_process:
        return None
    start = time.perf_counter()
    model = ctx.accelerator.unwrap_model(model)
    device = next(model.parameters()).device
    test = ctx.processed["test"]
    sizes = sorted({1, min(len(test), ctx.args.per_device_eval_batch_size)})
    batches = {
        size: {k: v.to(device) for k, v in model_inputs(collate_examples([test[i] for i in range(size)])).items()}
        for size in sizes
    }
    if teacher:
        layout = "eager (the dense teacher)"
    else:
        factorized = sum(isinstance(m, FactorizedLinear) for m in model.modules())
        model = inference_layout(copy.deepcopy(model), "eager")
        merged = factorized - sum(isinstance(m, FactorizedLinear) for m in model.modules())
        layout = f"eager inference layout ({merged} of {factorized} factorized layers merged to dense)"
    reference = None if teacher else ctx.accelerator.unwrap_model(ctx.teacher)
    measured = measure_latencies(model, batches, layout, ctx.sweep.latency_repeats, LATENCY_WARMUP, reference)
    measured = measured.to_dict()
    return measured | {"measure_seconds": time.perf_counter() - start}
