"""What the sweep's training (`GroupDistillationTrainer`, a transformers `Trainer` per group of students) does with
every `TrainingArguments` field: honoured as `Trainer` honours it, harmless (logging, paths, bookkeeping: it cannot
change a result), or refused when set to anything but its default, each with its reason.

`check_training_arguments` is the one check; the sweep calls it before any work, `LockstepTrainer` when built.
A field this table does not know (one a newer transformers added) is refused when it is not at its default.
"""

import json
import math
from dataclasses import MISSING, fields

import torch
from transformers import Trainer, TrainingArguments, get_scheduler
from transformers.trainer_pt_utils import AcceleratorConfig


__all__ = [
    "HARMLESS",
    "HONOURED",
    "NUMBER_CHANGING",
    "REFUSED",
    "check_training_arguments",
    "check_training_values",
    "checkpoint_interval",
    "plain_value",
    "steps_interval",
]

# Honoured fields that change a run's numbers: the resume fingerprint holds every one of them.
NUMBER_CHANGING = {
    "per_device_train_batch_size": "batch size per process",
    "per_device_eval_batch_size": "evaluation batch size (the order of floating-point sums)",
    "num_train_epochs": "length of training, when max_steps is -1",
    "max_steps": "length of training in optimizer steps",
    "learning_rate": "peak learning rate",
    "lr_scheduler_type": "learning-rate schedule (transformers.get_scheduler)",
    "lr_scheduler_kwargs": "the schedule's own arguments",
    "warmup_steps": "warm-up steps (a value < 1 is a fraction of the steps)",
    "optim": "optimizer, built by Trainer.get_optimizer_cls_and_kwargs",
    "optim_args": "the optimizer's own arguments",
    "weight_decay": "weight decay on every parameter Trainer decays",
    "adam_beta1": "Adam beta1",
    "adam_beta2": "Adam beta2",
    "adam_epsilon": "Adam epsilon",
    "gradient_accumulation_steps": "batches per optimizer step (accelerate's accumulate)",
    "max_grad_norm": "gradient clipping per model (0: none)",
    "bf16": "bf16 mixed precision through accelerate",
    "fp16": "float16 autocast of the students, each with its own loss scaler: an overflow skips that student's step "
    "and halves its scale, the others untouched",
    "tf32": "TF32 matmuls on Ampere+ GPUs (set by TrainingArguments itself)",
    "seed": "model RNG streams and, without data_seed, the data order",
    "data_seed": "the data order",
    "full_determinism": "enable_full_determinism instead of set_seed",
    "use_cpu": "train on the CPU",
    "dataloader_drop_last": "drop the last incomplete batch",
    "distillation_mode": "the distillation loss",
    "feature_tokens": "the tokens the block terms count",
    "feature_normalization": "the scale of each block term's MSE",
    "temperature": "kd temperature",
    "ce_weight": "weight of the added cross-entropy",
    "torch_compile": "compile every student and the teacher (each on its own, in place) with torch.compile",
    "torch_compile_backend": "torch.compile's backend (default inductor)",
    "torch_compile_mode": "torch.compile's mode",
    "activation_checkpointing": "recompute each student's block activations in its backward (less memory)",
    "activation_checkpointing_kwargs": "torch.utils.checkpoint arguments (default use_reentrant False)",
    "gradient_checkpointing": "the former name of activation_checkpointing",
    "gradient_checkpointing_kwargs": "the former name of activation_checkpointing_kwargs",
    "label_smoothing_factor": "label smoothing of the cross-entropy (the teacher's fine-tuning, the --ce_weight term)",
    "eval_strategy": "evaluation on the validation split during training: steps, epoch or no",
    "eval_steps": "evaluate every this many optimizer steps (< 1: a fraction of the steps)",
    "eval_delay": "no evaluation before this many steps (epochs with --eval_strategy epoch)",
    "eval_on_start": "an evaluation before the first step too",
    "metric_for_best_model": "loss or accuracy: what ranks a student's evaluations (its best step, early stopping)",
    "greater_is_better": "whether a greater metric is better (default: not for loss, yes for accuracy)",
    "load_best_model_at_end": "each student ends with the weights of its own best evaluation",
    "early_stopping_patience": "stop a student after this many evaluations without improvement (the others go on)",
    "early_stopping_threshold": "the improvement that resets a student's patience",
}

# Honoured fields that do not change the numbers.
HONOURED = {
    **NUMBER_CHANGING,
    "output_dir": "where the sweep writes",
    "save_strategy": "mid-training checkpoints: steps, epoch or no",
    "save_steps": "checkpoint every this many optimizer steps (< 1: a fraction of the steps)",
    "save_total_limit": "mid-training checkpoints kept (default: the latest only); a resume starts from the latest",
    "logging_steps": "loss history every this many optimizer steps (< 1: a fraction of the steps)",
    "logging_strategy": "loss history every logging_steps, at epoch ends, or none",
    "logging_first_step": "the first optimizer step's loss in the history too",
    "report_to": "experiment trackers transformers integrates (tensorboard, trackio, wandb, mlflow, ...): one run per "
    "training group, each student's loss and gradient norm as loss/<key> and grad_norm/<key>",
    "disable_tqdm": "progress bars",
    "push_to_hub": "push the students and the report at the end",
    "hub_model_id": "repository prefix",
    "hub_token": "Hub token",
    "hub_private_repo": "private repositories",
    "dataloader_num_workers": "data-loading worker processes",
    "dataloader_pin_memory": "pinned host memory",
    "dataloader_persistent_workers": "keep workers between epochs",
    "dataloader_prefetch_factor": "batches prefetched per worker",
    "dataloader_multiprocessing_context": "start method of the workers",
    "ddp_timeout": "process-group timeout, seconds",
    "ddp_find_unused_parameters": "DDP's find_unused_parameters (default True, as Trainer's without checkpointing)",
    "local_rank": "set by the launcher",
}

HARMLESS = {
    "log_on_each_node": "logging only",
    "logging_nan_inf_filter": "logging only (a non-finite loss stops that student with a message)",
    "log_level": "logging only",
    "log_level_replica": "logging only",
    "include_num_input_tokens_seen": "logging only",
    "run_name": "experiment trackers only (each group's run is named RUN_NAME/<group>)",
    "project": "experiment trackers only",
    "trackio_space_id": "experiment trackers only",
    "trackio_bucket_id": "experiment trackers only",
    "trackio_static_space_id": "experiment trackers only",
    "skip_memory_metrics": "metrics only",
    "do_train": "not read by Trainer either",
    "do_eval": "not read by Trainer either",
    "do_predict": "not read by Trainer either",
    "remove_unused_columns": "the sweep's own collation reads pixel_values and labels",
    "average_tokens_across_devices": "no token-count normalised loss here",
    "use_cache": "generation only",
    "length_column_name": "only read by group_by_length sampling, which is refused",
}

_NOT_IMPLEMENTED = "not wired into the sweep's group trainer yet"
# FSDP / DeepSpeed: the group trainer clips and steps each student right after its backward and drops its gradients,
# which a sharded engine (its own reduce-scatter, clipping and optimizer step) would have to follow; that path was
# never run on a GPU, and accelerate cannot shard on a CPU (its FSDP plugin applies to GPU-class processes only).
_SHARDING = (
    "FSDP and DeepSpeed own the clipping and optimizer step that the group trainer does per student, and "
    "accelerate does not shard on CPUs; use DDP: one copy of the group per process"
)
REFUSED = {
    "bf16_full_eval": "evaluation follows --bf16 / --fp16",
    "fp16_full_eval": "evaluation follows --bf16 / --fp16",
    "use_liger_kernel": "text models only",
    "liger_kernel_config": "text models only",
    "neftune_noise_alpha": "text models only",
    "torch_empty_cache_steps": _NOT_IMPLEMENTED,
    "auto_find_batch_size": "a batch size halved on an out-of-memory error would train the ranks of one sweep (and a "
    "resumed run) with different batch sizes, so the curve would compare unlike students; choose "
    "--per_device_train_batch_size and --gradient_accumulation_steps",
    "optim_target_modules": "GaLore / APOLLO optimizers are not supported",
    "prediction_loss_only": "the sweep's evaluation is its own",
    "eval_do_concat_batches": "the sweep's evaluation is its own",
    "eval_use_gather_object": "the sweep's evaluation is its own",
    "eval_accumulation_steps": "the sweep's evaluation is its own",
    "include_for_metrics": "the sweep's evaluation is its own",
    "batch_eval_metrics": "the sweep's evaluation is its own",
    "save_only_model": "a checkpoint always holds the full training state",
    "save_on_each_node": "only the main process writes",
    "enable_jit_checkpoint": _NOT_IMPLEMENTED,
    "hub_strategy": "the sweep pushes once, at the end",
    "hub_always_push": "the sweep pushes once, at the end",
    "hub_revision": "the sweep pushes to the main branch",
    "ignore_data_skip": "a resumed run always continues the data order exactly",
    "restore_callback_states_from_checkpoint": "callback states are not part of a group's checkpoint",
    "resume_from_checkpoint": "resuming is automatic: rerun the same command",
    "accelerator_config": _NOT_IMPLEMENTED,
    "parallelism_config": _NOT_IMPLEMENTED,
    "dataloader_in_order": _NOT_IMPLEMENTED,
    "label_names": "the labels column is 'labels'",
    "train_sampling_strategy": "the data order is a seeded shuffle",
    "ddp_bucket_cap_mb": _NOT_IMPLEMENTED,
    "ddp_broadcast_buffers": _NOT_IMPLEMENTED,
    "ddp_static_graph": _NOT_IMPLEMENTED,
    "ddp_backend": "the launcher chooses the backend",
    "fsdp": _SHARDING,
    "fsdp_config": _SHARDING,
    "deepspeed": _SHARDING,
    "debug": _NOT_IMPLEMENTED,
}
# Values of a refused field that mean what the sweep does anyway.
_ACCEPTED: dict = {}


def _default(field):
    return field.default_factory() if field.default_factory is not MISSING else field.default


def _is_default(name: str, value, default) -> bool:
    """`value` means the field's default (TrainingArguments normalises some: None -> [], "no" -> an enum, None ->
    AcceleratorConfig()). Building a TrainingArguments to compare with would reset accelerate's state."""
    if value in _ACCEPTED.get(name, ()):
        return True
    if value == default or (not value and not default):  # None, False, "", [] and {} all mean unset
        return True
    if name == "accelerator_config" and default is None:
        return value == AcceleratorConfig()
    return str(plain_value(value)) == str(plain_value(default))


def _optimizer_and_schedule_problems(args: TrainingArguments) -> list[str]:
    """Build the optimizer and the schedule `args` ask for on a one-parameter stand-in, as `LockstepTrainer` will:
    whatever would fail there (a missing package, a bad `optim_args` or `lr_scheduler_kwargs` entry) fails here,
    before any work, naming the flags."""
    name = plain_value(args.optim)
    if str(name).startswith("schedule_free"):
        return [f"--optim {name!r} is not supported (schedule-free optimizers need train/eval switches)"]
    try:
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    except (ImportError, ValueError, TypeError, KeyError) as error:
        return [f"--optim {name!r} with --optim_args {args.optim_args!r} cannot be built: {error}"]
    if not isinstance(optimizer_cls, type) or {"model", "optimizer_dict", "params"} & set(kwargs):
        return [f"--optim {name!r} is not supported by LockstepTrainer (it needs the model, not parameter groups)"]
    try:
        optimizer = optimizer_cls([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)
    except (ValueError, TypeError) as error:
        return [f"--optim {name!r} with --optim_args {args.optim_args!r} cannot be built: {error}"]
    schedule = plain_value(args.lr_scheduler_type)
    if isinstance(args.lr_scheduler_kwargs, str):
        return [
            f"--lr_scheduler_kwargs {args.lr_scheduler_kwargs!r}: must be a JSON object, e.g. '{{\"min_lr\": 1e-5}}'"
        ]
    try:
        get_scheduler(
            args.lr_scheduler_type,
            optimizer,
            num_warmup_steps=args.get_warmup_steps(10),
            num_training_steps=10,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs,
        )
    except (ValueError, TypeError, KeyError) as error:
        kwargs_text = json.dumps(args.lr_scheduler_kwargs) if args.lr_scheduler_kwargs else "none"
        return [f"--lr_scheduler_type {schedule!r} with --lr_scheduler_kwargs {kwargs_text} cannot be built: {error}"]
    return []


def plain_value(value):
    """A training argument as plain data: enums by their value, in lists and dicts too."""
    if isinstance(value, (list, tuple)):
        return [plain_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_value(item) for key, item in value.items()}
    return getattr(value, "value", value)


def check_training_values(args: TrainingArguments) -> list[str]:
    """Values that would train nothing or nonsense, each as 'name: value (what is valid)'."""
    problems = []

    def need(ok: bool, name: str, valid: str):
        if not ok:
            problems.append(f"--{name} {getattr(args, name)!r}: must be {valid}")

    finite = math.isfinite
    need(finite(args.learning_rate) and args.learning_rate > 0, "learning_rate", "a finite number > 0")
    need(finite(args.weight_decay) and args.weight_decay >= 0, "weight_decay", "a finite number >= 0")
    need(args.per_device_train_batch_size >= 1, "per_device_train_batch_size", "an integer >= 1")
    need(args.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", "an integer >= 1")
    need(args.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "an integer >= 1")
    need(
        args.max_steps == -1 or args.max_steps > 0,
        "max_steps",
        "> 0, or -1 to train for --num_train_epochs (the curve at initialisation, without training: --preview_only)",
    )
    if args.max_steps == -1:
        need(finite(args.num_train_epochs) and args.num_train_epochs > 0, "num_train_epochs", "a finite number > 0")
    need(finite(args.warmup_steps) and args.warmup_steps >= 0, "warmup_steps", "a finite number >= 0")
    need(0 <= args.label_smoothing_factor < 1, "label_smoothing_factor", "in [0, 1)")
    need(0 <= args.adam_beta1 < 1, "adam_beta1", "in [0, 1)")
    need(0 <= args.adam_beta2 < 1, "adam_beta2", "in [0, 1)")
    need(finite(args.adam_epsilon) and args.adam_epsilon > 0, "adam_epsilon", "a finite number > 0")
    need(
        args.max_grad_norm is None or (finite(args.max_grad_norm) and args.max_grad_norm >= 0),
        "max_grad_norm",
        "a finite number >= 0 (0: no clipping)",
    )
    for name in ("temperature", "ce_weight"):  # DistillationConfig's own; TrainingArguments has neither
        if hasattr(args, name):
            need(finite(getattr(args, name)), name, "finite")
    need(finite(args.logging_steps) and args.logging_steps > 0, "logging_steps", "a number > 0")
    need(finite(args.save_steps) and args.save_steps > 0, "save_steps", "a number > 0 (< 1: a fraction of steps)")
    need(0 <= args.seed < 2**32, "seed", "an integer in [0, 2**32 - 1]")
    need(args.data_seed is None or 0 <= args.data_seed < 2**32, "data_seed", "an integer in [0, 2**32 - 1]")
    return problems


def check_training_arguments(args: TrainingArguments) -> list[str]:
    """Every problem with `args` for lock-step training: refused fields set to another value than their default
    (naming the field, the value and why), unbuildable optimizers, and values that would train nonsense."""
    problems = []
    for field in fields(args):
        if not field.init or field.name in HONOURED or field.name in HARMLESS:
            continue
        if field.name == "fsdp_config" and args.fsdp:  # (filled in by TrainingArguments: --fsdp says it)
            continue
        value, default = getattr(args, field.name), _default(field)
        if _is_default(field.name, value, default):
            continue
        reason = REFUSED.get(field.name, "a field hf_lowrank does not know yet")
        problems.append(
            f"--{field.name} {plain_value(value)!r} is not supported ({reason}); leave it at {plain_value(default)!r}"
        )
    from .feature_checks import (  # (they use plain_value)
        compile_problems,
        evaluation_problems,
        launcher_problems,
        tracker_problems,
    )

    problems += launcher_problems() + tracker_problems(args.report_to) + evaluation_problems(args)
    problems += compile_problems(args)
    if plain_value(args.save_strategy) not in ("steps", "epoch", "no"):
        problems.append(
            f"--save_strategy {plain_value(args.save_strategy)!r} is not supported; use steps, epoch or no"
        )
    if plain_value(args.logging_strategy) not in ("steps", "epoch", "no"):
        problems.append(
            f"--logging_strategy {plain_value(args.logging_strategy)!r} is not supported; use steps, epoch or no"
        )
    if plain_value(args.lr_scheduler_type) == "reduce_lr_on_plateau":
        problems.append("--lr_scheduler_type reduce_lr_on_plateau needs evaluation during training, which is refused")
        return problems + check_training_values(args)
    values = check_training_values(args)
    return problems + values + (_optimizer_and_schedule_problems(args) if not values else [])


def steps_interval(value: float, total_steps: int) -> int:
    """A `*_steps` argument in optimizer steps: a value < 1 is a fraction of `total_steps` (as in Trainer)."""
    return max(1, math.ceil(value * total_steps)) if value < 1 else int(value)


def checkpoint_interval(args: TrainingArguments, total_steps: int) -> int | None:
    """Optimizer steps between mid-training checkpoints (None: at epoch ends or never, as save_strategy says)."""
    return steps_interval(args.save_steps, total_steps) if plain_value(args.save_strategy) == "steps" else None
