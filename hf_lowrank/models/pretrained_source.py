"""Where a model named by a string comes from: a local directory or a Hub repository, checked before loading.

`resolve_pretrained_source` is the one place that decides it (for `from_teacher` and the sweep's ``--teacher``):
a local directory has its config read first (a model of another family is refused before any weights load) and
its safetensors files checked; a string that is neither a local directory nor a Hub repo id is a path that does not
exist; a Hub repo id is tried on the Hub, and its failure says that neither was found.

Only imports transformers, its own dependencies (huggingface_hub, safetensors) and the standard library, so the
modeling files can use it under `trust_remote_code`.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import safe_open
from transformers import AutoConfig, PretrainedConfig, ViTForImageClassification


__all__ = [
    "PretrainedSource",
    "check_safetensors_files",
    "is_repo_id",
    "load_vit_teacher",
    "resolve_pretrained_source",
]

# `from_pretrained` keyword arguments that also decide where and how the config is read.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


@dataclass(frozen=True)
class PretrainedSource:
    """A resolved model source: `name_or_path` (a local directory, user home expanded, or a Hub repo id) to pass to
    `from_pretrained`, whether it is local, and its config."""

    name_or_path: str
    is_local: bool
    config: PretrainedConfig


def check_safetensors_files(directory: str | os.PathLike) -> list[str]:
    """Open every ``*.safetensors`` file of the local model `directory` (its header only, cheap); returns their paths.

    Raises:
        ValueError: `directory` is not a directory, or a file is truncated or corrupt (naming the file).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{str(directory)!r} is not a directory: cannot check its safetensors files.")
    paths = sorted(directory.glob("*.safetensors"))
    for path in paths:
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as error:  # safetensors raises SafetensorError (not exported everywhere) or OSError
            raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {error}") from error
    return [str(path) for path in paths]


def is_repo_id(name: str) -> bool:
    """Whether `name` has the form of a Hub repo id ('name' or 'namespace/name')."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_pretrained_source(
    name_or_path: str | os.PathLike,
    argument: str = "teacher",
    model_types: Sequence[str] | None = ("vit",),
    **hub_kwargs,
) -> PretrainedSource:
    """Resolve `name_or_path` (the value of `argument`, for the messages) to a local directory or a Hub model, read
    its config, and check it is of one of `model_types` (None: any), before any weights are loaded.

    Args:
        hub_kwargs: passed to the config loading (`revision`, `cache_dir`, `token`, `subfolder`, ...).

    Raises:
        ValueError: naming `argument` and the value when the path does not exist (neither a local directory nor a
            valid Hub repo id), when it is a file, when a local directory holds no readable config or a truncated or
            corrupt safetensors file, when neither a local directory nor a Hub model of that name is found, or when
            the model is of another `model_type` (naming its type and architectures, and the supported ones).
    """
    name = os.fspath(name_or_path)
    local = os.path.expanduser(name)
    subfolder = hub_kwargs.get("subfolder") or ""
    label = f"{argument} {name!r}"
    if os.path.isdir(local):
        check_safetensors_files(os.path.join(local, subfolder))
        try:
            config_dict, _ = PretrainedConfig.get_config_dict(local, **hub_kwargs)
        except (OSError, ValueError) as error:
            raise ValueError(f"{label} is a local directory but holds no readable model config: {error}") from error
        source, is_local = local, True
    elif os.path.exists(local):
        raise ValueError(f"{label} is a file; give the directory of a saved model (with config.json) or a Hub id.")
    elif not is_repo_id(name):
        raise ValueError(
            f"{label} does not exist: there is no such local directory, and it is not a Hub repo id either "
            "('name' or 'namespace/name'). Give the directory of a saved model or a Hub model id."
        )
    else:
        try:
            config_dict, _ = PretrainedConfig.get_config_dict(name, **hub_kwargs)
        except OSError as error:
            raise ValueError(f"{label}: no local directory {name!r} and no Hub model {name!r}: {error}") from error
        source, is_local = name, False

    model_type = config_dict.get("model_type")
    if model_types is not None and model_type not in model_types:
        architectures = ", ".join(config_dict.get("architectures") or []) or "model"
        supported = ", ".join(repr(kind) for kind in model_types)
        raise ValueError(
            f"{label} is a {architectures} (model_type {model_type!r}); {argument} must be a model of model_type "
            f"{supported}."
        )
    config = AutoConfig.from_pretrained(source, **hub_kwargs)
    return PretrainedSource(source, is_local, config)


def load_vit_teacher(teacher: str | os.PathLike, **from_pretrained_kwargs) -> ViTForImageClassification:
    """The `ViTForImageClassification` saved at `teacher` (a local directory or a Hub id), its source resolved and
    its config checked first (`resolve_pretrained_source`): a model of another family is refused, not loaded as a
    randomly initialised ViT."""
    hub_kwargs = {key: from_pretrained_kwargs[key] for key in HUB_KWARGS if key in from_pretrained_kwargs}
    source = resolve_pretrained_source(teacher, "teacher", model_types=("vit",), **hub_kwargs)
    return ViTForImageClassification.from_pretrained(source.name_or_path, **from_pretrained_kwargs)
