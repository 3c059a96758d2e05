"""`collect_input_statistics`: the hooks see each layer's actual inputs; Fisher weights match autograd by hand."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hf_lowrank.factorization import collect_input_statistics


BATCH, TOKENS, FEATURES, HIDDEN, CLASSES = 2, 3, 7, 5, 4


class TwoLayers(nn.Module):
    """`(batch, tokens, features) -> (batch, tokens, classes)`, with dropout so eval mode matters."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(FEATURES, HIDDEN)
        self.dropout = nn.Dropout(0.5)
        self.second = nn.Linear(HIDDEN, CLASSES)
        self.norm = nn.LayerNorm(CLASSES)

    def forward(self, inputs, target=None):
        return self.norm(self.second(self.dropout(torch.tanh(self.first(inputs)))))


def _model():
    torch.manual_seed(0)
    return TwoLayers().double()


def _batches(count=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "inputs": torch.randn(BATCH, TOKENS, FEATURES, generator=generator, dtype=torch.float64),
            "target": torch.randn(BATCH, TOKENS, CLASSES, generator=generator, dtype=torch.float64),
        }
        for _ in range(count)
    ]


def _layer_inputs(model, batch):
    """The inputs of `first` and `second`, computed by running the sub-layers by hand (no dropout: eval)."""
    with torch.no_grad():
        x = batch["inputs"].reshape(-1, FEATURES)
        return {"first": x, "second": torch.tanh(model.first(x))}


def _loss(outputs, batch):
    return ((outputs - batch["target"]) ** 2).mean()


def test_statistics_are_the_layer_inputs_moments():
    model = _model()
    model.train()
    batches = _batches()
    statistics = collect_input_statistics(model, batches, ["first", "second"])
    assert set(statistics) == {"first", "second"}
    for name, width in (("first", FEATURES), ("second", HIDDEN)):
        inputs = np.concatenate([_layer_inputs(model, batch)[name].numpy() for batch in batches])  # (18, width)
        assert inputs.shape == (3 * BATCH * TOKENS, width)
        gathered = statistics[name]
        assert gathered.num_tokens == 3 * BATCH * TOKENS
        assert gathered.gram.dtype == torch.float64 and gathered.gram.shape == (width, width)
        np.testing.assert_allclose(gathered.gram.numpy(), inputs.T @ inputs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gathered.abs_sum.numpy(), np.abs(inputs).sum(axis=0), rtol=1e-12)
        assert gathered.row_fisher is None
    assert model.training and model.dropout.training  # mode restored
    for module in model.modules():
        assert len(module._forward_pre_hooks) == 0 and len(module._forward_hooks) == 0
    assert all(parameter.grad is None for parameter in model.parameters())


def test_eval_mode_is_restored_too_and_only_named_layers_are_hooked():
    model = _model()
    model.eval()
    statistics = collect_input_statistics(model, iter(_batches(count=2)), ["second"])
    assert list(statistics) == ["second"]
    assert not model.training
    assert statistics["second"].num_tokens == 2 * BATCH * TOKENS


def test_float32_inputs_are_accumulated_in_float64():
    model = _model().float()
    batches = [{"inputs": batch["inputs"].float()} for batch in _batches(count=2)]
    statistics = collect_input_statistics(model, batches, ["first"])
    inputs = np.concatenate([batch["inputs"].double().reshape(-1, FEATURES).numpy() for batch in batches])
    assert statistics["first"].gram.dtype == torch.float64
    np.testing.assert_allclose(statistics["first"].gram.numpy(), inputs.T @ inputs, rtol=1e-12, atol=1e-12)


def test_fisher_rows_are_summed_squared_loss_gradients():
    model = _model()
    model.second.weight.requires_grad_(False)  # a frozen layer still gets its Fisher weights
    reference = copy.deepcopy(model).eval()
    reference.second.weight.requires_grad_(True)
    batches = _batches()
    expected = {"first": np.zeros(HIDDEN), "second": np.zeros(CLASSES)}
    for batch in batches:
        loss = _loss(reference(batch["inputs"]), batch)
        gradients = torch.autograd.grad(loss, [reference.first.weight, reference.second.weight])
        for name, gradient in zip(("first", "second"), gradients):
            expected[name] += (gradient.numpy() ** 2).sum(axis=1)

    model.train()
    statistics = collect_input_statistics(model, batches, ["first", "second"], fisher=True, loss_of=_loss)
    for name in ("first", "second"):
        row_fisher = statistics[name].row_fisher
        assert row_fisher.dtype == torch.float64 and row_fisher.shape == expected[name].shape
        np.testing.assert_allclose(row_fisher.numpy(), expected[name], rtol=1e-10, atol=1e-16)
        assert (row_fisher > 0).all()
    # the input moments are gathered on the same pass
    inputs = np.concatenate([_layer_inputs(model, batch)["second"].numpy() for batch in batches])
    np.testing.assert_allclose(statistics["second"].gram.numpy(), inputs.T @ inputs, rtol=1e-12, atol=1e-12)
    assert model.first.weight.requires_grad and not model.second.weight.requires_grad
    assert all(parameter.grad is None for parameter in model.parameters())
    assert model.training
    for module in model.modules():
        assert len(module._forward_pre_hooks) == 0


def test_fisher_defaults_to_the_outputs_loss():
    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _model()

        def forward(self, inputs, target=None):
            outputs = self.body(inputs)
            return type("Out", (), {"loss": _loss(outputs, {"target": target}) if target is not None else None})()

    model = WithLoss()
    batches = _batches(count=2)
    statistics = collect_input_statistics(model, batches, ["body.first"], fisher=True)
    explicit = collect_input_statistics(
        model.body, batches, ["first"], fisher=True, loss_of=lambda outputs, batch: _loss(outputs, batch)
    )
    torch.testing.assert_close(statistics["body.first"].row_fisher, explicit["first"].row_fisher, rtol=1e-12, atol=0)

    no_labels = [{"inputs": batch["inputs"]} for batch in batches]
    with pytest.raises(ValueError, match="fisher=True needs a loss"):
        collect_input_statistics(model, no_labels, ["body.first"], fisher=True)
    assert len(model.body.first._forward_pre_hooks) == 0


def test_hooks_and_mode_are_restored_on_an_error():
    model = _model()
    model.train()
    model.first.weight.requires_grad_(False)

    def failing_loss(outputs, batch):
        raise RuntimeError("loss exploded")

    with pytest.raises(RuntimeError, match="loss exploded"):
        collect_input_statistics(model, _batches(), ["first", "second"], fisher=True, loss_of=failing_loss)
    assert model.training
    assert not model.first.weight.requires_grad and model.second.weight.requires_grad
    for module in model.modules():
        assert len(module._forward_pre_hooks) == 0


def test_bad_arguments_are_refused():
    model = _model()
    with pytest.raises(TypeError, match="'norm' is a LayerNorm"):
        collect_input_statistics(model, _batches(), ["first", "norm"])
    with pytest.raises(ValueError, match="batches is empty"):
        collect_input_statistics(model, [], ["first"])
    with pytest.raises(ValueError, match="layer_names is empty"):
        collect_input_statistics(model, _batches(), [])
    with pytest.raises(AttributeError):
        collect_input_statistics(model, _batches(), ["third"])
    assert len(model.first._forward_pre_hooks) == 0


def test_padding_tokens_are_not_calibration_data():
    torch.manual_seed(0)

    class Embedder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(11, 6)
            self.proj = nn.Linear(6, 4)

        def forward(self, input_ids, attention_mask=None):
            return self.proj(self.embedding(input_ids))

    model = Embedder()
    input_ids = torch.randint(1, 11, (3, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    statistics = collect_input_statistics(model, [{"input_ids": input_ids, "attention_mask": mask}], ["proj"])["proj"]
    with torch.no_grad():
        real = model.embedding(input_ids)[mask.bool()].double()  # (9, 6): the real tokens only
    assert statistics.num_tokens == 9
    torch.testing.assert_close(statistics.gram, real.T @ real)
    unmasked = collect_input_statistics(
        model, [{"input_ids": input_ids, "attention_mask": mask}], ["proj"], mask_key=None
    )
    assert unmasked["proj"].num_tokens == 15


def test_calibration_tokens_are_per_layer_where_the_layers_see_different_counts():
    """Swin's second stage sees a quarter of the first stage's tokens (one patch merging): the sweep records each
    layer's count there, and one count where every layer sees as many (ViT)."""
    from hf_lowrank.models import BLOCK_LAYOUTS
    from hf_lowrank.sweep.factorization import token_counts
    from hf_lowrank.sweep.families import encoder_linears

    from families import tiny_classifier

    examples = 5
    pixels = torch.randn(examples, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    swin = tiny_classifier("swin")  # 8x8 images, 2x2 patches: 16 tokens in stage 0, 4 in stage 1
    names = list(encoder_linears(swin, BLOCK_LAYOUTS["swin"]))
    fewest, per_layer = token_counts(collect_input_statistics(swin, [{"pixel_values": pixels}], names))
    assert fewest == examples * 4
    assert per_layer == {name: examples * (16 if ".layers.0." in name else 4) for name in names}
    vit = tiny_classifier("vit")  # 8x8 images, 4x4 patches: 4 patches and the class token in every block
    names = list(encoder_linears(vit, BLOCK_LAYOUTS["vit"]))
    assert token_counts(collect_input_statistics(vit, [{"pixel_values": pixels}], names)) == (examples * 5, None)


def test_report_md_gives_the_range_of_tokens_where_layers_differ():
    from types import SimpleNamespace

    from hf_lowrank.report.factorization_markdown import init_lines

    record = {"calibration_examples": 5, "calibration_tokens": 20, "seconds": {"calibration": 0.5}}
    same = init_lines(SimpleNamespace(init="whitened", factorization={**record, "calibration_tokens_per_layer": None}))
    assert "(20 tokens per layer)" in same[0]
    differing = {**record, "calibration_tokens_per_layer": {"a": 80, "b": 20, "c": 1280}}
    assert (
        "(20 to 1,280 tokens per layer, by layer in results.json)"
        in init_lines(SimpleNamespace(init="whitened", factorization=differing))[0]
    )
