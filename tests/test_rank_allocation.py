"""Per-layer ranks from a parameter budget: the greedy plan against exhaustive search and hand-computed cases."""

import itertools
import math

import numpy as np
import pytest
import torch

from hf_lowrank.models import LayerSpectrum, allocate_ranks, budget_parameters, plan_parameters, uniform_rank_within


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
    """Output error removed above rank 1: sum over layers of S_2^2 + ... + S_r^2."""
    return sum(float((layers[name].singular_values[1 : ranks[name]] ** 2).sum()) for name in layers)


def _exhaustive_best(layers, budget):
    """The largest removed energy over every rank assignment within the budget, and the assignments reaching it."""
    names = list(layers)
    best, argbest = -1.0, []
    for ranks in itertools.product(*(range(1, layers[name].max_rank + 1) for name in names)):
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
    # a: cost 6 per rank, gains S^2 = 9 (then 1): 1.5 and 0.17 per parameter
    # b: cost 4 per rank, gain S^2 = 4: 1.0 per parameter
    layers = {"a": _layer(3, 3, [5.0, 3.0, 1.0], bias=False), "b": _layer(2, 2, [4.0, 2.0], bias=False)}
    assert plan_parameters(layers, 1) == 10
    assert allocate_ranks(layers, 10) == {"a": 1, "b": 1}
    assert allocate_ranks(layers, 15) == {"a": 1, "b": 2}  # a's step (16) does not fit, b's (14) does
    assert allocate_ranks(layers, 17) == {"a": 2, "b": 1}  # a first (16); b's step would need 20
    assert allocate_ranks(layers, 20) == {"a": 2, "b": 2}  # a (16) then b (20); a's next step needs 26
    assert allocate_ranks(layers, 25) == {"a": 2, "b": 2}
    assert allocate_ranks(layers, 26) == {"a": 3, "b": 2}
    assert allocate_ranks(layers, 1000) == {"a": 3, "b": 2}  # capped at each layer's max rank
    with pytest.raises(ValueError, match="budget 9 is below 10"):
        allocate_ranks(layers, 9)


def test_allocate_ranks_breaks_ties_towards_the_earlier_layer():
    layers = {"x": _layer(2, 2, [2.0, 1.0], bias=False), "y": _layer(2, 2, [2.0, 1.0], bias=False)}
    assert allocate_ranks(layers, 12) == {"x": 2, "y": 1}
    reordered = {"y": layers["y"], "x": layers["x"]}
    assert allocate_ranks(reordered, 12) == {"y": 2, "x": 1}


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_optimal_for_equal_costs(seed):
    """Equal in + out for every layer and decreasing spectra: the greedy plan removes the most energy possible."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 6), (5, 5), (6, 4), (3, 7)]  # in + out = 10 for all; max ranks 4, 5, 4, 3
    layers = {
        f"layer{index}": _layer(i, o, np.sort(rng.exponential(3.0, min(i, o)))[::-1].copy(), bias=bool(index % 2))
        for index, (i, o) in enumerate(shapes)
    }
    smallest, dense = (
        plan_parameters(layers, 1),
        plan_parameters(layers, {n: layer.max_rank for n, layer in layers.items()}),
    )
    for budget in range(smallest, dense + 12, 3):
        ranks = allocate_ranks(layers, budget)
        assert plan_parameters(layers, ranks) <= budget
        assert all(1 <= ranks[name] <= layers[name].max_rank for name in layers)
        best, argbest = _exhaustive_best(layers, budget)
        assert math.isclose(_removed(layers, ranks), best, rel_tol=1e-12, abs_tol=1e-12)
        assert ranks in argbest


@pytest.mark.parametrize("seed", range(6))
def test_greedy_respects_the_budget_and_is_maximal_for_unequal_costs(seed):
    """Any costs: within budget, at least rank 1, and no layer could still be raised by one within the budget."""
    rng = np.random.default_rng(100 + seed)
    layers = {
        name: _layer(int(rng.integers(2, 7)), int(rng.integers(2, 7)), bias=bool(rng.integers(2)), seed=seed * 10 + k)
        for k, name in enumerate("pqr")
    }
    smallest = plan_parameters(layers, 1)
    full = plan_parameters(layers, {name: layer.max_rank for name, layer in layers.items()})
    for budget in range(smallest, full + 5):
        ranks = allocate_ranks(layers, budget)
        spent = plan_parameters(layers, ranks)
        assert spent <= budget
        for name, layer in layers.items():
            assert 1 <= ranks[name] <= layer.max_rank
            if ranks[name] < layer.max_rank:
                assert spent + layer.in_features + layer.out_features > budget
        best, _ = _exhaustive_best(layers, budget)
        assert _removed(layers, ranks) <= best + 1e-9  # never claims more than the optimum


def test_greedy_prefers_the_larger_gain_per_parameter():
    # same gain, different cost: the cheaper layer first; then the costlier one only once it fits
    layers = {
        "wide": _layer(8, 8, [3.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.1, 0.1], bias=False),
        "narrow": _layer(2, 2, [3.0, 2.0], bias=False),
    }
    base = plan_parameters(layers, 1)  # 16 + 4
    assert allocate_ranks(layers, base + 4) == {"wide": 1, "narrow": 2}
    assert allocate_ranks(layers, base + 15) == {"wide": 1, "narrow": 2}
    assert allocate_ranks(layers, base + 20) == {"wide": 2, "narrow": 2}


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
