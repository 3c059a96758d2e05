"""Teacher weights into a student: the one function every student kind uses (`from_teacher` of each model).

A student's module `name` takes its weights from the teacher's module `teacher_name(name)` (by default the same
name; a prefix map renames, e.g. a Lift student's ``layers`` are the teacher's ``vit.layers``). A `FactorizedLinear`
opposite a teacher `nn.Linear` is set to that layer's truncated SVD, or to its precomputed decomposition (any init,
computed once per teacher by `decompose_layers` and truncated at each student's rank); every other tensor is copied
when the teacher has one of that name and shape. Modules are never swapped here: `factorize_model` is the only place
that swaps.

Only imports torch and flat siblings, so the modeling files can use it under `trust_remote_code`.
"""

from collections.abc import Mapping

import torch
from torch import nn

from .decomposition import LinearDecomposition
from .factorized_linear import FactorizedLinear


__all__ = ["copy_teacher_weights"]


def _teacher_name(name: str, prefixes: Mapping[str, str] | None) -> str:
    """`name` with its longest matching prefix (whole dotted components) renamed by `prefixes`."""
    for prefix in sorted(prefixes or {}, key=len, reverse=True):
        if name == prefix or name.startswith(f"{prefix}."):
            return prefixes[prefix] + name[len(prefix) :]
    return name if prefixes is None else ""


@torch.no_grad()
def copy_teacher_weights(
    student: nn.Module,
    teacher: nn.Module,
    prefixes: Mapping[str, str] | None = None,
    decompositions: Mapping[str, LinearDecomposition] | None = None,
) -> list[str]:
    """Initialise `student` from `teacher` in place; returns the student's tensors that got nothing (sorted).

    Args:
        prefixes: student prefix -> teacher prefix (e.g. ``{"layers": "vit.layers", "classifier": "classifier"}``).
            None: the same names. With a mapping, student modules under no listed prefix keep their own init.
        decompositions: teacher layer name -> its `LinearDecomposition`; a factorized layer whose teacher layer is
            listed takes its factors from it (no SVD here), the others the truncated SVD of the teacher's weight.

    Raises:
        ValueError: a student tensor whose teacher counterpart exists with another shape (naming both), or a
            `FactorizedLinear` opposite a teacher module that is not an `nn.Linear` of the same size.
    """
    teacher_modules = dict(teacher.named_modules())
    teacher_tensors = {**dict(teacher.named_parameters()), **dict(teacher.named_buffers())}
    covered = set()
    for name, module in student.named_modules():
        if isinstance(module, FactorizedLinear):
            source_name = _teacher_name(name, prefixes)
            source = teacher_modules.get(source_name) if source_name else None
            if source is None:
                continue
            if not isinstance(source, nn.Linear):
                raise ValueError(
                    f"student layer {name!r} is factorized, but the teacher's {source_name!r} is a "
                    f"{type(source).__name__}, not an nn.Linear."
                )
            if decompositions is not None and source_name in decompositions:
                module.check_source(source)
                module.init_from_decomposition_(decompositions[source_name], source.bias)
            else:
                module.init_from_linear_(source)
            covered.update(f"{name}.{key}" for key, _ in module.named_parameters())
    uncovered = []
    own = {**dict(student.named_parameters()), **dict(student.named_buffers())}
    for key, tensor in own.items():
        if key in covered:
            continue
        source_key = _teacher_name(key, prefixes)
        source = teacher_tensors.get(source_key) if source_key else None
        if source is None:
            uncovered.append(key)
            continue
        if source.shape != tensor.shape:
            raise ValueError(
                f"student tensor {key!r} {tuple(tensor.shape)} does not match the teacher's {source_key!r} "
                f"{tuple(source.shape)}."
            )
        tensor.copy_(source)
    return sorted(uncovered)
