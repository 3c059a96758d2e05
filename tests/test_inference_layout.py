"""The inference layout (`for_inference`): layers at or above their break-even rank merged back to dense, the same
logits in every family, saved and loaded as an ordinary student; compiled with Inductor; latency measurement."""

import math
import re

import pytest
import torch
from torch import nn

import hf_lowrank.inference.latency as latency_module
from hf_lowrank import FactorizedLinear, LowRankForImageClassification, LowRankForSequenceClassification
from hf_lowrank.inference import measure_latencies, measure_latency
from hf_lowrank.models import BLOCK_LAYOUTS, INFERENCE_BACKENDS, break_even_rank, find_blocks, merge_factorized

from families import TEXT_MODEL_TYPES, example_inputs, tiny_classifier


FAMILIES = sorted(BLOCK_LAYOUTS)


def _student_class(model_type: str):
    return LowRankForSequenceClassification if model_type in TEXT_MODEL_TYPES else LowRankForImageClassification


def _mixed_student(model_type: str):
    """A student of the tiny `model_type` teacher whose encoder linears alternate between their break-even rank
    (rounded up: merged by `for_inference`) and rank 2 (below every layer's break-even here: kept), with the names
    it should merge (relative to the base model) -> rank."""
    teacher = tiny_classifier(model_type)
    blocks = [name for name, _ in find_blocks(teacher)]
    linears = [
        (name, m)
        for name, m in teacher.named_modules()
        if isinstance(m, nn.Linear) and any(name.startswith(f"{block}.") for block in blocks)
    ]
    ranks = {name: math.ceil(break_even_rank(m)) if i % 2 == 0 else 2 for i, (name, m) in enumerate(linears)}
    assert all(2 < break_even_rank(m) for _, m in linears)  # rank 2 is below break-even everywhere
    student = _student_class(model_type).from_teacher(
        teacher, rank={re.escape(name): rank for name, rank in ranks.items()}
    )
    merged = {name: rank for i, (name, rank) in enumerate(ranks.items()) if i % 2 == 0}
    return teacher, student, merged


@pytest.mark.parametrize("model_type", FAMILIES)
def test_layers_at_break_even_merge_to_dense_with_the_same_logits_and_reload(model_type, tmp_path):
    teacher, student, merged = _mixed_student(model_type)
    inputs = example_inputs(teacher)
    factors = {
        name.removeprefix("model."): (m.up.double() @ m.down.double())
        for name, m in student.named_modules()
        if isinstance(m, FactorizedLinear)
    }
    parameters_before = sum(p.numel() for p in student.parameters())
    with torch.no_grad():
        expected = student(**inputs).logits
        assert student.for_inference() is student
        torch.testing.assert_close(student(**inputs).logits, expected, rtol=0, atol=1e-5)
        assert not any(getattr(m, "bias_epilogue", False) for m in student.modules())  # eager: addmm is faster

    assert student.config.merged_layers == merged
    assert set(student.config.factorized_layers) == set(factors) - set(merged)
    saved = 0
    for name, rank in merged.items():
        layer = student.model.get_submodule(name)
        assert type(layer) is nn.Linear
        torch.testing.assert_close(layer.weight.double(), factors[name], rtol=0, atol=1e-6)
        saved += rank * (layer.in_features + layer.out_features) - layer.in_features * layer.out_features
    assert sum(p.numel() for p in student.parameters()) == parameters_before - saved
    for name in student.config.factorized_layers:
        assert isinstance(student.model.get_submodule(name), FactorizedLinear)

    student.save_pretrained(tmp_path)
    loaded = type(student).from_pretrained(tmp_path)
    assert loaded.config.merged_layers == merged
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)
    assert loaded.for_inference().config.merged_layers == merged  # nothing more to merge


def test_merge_leaves_layers_below_break_even_and_truncated_views_alone():
    layer = nn.Sequential(FactorizedLinear(8, 8, 3), FactorizedLinear(8, 8, 4), FactorizedLinear(8, 8, 5))
    layer[2].active_rank = 4  # a truncated view (nested training) is not a layer to merge
    assert merge_factorized(layer) == {"1": 4}  # break-even of 8x8 is 4
    assert [type(m) for m in layer] == [FactorizedLinear, nn.Linear, FactorizedLinear]


def test_merge_at_a_fraction_of_break_even():
    # 20 -> 30: break-even 12; rank 10 costs 10 * 50 = 500 multiply-accumulates per token against 600 dense (0.83)
    for merge_at, merged in ((1.0, {}), (0.8, {"0": 10}), (0.84, {})):
        model = nn.Sequential(FactorizedLinear(20, 30, 10), FactorizedLinear(20, 30, 9))  # 9: 0.75 of break-even
        assert merge_factorized(model, merge_at) == merged
    _, student, _ = _mixed_student("vit")
    with pytest.raises(ValueError, match=r"merge_at must be a finite number > 0 \(1: the break-even rank\), got 0"):
        student.for_inference(merge_at=0)
    assert student.config.merged_layers is None


@pytest.mark.parametrize("model_type", ["vit", "bert"])
def test_the_inductor_layout_gives_the_same_logits(model_type, tmp_path):
    teacher, student, _ = _mixed_student(model_type)
    inputs = example_inputs(teacher)
    with torch.no_grad():
        expected = student(**inputs).logits
        compiled = student.for_inference("inductor")
        torch.testing.assert_close(compiled(**inputs).logits, expected, rtol=0, atol=1e-5)
    factorized = [m for m in compiled.modules() if isinstance(m, FactorizedLinear)]
    assert factorized and all(m.bias_epilogue for m in factorized)  # the bias left to Inductor to fuse
    compiled.save_pretrained(tmp_path)  # compiled in memory: the weights save as the eager layout's
    loaded = type(student).from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, expected, rtol=0, atol=1e-5)
    torch._dynamo.reset()


def test_an_unsupported_backend_is_named_with_the_supported_ones():
    _, student, _ = _mixed_student("vit")
    with pytest.raises(ValueError, match=r"backend 'tensorrt' is not an inference backend.*'eager'.*'inductor'"):
        student.for_inference("tensorrt")
    assert student.config.merged_layers is None  # refused before anything changed
    with pytest.raises(ValueError, match="compile_options .* need backend='inductor'"):
        student.for_inference("eager", compile_options={"mode": "max-autotune"})
    assert set(INFERENCE_BACKENDS) == {"eager", "inductor"}


class _Clocked(nn.Module):
    """A model whose forward passes take the given durations (seconds) on a fake clock."""

    def __init__(self, durations):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.durations = list(durations)
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def forward(self, x):
        self.now += self.durations.pop(0)
        return x


def test_latency_is_the_median_of_the_timed_passes_after_the_warm_up(monkeypatch):
    model = _Clocked([9.0, 9.0, 0.005, 0.001, 0.003, 0.010])  # two warm-up passes, then four timed
    monkeypatch.setattr(latency_module, "perf_counter", model.clock)
    assert measure_latency(model, {"x": torch.zeros(1)}, repeats=4, warmup=2) == pytest.approx(4.0)  # ms
    assert model.durations == []


def test_latencies_name_their_conditions(monkeypatch):
    model = _Clocked([0.002] * 4 + [0.004] * 4)
    monkeypatch.setattr(latency_module, "perf_counter", model.clock)
    batches = {32: {"x": torch.zeros(32)}, 1: {"x": torch.zeros(1)}}
    measured = measure_latencies(model, batches, "eager", repeats=3, warmup=1)
    assert measured.milliseconds == pytest.approx({"1": 2.0, "32": 4.0})
    assert (measured.threads, measured.torch_version, measured.dtype) == (
        torch.get_num_threads(),
        torch.__version__,
        "float32",
    )
    assert measured.device.startswith("cpu") and measured.layout == "eager"
    assert "median of 3 after 1 warm-up passes" in measured.conditions()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"repeats": 0}, "`repeats` must be an integer >= 1, got 0"),
        ({"warmup": -1}, "`warmup` must be an integer >= 0, got -1"),
        ({"repeats": 2.5}, "`repeats` must be an integer >= 1"),
    ],
)
def test_latency_refuses_zero_repeats_and_a_negative_warm_up(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        measure_latency(nn.Identity(), {"input": torch.zeros(1)}, **arguments)
