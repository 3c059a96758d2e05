"""The sweep's data-aware inits, training-free previews and per-layer budgets (`--init`, `--calibration_samples`,
`--preview_inits`, `--preview_only`, `--param_budget`): end to end on the embedded digits teacher, each number checked
against an independent computation from the saved teacher."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoModelForImageClassification

from hf_lowrank.data import collate_examples, load_image_classification_data, model_inputs, preprocess
from hf_lowrank.factorization import collect_input_statistics
from hf_lowrank.models import FactorizedLinear, FactorizedViTForImageClassification, LowRankForImageClassification
from hf_lowrank.models import factorize as factorize_module
from hf_lowrank.sweep import SweepError, run_sweep
from hf_lowrank.sweep.factorization import calibration_indices

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import sweep_argv


CALIBRATION = 24  # examples: 24 * 17 tokens = 408 > every input width of the tiny teacher
TEACHER = ("--teacher_num_train_epochs", 40, "--teacher_learning_rate", 3e-3)  # a teacher well above chance


def _run(argv):
    sweep, training = sweep_script.parse([*argv, *map(str, TEACHER)])
    return run_sweep(sweep, training)


def _data(output_dir):
    """The sweep's splits as its tiny settings make them, preprocessed by the saved teacher's image processor."""
    data = load_image_classification_data(max_train_samples=160, max_test_samples=90, seed=0)
    return preprocess(data, AutoImageProcessor.from_pretrained(output_dir / "teacher"))


def _accuracy(model, split) -> float:
    """Top-1 accuracy of `model` on a preprocessed split, computed directly."""
    rows = split[:]
    with torch.no_grad():
        predicted = model(pixel_values=rows["pixel_values"]).logits.argmax(-1)
    return float((predicted == rows["labels"]).double().mean())


def _calibration(teacher, train, names):
    """Calibration statistics of `teacher` on the sweep's seeded calibration rows, gathered here independently."""
    rows = train.select(calibration_indices(len(train), CALIBRATION, seed=0))
    batches = [model_inputs(collate_examples([rows[i] for i in range(len(rows))]))]
    return collect_input_statistics(teacher, batches, names)


@pytest.fixture(scope="module")
def preview_sweep(tmp_path_factory):
    """A preview-only sweep at ranks 1, 2, 5, with the decomposition calls counted."""
    output_dir = tmp_path_factory.mktemp("preview")
    calls = []
    original = factorize_module.decompose_linear

    def counting(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("init", "svd"))
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for module in ("hf_lowrank.models.decomposition", "hf_lowrank.models.factorize"):
            patch.setattr(f"{module}.decompose_linear", counting)
        results = _run(
            sweep_argv(
                output_dir, "--ranks", 1, 2, 5, "--preview_only", "--calibration_samples", CALIBRATION,
                "--preview_inits", "svd", "whitened", "activation",
            )
        )  # fmt: skip
    return output_dir, results, calls


def test_preview_accuracies_are_the_students_built_from_the_saved_teacher(preview_sweep):
    output_dir, results, _ = preview_sweep
    teacher = AutoModelForImageClassification.from_pretrained(output_dir / "teacher")
    data = _data(output_dir)
    names = [n for n, m in teacher.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n]
    statistics = _calibration(teacher, data["train"], names)
    assert {p.init for p in results.previews} == {"svd", "whitened", "activation"}
    for preview in results.previews:
        if preview.init == "svd":
            student = FactorizedViTForImageClassification.from_teacher(teacher, rank=preview.rank)
        else:
            student = FactorizedViTForImageClassification.from_teacher(
                teacher, rank=preview.rank, init=preview.init, calibration=statistics
            )
        assert preview.accuracy == pytest.approx(_accuracy(student, data["test"]), abs=1e-9), preview
        assert preview.normalized_accuracy == pytest.approx(preview.accuracy / results.teacher.accuracy)
        assert len(preview.correct) == 90
    assert not results.ranks  # --preview_only distils nothing


def test_every_layer_is_decomposed_once_per_init_whatever_the_number_of_ranks(preview_sweep):
    output_dir, results, calls = preview_sweep
    teacher = AutoModelForImageClassification.from_pretrained(output_dir / "teacher")
    layers = sum(1 for n, m in teacher.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n)
    # Three ranks, three inits: one decomposition per layer and init, not one per student.
    counts = {init: calls.count(init) for init in set(calls)}
    inits = {"svd", "whitened", "activation"}
    assert counts == {init: layers for init in inits}
    record = results.factorization
    assert record["calibration_examples"] == CALIBRATION and record["calibration_tokens"] == CALIBRATION * 17
    assert set(record["decomposition_bytes"]) == inits


def test_the_report_shows_the_previews_and_says_no_student_was_trained(preview_sweep):
    output_dir, results, _ = preview_sweep
    report = json.loads((output_dir / "report.json").read_text())
    assert set(report["previews"]) == {p.init for p in results.previews}
    for init, entry in report["previews"].items():
        assert [row["rank"] for row in entry["rows"]] == [1, 2, 5]
        assert entry["agreement"] is None  # nothing trained to compare with
        assert entry["region"]["estimated"] is True
    text = (output_dir / "report.md").read_text()
    assert "Training-free preview" in text and "--preview_only" in text
    assert (output_dir / "knee.png").is_file()


def test_a_preview_only_sweep_resumes_into_a_trained_sweep_without_retraining_the_teacher(preview_sweep, tmp_path):
    import shutil

    output_dir, before, _ = preview_sweep
    copy = tmp_path / "grown"
    shutil.copytree(output_dir, copy)
    stamp = (copy / "teacher" / "model.safetensors").stat().st_mtime_ns
    after = _run(
        sweep_argv(
            copy, "--ranks", 1, 2, 5, "--calibration_samples", CALIBRATION,
            "--preview_inits", "svd", "whitened", "activation",
        )
    )  # fmt: skip
    assert (copy / "teacher" / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.accuracy for p in after.previews] == [p.accuracy for p in before.previews]
    # The resumed run gathered no calibration of its own: the record keeps the first run's, merged with its own.
    assert after.factorization["calibration_examples"] == CALIBRATION
    assert set(after.factorization["decomposition_bytes"]) == {"svd", "whitened", "activation"}
    assert [r.rank for r in after.ranks] == [1, 2, 5] and all(r.status == "done" for r in after.ranks)
    report = json.loads((copy / "report.json").read_text())
    agreement = report["previews"]["svd"]["agreement"]
    trained = {r.rank: r.normalized_accuracy for r in after.ranks}
    at_init = {p.rank: p.normalized_accuracy for p in after.previews if p.init == "svd"}
    assert agreement["mean_gain"] == pytest.approx(np.mean([trained[r] - at_init[r] for r in (1, 2, 5)]))
    assert "How far the preview predicts training" in (copy / "report.md").read_text()


def test_fisher_preview_and_whitened_students(tmp_path):
    """A sweep that trains whitened students: each one starts where an independent whitened factorization of the
    saved teacher starts (its preview), and its card and config say how it started."""
    output_dir = tmp_path / "whitened"
    results = _run(
        sweep_argv(
            output_dir, "--ranks", 2, "--init", "whitened", "--calibration_samples", CALIBRATION,
            "--preview_inits", "whitened", "fisher",
        )
    )  # fmt: skip
    assert {p.init for p in results.previews} == {"whitened", "fisher"}
    record = results.ranks[0]
    assert record.config.init == "whitened" and record.status == "done"
    assert "whitened SVD" in (output_dir / "rank-002" / "README.md").read_text()

    teacher = AutoModelForImageClassification.from_pretrained(output_dir / "teacher")
    data = _data(output_dir)
    names = [n for n, m in teacher.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n]
    rows = data["train"].select(calibration_indices(len(data["train"]), CALIBRATION, seed=0))
    batch = collate_examples([rows[i] for i in range(len(rows))])
    fisher = collect_input_statistics(teacher, [model_inputs(batch) | {"labels": batch["labels"]}], names, fisher=True)
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank=2, init="fisher", calibration=fisher)
    preview = next(p for p in results.previews if p.init == "fisher")
    assert preview.accuracy == pytest.approx(_accuracy(student, data["test"]), abs=1e-9)


def test_budget_students_are_allocated_within_the_budget_beside_the_uniform_rank(tmp_path):
    output_dir = tmp_path / "budget"
    results = _run(
        sweep_argv(output_dir, "--ranks", 1, "--calibration_samples", CALIBRATION, "--param_budget", 0.3, 20000, 0.9)
    )
    teacher = AutoModelForImageClassification.from_pretrained(output_dir / "teacher")
    linears = {n: m for n, m in teacher.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n}
    dense = sum(m.weight.numel() + m.bias.numel() for m in linears.values())

    def linear_parameters(ranks):  # a layer at rank None is kept dense
        return sum((linears[n].in_features * linears[n].out_features if r is None else
                    r * (linears[n].in_features + linears[n].out_features)) + linears[n].out_features
                   for n, r in ranks.items())  # fmt: skip

    records = {b.budget: b for b in results.budget_students}
    assert set(records) == {0.3, 20000, 0.9}
    assert records[0.3].budget_parameters == int(0.3 * dense) and records[20000].budget_parameters == 20000
    trained_ranks = {r.rank for r in results.ranks}
    for record in records.values():
        assert record.status == "done" and set(record.layer_ranks) == set(linears)
        assert linear_parameters(record.layer_ranks) == record.linear_parameters <= record.budget_parameters
        uniform = {n: record.uniform_rank for n in linears}
        assert linear_parameters(uniform) <= record.budget_parameters
        assert linear_parameters({n: record.uniform_rank + 1 for n in linears}) > record.budget_parameters
        assert record.uniform_rank in trained_ranks  # trained beside it
        # The saved student has exactly the allocated per-layer ranks and reproduces its accuracy.
        student = LowRankForImageClassification.from_pretrained(output_dir / record.model_dir)
        factorized = {n.removeprefix("model."): m.rank for n, m in student.named_modules()
                      if isinstance(m, FactorizedLinear)}  # fmt: skip
        assert factorized == {n: r for n, r in record.layer_ranks.items() if r is not None}
        for name, rank in record.layer_ranks.items():  # never at or above break-even: dense there
            layer = linears[name]
            assert (
                rank is None
                or rank * (layer.in_features + layer.out_features) < layer.in_features * layer.out_features
            )
        assert record.accuracy == pytest.approx(_accuracy(student, _data(output_dir)["test"]), abs=1e-9)
    kept_dense = [name for name, rank in records[0.9].layer_ranks.items() if rank is None]
    assert kept_dense  # 90% of the dense parameters: some layers reach their break-even rank
    report = json.loads((output_dir / "report.json").read_text())
    assert [row["budget"] for row in report["budget_students"]] == [0.3, 0.9, 20000]  # ascending
    assert f"{len(kept_dense)} layer(s) kept dense" in (output_dir / "report.md").read_text()
    assert (output_dir / "budget_ranks.png").is_file()
    assert "Per-layer ranks from a parameter budget" in (output_dir / "report.md").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--init", "whitened", "--calibration_samples", 0], "--calibration_samples 0: whitened need"),
        (["--preview_inits", "svd", "lowrank"], "--preview_inits ['svd', 'lowrank']: must be distinct among"),
        (["--param_budget", 0.3, "--calibration_samples", 0], "--param_budget need calibration"),
        (["--param_budget", 0.3, "--student_bridge", "lift"], "leave --init at svd, --param_budget unset"),
        (["--param_budget", 0.3, 0.3], "without repeats"),
        (["--param_budget", 1.5], "a whole parameter count > 1"),
        (["--preview_only", "--param_budget", 0.3], "--preview_only distils no student"),
        (["--init_alpha", -1], "--init_alpha -1.0: must be a finite number >= 0"),
    ],
)
def test_bad_factorization_arguments_are_refused_before_any_work(tmp_path, extra, message):
    with pytest.raises(SweepError, match=None) as error:
        _run(sweep_argv(tmp_path / "out", *extra))
    assert message in str(error.value)
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_unknown_init_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sweep_script.parse(sweep_argv(tmp_path / "out", "--init", "qr"))
    assert (
        "invalid choice: 'qr' (choose from 'auto', 'svd', 'whitened', 'activation', 'fisher')"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("budget", [0.001, 10**9])
def test_a_budget_outside_the_possible_students_names_the_valid_range(tmp_path, budget):
    with pytest.raises(SweepError, match=r"--param_budget .* must be a fraction in \[0\.\d+, 1\] .* count in \["):
        _run(sweep_argv(tmp_path / "out", "--ranks", 1, "--param_budget", budget))
    assert not (tmp_path / "out" / "rank-001").exists()  # refused before any student


def test_too_few_calibration_tokens_say_which_fallback_was_used(tmp_path, capsys):
    results = _run(sweep_argv(tmp_path / "out", "--preview_only", "--ranks", 1, 2, 4, "--calibration_samples", 1))
    out = capsys.readouterr().out
    assert "calibration: 17 calibration tokens < 48 input features in some layers" in out
    assert "used the fallback 'diagonal shift" in out or "used the fallback 'eigendecomposition'" in out
    assert all(np.isfinite(p.accuracy) for p in results.previews)
    assert results.factorization["fallbacks"]["whitened"]


def test_the_default_previews_include_the_students_own_init():
    from hf_lowrank.sweep import SweepArguments

    assert SweepArguments(init="fisher").preview_inits == ["svd", "whitened", "activation", "fisher"]
    assert SweepArguments(init="whitened").preview_inits == ["svd", "whitened", "activation"]
    assert SweepArguments(calibration_samples=0).preview_inits == ["svd"]
    assert SweepArguments(student_bridge="lift").preview_inits == []


def test_the_default_start_and_teacher_recipe_follow_the_teacher():
    """auto: the embedded teachers (trained from scratch) keep svd and the from-scratch recipe; a --teacher (a
    pretrained model) gets the whitened start and the fine-tuning recipe; an explicit value always wins."""
    from hf_lowrank.sweep import SweepArguments

    embedded = SweepArguments()
    assert (embedded.init, embedded.teacher_num_train_epochs, embedded.teacher_learning_rate) == ("svd", 30.0, 2e-3)
    pretrained = SweepArguments(teacher="some/model", dataset="texts.csv")
    assert (pretrained.init, pretrained.teacher_num_train_epochs, pretrained.teacher_learning_rate) == (
        "whitened",
        3.0,
        1e-4,
    )
    assert SweepArguments(teacher="some/model", dataset="t.csv", init="svd").init == "svd"
    assert (
        SweepArguments(teacher="some/model", dataset="t.csv", teacher_learning_rate=5e-5).teacher_learning_rate == 5e-5
    )
    assert SweepArguments(teacher="some/model", student_bridge="lift").init == "svd"  # Lift / WideLast: svd only
    frozen = SweepArguments(teacher="some/model", teacher_finetune="none")
    assert frozen.teacher_learning_rate is None and frozen.teacher_num_train_epochs is None  # inert: at defaults
    with pytest.raises(SweepError, match="--teacher_learning_rate 0.001 has no effect"):
        SweepArguments(teacher="some/model", teacher_finetune="none", teacher_learning_rate=1e-3)


def test_a_budget_of_the_whole_dense_layers_is_refused_before_any_student(tmp_path):
    """At the dense layers' whole parameter count every layer reaches its break-even rank and stays dense: the budget
    student would be the teacher. Refused before anything is trained, naming the count."""
    with pytest.raises(SweepError, match=r"--param_budget 1\.0 \(([\d,]+) parameters\) is the dense layers' whole \1"):
        _run(sweep_argv(tmp_path / "out", "--ranks", 1, "--param_budget", 1.0))
    assert not (tmp_path / "out" / "rank-001").exists()
