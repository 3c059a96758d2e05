"""Per-layer ranks from a parameter budget: greedy allocation by output error removed per parameter.

With each layer's (whitened) singular values S known, raising layer l from rank r to r + 1 costs
`in_l + out_l` parameters and removes `S_{l, r+1}^2` of output error (for whitened spectra: the squared error on
the calibration inputs). Every layer starts at rank 1; the step with the largest error removed per parameter is
taken first, steps that no longer fit the budget are skipped, until none fits. A layer is never factorized at or
above its break-even rank (where `r (in + out) >= in out`: the dense layer is as small and exact): its step from the
last rank below it is to the dense layer, removing all its remaining error for the remaining parameters; such a
layer's rank is `None` (dense) in the plan, and it is counted at its dense size.
"""

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

import torch

from ..models.accounting import linear_parameters


__all__ = ["LayerSpectrum", "allocate_ranks", "budget_parameters", "plan_parameters", "uniform_rank_within"]


@dataclass(frozen=True)
class LayerSpectrum:
    """One dense layer to factorize: its shape, bias and singular values `(k,)`, descending (k = min(in, out))."""

    in_features: int
    out_features: int
    bias: bool
    singular_values: torch.Tensor

    def __post_init__(self):
        if self.singular_values.shape != (self.max_rank,):
            raise ValueError(
                f"singular_values of a {self.in_features} -> {self.out_features} layer must have shape "
                f"({self.max_rank},), got {tuple(self.singular_values.shape)}."
            )

    @property
    def max_rank(self) -> int:
        return min(self.in_features, self.out_features)

    def parameters(self, rank: int | None) -> int:
        """Parameters of the layer at `rank` (None: dense)."""
        return linear_parameters(self.in_features, self.out_features, rank, self.bias)

    def below_break_even(self, rank: int) -> bool:
        """Whether the layer factorized at `rank` has fewer parameters than the dense layer."""
        return self.parameters(rank) < self.parameters(None)


def plan_parameters(layers: Mapping[str, LayerSpectrum], ranks: Mapping[str, int | None] | int | None) -> int:
    """Parameters of `layers` at per-layer `ranks` (a mapping; None: that layer dense), one rank for all (an int), or
    dense (None)."""
    return sum(
        layer.parameters(ranks.get(name) if isinstance(ranks, Mapping) else ranks) for name, layer in layers.items()
    )


def budget_parameters(budget, layers: Mapping[str, LayerSpectrum]) -> int:
    """A budget as a parameter count: a float in (0, 1] is a fraction of the dense layers' parameters, an integer
    > 1 a count. Raises ValueError with the valid range (from every layer at rank 1 to the dense layers)."""
    dense, smallest = plan_parameters(layers, None), plan_parameters(layers, 1)
    valid = (
        f"a fraction in [{smallest / dense:.4g}, 1] of the dense layers' {dense:,} parameters, or a parameter count "
        f"in [{smallest:,}, {dense:,}] (every layer at rank 1 up to the dense layers)"
    )
    if isinstance(budget, bool) or not isinstance(budget, Real) or not math.isfinite(budget):
        raise ValueError(f"param_budget {budget!r}: must be {valid}.")
    if isinstance(budget, Integral) or (budget > 1 and float(budget).is_integer()):
        count = int(budget)
    elif 0 < budget <= 1:
        count = math.floor(budget * dense)
    else:
        raise ValueError(f"param_budget {budget!r}: must be {valid}.")
    if not smallest <= count <= dense:
        raise ValueError(f"param_budget {budget!r} ({count:,} parameters): must be {valid}.")
    return count


def allocate_ranks(layers: Mapping[str, LayerSpectrum], budget: int) -> dict[str, int | None]:
    """Per-layer ranks whose parameters (`plan_parameters`) are at most `budget`, chosen greedily by squared singular
    value removed per parameter (ties: the earlier layer). Every layer keeps at least rank 1; no layer is factorized
    at or above its break-even rank: `None` marks a layer kept dense (see the module docstring)."""
    ranks: dict[str, int | None] = {name: 1 if layer.below_break_even(1) else None for name, layer in layers.items()}
    spent = plan_parameters(layers, ranks)
    if budget < spent:
        raise ValueError(f"budget {budget:,} is below {spent:,}, the parameters of every layer at rank 1.")
    order = {name: index for index, name in enumerate(layers)}
    squares = {name: layer.singular_values.double() ** 2 for name, layer in layers.items()}  # name -> (k,)
    heap = []

    def push(name: str) -> None:
        layer, rank = layers[name], ranks[name]
        if rank is None:
            return  # dense: nothing left to add
        if layer.below_break_even(rank + 1):
            gain, cost = float(squares[name][rank]), layer.parameters(rank + 1) - layer.parameters(rank)  # S_{r+1}^2
        else:
            gain, cost = float(squares[name][rank:].sum()), layer.parameters(None) - layer.parameters(rank)
        heapq.heappush(heap, (-gain / cost, order[name], name, cost))

    for name in layers:
        push(name)
    while heap:
        _, _, name, cost = heapq.heappop(heap)
        if spent + cost > budget:
            continue  # this layer's further steps cost at least as much: it is done
        layer = layers[name]
        ranks[name] = ranks[name] + 1 if layer.below_break_even(ranks[name] + 1) else None
        spent += cost
        push(name)
    return ranks


def uniform_rank_within(layers: Mapping[str, LayerSpectrum], budget: int) -> int:
    """The largest single rank for every layer whose parameters are at most `budget` (at least 1, at most the
    smallest layer's max rank)."""
    top = min(layer.max_rank for layer in layers.values())
    rank = 1
    while rank < top and plan_parameters(layers, rank + 1) <= budget:
        rank += 1
    return rank
