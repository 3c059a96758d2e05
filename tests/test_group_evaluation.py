"""Evaluation during training in the group trainer: each student evaluated on a validation split, its best step kept
(load_best_model_at_end), and early stopping applied to each student alone."""

import pytest
import torch
from accelerate import Accelerator

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.distillation import DistillationConfig, LockstepTrainer, check_training_arguments, distillation_loss

from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


def _args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path), learning_rate=3e-3, max_steps=6, per_device_train_batch_size=4,
        per_device_eval_batch_size=64, lr_scheduler_type="constant", distillation_mode="logits",
        eval_strategy="steps", eval_steps=2, save_steps=2, report_to="none", use_cpu=True, seed=4,
        disable_tqdm=True, logging_steps=1,
    )  # fmt: skip
    kwargs.update(overrides)
    return DistillationConfig(**kwargs)


def _setup():
    torch.manual_seed(0)
    teacher = tester.create_teacher()
    train = pixel_dataset(24, tester.image_size, tester.num_labels)
    validation = pixel_dataset(13, tester.image_size, tester.num_labels, seed=5)
    return teacher, train, validation


def _students(teacher, ranks=(1, 3)):
    return {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in ranks}


def test_every_student_is_evaluated_on_the_validation_split_at_the_eval_steps(tmp_path):
    teacher, train, validation = _setup()
    students = _students(teacher)
    outcome = LockstepTrainer(Accelerator(cpu=True), _args(tmp_path), teacher).train(
        students, train, eval_dataset=validation
    )
    rows = validation[:]
    with torch.no_grad():
        teacher_logits = teacher(pixel_values=rows["pixel_values"]).logits
        for key, student in students.items():
            assert [step for step, _, _ in outcome[key].validation_history] == [2, 4, 6]
            logits = student.eval()(pixel_values=rows["pixel_values"]).logits  # after the last step: step 6
            accuracy = (logits.argmax(-1) == rows["labels"]).float().mean().item()
            loss = distillation_loss("logits", logits, teacher_logits).item()
            _, measured_accuracy, measured_loss = outcome[key].validation_history[-1]
            assert measured_accuracy == pytest.approx(accuracy) and measured_loss == pytest.approx(loss, rel=1e-5)
            assert outcome[key].stopped_step is None and outcome[key].steps == 6


def test_early_stopping_stops_one_student_and_the_others_go_on(tmp_path):
    """A frozen student's validation loss never improves: with patience 2 (evaluations at steps 2, 4, 6, ...) it
    stops at step 6, after its 6th training batch; the other student (its classifier zeroed: far from its teacher,
    its loss falling) trains to the end."""
    teacher, train, validation = _setup()
    students = _students(teacher)
    students["rank-3"].requires_grad_(False)
    with torch.no_grad():
        students["rank-1"].model.classifier.weight.zero_()
    batches = []
    students["rank-3"].register_forward_hook(lambda module, *_: batches.append(1) if module.training else None)
    args = _args(tmp_path, max_steps=10, early_stopping_patience=2)
    outcome = LockstepTrainer(Accelerator(cpu=True), args, teacher).train(students, train, eval_dataset=validation)
    assert outcome["rank-3"].stopped_step == 6 and outcome["rank-3"].steps == 6 and len(batches) == 6
    assert [step for step, _, _ in outcome["rank-3"].validation_history] == [2, 4, 6]
    assert [step for step, _, _ in outcome["rank-1"].validation_history] == [2, 4, 6, 8, 10]
    assert outcome["rank-1"].stopped_step is None and outcome["rank-1"].steps == 10


def test_load_best_model_at_end_gives_each_student_its_own_best_step(tmp_path):
    """greater_is_better on the loss makes an early evaluation the best (the loss falls from its start): the student
    must end with the weights of that step, those of the same run stopped there (constant learning rate)."""
    teacher, train, validation = _setup()
    students = _students(teacher, (3,))
    args = _args(
        tmp_path, max_steps=8, load_best_model_at_end=True, metric_for_best_model="loss", greater_is_better=True
    )
    outcome = LockstepTrainer(Accelerator(cpu=True), args, teacher).train(students, train, eval_dataset=validation)
    history = outcome["rank-3"].validation_history
    best = max(history, key=lambda entry: entry[2])[0]
    assert outcome["rank-3"].best_step == best < 8
    reference = _students(teacher, (3,))
    LockstepTrainer(Accelerator(cpu=True), _args(tmp_path, max_steps=best, eval_strategy="no"), teacher).train(
        reference, train
    )
    expected = reference["rank-3"].state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in students["rank-3"].state_dict().items())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"eval_strategy": "no", "early_stopping_patience": 2}, "--early_stopping_patience 2 needs evaluation"),
        ({"metric_for_best_model": "f1"}, "--metric_for_best_model 'f1': must be one of ['loss', 'accuracy']"),
    ],
)
def test_evaluation_settings_that_cannot_work_are_named(tmp_path, overrides, message):
    problems = check_training_arguments(_args(tmp_path, **overrides))
    assert any(message in problem for problem in problems), problems


def test_gradient_checkpointing_gives_the_same_training_with_geometric_distillation(tmp_path):
    """--gradient_checkpointing recomputes each student's blocks in its backward; the block outputs the geometric
    loss reads are captured once per forward (not again by the recomputation), so the losses and the trained
    weights equal those of the run without it, within round-off."""
    teacher, train, _ = _setup()
    runs = {}
    for checkpointing in (False, True):
        students = _students(teacher, (1, 3))
        args = _args(
            tmp_path, distillation_mode="geometric", eval_strategy="no", gradient_checkpointing=checkpointing,
            gradient_accumulation_steps=2,
        )  # fmt: skip
        calls = []
        # inside the checkpointed forward (the layer's own hooks stay outside it)
        attention = students["rank-1"].model.vit.layers[0].attention
        attention.register_forward_pre_hook(lambda *_: calls.append(1))
        outcome = LockstepTrainer(Accelerator(cpu=True), args, teacher).train(students, train)
        runs[checkpointing] = (students, outcome, len(calls))
    (plain, plain_outcome, plain_calls), (checkpointed, outcome, calls) = runs[False], runs[True]
    assert calls == 2 * plain_calls  # every block ran again in the backward: checkpointing was on
    for key in plain:
        assert [v for _, v in outcome[key].loss_history] == pytest.approx(
            [v for _, v in plain_outcome[key].loss_history], rel=1e-5
        )
        expected = plain[key].state_dict()
        for name, value in checkpointed[key].state_dict().items():
            torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6)


def test_torch_compile_compiles_every_student_and_the_teacher_with_results_as_eager(tmp_path):
    """--torch_compile (backend aot_eager: the graphs AOTAutograd makes, without a C++ compiler): each student and the
    teacher compiled in place, and the trained weights equal eager training's within round-off."""
    teacher, train, _ = _setup()
    runs = {}
    for compiled in (False, True):
        students = _students(teacher, (1, 3))
        extra = {"torch_compile": True, "torch_compile_backend": "aot_eager"} if compiled else {}
        args = _args(tmp_path, distillation_mode="geometric", eval_strategy="no", max_steps=3, **extra)
        LockstepTrainer(Accelerator(cpu=True), args, teacher).train(students, train)
        runs[compiled] = students
    assert all(s._compiled_call_impl is not None for s in runs[True].values())
    assert teacher._compiled_call_impl is not None and all(s._compiled_call_impl is None for s in runs[False].values())
    for key, student in runs[True].items():
        expected = runs[False][key].state_dict()
        for name, value in student.state_dict().items():  # parameter names unchanged by the in-place compile
            torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-5)


def test_a_torch_compile_backend_that_does_not_exist_is_named(tmp_path):
    problems = check_training_arguments(_args(tmp_path, torch_compile=True, torch_compile_backend="no_such_backend"))
    assert any("--torch_compile_backend 'no_such_backend' is not a torch.compile backend" in p for p in problems)
