import numpy as np
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from hf_lowrank import FactorizedLinear, count_parameters, energy_rank, factorize_model, plan_factorization


def _tiny_bert():
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=18,
        num_attention_heads=3,
        intermediate_size=37,
        num_hidden_layers=2,
        vocab_size=53,
        max_position_embeddings=16,
    )
    return BertModel(config).eval()


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(11, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))


def _dense_linears(model):
    return {name: module for name, module in model.named_modules() if type(module) is nn.Linear}


def test_bert_like_model_full_rank_keeps_outputs_and_skips_pooler():
    model = _tiny_bert()
    input_ids = torch.randint(0, 53, (3, 9))
    before = model(input_ids).last_hidden_state
    dense = _dense_linears(model)
    with pytest.warns(UserWarning, match="break-even"):
        report = factorize_model(model, rank=18)

    factorized = {name for name, m in model.named_modules() if isinstance(m, FactorizedLinear)}
    assert factorized == {name for name in dense if not name.startswith("pooler")}
    assert isinstance(model.pooler.dense, nn.Linear)  # excluded by default, like a classifier head
    torch.testing.assert_close(model(input_ids).last_hidden_state, before, rtol=1e-4, atol=1e-4)
    assert report.total_params_after == count_parameters(model)


def test_report_counts_match_closed_form():
    model = _mlp()
    report = factorize_model(model, rank=2, exclude_modules=())
    expected_after = {"0": 2 * (11 + 7) + 7, "2": 2 * (7 + 5) + 5, "4": 2 * (5 + 3) + 3}
    assert {layer.name: layer.params_after for layer in report.layers} == expected_after
    assert report.total_params_before == (11 * 7 + 7) + (7 * 5 + 5) + (5 * 3 + 3)
    assert report.total_params_after == sum(expected_after.values())
    text = str(report)
    assert "whole model" in text and f"{report.total_params_after:,}" in text and "3 factorized layers" in text
    assert report.to_dict()["layers"][0]["rank"] == 2


def _linear_with_singular_values(singular_values, out_features=8, in_features=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(out_features, out_features, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(in_features, in_features, generator=generator, dtype=torch.float64))
    k = len(singular_values)
    weight = u[:, :k] @ torch.diag(torch.tensor(singular_values, dtype=torch.float64)) @ v[:, :k].T
    linear = nn.Linear(in_features, out_features, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(weight)
    return linear


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 1), (0.8, 2), (0.9, 2), (0.95, 3), (1.0, 5)])
def test_energy_fraction_matches_closed_form(fraction, expected):
    # Energies 16, 4, 1, 0.5, 0.25 of 21.75: cumulative fractions 0.736, 0.920, 0.966, 0.989, 1.
    linear = _linear_with_singular_values([4.0, 2.0, 1.0, 0.5**0.5, 0.5])
    assert energy_rank(linear.weight, fraction) == expected
    model = nn.Sequential(linear)
    report = factorize_model(model, rank=fraction, exclude_modules=())
    assert report.layers[0].rank == expected


def test_rank_mapping_first_match_wins_and_unmatched_stay_dense():
    model = _tiny_bert()
    report = factorize_model(model, rank={"intermediate": 4, r"encoder\.layer\.1\..*": 3})
    ranks = {layer.name: layer.rank for layer in report.layers}
    assert ranks["encoder.layer.0.intermediate.dense"] == 4
    assert ranks["encoder.layer.1.intermediate.dense"] == 4  # first pattern wins
    assert ranks["encoder.layer.1.attention.self.query"] == 3
    assert isinstance(model.encoder.layer[0].attention.self.query, nn.Linear)  # matched by no pattern: dense


def test_target_and_exclude_modules():
    model = _tiny_bert()
    report = factorize_model(model, rank=4, target_modules=["attention"], exclude_modules=["output"])
    assert {layer.name for layer in report.layers} == {
        f"encoder.layer.{i}.attention.self.{p}" for i in range(2) for p in ("query", "key", "value")
    }


def test_invalid_rank_names_layer_value_and_range():
    model = _tiny_bert()
    with pytest.raises(ValueError) as error:
        factorize_model(model, rank=19)
    assert "encoder.layer.0.attention.self.query" in str(error.value)
    assert "[1, 18]" in str(error.value) and "19" in str(error.value)
    for bad in (0, -1, 1.5, "8"):
        with pytest.raises(ValueError, match="must be an integer"):
            factorize_model(_tiny_bert(), rank=bad)
    # Nothing was replaced by the failed calls: validation happens before surgery.
    assert not any(isinstance(m, FactorizedLinear) for m in model.modules())


def test_no_matching_layer_lists_what_was_looked_for():
    with pytest.raises(ValueError) as error:
        factorize_model(_tiny_bert(), rank=4, target_modules=["does_not_exist"])
    message = str(error.value)
    assert "does_not_exist" in message and "nn.Linear" in message and "encoder.layer.0.attention.self.query" in message
    with pytest.raises(ValueError, match="no layer to factorize"):
        factorize_model(nn.Sequential(nn.Conv1d(2, 2, 1)), rank=1)


def test_mapping_pattern_that_names_nothing_is_an_error():
    with pytest.raises(ValueError, match="fc9"):
        factorize_model(_tiny_bert(), rank={"query": 4, "fc9": 3})


def test_break_even_warning_only_when_nothing_is_saved():
    model = _mlp()
    # Layer 0 (11 -> 7): break-even 4.28; layer 2 (7 -> 5): 2.92; layer 4 (5 -> 3): 1.88.
    with pytest.warns(UserWarning, match="break-even") as record:
        plan_factorization(model, rank=2, exclude_modules=())
    assert "4 (rank 2" in str(record[0].message) and "0 (rank" not in str(record[0].message)


def test_plan_changes_nothing():
    model = _mlp()
    plan = plan_factorization(model, rank=2, exclude_modules=())
    assert len(plan) == 3 and all(type(m) is nn.Linear for m in _dense_linears(model).values())


def test_random_init_builds_structure_only():
    model = _mlp()
    factorize_model(model, rank=2, exclude_modules=(), init="random")
    assert isinstance(model[0], FactorizedLinear) and model[0].rank == 2
    with pytest.raises(ValueError, match="init"):
        factorize_model(_mlp(), rank=2, init="zeros")


def test_svd_init_equals_numpy_truncation():
    model = _mlp()
    weight = model[0].weight.detach().double().numpy()
    factorize_model(model, rank=3, exclude_modules=())
    u, s, vt = np.linalg.svd(weight, full_matrices=False)
    np.testing.assert_allclose(model[0].merged_weight().double().numpy(), (u[:, :3] * s[:3]) @ vt[:3], atol=1e-5)


def test_factorization_report_of_a_built_student_matches_the_surgery_report():
    from hf_lowrank import factorization_report

    model = _tiny_bert()
    surgery = factorize_model(model, rank={"query": 3, "intermediate": 5})
    rebuilt = factorization_report(model)
    assert rebuilt.layers == surgery.layers
    assert (rebuilt.total_params_before, rebuilt.total_params_after) == (
        surgery.total_params_before,
        surgery.total_params_after,
    )


def test_empty_rank_mapping_factorizes_nothing_and_is_an_error():
    model = _tiny_bert()
    with pytest.raises(ValueError) as error:
        factorize_model(model, rank={})
    message = str(error.value)
    assert "rank={} factorizes no layer of BertModel" in message
    assert "Selected nn.Linear layers: encoder.layer.0.attention.self.query" in message
    assert not any(isinstance(m, FactorizedLinear) for m in model.modules())
    with pytest.raises(ValueError, match="name none of the selected layers: encoder.layer.0.attention.self.query"):
        factorize_model(model, rank={"fc9": 3})


@pytest.mark.parametrize("rank", [np.int64(4), torch.tensor(4), {"query": np.int64(3), ".*": torch.tensor(4)}])
def test_numpy_and_torch_integer_ranks_are_accepted(rank):
    model = _tiny_bert()
    report = factorize_model(model, rank=rank)
    assert len(report.layers) == 12 and all(type(layer.rank) is int for layer in report.layers)
    layer = model.encoder.layer[0]
    assert layer.attention.self.key.rank == 4 and type(layer.attention.self.key.rank) is int
    assert layer.attention.self.query.rank == (3 if isinstance(rank, dict) else 4)


@pytest.mark.parametrize("rank", [np.bool_(True), torch.tensor(True), np.float64(4.0), torch.tensor(4.0), 0])
def test_boolean_float_and_small_ranks_are_refused_naming_the_layer(rank):
    with pytest.raises(ValueError) as error:
        factorize_model(_mlp(), rank=rank, exclude_modules=())
    message = str(error.value)
    assert "rank for layer '0' (11 -> 7) must be an integer in [1, 7]" in message and f"got {rank!r}" in message


def test_factorization_report_of_a_larger_student_says_more_not_fewer():
    """A rank above break-even makes the model larger: the report used to print "0.86x fewer"."""
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 7))
    report = factorize_model(model, rank=5)
    assert report.total_params_after > report.total_params_before
    text = str(report)
    ratio = report.total_params_after / report.total_params_before
    assert f"({ratio:.2f}x more parameters)" in text and "fewer" not in text
