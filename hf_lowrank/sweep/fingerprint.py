"""A sweep's fingerprint: every setting that changes its numbers, which a rerun must match to resume."""

from dataclasses import MISSING, asdict, fields

import torch
from accelerate import Accelerator

from ..distillation import DistillationConfig
from .arguments import SweepArguments


__all__ = ["GROWABLE_OR_OUTPUT_ONLY", "differences", "fingerprint"]


# Arguments a rerun may change without touching finished results: lists that can grow, and output-only flags.
GROWABLE_OR_OUTPUT_ONLY = (
    "ranks",
    "seeds",
    "cnn_students",
    "overwrite_output_dir",
    "config",
    "lockstep_group_size",
    "push_ranks",
)


def fingerprint(sweep: SweepArguments, args: DistillationConfig, accelerator: Accelerator) -> dict:
    """Everything that changes a sweep's numbers; a rerun must match it to resume (the rank, seed and CNN student
    lists may grow).

    The numbers are reproducible for one seed, process count, device type and CPU thread count: the thread count
    changes the order of floating-point sums (`accelerate launch` sets OMP_NUM_THREADS=1 on CPU by default)."""
    own = {k: v for k, v in asdict(sweep).items() if k not in GROWABLE_OR_OUTPUT_ONLY}
    training = {
        k: getattr(args, k)
        for k in (
            "distillation_mode",
            "temperature",
            "ce_weight",
            "learning_rate",
            "weight_decay",
            "adam_beta1",
            "adam_beta2",
            "adam_epsilon",
            "max_grad_norm",
            "num_train_epochs",
            "max_steps",
            "warmup_steps",
            "lr_scheduler_type",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "seed",
            "dataloader_drop_last",
        )
    }
    training["lr_scheduler_type"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    environment = {
        "num_processes": accelerator.num_processes,
        "device_type": accelerator.device.type,
        "torch_num_threads": torch.get_num_threads(),
    }
    return {"sweep": own, "training": training, "environment": environment}


def differences(fingerprint: dict, previous: dict) -> list[str]:
    """`section.key` of every setting that differs from a previous run's. A sweep argument the previous run did not
    record (one added to hf_lowrank since) counts as its default, so older sweeps still resume."""
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(SweepArguments)}
    changed = []
    for section, values in fingerprint.items():
        before = previous.get(section, {})
        for key in sorted(set(values) | set(before)):
            old = before.get(key, defaults.get(key) if section == "sweep" else None)
            if values.get(key) != old:
                changed.append(f"{section}.{key}")
    return changed
