import numpy as np
import pytest
import torch
from torch import nn

from hf_lowrank import FactorizedLinear, linear_parameters


IN, OUT = 13, 9  # odd, non-square


def _linear(bias=True, dtype=torch.float32):
    torch.manual_seed(3)
    return nn.Linear(IN, OUT, bias=bias, dtype=dtype)


def test_full_rank_reproduces_dense_layer():
    linear = _linear()
    factorized = FactorizedLinear.from_linear(linear, rank=min(IN, OUT))
    x = torch.randn(4, 3, IN)
    torch.testing.assert_close(factorized(x), linear(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(factorized.merged_weight(), linear.weight, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_truncated_svd_error_is_eckart_young_optimum(rank):
    linear = _linear(bias=False)
    weight = linear.weight.detach().double().numpy()
    singular_values = np.linalg.svd(weight, compute_uv=False)  # independent computation, float64
    factorized = FactorizedLinear.from_linear(linear, rank)
    error = weight - factorized.merged_weight().double().numpy()
    # Frobenius error^2 = sum of the discarded s_i^2; spectral error = the first discarded s.
    np.testing.assert_allclose(np.sum(error**2), np.sum(singular_values[rank:] ** 2), rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(error, 2), singular_values[rank], rtol=1e-4)


def test_factors_are_balanced_square_roots_of_singular_values():
    linear = _linear()
    factorized = FactorizedLinear.from_linear(linear, rank=4)
    singular_values = np.linalg.svd(linear.weight.detach().double().numpy(), compute_uv=False)[:4]
    # up = U_r S^(1/2), down = S^(1/2) V_r^T: column norms of up and row norms of down are both sqrt(s).
    np.testing.assert_allclose(
        factorized.up.detach().norm(dim=0).double().numpy(), np.sqrt(singular_values), rtol=1e-4
    )
    np.testing.assert_allclose(
        factorized.down.detach().norm(dim=1).double().numpy(), np.sqrt(singular_values), rtol=1e-4
    )


def test_bias_dtype_and_device_are_kept():
    linear = _linear(dtype=torch.float64)
    factorized = FactorizedLinear.from_linear(linear, rank=5)
    assert factorized.up.dtype == factorized.down.dtype == torch.float64
    assert factorized.up.device == linear.weight.device
    torch.testing.assert_close(factorized.bias, linear.bias)

    half = FactorizedLinear.from_linear(_linear(dtype=torch.bfloat16), rank=5)
    assert half.down.dtype == torch.bfloat16 and half.bias.dtype == torch.bfloat16

    no_bias = FactorizedLinear.from_linear(_linear(bias=False), rank=5)
    assert no_bias.bias is None and no_bias.to_linear().bias is None


def test_to_linear_merges_to_the_same_map():
    factorized = FactorizedLinear(IN, OUT, rank=4)
    merged = factorized.to_linear()
    assert isinstance(merged, nn.Linear) and merged.weight.shape == (OUT, IN)
    x = torch.randn(6, IN)
    torch.testing.assert_close(merged(x), factorized(x), rtol=1e-5, atol=1e-6)


def test_parameter_count_and_repr():
    factorized = FactorizedLinear(IN, OUT, rank=4)
    assert sum(p.numel() for p in factorized.parameters()) == 4 * (IN + OUT) + OUT
    assert linear_parameters(IN, OUT, rank=4) == 4 * (IN + OUT) + OUT
    assert linear_parameters(IN, OUT) == IN * OUT + OUT
    assert "rank=4" in repr(factorized) and f"in_features={IN}" in repr(factorized)


def test_gradients_reach_both_factors():
    factorized = FactorizedLinear.from_linear(_linear(), rank=3)
    factorized(torch.randn(2, IN)).pow(2).sum().backward()
    assert factorized.up.grad.abs().sum() > 0 and factorized.down.grad.abs().sum() > 0


@pytest.mark.parametrize("rank", [0, -2, 2.5, True, min(IN, OUT) + 1, "4"])
def test_bad_rank_names_value_and_valid_range(rank):
    with pytest.raises(ValueError) as error:
        FactorizedLinear.from_linear(_linear(), rank)
    message = str(error.value)
    assert repr(rank) in message and f"[1, {min(IN, OUT)}]" in message


def test_from_linear_rejects_other_modules_and_meta_weights():
    with pytest.raises(TypeError, match="nn.Linear"):
        FactorizedLinear.from_linear(nn.Conv1d(3, 3, 1), 2)
    with pytest.raises(ValueError, match="meta"):
        FactorizedLinear.from_linear(nn.Linear(IN, OUT, device="meta"), 2)


@pytest.mark.parametrize("rank", [np.int64(4), np.int32(4), torch.tensor(4), torch.tensor(4, dtype=torch.int16)])
def test_integer_ranks_of_any_type_are_accepted_as_plain_ints(rank):
    layer = FactorizedLinear.from_linear(_linear(), rank)
    assert layer.rank == 4 and type(layer.rank) is int
    assert layer.down.shape == (4, IN) and layer.up.shape == (OUT, 4)


@pytest.mark.parametrize("rank", [np.bool_(True), torch.tensor(True), np.float64(4.0), torch.tensor(4.0), 4.0])
def test_boolean_and_float_ranks_of_any_type_are_refused(rank):
    with pytest.raises(ValueError) as error:
        FactorizedLinear.from_linear(_linear(), rank)
    message = str(error.value)
    assert "must be an integer in [1, 9]" in message and f"got {rank!r}" in message
