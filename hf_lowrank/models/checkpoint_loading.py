"""`from_pretrained` for factorized students: transformers' loading plus two protections every student kind shares.

A truncated or corrupt safetensors file in a local directory is named, and a dense checkpoint loaded where factors
are expected (a factorized layer with both factors missing and its dense `weight` present) is an error rather than
a student with random factors. Only imports torch, transformers and flat siblings (the `trust_remote_code` unit).
"""

import os
import re

from torch import nn
from transformers.conversion_mapping import get_checkpoint_conversion_mapping

from .factorized_linear import FactorizedLinear
from .pretrained_source import check_safetensors_files, is_repo_id


__all__ = ["FactorizedCheckpointMixin", "check_checkpoint_path", "dense_layers_in_place_of_factors"]


class FactorizedCheckpointMixin:
    """Put first in the bases of a `PreTrainedModel` subclass whose modules include `FactorizedLinear`s.

    `checkpoint_conversion_model`: the transformers class whose checkpoint-key renaming table (older checkpoint
    layouts) applies to this model's dense checkpoints (``"ViTModel"`` for the ViT students; None: keys as they are).
    """

    checkpoint_conversion_model: str | None = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, with transformers' conventions (weights the checkpoint lacks are
        initialised and listed in `output_loading_info`) and one protection: a dense checkpoint where factors are
        expected (a factorized layer with both factors missing and a dense `weight` present) is an error, and so is
        a truncated or corrupt safetensors file in a local directory (naming the file)."""
        output_loading_info = kwargs.pop("output_loading_info", False)
        check_checkpoint_path(pretrained_model_name_or_path, kwargs)
        model, loading_info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
        )
        dense = dense_layers_in_place_of_factors(model, loading_info)
        if dense:
            raise ValueError(
                f"checkpoint {pretrained_model_name_or_path!s} holds dense weights where {type(model).__name__} "
                f"expects low-rank factors, for {len(dense)} layer(s): {dense[:6]}{' ...' if len(dense) > 6 else ''}. "
                "It is a dense model, not a factorized student: build a student from it with "
                f"{type(model).__name__}.from_teacher(...)."
            )
        return (model, loading_info) if output_loading_info else model


def check_checkpoint_path(pretrained_model_name_or_path, kwargs: dict) -> None:
    """A local directory's truncated or corrupt safetensors file named; a path that is neither a local directory
    nor a Hub repo id refused, saying so (`kwargs`: `from_pretrained`'s, for `subfolder` and `use_safetensors`)."""
    if pretrained_model_name_or_path is None or kwargs.get("use_safetensors") is False:
        return
    local = os.path.expanduser(os.fspath(pretrained_model_name_or_path))
    if os.path.isdir(local):  # a truncated or corrupt file is named (a Hub id: transformers' own checks)
        check_safetensors_files(os.path.join(local, kwargs.get("subfolder") or ""))
    elif not is_repo_id(local):
        raise FileNotFoundError(
            f"{os.fspath(pretrained_model_name_or_path)!r} does not exist: there is no such local directory, "
            "and it is not a Hub repo id either ('namespace/name')."
        )


def _strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix) + 1 :] if prefix and key.startswith(f"{prefix}.") else key


def _current_name(key: str, conversion_model: str | None) -> str:
    """A checkpoint key in transformers' current layout by `conversion_model`'s conversion table (ViT:
    ``encoder.layer.0.attention.attention.query`` -> ``layers.0.attention.q_proj``; ViT checkpoints keep the old
    one); unchanged without one."""
    if conversion_model is None:
        return key
    for renaming in get_checkpoint_conversion_mapping(conversion_model) or []:
        for source, target in zip(renaming.source_patterns, renaming.target_patterns):
            key = re.sub(source, target, key)
    return key


def dense_layers_in_place_of_factors(model: nn.Module, loading_info: dict) -> list[str]:
    """Factorized layers of `model` whose `down` and `up` the checkpoint lacked while it had their dense `weight`
    (names without the base-model prefix), from `from_pretrained`'s loading info."""
    prefix = getattr(model, "base_model_prefix", "")
    missing = {_strip_prefix(key, prefix) for key in loading_info.get("missing_keys") or []}
    conversion = getattr(model, "checkpoint_conversion_model", None)
    unexpected = {
        _current_name(_strip_prefix(key, prefix), conversion) for key in loading_info.get("unexpected_keys") or []
    }
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, FactorizedLinear):
            name = _strip_prefix(name, prefix)
            if {f"{name}.down", f"{name}.up"} <= missing and f"{name}.weight" in unexpected:
                layers.append(name)
    return layers
