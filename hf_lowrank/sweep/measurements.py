"""Measurements every model of a sweep gets besides accuracy: calibration, noise robustness and representation
diagnostics."""

from ..diagnostics import diagnose_model
from ..distillation import EvalResult
from ..results import atomic_write_json
from .context import SweepContext


__all__ = ["diagnose", "robustness"]


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
