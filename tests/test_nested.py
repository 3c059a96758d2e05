"""Nested-rank students: truncated views, the students cut from them, the rank schedule, and `--curve nested|both`
end to end (saved students reproduce their recorded results; a run killed mid-training resumes to the same one)."""

import json

import numpy as np
import pytest
import torch
from test_sweep import _checkpoint_identity, _kill_when, _strip
from torch import nn
from transformers import AutoModelForImageClassification

from hf_lowrank import FactorizedLinear, FactorizedViTForImageClassification, LowRankForSequenceClassification
from hf_lowrank.data import load_image_classification_data, preprocess
from hf_lowrank.distillation import NestedRankSchedule
from hf_lowrank.models import truncated_student, truncated_view
from hf_lowrank.sweep import SweepError, run_sweep

import sweep as sweep_script  # scripts/sweep.py
from families import example_inputs, tiny_classifier
from sweep_helpers import sweep_argv


def test_a_truncated_view_is_the_factorized_layer_of_that_rank_built_from_the_same_factors():
    torch.manual_seed(0)
    layer = FactorizedLinear(7, 5, 4)
    x = torch.randn(3, 2, 7)
    for rank in (1, 2, 3, 4):
        built = FactorizedLinear(7, 5, rank)
        with torch.no_grad():
            built.down.copy_(layer.down[:rank])
            built.up.copy_(layer.up[:, :rank])
            built.bias.copy_(layer.bias)
        with truncated_view(layer, rank):
            viewed = layer(x)
        torch.testing.assert_close(viewed, built(x), rtol=0, atol=0)
        torch.testing.assert_close(layer.truncated(rank)(x), built(x), rtol=0, atol=0)
    assert layer.active_rank is None  # the view is undone
    with truncated_view(layer, 2):
        layer(x).sum().backward()
    assert torch.count_nonzero(layer.down.grad[2:]) == 0 and torch.count_nonzero(layer.up.grad[:, 2:]) == 0
    assert torch.count_nonzero(layer.down.grad[:2]) > 0


@pytest.mark.parametrize("model_type", ["vit", "bert"])
def test_a_truncated_student_computes_the_view_and_saves_and_loads_as_that_rank(model_type, tmp_path):
    teacher = tiny_classifier(model_type)
    if model_type == "vit":
        nested = FactorizedViTForImageClassification.from_teacher(teacher, rank=5)
    else:
        nested = LowRankForSequenceClassification.from_teacher(teacher, rank=5)
    inputs = example_inputs(teacher)
    for rank in (1, 3, 5):
        student = truncated_student(nested, rank)
        with torch.no_grad(), truncated_view(nested, rank):
            expected = nested(**inputs).logits
        with torch.no_grad():
            torch.testing.assert_close(student(**inputs).logits, expected, rtol=0, atol=0)
        ranks = {m.rank for m in student.modules() if isinstance(m, FactorizedLinear)}
        assert ranks == {rank}
        student.save_pretrained(tmp_path / f"r{rank}")
        loaded = type(student).from_pretrained(tmp_path / f"r{rank}")
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).logits, expected, rtol=0, atol=0)
    # The rank-r prefix of an SVD-initialised nested student is the rank-r SVD student.
    svd = type(nested).from_teacher(teacher, rank=3)
    with torch.no_grad():
        torch.testing.assert_close(truncated_student(nested, 3)(**inputs).logits, svd(**inputs).logits)


def test_the_schedule_is_seeded_and_draws_what_it_says():
    schedule = NestedRankSchedule((8, 1, 4, 2), samples_per_step=2, seed=3)
    draws = [schedule.views(epoch, batch) for epoch in range(3) for batch in range(1, 200)]
    assert draws == [NestedRankSchedule((1, 2, 4, 8), samples_per_step=2, seed=3).views(e, b)
                     for e in range(3) for b in range(1, 200)]  # fmt: skip
    assert draws != [NestedRankSchedule((1, 2, 4, 8), samples_per_step=2, seed=4).views(e, b)
                     for e in range(3) for b in range(1, 200)]  # fmt: skip
    assert all(len(d) == 2 and d[0] == (8, 1.0) and d[1][0] in (1, 2, 4) for d in draws)
    counts = np.bincount([d[1][0] for d in draws], minlength=5)[[1, 2, 4]]
    assert counts.min() > 0.25 * len(draws) * 0.8  # uniform over the three smaller ranks
    log = NestedRankSchedule((1, 2, 4, 8), samples_per_step=2, distribution="log_uniform", seed=3)
    small = [log.views(0, b)[1][0] for b in range(1, 3001)]
    # P(1) : P(2) : P(4) = 1 : 1/2 : 1/4, i.e. 4/7, 2/7, 1/7.
    np.testing.assert_allclose(np.bincount(small, minlength=5)[[1, 2, 4]] / 3000, [4 / 7, 2 / 7, 1 / 7], atol=0.03)
    total = NestedRankSchedule((1, 2, 4), strategy="sum", weights=(0.5, 0.0, 2.0))
    assert total.views(0, 1) == [(4, 2.0), (1, 0.5)]


def test_schedule_errors_name_what_is_valid():
    with pytest.raises(ValueError, match=r"weights must hold one weight per rank \(3 for ranks \[1, 2, 4\]\), got 2"):
        NestedRankSchedule((1, 2, 4), strategy="sum", weights=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"samples_per_step must be in \[1, 3\]"):
        NestedRankSchedule((1, 2, 4), samples_per_step=4)
    with pytest.raises(ValueError, match="strategy must be one of"):
        NestedRankSchedule((1, 2), strategy="all")


def _run(argv):
    sweep, training = sweep_script.parse([str(a) for a in argv])
    return run_sweep(sweep, training)


NESTED = ("--ranks", 1, 2, 4, "--preview_inits", "none", "--diagnostics_examples", 0)
NESTED_CURVE = (*NESTED, "--curve", "nested", "--nested_finetune_steps", 2)


def _correct(model_dir, output_dir) -> np.ndarray:
    from transformers import AutoImageProcessor

    data = load_image_classification_data(max_train_samples=160, max_test_samples=90, seed=0)
    test = preprocess(data, AutoImageProcessor.from_pretrained(output_dir / "teacher"))["test"][:]
    model = AutoModelForImageClassification.from_pretrained(output_dir / model_dir)
    with torch.no_grad():
        return (model(pixel_values=test["pixel_values"]).logits.argmax(-1) == test["labels"]).numpy()


@pytest.fixture(scope="module")
def nested_sweep(tmp_path_factory):
    """A `--curve nested` sweep (ranks 1, 2, 4; a 2-step fine-tune of each) run once: (output_dir, results). Tests
    only read it."""
    output_dir = tmp_path_factory.mktemp("nested")
    return output_dir, _run(sweep_argv(output_dir, *NESTED_CURVE))


def test_a_nested_sweep_saves_every_rank_as_an_ordinary_student(nested_sweep):
    output_dir, results = nested_sweep
    assert [r.rank for r in results.ranks] == [1, 2, 4] and not results.nested
    training = results.nested_training["0"]
    assert training["rank"] == 4 and training["status"] == "done" and training["steps"] == 10  # 2 epochs, 5 batches
    for record in results.ranks:
        assert record.config.curve == "nested" and record.config.nested_rank == 4
        assert record.config.finetune_steps == 2 and record.steps == 12
        model = AutoModelForImageClassification.from_pretrained(output_dir / record.model_dir)
        assert {m.rank for m in model.modules() if isinstance(m, FactorizedLinear)} == {record.rank}
        np.testing.assert_array_equal(_correct(record.model_dir, output_dir), np.array(record.correct, dtype=bool))
    report = json.loads((output_dir / "report.json").read_text())
    assert report["curve"] == "nested" and 0 < report["aurac"] <= 1.1
    assert "students cut from one nested student" in (output_dir / "report.md").read_text()


def test_both_curves_side_by_side(tmp_path):
    output_dir = tmp_path / "both"
    results = _run(sweep_argv(output_dir, *NESTED, "--curve", "both"))
    assert [r.config.curve for r in results.ranks] == ["lockstep"] * 3
    assert [r.rank for r in results.nested] == [1, 2, 4]
    for record in results.nested:
        assert record.model_dir == f"nested-rank-{record.rank:03d}"
        np.testing.assert_array_equal(_correct(record.model_dir, output_dir), np.array(record.correct, dtype=bool))
    report = json.loads((output_dir / "report.json").read_text())
    rows = {row["rank"]: row for row in report["nested"]["rows"]}
    lockstep = {r.rank: r.accuracy for r in results.ranks}
    for record in results.nested:
        assert rows[record.rank]["difference"] == pytest.approx(record.accuracy - lockstep[record.rank])
    assert "Nested curve: every rank from one training run" in (output_dir / "report.md").read_text()


@pytest.mark.slow
def test_a_nested_run_killed_mid_training_resumes_to_the_uninterrupted_result(nested_sweep, tmp_path):
    clean_dir, clean_results = nested_sweep  # the same sweep (but --save_steps), never interrupted
    killed = tmp_path / "killed"
    argv = [str(a) for a in sweep_argv(killed, *NESTED_CURVE, "--save_steps", 3)]
    _kill_when(argv, killed, lambda out: (_checkpoint_identity(out) or {}).get("stage") == "nested")
    resumed = _run(argv).to_dict()
    clean = clean_results.to_dict()
    assert [_strip(r) for r in resumed["ranks"]] == [_strip(r) for r in clean["ranks"]]
    for rank in (1, 2, 4):
        a = AutoModelForImageClassification.from_pretrained(killed / f"rank-{rank:03d}").state_dict()
        b = AutoModelForImageClassification.from_pretrained(clean_dir / f"rank-{rank:03d}").state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--curve", "nested", "--student_bridge", "lift"], "Lift / WideLast students are trained per rank"),
        (["--curve", "nested", "--nested_finetune_steps", -1], "--nested_finetune_steps -1: must be an integer >= 0"),
        (
            ["--curve", "nested", "--nested_strategy", "sum", "--nested_weights", 1, 1],
            "--nested_weights [1.0, 1.0]: needs --ranks and one weight per rank (3), got 2",
        ),
        (["--curve", "nested", "--nested_samples", 5], "--nested_samples 5: must be in [1, 3]"),
        (["--curve", "nested", "--nested_weights", 1, 1, 1], "--nested_weights applies to --nested_strategy sum"),
    ],
)
def test_bad_nested_arguments(tmp_path, extra, message):
    with pytest.raises(SweepError) as error:
        _run(sweep_argv(tmp_path / "out", "--ranks", 1, 2, 4, *extra))
    assert message in str(error.value)


def test_a_rank_above_a_layer_is_refused_for_nested_training(tmp_path):
    with pytest.raises(SweepError, match=r"ranks \[1, 2, 64\]: rank for every factorized linear layer"):
        _run(sweep_argv(tmp_path / "out", "--ranks", 1, 2, 64, "--curve", "nested"))


def test_truncated_student_refuses_a_model_without_factors():
    with pytest.raises(ValueError, match="has no FactorizedLinear layer"):
        truncated_student(nn.Sequential(nn.Linear(3, 2)), 1)
