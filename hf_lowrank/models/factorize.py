"""Module surgery: replace the `nn.Linear` layers of any torch model by `FactorizedLinear`, in one place.

`factorize_model` is the only function that swaps modules; `FactorizedViT*` builds its encoder with it too.
Layers are selected by type (`nn.Linear`) and by name patterns, never by a hard-coded list of names.

A *pattern* names a module when it is a run of whole dotted components of the module's name (``"fc1"``,
``"mlp.fc1"``, ``"layers.3"`` all name ``"vit.layers.3.mlp.fc1"``), or when it fully matches the name as a regular
expression (``r"layers\\.(0|1)\\..*"``). A pattern that names an ancestor names every module below it.

Only imports torch and flat sibling modules, so the modeling code can use it under `trust_remote_code`.
"""

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .accounting import count_parameters, linear_parameters, parameter_change
from .decomposition import DATA_AWARE_INITS, INITS, InputStatistics, LinearDecomposition, decompose_linear
from .factorized_linear import FactorizedLinear, check_rank


__all__ = [
    "DEFAULT_EXCLUDE_MODULES",
    "FactorizationReport",
    "LayerFactorization",
    "break_even_rank",
    "energy_rank",
    "factorization_report",
    "factorize_model",
    "merge_factorized",
    "name_matches",
    "plan_factorization",
    "truncate_factorized",
]

# Task heads and poolers stay dense by default, as in the paper (only encoder linears are factorized).
DEFAULT_EXCLUDE_MODULES = ("classifier", "pooler", "lm_head", "head", "score", "qa_outputs")

RankSpec = int | float | Mapping[str, int | float]


def name_matches(name: str, pattern: str) -> bool:
    """True if `pattern` names module `name` or one of its ancestors (see the module docstring)."""
    if f".{pattern}." in f".{name}.":
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def _matches_any(name: str, patterns: Sequence[str] | str | None) -> bool:
    if patterns is None:
        return False
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(name_matches(name, pattern) for pattern in patterns)


@torch.no_grad()
def energy_rank(weight: torch.Tensor, fraction: float) -> int:
    """Smallest r whose top-r singular values hold `fraction` of `||weight||_F^2` (at least 1)."""
    singular_values = torch.linalg.svdvals(weight.detach().to(torch.float64))  # (min(out, in),)
    energy = torch.cumsum(singular_values**2, dim=0)  # (k,), energy[-1] = ||W||_F^2
    if energy[-1] <= 0:
        return 1
    rank = int((energy < fraction * energy[-1]).sum().item()) + 1
    return min(rank, singular_values.numel())


@dataclass(frozen=True)
class LayerFactorization:
    """One planned or performed replacement: an `in_features -> out_features` layer at `rank`."""

    name: str
    in_features: int
    out_features: int
    rank: int
    bias: bool

    @property
    def params_before(self) -> int:
        return linear_parameters(self.in_features, self.out_features, None, self.bias)

    @property
    def params_after(self) -> int:
        return linear_parameters(self.in_features, self.out_features, self.rank, self.bias)

    @property
    def break_even_rank(self) -> float:
        """r* = in * out / (in + out): at or above it the factorized layer is no smaller than the dense one."""
        return break_even_rank(self)


@dataclass
class FactorizationReport:
    """What `factorize_model` did: one `LayerFactorization` per replaced layer, and whole-model totals."""

    layers: list[LayerFactorization]
    total_params_before: int
    total_params_after: int

    @property
    def compression(self) -> float:
        """Whole-model parameters before / after (e.g. ~11 for ViT-B/32 at rank 32)."""
        return self.total_params_before / self.total_params_after

    def to_dict(self) -> dict:
        return {
            "layers": [
                asdict(layer) | {"params_before": layer.params_before, "params_after": layer.params_after}
                for layer in self.layers
            ],
            "total_params_before": self.total_params_before,
            "total_params_after": self.total_params_after,
            "compression": self.compression,
        }

    def __str__(self) -> str:
        width = max([len("layer")] + [len(layer.name) for layer in self.layers])
        lines = [f"{'layer':<{width}}  {'out x in':>11}  {'rank':>5}  {'params before':>13}  {'params after':>12}"]
        for layer in self.layers:
            shape = f"{layer.out_features}x{layer.in_features}"
            lines.append(
                f"{layer.name:<{width}}  {shape:>11}  {layer.rank:>5}  {layer.params_before:>13,}  "
                f"{layer.params_after:>12,}"
            )
        before = sum(layer.params_before for layer in self.layers)
        after = sum(layer.params_after for layer in self.layers)
        lines.append(f"{len(self.layers)} factorized layers: {before:,} -> {after:,} parameters")
        lines.append(
            f"whole model: {self.total_params_before:,} -> {self.total_params_after:,} parameters "
            f"({parameter_change(self.total_params_before, self.total_params_after)})"
        )
        return "\n".join(lines)


def _resolve_rank(spec: RankSpec, name: str, linear: nn.Linear) -> int | None:
    """The rank `spec` gives layer `name`, or None when a mapping leaves it dense."""
    if isinstance(spec, Mapping):
        for pattern, value in spec.items():
            if name_matches(name, pattern):
                return _resolve_rank(value, name, linear)
        return None
    if isinstance(spec, float) and not isinstance(spec, bool):
        if not 0.0 < spec <= 1.0:
            raise ValueError(
                f"rank for layer '{name}' ({linear.in_features} -> {linear.out_features}) must be an integer in "
                f"[1, {min(linear.in_features, linear.out_features)}] or an energy fraction in (0, 1], got {spec!r}."
            )
        if linear.weight.is_meta:
            raise ValueError(f"an energy-fraction rank needs real weights, but layer '{name}' is on the meta device.")
        return energy_rank(linear.weight, spec)
    return check_rank(spec, linear.in_features, linear.out_features, layer=f"layer '{name}'")


def plan_factorization(
    model: nn.Module,
    rank: RankSpec,
    target_modules: Sequence[str] | str | None = None,
    exclude_modules: Sequence[str] | str | None = DEFAULT_EXCLUDE_MODULES,
) -> list[LayerFactorization]:
    """Which `nn.Linear` layers of `model` `factorize_model` would replace, and at which rank; changes nothing.

    Args:
        rank: an integer of any kind (Python, numpy, a 0-d integer tensor; every selected layer), a float in
            (0, 1] (per layer, the smallest rank keeping that fraction of the layer's spectral energy), or a
            non-empty mapping from pattern to integer/float (the first matching pattern wins; layers matching none
            stay dense).
        target_modules: patterns a layer (or an ancestor) must match; None selects every `nn.Linear`.
        exclude_modules: patterns that leave a layer dense even when targeted.

    Raises:
        ValueError: an invalid rank (naming the layer, the value and the valid range), no layer selected (listing
            what was looked for), a mapping pattern that names no selected layer, or a rank that factorizes no
            layer (an empty mapping; listing the selected layers).
    """
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    selected = [
        (name, module)
        for name, module in linears
        if (target_modules is None or _matches_any(name, target_modules)) and not _matches_any(name, exclude_modules)
    ]
    if not selected:
        present = ", ".join(name for name, _ in linears[:12]) + (", ..." if len(linears) > 12 else "")
        raise ValueError(
            f"found no layer to factorize in {type(model).__name__}: looked for nn.Linear modules matching "
            f"target_modules={target_modules!r} and not matching exclude_modules={exclude_modules!r}. "
            f"nn.Linear modules present: {present or 'none'}."
        )

    plan = []
    for name, linear in selected:
        layer_rank = _resolve_rank(rank, name, linear)
        if layer_rank is not None:
            plan.append(
                LayerFactorization(name, linear.in_features, linear.out_features, layer_rank, linear.bias is not None)
            )

    selected_names = f"{', '.join(name for name, _ in selected[:12])}{', ...' if len(selected) > 12 else ''}"
    if isinstance(rank, Mapping):
        unused = [pattern for pattern in rank if not any(name_matches(name, pattern) for name, _ in selected)]
        if unused:
            raise ValueError(f"rank patterns {unused} name none of the selected layers: {selected_names}.")
    if not plan:
        raise ValueError(
            f"rank={rank!r} factorizes no layer of {type(model).__name__}: a rank mapping needs at least one "
            f"pattern -> rank entry naming a layer to factorize (e.g. {{'.*': 32}} for all of them). "
            f"Selected nn.Linear layers: {selected_names}."
        )

    _warn_above_break_even(plan)
    return plan


def _warn_above_break_even(plan: list[LayerFactorization]) -> None:
    wasteful = [layer for layer in plan if layer.params_after >= layer.params_before]
    if wasteful:
        names = ", ".join(f"{layer.name} (rank {layer.rank} >= {layer.break_even_rank:.1f})" for layer in wasteful[:6])
        warnings.warn(
            f"{len(wasteful)} layer(s) are factorized at or above the break-even rank in*out/(in+out), where the "
            f"factorization saves no parameters: {names}{', ...' if len(wasteful) > 6 else ''}.",
            UserWarning,
            stacklevel=4,
        )


def factorize_model(
    model: nn.Module,
    rank: RankSpec,
    target_modules: Sequence[str] | str | None = None,
    exclude_modules: Sequence[str] | str | None = DEFAULT_EXCLUDE_MODULES,
    init: str = "svd",
    calibration: Mapping[str, InputStatistics] | None = None,
    alpha: float = 0.5,
    decompositions: Mapping[str, LinearDecomposition] | None = None,
) -> FactorizationReport:
    """Replace matching `nn.Linear` layers of `model` by `FactorizedLinear`, in place.

    Works on any torch module (ViT, BERT-like, a plain `nn.Sequential`). See `plan_factorization` for `rank`,
    `target_modules` and `exclude_modules`.

    Args:
        init: how each layer's factors start (see `decomposition.py`): ``"svd"`` (the truncated SVD of its dense
            weight, the best rank-r approximation), ``"whitened"`` (SVD-LLM: the best rank-r map on the calibration
            inputs), ``"activation"`` (ASVD, input channels scaled by ``mean|x|^alpha``), ``"fisher"`` (FWSVD, rows
            weighted by the task loss's squared gradients); or ``"random"``, the structure only (for models whose
            weights are loaded afterwards).
        calibration: layer name -> `InputStatistics` (`collect_input_statistics`); needed by the data-aware inits.
        alpha: the ``"activation"`` init's exponent.
        decompositions: layer name -> a precomputed `LinearDecomposition` (`decompose_layers`), used instead of
            decomposing again (a sweep factorizes once, then builds every rank from it).

    Returns:
        A `FactorizationReport`; `print(report)` shows the per-layer table and the totals.
    """
    if init not in (*INITS, "random"):
        raise ValueError(f"init must be one of {[*INITS, 'random']}, got {init!r}.")
    params_before = count_parameters(model)
    plan = plan_factorization(model, rank, target_modules, exclude_modules)
    wrong = sorted({d.init for d in (decompositions or {}).values()} - {init})
    if wrong:
        raise ValueError(f"decompositions were computed for init {wrong}, not for init {init!r}.")
    if init in DATA_AWARE_INITS:
        covered = set(decompositions or {}) | set(calibration or {})
        missing = [layer.name for layer in plan if layer.name not in covered]
        if missing:
            raise ValueError(
                f"init {init!r} needs calibration statistics of every factorized layer's inputs "
                f"(calibration=collect_input_statistics(model, batches, layer_names)); missing for {missing[:6]}"
                f"{' ...' if len(missing) > 6 else ''}."
            )
    for layer in plan:
        linear = model.get_submodule(layer.name)
        replacement = FactorizedLinear(
            layer.in_features,
            layer.out_features,
            layer.rank,
            bias=layer.bias,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        if init != "random":
            decomposition = (decompositions or {}).get(layer.name)
            if decomposition is None:
                statistics = (calibration or {}).get(layer.name) if init != "svd" else None
                decomposition = decompose_linear(linear.weight, init, statistics, alpha)
            replacement.check_source(linear)
            replacement.init_from_decomposition_(decomposition, linear.bias)
        model.set_submodule(layer.name, replacement)
    return FactorizationReport(plan, params_before, count_parameters(model))


@torch.no_grad()
def truncate_factorized(model: nn.Module, rank: int) -> dict[str, int]:
    """Replace, in place, every `FactorizedLinear` of `model` by its first min(rank, layer rank) directions
    (`FactorizedLinear.truncated`); returns layer name -> its new rank."""
    ranks = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, FactorizedLinear):
            replacement = module.truncated(min(rank, module.rank))
            model.set_submodule(name, replacement)
            ranks[name] = replacement.rank
    if not ranks:
        raise ValueError(f"{type(model).__name__} has no FactorizedLinear layer to truncate.")
    return ranks


def break_even_rank(layer: FactorizedLinear | nn.Linear) -> float:
    """r* = in * out / (in + out) of a layer's shape: at or above it a rank-r factorization has no fewer parameters
    (nor multiply-accumulates per token) than the dense layer."""
    return layer.in_features * layer.out_features / (layer.in_features + layer.out_features)


@torch.no_grad()
def merge_factorized(model: nn.Module, merge_at: float = 1.0) -> dict[str, int]:
    """Replace, in place, every `FactorizedLinear` of `model` whose rank is at least `merge_at` times its break-even
    rank (`break_even_rank`; its multiply-accumulates at least that fraction of the dense layer's) by the dense
    `nn.Linear` computing the same map (`FactorizedLinear.to_linear`); returns layer name -> the rank it had. With
    `merge_at` 1 (the default) the parameter count never grows. A truncated view's layers are left as they are.
    A `merge_at` that is not a finite number > 0 is refused before anything changes."""
    if isinstance(merge_at, bool) or not isinstance(merge_at, (int, float)) or not 0 < merge_at < float("inf"):
        raise ValueError(f"merge_at must be a finite number > 0 (1: the break-even rank), got {merge_at!r}.")
    merged = {}
    for name, module in list(model.named_modules()):
        if (
            isinstance(module, FactorizedLinear)
            and module.active_rank is None
            and module.rank >= merge_at * break_even_rank(module)
        ):
            model.set_submodule(name, module.to_linear())
            merged[name] = module.rank
    return merged


def factorization_report(model: nn.Module) -> FactorizationReport:
    """The report of an already factorized `model` (a student built any way): one row per `FactorizedLinear`,
    with the whole-model count before taken as if each of them were dense again."""
    layers = [
        LayerFactorization(name, module.in_features, module.out_features, module.rank, module.bias is not None)
        for name, module in model.named_modules()
        if isinstance(module, FactorizedLinear)
    ]
    params_after = count_parameters(model)
    params_before = params_after + sum(layer.params_before - layer.params_after for layer in layers)
    return FactorizationReport(layers, params_before, params_after)
