"""The checks of the training features that need more than a field's value: a tracker that is not installed, an
evaluation setting that cannot work, a `torch.compile` backend that does not work here. Run by
`flags.check_training_arguments`; each returns its problems as lines naming the flags."""

import functools
import os

from transformers import TrainingArguments

from .flags import plain_value


__all__ = [
    "EVALUATION_METRICS",
    "TRACKER_PACKAGES",
    "compile_problems",
    "evaluation_problems",
    "launcher_problems",
    "tracker_problems",
]


# The package each tracker needs (pip name), by its report_to name: a missing one is named before any work.
TRACKER_PACKAGES = {
    "tensorboard": "tensorboard",
    "trackio": "trackio",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "neptune": "neptune",
    "codecarbon": "codecarbon",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
    "azure_ml": "azureml-core",
    "dagshub": "dagshub mlflow",
    "flyte": "flytekit",
}


def tracker_problems(report_to) -> list[str]:
    """A tracker of `report_to` that is not installed (or not known to transformers), as '--report_to NAME: ...'
    naming the pip package."""
    from transformers.integrations import integration_utils

    available = {
        "tensorboard": integration_utils.is_tensorboard_available,
        "trackio": integration_utils.is_trackio_available,
        "wandb": integration_utils.is_wandb_available,
        "mlflow": integration_utils.is_mlflow_available,
        "comet_ml": integration_utils.is_comet_available,
        "clearml": integration_utils.is_clearml_available,
        "neptune": integration_utils.is_neptune_available,
        "codecarbon": integration_utils.is_codecarbon_available,
        "dvclive": integration_utils.is_dvclive_available,
        "swanlab": integration_utils.is_swanlab_available,
        "azure_ml": integration_utils.is_azureml_available,
        "dagshub": integration_utils.is_dagshub_available,
        "flyte": integration_utils.is_flytekit_available,
    }
    problems = []
    for name in [report_to] if isinstance(report_to, str) else list(report_to or []):
        if name in ("none", "all") or (name == "kubeflow" and integration_utils.is_kubeflow_available()):
            continue
        if name == "kubeflow":
            problems.append(
                "--report_to kubeflow reports only inside a Kubeflow trainer job (no KUBEFLOW_TRAINER_SERVER_URL)"
            )
            continue
        if name not in available:
            known = sorted([*available, "kubeflow"])
            problems.append(f"--report_to {name!r} is not a tracker transformers knows; use one of {known}")
        elif not available[name]():
            problems.append(
                f"--report_to {name}: the {name} package is not installed (pip install {TRACKER_PACKAGES[name]})"
            )
    return problems


def compile_problems(args: TrainingArguments) -> list[str]:
    """`--torch_compile` where no compiler works: a one-parameter stand-in compiled and run with the backend and
    mode asked for, before any work; the first line of its error, naming the flags."""
    if not args.torch_compile:
        return []
    return list(_compile_problems(args.torch_compile_backend or "inductor", args.torch_compile_mode))


@functools.lru_cache(maxsize=None)
def _compile_problems(backend: str, mode: str | None) -> tuple[str, ...]:
    """`compile_problems` of one backend and mode, tried once per process."""
    import torch._dynamo

    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        known = ", ".join(torch._dynamo.list_backends())
        return (f"--torch_compile_backend {backend!r} is not a torch.compile backend; use one of: {known}",)
    try:
        torch._dynamo.reset()
        torch.compile(torch.nn.Linear(2, 2), backend=backend, mode=mode)(torch.zeros(1, 2))
    except Exception as error:  # whatever the compiler raises (a missing C++ compiler, a bad mode, ...)
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return (f"--torch_compile with backend {backend!r} and mode {mode!r} does not work here: {first}",)
    return ()


# What `accelerate launch` (its config file or flags) asks for through the environment, which TrainingArguments does
# not show: FSDP would be applied to GPU processes and silently ignored on CPUs (a replicated run).
_LAUNCHER_FLAGS = {
    "ACCELERATE_USE_FSDP": "FSDP (--use_fsdp or distributed_type: FSDP in its config)",
    "ACCELERATE_USE_DEEPSPEED": "DeepSpeed (--use_deepspeed or distributed_type: DEEPSPEED in its config)",
    "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM (--use_megatron_lm)",
}


def launcher_problems() -> list[str]:
    """Sharded training asked of `accelerate launch` through its environment, as one line each."""
    from .flags import REFUSED

    return [
        f"accelerate launch with {what}, {name}=true, is not supported ({REFUSED['fsdp']})"
        for name, what in _LAUNCHER_FLAGS.items()
        if os.environ.get(name, "false").lower() in ("true", "1")
    ]


EVALUATION_METRICS = ("loss", "accuracy")


def evaluation_problems(args: TrainingArguments) -> list[str]:
    """Evaluation-during-training settings that cannot work, naming the flags."""
    problems = []
    evaluating = plain_value(args.eval_strategy) != "no"
    if plain_value(args.eval_strategy) not in ("steps", "epoch", "no"):
        problems.append(
            f"--eval_strategy {plain_value(args.eval_strategy)!r} is not supported; use steps, epoch or no"
        )
    metric = args.metric_for_best_model
    if metric is not None and metric.removeprefix("eval_") not in EVALUATION_METRICS:
        problems.append(f"--metric_for_best_model {metric!r}: must be one of {list(EVALUATION_METRICS)}")
    patience = getattr(args, "early_stopping_patience", None)
    if patience is not None and not evaluating:
        problems.append(
            f"--early_stopping_patience {patience} needs evaluation during training: add --eval_strategy steps (or "
            "epoch) and a validation split"
        )
    if args.load_best_model_at_end and not evaluating:
        problems.append(
            "--load_best_model_at_end needs evaluation during training: add --eval_strategy steps or epoch"
        )
    return problems
