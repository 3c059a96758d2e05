"""Distil one low-rank student per rank from a ViT teacher and record accuracy against rank.

    accelerate launch scripts/sweep.py                       # embedded default: digits, a small ViT teacher
    accelerate launch scripts/sweep.py --teacher google/vit-base-patch32-224-in21k --dataset cifar100 \\
        --label_column fine_label --ranks 8 16 32 64 128 --learning_rate 1e-4 --num_train_epochs 5
    python scripts/sweep.py --config sweep.yaml --seed 1     # YAML arguments, command-line flags win

All TrainingArguments flags work (--output_dir, --max_steps, --seed, --per_device_train_batch_size, ...).
Rerunning the same command resumes: finished ranks are kept.
"""

import os
import shlex
import sys

import torch
import yaml
from transformers import HfArgumentParser

from hf_lowrank.distillation import DistillationConfig
from hf_lowrank.hub import HubPushError
from hf_lowrank.sweep import SweepArguments, run_sweep


# Defaults sized for the embedded digits run (a few minutes on two CPU cores); every one is a flag.
EMBEDDED_DEFAULTS = dict(
    output_dir="outputs/sweep",
    learning_rate=1e-3,
    num_train_epochs=20,
    per_device_train_batch_size=64,
    per_device_eval_batch_size=256,
    lr_scheduler_type="cosine",
    warmup_steps=0.05,
    weight_decay=0.0,
    logging_steps=10,
    report_to="none",
    seed=0,
    # Without a GPU, run on the CPU; under `accelerate launch --multi_gpu` that is real DDP over gloo.
    use_cpu=not torch.cuda.is_available(),
)


def yaml_to_argv(path: str) -> list[str]:
    """Turn a YAML mapping of argument names to values into command-line flags."""
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of argument names to values.")
    argv = []
    for key, value in values.items():
        argv.append(f"--{key}")
        argv.extend(str(v) for v in value) if isinstance(value, list) else argv.append(str(value))
    return argv


def parse(argv: list[str]) -> tuple[SweepArguments, DistillationConfig]:
    parser = HfArgumentParser((SweepArguments, DistillationConfig))
    parser.set_defaults(**EMBEDDED_DEFAULTS)
    if "--config" in argv:
        position = argv.index("--config")
        argv = yaml_to_argv(argv[position + 1]) + argv
    return parser.parse_args_into_dataclasses(args=argv)


def main() -> None:
    argv = sys.argv[1:]
    sweep, training = parse(argv)
    launcher = "accelerate launch" if "LOCAL_RANK" in os.environ else "python"
    try:
        run_sweep(sweep, training, command=f"{launcher} scripts/sweep.py {shlex.join(argv)}".strip())
    except HubPushError as error:  # the sweep itself finished and is saved
        sys.exit(f"push failed: {error}")


if __name__ == "__main__":
    main()
