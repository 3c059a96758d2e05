"""A sweep's fingerprint: every setting that changes its numbers, which a rerun must match to resume."""

from dataclasses import MISSING, asdict, fields

import torch
from accelerate import Accelerator

from ..distillation import NUMBER_CHANGING, DistillationConfig, plain_value
from ..results import strict_json
from .argument_checks import inert_flags
from .arguments import SweepArguments


__all__ = [
    "BEFORE_RECORDED",
    "GROWABLE_OR_OUTPUT_ONLY",
    "TRAINING_LOOP_VERSION",
    "describe_differences",
    "differences",
    "fingerprint",
]


# Arguments a rerun may change without touching finished results: lists that can grow, output-only flags, and the
# rank search's settings (they choose which ranks are trained, not how a rank's student trains).
GROWABLE_OR_OUTPUT_ONLY = (
    "ranks",
    "adaptive_ranks",
    "rank_tolerance",
    "max_students",
    "rank_search_preview_level",
    "seeds",
    "cnn_students",
    "overwrite_output_dir",
    "config",
    "lockstep_group_size",
    "push_ranks",
    "preview_inits",
    "preview_only",
    "param_budget",
    "measure_latency",
    "latency_repeats",
)


# Training settings added after sweeps were recorded without them: the value the code behaved as before each existed.
# A rerun of such a sweep compares against it: an older sweep resumes when the rerun asks for that behaviour. It is
# conservative: an older image sweep rerun with today's default `feature_tokens="attended"` is refused although images
# have no padding (both count every token), since the fingerprint does not know the data's modality.
BEFORE_RECORDED = {
    "feature_tokens": "all",
    "feature_normalization": "none",
    # evaluation during training (issue 21): none before
    "eval_strategy": "no",
    "eval_delay": 0,
    "eval_on_start": False,
    "load_best_model_at_end": False,
    "early_stopping_threshold": 0.0,
    "label_smoothing_factor": 0.0,
    "activation_checkpointing": False,
    "gradient_checkpointing": False,
    "torch_compile": False,
    "fp16": False,
}


# Changes when the training loop's numbers change for the same arguments (2: Trainer's optimizer, the (seed, epoch)
# data order of mid-group checkpoints). A sweep begun by an older loop is not resumed into this one.
TRAINING_LOOP_VERSION = 2


def fingerprint(sweep: SweepArguments, args: DistillationConfig, accelerator: Accelerator) -> dict:
    """Everything that changes a sweep's numbers: every sweep argument but the growable lists and output-only flags,
    every training argument of `NUMBER_CHANGING`, and the environment. A rerun must match it to resume. A flag the
    run's other flags leave without effect (`inert_flags`) is recorded at its default.

    The numbers are reproducible for one seed, process count, device (type and GPU model), torch version and CPU
    thread count: the thread count changes the order of floating-point sums (`accelerate launch` sets
    OMP_NUM_THREADS=1 on CPU by default)."""
    own = {k: v for k, v in asdict(sweep).items() if k not in GROWABLE_OR_OUTPUT_ONLY}
    defaults = _defaults()
    for name in inert_flags(
        sweep
    ):  # without effect in this run: at their defaults, so no value of theirs blocks a rerun
        own[name] = defaults[name]
    training = {key: plain_value(getattr(args, key)) for key in sorted(NUMBER_CHANGING)}
    environment = {
        "num_processes": accelerator.num_processes,
        "device_type": accelerator.device.type,
        "device_name": torch.cuda.get_device_name(accelerator.device) if accelerator.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "training_loop": TRAINING_LOOP_VERSION,
    }
    # As results.json and the checkpoints hold it (strict JSON), so that the copies compare equal.
    return strict_json({"sweep": own, "training": training, "environment": environment})


def _defaults() -> dict:
    return {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(SweepArguments)}


def differences(fingerprint: dict, previous: dict) -> list[str]:
    """`section.key` of every setting that differs from a previous run's. A sweep argument the previous run did not
    record (one added to hf_lowrank since) counts as its default, a training setting as `BEFORE_RECORDED` says, so
    older sweeps still resume when the new run computes the same numbers."""
    changed = []
    for section, values in fingerprint.items():
        before = previous.get(section, {})
        for key in sorted(set(values) | set(before)):
            old = before[key] if key in before else _unrecorded(section, key)
            if values.get(key) != old:
                changed.append(f"{section}.{key}")
    return changed


def _unrecorded(section: str, key: str):
    """The value of a setting a previous run did not record."""
    if section == "sweep":
        return _defaults().get(key)
    return BEFORE_RECORDED.get(key) if section == "training" else None


def describe_differences(changed: list[str], fingerprint: dict, previous: dict) -> str:
    """`changed` (from `differences`) with each setting's value then and now: "training.learning_rate 0.001 -> 0.5"."""

    def value(config: dict, key: str):
        section, name = key.split(".", 1)
        if name in config.get(section, {}):
            return repr(config[section][name])
        unrecorded = _unrecorded(section, name)
        return "(not recorded)" if unrecorded is None else f"{unrecorded!r} (not recorded: the behaviour then)"

    return ", ".join(f"{key} {value(previous, key)} -> {value(fingerprint, key)}" for key in changed)
