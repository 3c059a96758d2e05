"""Per-layer ranks from a parameter budget: the greedy plan against exhaustive search and hand-computed cases."""

import itertools
import math

import numpy as np
import pytest
import torch

from hf_lowrank.factorization import (
    LayerSpectrum,
    allocate_ranks,
    budget_parameters,
    plan_parameters,
    uniform_rank_within,
)


def _spectrum(values):
    return torch.tensor(values, dtype=torch.float64)


def _layer(in_features, out_features, values=None, bias=True, seed=0):
    if values is None:
        rng = np.random.default_rng(seed)
        values = np.sort(rng.uniform(0.1, 10.0, min(in_features, out_features)))[::-1].copy()
    return LayerSpectrum(in_features, out_features, bias, _spectrum(values))


def _hand_count(shapes_and_bias, ranks):
    """Parameters by hand: r * (in + out) (+ out for a bias), or in * out (+ out) when dense (rank None)."""
    total = 0
    for (in_features, out_features, bias), rank in zip(shapes_and_bias, ranks):
        total += (in_features * out_features if rank is None else rank * (in_features + out_features)) + (
            out_features if bias else 0
        )
    return total


def _removed(layers, ranks):
    """Output error removed above rank 1: sum over layers of S_2^2 + ... + S_r^2 (a dense layer: all of it)."""
    return sum(
        float((layers[name].singular_values[1 : ranks[name]] ** 2).sum()) for name in layers
    )  # a slice ending at None runs to the end: a dense layer removes everything


def _options(layer):
    """A layer's choices, by hand: every rank whose r (in + out) weights are fewer than the dense in x out, and
    dense (None)."""
    below = [r for r in range(1, layer.max_rank + 1) if r * (layer.in_features + layer.out_features) <
             layer.in_features * layer.out_features]  # fmt: skip
    return [*below, None]


def _exhaustive_best(layers, budget, options=_options):
    """The largest removed energy over every assignment within the budget, and the assignments reaching it."""
    names = list(layers)
    best, argbest = -1.0, []
    for ranks in itertools.product(*(options(layers[name]) for name in names)):
        plan = dict(zip(names, ranks))
        if plan_parameters(layers, plan) > budget:
            continue
        removed = _removed(layers, plan)
        if removed > best + 1e-12:
            best, argbest = removed, [plan]
        elif abs(removed - best) <= 1e-12:
            argbest.append(plan)
    return best, argbest


# --- plan_parameters -------------------------------------------------------------------------------------------


def test_plan_parameters_matches_hand_counts():
    layers = {"a": _layer(7, 5), "b": _layer(5, 3, bias=False), "c": _layer(4, 9)}
    shapes = [(7, 5, True), (5, 3, False), (4, 9, True)]
    assert plan_parameters(layers, None) == 7 * 5 + 5 + 5 * 3 + 4 * 9 + 9 == _hand_count(shapes, [None] * 3)
    assert plan_parameters(layers, 1) == 12 + 5 + 8 + 13 + 9 == _hand_count(shapes, [1, 1, 1])
    assert plan_parameters(layers, 3) == _hand_count(shapes, [3, 3, 3]) == 3 * 12 + 5 + 3 * 8 + 3 * 13 + 9
    assert plan_parameters(layers, {"a": 2, "b": 1, "c": 4}) == 2 * 12 + 5 + 8 + 4 * 13 + 9
    assert plan_parameters(layers, {"a": 2}) == _hand_count(shapes, [2, None, None])  # unlisted layers: dense
    assert layers["c"].parameters(None) == 45 and layers["c"].parameters(2) == 35 and layers["c"].max_rank == 4


# --- allocate_ranks --------------------------------------------------------------------------------------------


def test_allocate_ranks_hand_computed_example():
    # a: 8 -> 8, 16 parameters per rank, dense 64: ranks 1-3 are below break-even, rank 4 is not (64 = 64).
    #    steps: rank 2 removes 4^2 = 16 (1.0 per parameter), rank 3 removes 2^2 = 4 (0.25), then dense removes the
    #    remaining 1 + 1 + 1 + 1 + 1 = 5 for 64 - 48 = 16 parameters (0.3125)
    # b: 4 -> 12, 16 per rank, dense 48: ranks 1-2 below break-even. rank 2 removes 9 (0.5625), then dense the
    #    remaining 4 + 1 = 5 for 48 - 32 = 16 parameters (0.3125)
    layers = {
        "a": _layer(8, 8, [8.0, 4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0], bias=False),
        "b": _layer(4, 12, [6.0, 3.0, 2.0, 1.0], bias=False),
    }
    assert plan_parameters(layers, 1) == 32
    assert allocate_ranks(layers, 32) == {"a": 1, "b": 1}
    assert allocate_ranks(layers, 47) == {"a": 1, "b": 1}
    assert allocate_ranks(layers, 48) == {"a": 2, "b": 1}
    assert allocate_ranks(layers, 64) == {"a": 2, "b": 2}
    assert allocate_ranks(layers, 79) == {"a": 2, "b": 2}
    assert allocate_ranks(layers, 80) == {"a": 2, "b": None}  # b's dense step (0.3125) before a's rank 3 (0.25)
    assert allocate_ranks(layers, 96) == {"a": 3, "b": None}
    assert allocate_ranks(layers, 111) == {"a": 3, "b": None}  # never rank 4: at a's break-even
    assert allocate_ranks(layers, 112) == {"a": None, "b": None}
    assert allocate_ranks(layers, 10_000) == {"a": None, "b": None}
    assert plan_parameters(layers, {"a": 3, "b": None}) == 48 + 48  # a dense layer counts its dense size
    with pytest.raises(ValueError, match="budget 31 is below 32"):
        allocate_ranks(layers, 31)


def test_a_layer_whose_rank_one_is_not_below_break_even_starts_dense():
    layers = {"square2": _layer(2, 2, [4.0, 2.0], bias=False), "wide": _layer(6, 6, [3.0, 2.0, 1.0, 1.0, 1.0, 1.0])}
    # 2 -> 2: rank 1 has 4 weights, as many as the dense layer
    assert allocate_ranks(layers, plan_parameters(layers, {"square2": None, "wide": 1})) == {
        "square2": None, "wide": 1
    }  # fmt: skip


def test_allocate_ranks_breaks_ties_towards_the_earlier_layer():
    spectrum = [2.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    layers = {"x": _layer(6, 6, spectrum, bias=False), "y": _layer(6, 6, spectrum, bias=False)}
    assert allocate_ranks(layers, 36) == {"x": 2, "y": 1}
    reordered = {"y": layers["y"], "x": layers["x"]}
    assert allocate_ranks(reordered, 36) == {"y": 2, "x": 1}


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_optimal_for_equal_costs_below_every_dense_step(seed):
    """Equal in + out for every layer and decreasing spectra, at budgets where no layer can reach its dense step: the
    greedy plan removes the most energy possible."""
    rng = np.random.default_rng(seed)
    shapes = [(8, 12), (10, 10), (12, 8), (7, 13)]  # in + out = 20; below break-even up to ranks 4, 4, 4, 4
    layers = {
        f"layer{index}": _layer(i, o, np.sort(rng.exponential(3.0, min(i, o)))[::-1].copy(), bias=bool(index % 2))
        for index, (i, o) in enumerate(shapes)
    }
    smallest = plan_parameters(layers, 1)
    first_dense = min(  # the fewest parameters of a plan in which some layer has reached its dense step
        plan_parameters(layers, {**{n: 1 for n in layers}, name: None}) for name in layers
    )
    for budget in range(smallest, first_dense, 7):
        ranks = allocate_ranks(layers, budget)
        assert plan_parameters(layers, ranks) <= budget and None not in ranks.values()
        best, argbest = _exhaustive_best(layers, budget)
        assert math.isclose(_removed(layers, ranks), best, rel_tol=1e-12, abs_tol=1e-12)
        assert ranks in argbest


@pytest.mark.parametrize("seed", range(6))
def test_greedy_respects_the_budget_and_break_even_and_is_maximal(seed):
    """Any shapes: within budget, at least rank 1, never at or above a layer's break-even rank, and no step (the next
    rank, or dense from the last rank below break-even) still fits the budget."""
    rng = np.random.default_rng(100 + seed)
    layers = {
        name: _layer(int(rng.integers(2, 9)), int(rng.integers(2, 9)), bias=bool(rng.integers(2)), seed=seed * 10 + k)
        for k, name in enumerate("pqr")
    }
    smallest = plan_parameters(layers, {name: _options(layer)[0] for name, layer in layers.items()})
    dense = plan_parameters(layers, None)
    for budget in range(smallest, dense + 5):
        ranks = allocate_ranks(layers, budget)
        spent = plan_parameters(layers, ranks)
        assert spent <= budget
        for name, layer in layers.items():
            assert ranks[name] in _options(layer)
            if ranks[name] is not None:
                following = _options(layer)[_options(layer).index(ranks[name]) + 1]
                step = layer.parameters(following) - layer.parameters(ranks[name])
                assert spent + step > budget
        best, _ = _exhaustive_best(layers, budget)
        assert _removed(layers, ranks) <= best + 1e-9  # never claims more than the optimum
    assert allocate_ranks(layers, dense) == {name: None for name in layers}


def test_greedy_prefers_the_larger_gain_per_parameter():
    # same gains, different costs: the cheaper layer first; then the costlier one only once it fits
    layers = {
        "wide": _layer(16, 16, [3.0, 2.0, 1.0, 1.0] + [0.5] * 12, bias=False),  # 32 per rank
        "narrow": _layer(8, 8, [3.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.1, 0.1], bias=False),  # 16 per rank
    }
    base = plan_parameters(layers, 1)  # 32 + 16
    assert allocate_ranks(layers, base + 16) == {"wide": 1, "narrow": 2}
    assert allocate_ranks(layers, base + 31) == {"wide": 1, "narrow": 2}
    assert allocate_ranks(layers, base + 48) == {"wide": 2, "narrow": 2}


# --- budget_parameters -----------------------------------------------------------------------------------------


def _budget_layers():
    return {"a": _layer(7, 5), "b": _layer(5, 3, bias=False)}  # dense 40 + 15 = 55; rank 1: 17 + 8 = 25


def test_budget_parameters_fraction_and_count():
    layers = _budget_layers()
    assert plan_parameters(layers, None) == 55 and plan_parameters(layers, 1) == 25
    assert budget_parameters(0.5, layers) == 27  # floor(0.5 * 55)
    assert budget_parameters(1.0, layers) == 55
    assert budget_parameters(np.float64(0.6), layers) == 33
    assert budget_parameters(30, layers) == 30
    assert budget_parameters(np.int64(40), layers) == 40
    assert budget_parameters(30.0, layers) == 30  # an integral float above 1 is a count
    assert budget_parameters(25, layers) == 25 and budget_parameters(55, layers) == 55


@pytest.mark.parametrize("budget", [0.1, 24, 56, 0.0, -0.5, 1.5, 30.5, 10**6])
def test_budget_parameters_out_of_range_names_the_valid_range(budget):
    with pytest.raises(ValueError, match=r"\[0\.4545, 1\].*55 parameters.*\[25, 55\]"):
        budget_parameters(budget, _budget_layers())


@pytest.mark.parametrize("budget", [True, False, float("nan"), float("inf"), "0.5", None])
def test_budget_parameters_refuses_non_numbers(budget):
    with pytest.raises(ValueError, match=r"param_budget .*must be .*\[25, 55\]"):
        budget_parameters(budget, _budget_layers())


def test_budget_parameters_formats_large_counts_with_separators():
    layers = {"big": _layer(100, 60)}  # dense 6060; rank 1: 220
    with pytest.raises(ValueError, match=r"\[220, 6,060\]"):
        budget_parameters(10, layers)


# --- uniform_rank_within ---------------------------------------------------------------------------------------


def test_uniform_rank_within_is_the_largest_fitting_rank():
    layers = {"a": _layer(7, 5), "b": _layer(5, 3, bias=False), "c": _layer(9, 6)}
    shapes = [(7, 5, True), (5, 3, False), (9, 6, True)]
    top = 3  # the smallest layer's max rank
    for budget in range(0, _hand_count(shapes, [None] * 3) + 30):
        fitting = [r for r in range(1, top + 1) if _hand_count(shapes, [r] * 3) <= budget]
        expected = max(fitting) if fitting else 1
        assert uniform_rank_within(layers, budget) == expected, budget
    assert uniform_rank_within(layers, 10**9) == top
    assert uniform_rank_within(layers, _hand_count(shapes, [2] * 3)) == 2
    assert uniform_rank_within(layers, _hand_count(shapes, [2] * 3) - 1) == 1


def test_a_spectrum_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"must have shape \(4,\), got \(2,\)"):
        LayerSpectrum(4, 4, False, torch.tensor([2.0, 1.0]))
