"""Data-aware factorizations (`decomposition.py`): closed forms checked against independent numpy computations."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hf_lowrank.models import (
    FactorizedLinear,
    InputStatistics,
    LinearDecomposition,
    copy_teacher_weights,
    decompose_layers,
    decompose_linear,
    factorize_model,
    fallback_summary,
    teacher_decompositions,
    whitening_factor,
)
from hf_lowrank.models import factorize as factorize_module


IN, OUT, TOKENS = 7, 5, 11


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _weight(out_features=OUT, in_features=IN, seed=0):
    return torch.randn(out_features, in_features, generator=_generator(seed), dtype=torch.float64)


def _correlated_inputs(tokens=TOKENS, in_features=IN, seed=1):
    """`X = Z A` (tokens x in): full column rank, strongly correlated and unevenly scaled channels."""
    generator = _generator(seed)
    z = torch.randn(tokens, in_features, generator=generator, dtype=torch.float64)
    mixing = torch.randn(in_features, in_features, generator=generator, dtype=torch.float64)
    mixing = mixing * torch.logspace(0, 1.5, in_features, dtype=torch.float64)  # columns of very different scale
    return z @ mixing


def _statistics(x, row_fisher=None):
    statistics = InputStatistics.empty(x.shape[-1])
    statistics.add(x)
    statistics.row_fisher = row_fisher
    return statistics


def _linear(weight, bias=True):
    out_features, in_features = weight.shape
    linear = nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias:
            linear.bias.copy_(torch.arange(out_features, dtype=torch.float64) - 1.5)
    return linear


def _truncated_svd(matrix, rank):
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def _output_error(weight, approximation, x):
    """||(W - W_r) X^T||_F^2 / n, in numpy."""
    return float(np.sum(((weight - approximation) @ x.T) ** 2) / x.shape[0])


# --- statistics -------------------------------------------------------------------------------------------------


def test_statistics_accumulate_in_chunks_like_one_batch():
    x = _correlated_inputs()
    whole = _statistics(x)
    chunked = InputStatistics.empty(IN)
    chunked.add(x[:4].float())  # float32 input: accumulated in float64 all the same
    chunked.add(x[4:].reshape(1, TOKENS - 4, IN).float())  # leading dims are flattened
    xn = x.numpy()
    np.testing.assert_allclose(whole.gram.numpy(), xn.T @ xn, rtol=1e-12)
    np.testing.assert_allclose(whole.abs_sum.numpy(), np.abs(xn).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(whole.second_moment.numpy(), xn.T @ xn / TOKENS, rtol=1e-12)
    np.testing.assert_allclose(whole.mean_abs.numpy(), np.abs(xn).mean(axis=0), rtol=1e-12)
    assert whole.num_tokens == chunked.num_tokens == TOKENS
    assert chunked.gram.dtype == torch.float64
    xf = x.float().double().numpy()  # what the float32 chunks hold
    np.testing.assert_allclose(chunked.gram.numpy(), xf.T @ xf, rtol=1e-10)
    np.testing.assert_allclose(chunked.abs_sum.numpy(), np.abs(xf).sum(axis=0), rtol=1e-10)

    again = InputStatistics.empty(IN)
    again.add(x[:6])
    again.add(x[6:])
    torch.testing.assert_close(again.gram, whole.gram, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(again.abs_sum, whole.abs_sum, rtol=1e-12, atol=1e-12)


# --- whitened: the closed form ---------------------------------------------------------------------------------


def test_whitened_output_error_is_the_discarded_whitened_spectrum_and_the_optimum():
    weight, x = _weight(), _correlated_inputs()
    w, xn = weight.numpy(), x.numpy()
    statistics = InputStatistics.empty(IN)
    statistics.add(x[:5])
    statistics.add(x[5:])
    decomposition = decompose_linear(weight, "whitened", statistics)
    assert decomposition.fallback == "cholesky" and decomposition.notes == []

    cholesky = np.linalg.cholesky(xn.T @ xn / TOKENS)  # independent whitening factor
    whitened_values = np.linalg.svd(w @ cholesky, compute_uv=False)
    optimal_values = np.linalg.svd(w @ xn.T / np.sqrt(TOKENS), compute_uv=False)  # the min over all rank-r maps
    np.testing.assert_allclose(decomposition.singular_values.numpy(), whitened_values, rtol=1e-10)

    linear = _linear(weight)
    strictly_better = []
    for rank in range(1, min(IN, OUT) + 1):
        up, down = decomposition.factors(rank)
        assert up.shape == (OUT, rank) and down.shape == (rank, IN)
        approximation = (up @ down).numpy()
        error = _output_error(w, approximation, xn)
        discarded = float(np.sum(whitened_values[rank:] ** 2))
        np.testing.assert_allclose(error, discarded, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(decomposition.discarded_energy(rank), discarded, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(error, float(np.sum(optimal_values[rank:] ** 2)), rtol=1e-8, atol=1e-9)
        # up = U_r S_r^(1/2): orthogonal columns of squared norm S_i.
        np.testing.assert_allclose(
            (up.T @ up).numpy(), np.diag(whitened_values[:rank]), rtol=1e-8, atol=1e-8 * whitened_values[0]
        )

        student = FactorizedLinear.from_linear(linear, rank, init="whitened", statistics=statistics)
        np.testing.assert_allclose(student.merged_weight().numpy(), approximation, rtol=1e-10, atol=1e-12)

        svd_error = _output_error(w, _truncated_svd(w, rank), xn)
        assert error <= svd_error * (1 + 1e-10) + 1e-12
        strictly_better.append(error < 0.9 * svd_error)
    assert any(strictly_better[:-1])  # correlated, unevenly scaled inputs: plain SVD is clearly worse somewhere


def test_whitened_beats_random_rank_r_maps():
    weight, x = _weight(seed=5), _correlated_inputs(seed=6)
    w, xn = weight.numpy(), x.numpy()
    decomposition = decompose_linear(weight, "whitened", _statistics(x))
    rng = np.random.default_rng(0)
    for rank in (1, 2, 3):
        best = _output_error(w, (decomposition.factors(rank)[0] @ decomposition.factors(rank)[1]).numpy(), xn)
        for _ in range(20):
            candidate = rng.standard_normal((OUT, rank)) @ rng.standard_normal((rank, IN))
            # the best multiple of the random direction, so the comparison is not trivially won on scale
            scale = np.sum((w @ xn.T) * (candidate @ xn.T)) / np.sum((candidate @ xn.T) ** 2)
            assert best <= _output_error(w, scale * candidate, xn)


# --- every init at full rank -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 5), (OUT, IN), (9, 4)])
@pytest.mark.parametrize("init", ["svd", "whitened", "activation", "fisher"])
def test_every_init_reproduces_the_weight_at_full_rank(init, shape):
    out_features, in_features = shape
    weight = _weight(out_features, in_features, seed=2)
    x = _correlated_inputs(tokens=3 * in_features, in_features=in_features, seed=3)
    row_fisher = torch.rand(out_features, generator=_generator(4), dtype=torch.float64) + 0.1
    statistics = None if init == "svd" else _statistics(x, row_fisher)
    linear = _linear(weight)
    full = min(shape)
    student = FactorizedLinear.from_linear(linear, full, init=init, statistics=statistics)
    torch.testing.assert_close(student.merged_weight(), weight, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(student.bias, linear.bias, rtol=0, atol=0)
    assert student.up.dtype == torch.float64
    decomposition = decompose_linear(weight, init, statistics)
    assert decomposition.init == init and decomposition.max_rank == full
    assert decomposition.discarded_energy(full) == 0.0


def test_full_rank_float32_layer_is_reproduced_for_data_aware_inits():
    weight = _weight().float()
    statistics = _statistics(_correlated_inputs(), row_fisher=torch.ones(OUT, dtype=torch.float64))
    linear = nn.Linear(IN, OUT)
    with torch.no_grad():
        linear.weight.copy_(weight)
    for init in ("whitened", "activation", "fisher"):
        student = FactorizedLinear.from_linear(linear, min(IN, OUT), init=init, statistics=statistics)
        assert student.up.dtype == torch.float32
        torch.testing.assert_close(student.merged_weight(), weight, rtol=1e-4, atol=1e-4)


# --- activation and fisher closed forms ------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_activation_init_is_the_svd_of_the_channel_scaled_weight(alpha):
    weight, x = _weight(seed=7), _correlated_inputs(seed=8)
    w, xn = weight.numpy(), x.numpy()
    scale = np.abs(xn).mean(axis=0) ** alpha  # independent s_j
    statistics = _statistics(x)
    decomposition = decompose_linear(weight, "activation", statistics, alpha=alpha)
    assert decomposition.fallback == "none"
    np.testing.assert_allclose(decomposition.singular_values.numpy(), np.linalg.svd(w * scale, compute_uv=False))
    for rank in range(1, min(IN, OUT) + 1):
        expected = _truncated_svd(w * scale, rank) / scale
        student = FactorizedLinear.from_linear(
            _linear(weight), rank, init="activation", statistics=statistics, alpha=alpha
        )
        np.testing.assert_allclose(student.merged_weight().numpy(), expected, rtol=1e-9, atol=1e-10)


def test_activation_with_alpha_zero_is_plain_svd():
    weight, x = _weight(seed=9), _correlated_inputs(seed=10)
    statistics = _statistics(x)
    for rank in (1, 2, 4):
        student = FactorizedLinear.from_linear(
            _linear(weight), rank, init="activation", statistics=statistics, alpha=0
        )
        np.testing.assert_allclose(
            student.merged_weight().numpy(), _truncated_svd(weight.numpy(), rank), rtol=1e-9, atol=1e-10
        )


def test_activation_floors_a_dead_channel():
    weight, x = _weight(seed=11), _correlated_inputs(seed=12)
    x[:, 2] = 0.0
    decomposition = decompose_linear(weight, "activation", _statistics(x))
    assert decomposition.fallback == "channel scale floored"
    assert torch.isfinite(decomposition.left).all() and torch.isfinite(decomposition.right).all()
    up, down = decomposition.factors(min(IN, OUT))
    torch.testing.assert_close(up @ down, weight, rtol=1e-7, atol=1e-7)


def test_fisher_init_is_the_svd_of_the_row_weighted_weight():
    weight = _weight(seed=13)
    w = weight.numpy()
    row_fisher = torch.tensor([4.0, 0.25, 1.0, 9.0, 0.5], dtype=torch.float64)
    root = np.sqrt(row_fisher.numpy())
    statistics = _statistics(_correlated_inputs(seed=14), row_fisher)
    decomposition = decompose_linear(weight, "fisher", statistics)
    assert decomposition.fallback == "none"
    np.testing.assert_allclose(
        decomposition.singular_values.numpy(), np.linalg.svd(root[:, None] * w, compute_uv=False), rtol=1e-10
    )
    for rank in range(1, min(IN, OUT) + 1):
        expected = _truncated_svd(root[:, None] * w, rank) / root[:, None]
        up, down = decomposition.factors(rank)
        np.testing.assert_allclose((up @ down).numpy(), expected, rtol=1e-9, atol=1e-10)
        # it minimises the row-weighted error sum_i f_i ||w_i - w_r,i||^2, whose minimum is the discarded energy
        weighted_error = np.sum(row_fisher.numpy()[:, None] * (w - (up @ down).numpy()) ** 2)
        np.testing.assert_allclose(weighted_error, decomposition.discarded_energy(rank), rtol=1e-8, atol=1e-10)


def test_fisher_with_a_zero_row_weight_is_floored_and_still_exact_at_full_rank():
    weight = _weight(seed=15)
    row_fisher = torch.tensor([1.0, 0.0, 2.0, 3.0, 1.0], dtype=torch.float64)
    decomposition = decompose_linear(weight, "fisher", _statistics(_correlated_inputs(), row_fisher))
    assert decomposition.fallback == "row weight floored"
    up, down = decomposition.factors(min(IN, OUT))
    assert torch.isfinite(up).all() and torch.isfinite(down).all()
    torch.testing.assert_close(up @ down, weight, rtol=1e-7, atol=1e-7)


# --- rank-deficient calibration --------------------------------------------------------------------------------


def _dead_channel_inputs():
    x = _correlated_inputs(seed=16)
    x[:, 3] = 0.0
    return x


def _few_tokens_inputs():
    return _correlated_inputs(tokens=3, seed=17)


def _zero_inputs():
    return torch.zeros(TOKENS, IN, dtype=torch.float64)


@pytest.mark.parametrize(
    "inputs, expected_fallback",
    [
        (_dead_channel_inputs, "diagonal shift"),
        (_few_tokens_inputs, "diagonal shift"),
        (_zero_inputs, "identity"),
    ],
    ids=["dead-channel", "fewer-tokens-than-features", "all-zero"],
)
def test_whitened_survives_rank_deficient_calibration(inputs, expected_fallback):
    weight, x = _weight(seed=18), inputs()
    statistics = _statistics(x)
    decomposition = decompose_linear(weight, "whitened", statistics)
    assert decomposition.fallback != "cholesky" and decomposition.fallback.startswith(expected_fallback)
    for tensor in (decomposition.left, decomposition.singular_values, decomposition.right):
        assert torch.isfinite(tensor).all()
    for rank in range(1, min(IN, OUT) + 1):
        up, down = decomposition.factors(rank)
        assert torch.isfinite(up).all() and torch.isfinite(down).all()
    student = FactorizedLinear.from_linear(_linear(weight), min(IN, OUT), init="whitened", statistics=statistics)
    torch.testing.assert_close(student.merged_weight(), weight, rtol=1e-6, atol=1e-6)
    if x.shape[0] < IN:
        assert any("3 calibration tokens < 7 input features" in note for note in decomposition.notes)
    else:
        assert decomposition.notes == []
    if expected_fallback == "identity":  # no signal: plain SVD
        np.testing.assert_allclose(
            (decomposition.factors(2)[0] @ decomposition.factors(2)[1]).numpy(),
            _truncated_svd(weight.numpy(), 2),
            rtol=1e-9,
            atol=1e-10,
        )


def test_whitened_on_few_tokens_keeps_the_seen_directions_nearly_exact():
    """With n = 3 < in = 7 tokens, a rank-3 whitened student reproduces W on the calibration inputs (up to the
    tiny diagonal shift): the inputs span only 3 directions."""
    weight, x = _weight(seed=19), _few_tokens_inputs()
    decomposition = decompose_linear(weight, "whitened", _statistics(x))
    up, down = decomposition.factors(3)
    w, xn = weight.numpy(), x.numpy()
    relative = _output_error(w, (up @ down).numpy(), xn) / _output_error(w, np.zeros_like(w), xn)
    assert relative < 1e-4


def test_whitening_factor_is_the_cholesky_factor_of_a_positive_definite_matrix():
    x = _correlated_inputs().numpy()
    second_moment = x.T @ x / TOKENS
    factor, inverse, fallback = whitening_factor(torch.from_numpy(second_moment))
    assert fallback == "cholesky"
    np.testing.assert_allclose(factor.numpy(), np.linalg.cholesky(second_moment), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose((factor @ inverse).numpy(), np.eye(IN), atol=1e-9)
    np.testing.assert_allclose(
        inverse.numpy(), np.linalg.inv(np.linalg.cholesky(second_moment)), rtol=1e-7, atol=1e-12
    )


def test_whitening_factor_shifts_a_singular_matrix():
    x = _few_tokens_inputs().numpy()
    second_moment = x.T @ x / 3  # rank 3 of 7
    factor, inverse, fallback = whitening_factor(torch.from_numpy(second_moment))
    assert fallback.startswith("diagonal shift")
    shift = (factor @ factor.T).numpy() - second_moment
    mean_diagonal = np.trace(second_moment) / IN
    # L L^T = C + eps * mean(diag C) * I with a small eps
    np.testing.assert_allclose(shift, shift[0, 0] * np.eye(IN), atol=1e-9 * mean_diagonal)
    assert 0 < shift[0, 0] <= 0.1 * mean_diagonal * (1 + 1e-9)
    assert fallback == f"diagonal shift {shift[0, 0] / mean_diagonal:.0e}"
    np.testing.assert_allclose((inverse @ factor).numpy(), np.eye(IN), atol=1e-6)
    np.testing.assert_allclose(np.tril(factor.numpy()), factor.numpy())  # still a lower triangular factor


def test_whitening_factor_floors_an_indefinite_matrix_by_eigendecomposition():
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((4, 4)))
    eigenvalues = np.array([3.0, 1.0, 0.5, -2.0])  # mean diagonal 0.625 > 0, no shift up to 0.1 * that helps
    matrix = (q * eigenvalues) @ q.T
    factor, inverse, fallback = whitening_factor(torch.from_numpy(matrix))
    assert fallback == "eigendecomposition"
    floored = (q * np.maximum(eigenvalues, 1e-6 * 3.0)) @ q.T  # negative eigenvalue clipped at the floor
    np.testing.assert_allclose((factor @ factor.T).numpy(), floored, atol=1e-10)
    np.testing.assert_allclose((inverse @ factor).numpy(), np.eye(4), atol=1e-6)
    assert torch.isfinite(factor).all() and torch.isfinite(inverse).all()


def test_whitening_factor_of_zero_is_the_identity():
    factor, inverse, fallback = whitening_factor(torch.zeros(3, 3, dtype=torch.float64))
    assert fallback.startswith("identity")
    torch.testing.assert_close(factor, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(inverse, torch.eye(3, dtype=torch.float64))


# --- errors ----------------------------------------------------------------------------------------------------


def test_errors_name_what_is_wrong():
    weight = _weight()
    statistics = _statistics(_correlated_inputs())
    with pytest.raises(ValueError, match="svd.*whitened.*activation.*fisher.*'wavelet'"):
        decompose_linear(weight, "wavelet", statistics)
    for init in ("whitened", "activation", "fisher"):
        with pytest.raises(ValueError, match=f"init '{init}' needs calibration statistics"):
            decompose_linear(weight, init, None)
        with pytest.raises(ValueError, match=f"init '{init}' needs calibration"):
            FactorizedLinear.from_linear(_linear(weight), 2, init=init)
    with pytest.raises(ValueError, match="width 6 do not fit a weight of in_features 7"):
        decompose_linear(weight, "whitened", _statistics(_correlated_inputs(in_features=6)))
    for alpha in (-0.5, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
            decompose_linear(weight, "activation", statistics, alpha=alpha)
    with pytest.raises(ValueError, match="row_fisher|Fisher"):
        decompose_linear(weight, "fisher", statistics)
    decomposition = decompose_linear(weight, "svd")
    for rank in (0, 6):
        with pytest.raises(ValueError, match=r"rank must be in \[1, 5\]"):
            decomposition.factors(rank)


# --- factorize_model, copy_teacher_weights, decompose_layers -----------------------------------------------------


def _tiny_model():
    torch.manual_seed(20)
    return nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()


def _calibration(model, x):
    """Each linear's actual inputs, by running the layers by hand."""
    with torch.no_grad():
        hidden = torch.relu(model[0](x))
    return {"0": _statistics(x), "2": _statistics(hidden)}, {"0": x, "2": hidden}


RANKS = {"0": 2, "2": 1}


def test_factorize_model_whitened_matches_from_linear_per_layer():
    model = _tiny_model()
    x = _correlated_inputs(tokens=13, seed=21)
    calibration, inputs = _calibration(model, x)
    teacher = copy.deepcopy(model)
    report = factorize_model(model, RANKS, exclude_modules=(), init="whitened", calibration=calibration)
    assert [layer.name for layer in report.layers] == ["0", "2"]
    for name, rank in RANKS.items():
        student = model.get_submodule(name)
        assert isinstance(student, FactorizedLinear) and student.rank == rank
        expected = FactorizedLinear.from_linear(
            teacher.get_submodule(name), rank, init="whitened", statistics=calibration[name]
        )
        torch.testing.assert_close(student.up, expected.up, rtol=0, atol=0)
        torch.testing.assert_close(student.down, expected.down, rtol=0, atol=0)
        torch.testing.assert_close(student.bias, teacher.get_submodule(name).bias, rtol=0, atol=0)
        # and it is the whitened optimum on that layer's calibration inputs (independent closed form)
        w, xn = teacher.get_submodule(name).weight.detach().numpy(), inputs[name].numpy()
        optimum = np.linalg.svd(w @ xn.T / np.sqrt(xn.shape[0]), compute_uv=False)
        np.testing.assert_allclose(
            _output_error(w, student.merged_weight().numpy(), xn), np.sum(optimum[rank:] ** 2), rtol=1e-7, atol=1e-12
        )


def test_factorize_model_without_calibration_names_the_layer():
    model = _tiny_model()
    calibration, _ = _calibration(model, _correlated_inputs(tokens=13))
    with pytest.raises(ValueError, match=r"missing for \['2'\]"):
        factorize_model(model, RANKS, exclude_modules=(), init="whitened", calibration={"0": calibration["0"]})
    with pytest.raises(ValueError, match=r"missing for \['0', '2'\]"):
        factorize_model(model, RANKS, exclude_modules=(), init="activation")
    assert isinstance(model[0], nn.Linear) and isinstance(model[2], nn.Linear)  # nothing swapped before the error


def test_factorize_model_with_partial_decompositions_names_the_uncovered_layer():
    model = _tiny_model()
    calibration, _ = _calibration(model, _correlated_inputs(tokens=13))
    decompositions = decompose_layers(model, ["0"], "whitened", calibration)
    with pytest.raises(ValueError, match=r"missing for \['2'\]"):
        factorize_model(model, RANKS, exclude_modules=(), init="whitened", decompositions=decompositions)


def test_factorize_model_refuses_decompositions_of_another_init():
    model = _tiny_model()
    calibration, _ = _calibration(model, _correlated_inputs(tokens=13))
    decompositions = decompose_layers(model, ["0", "2"], "whitened", calibration)
    with pytest.raises(ValueError, match=r"computed for init \['whitened'\], not for init 'svd'"):
        factorize_model(model, RANKS, exclude_modules=(), init="svd", decompositions=decompositions)


def test_alpha_of_any_real_type_is_accepted():
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    statistics = InputStatistics.empty(7)
    statistics.add(torch.randn(11, 7, generator=generator, dtype=torch.float64))
    a = decompose_linear(weight, "activation", statistics, alpha=np.float32(0.5))
    b = decompose_linear(weight, "activation", statistics, alpha=0.5)
    torch.testing.assert_close(a.singular_values, b.singular_values)


def test_factorize_model_uses_given_decompositions_without_recomputing(monkeypatch):
    model = _tiny_model()
    calibration, _ = _calibration(model, _correlated_inputs(tokens=13))
    decompositions = decompose_layers(model, ["0", "2"], "whitened", calibration)
    for name in ("0", "2"):  # decompose_layers is decompose_linear per layer
        fresh = decompose_linear(model.get_submodule(name).weight, "whitened", calibration[name])
        torch.testing.assert_close(decompositions[name].left, fresh.left, rtol=0, atol=0)
        torch.testing.assert_close(decompositions[name].right, fresh.right, rtol=0, atol=0)

    same = copy.deepcopy(model)
    factorize_model(same, RANKS, exclude_modules=(), init="whitened", calibration=calibration)

    def no_recomputation(*args, **kwargs):
        raise AssertionError("decompose_linear was called although decompositions were given")

    monkeypatch.setattr(factorize_module, "decompose_linear", no_recomputation)
    given = copy.deepcopy(model)
    factorize_model(given, RANKS, exclude_modules=(), init="whitened", decompositions=decompositions)
    for name in ("0", "2"):
        torch.testing.assert_close(given.get_submodule(name).up, same.get_submodule(name).up, rtol=0, atol=0)
        torch.testing.assert_close(given.get_submodule(name).down, same.get_submodule(name).down, rtol=0, atol=0)

    # a doctored decomposition is what the student gets
    doctored = dict(decompositions)
    original = decompositions["0"]
    doctored["0"] = LinearDecomposition(
        "whitened", 2 * original.left, original.singular_values, original.right, original.fallback
    )
    student = copy.deepcopy(model)
    factorize_model(student, RANKS, exclude_modules=(), init="whitened", decompositions=doctored)
    up, down = original.factors(2)
    torch.testing.assert_close(student[0].up, 2 * up, rtol=0, atol=0)
    torch.testing.assert_close(student[0].down, down, rtol=0, atol=0)
    torch.testing.assert_close(student[0].bias, model[0].bias, rtol=0, atol=0)


def test_copy_teacher_weights_uses_the_given_decompositions():
    teacher = _tiny_model()
    calibration, _ = _calibration(teacher, _correlated_inputs(tokens=13))
    decompositions = decompose_layers(teacher, ["0", "2"], "activation", calibration, 1.0)
    doctored = dict(decompositions)
    original = decompositions["2"]
    doctored["2"] = LinearDecomposition(
        "activation", original.left, original.singular_values * 4, original.right, original.fallback
    )

    student = copy.deepcopy(teacher)
    factorize_model(student, RANKS, exclude_modules=(), init="random")
    uncovered = copy_teacher_weights(student, teacher, decompositions=doctored)
    assert uncovered == []
    up0, down0 = decompositions["0"].factors(2)
    torch.testing.assert_close(student[0].up, up0, rtol=0, atol=0)
    torch.testing.assert_close(student[0].down, down0, rtol=0, atol=0)
    up2, down2 = original.factors(1)
    torch.testing.assert_close(student[2].up, 2 * up2, rtol=1e-12, atol=0)  # sqrt(4 S) = 2 sqrt(S)
    torch.testing.assert_close(student[2].down, 2 * down2, rtol=1e-12, atol=0)
    torch.testing.assert_close(student[2].bias, teacher[2].bias, rtol=0, atol=0)

    # activation closed form for layer 0, independent of the code under test
    w = teacher[0].weight.detach().numpy()
    scale = np.abs(_correlated_inputs(tokens=13).numpy()).mean(axis=0)
    np.testing.assert_allclose(student[0].merged_weight().numpy(), _truncated_svd(w * scale, 2) / scale, rtol=1e-9)

    # without decompositions: the truncated SVD
    plain = copy.deepcopy(student)
    copy_teacher_weights(plain, teacher)
    np.testing.assert_allclose(plain[0].merged_weight().numpy(), _truncated_svd(w, 2), rtol=1e-9, atol=1e-12)


def test_teacher_decompositions_checks_what_it_is_given():
    teacher = _tiny_model()
    calibration, _ = _calibration(teacher, _correlated_inputs(tokens=13))
    decompositions = decompose_layers(teacher, ["0", "2"], "whitened", calibration)
    assert teacher_decompositions(teacher, ["0", "2"], "whitened", decompositions=decompositions) is decompositions
    assert teacher_decompositions(teacher, ["0", "2"], "svd") is None
    with pytest.raises(ValueError, match=r"computed for init \['whitened'\], not for init 'activation'"):
        teacher_decompositions(teacher, ["0"], "activation", decompositions=decompositions)
    with pytest.raises(ValueError, match=r"lack the factorized layers \['1'\]"):
        teacher_decompositions(teacher, ["0", "1"], "whitened", decompositions=decompositions)
    with pytest.raises(ValueError, match="needs calibration statistics"):
        teacher_decompositions(teacher, ["0"], "whitened")
    with pytest.raises(ValueError, match="init must be one of"):
        teacher_decompositions(teacher, ["0"], "random")
    computed = teacher_decompositions(teacher, ["0", "2"], "whitened", calibration)
    torch.testing.assert_close(computed["2"].singular_values, decompositions["2"].singular_values, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"none for \['2'\]"):
        decompose_layers(teacher, ["0", "2"], "whitened", {"0": calibration["0"]})


def test_fallback_summary_lists_fallbacks_and_notes():
    weight = _weight()
    plain = decompose_linear(weight, "whitened", _statistics(_correlated_inputs()))
    few = decompose_linear(weight, "whitened", _statistics(_few_tokens_inputs()))
    zero = decompose_linear(weight, "whitened", _statistics(_zero_inputs()))
    assert fallback_summary({"a": plain, "b": decompose_linear(weight, "svd")}) == []
    lines = fallback_summary({"a": plain, "b": few, "c": zero, "d": few})
    assert f"2 layer(s) used the fallback '{few.fallback}' (e.g. b)" in lines
    assert "1 layer(s) used the fallback 'identity (zero inputs)' (e.g. c)" in lines
    assert "calibration: 3 calibration tokens < 7 input features in some layers" in lines
    assert len(lines) == 3
