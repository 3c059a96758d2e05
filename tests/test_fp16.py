"""--fp16 in the group trainer: float16 autocast of the students, each with its own loss scaler, so that a student
trained in a group equals it trained alone and an overflow in one student skips only that student's step."""

import functools

import pytest
import torch
from accelerate import Accelerator
from test_group_evaluation import _students

from hf_lowrank.distillation import DistillationConfig, GroupDistillationTrainer, LockstepTrainer

from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


def _args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path), learning_rate=3e-3, max_steps=4, per_device_train_batch_size=4,
        lr_scheduler_type="linear", warmup_steps=1, max_grad_norm=0.5, distillation_mode="geometric",
        report_to="none", use_cpu=True, seed=3, disable_tqdm=True, logging_steps=1, fp16=True,
        gradient_accumulation_steps=2,
    )  # fmt: skip
    kwargs.update(overrides)
    return DistillationConfig(**kwargs)


def _setup():
    torch.manual_seed(0)
    teacher = tester.create_teacher()
    return teacher, pixel_dataset(20, tester.image_size, tester.num_labels)


def _assert_equal_weights(a, b):
    expected = b.state_dict()
    for name, value in a.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_fp16_runs_the_students_in_float16_close_to_float32(tmp_path):
    """On a CPU accelerate ignores fp16 without a word; the group trainer autocasts itself: the students' linear
    layers compute in float16, the result is near float32 training's but not equal to it."""
    teacher, data = _setup()
    trained, dtypes = {}, []
    initial = _students(teacher, (3,))["rank-3"].state_dict()
    for fp16 in (False, True):
        students = _students(teacher, (3,))
        layer = students["rank-3"].model.vit.layers[0].mlp.fc1
        handle = layer.register_forward_hook(lambda module, args, output: dtypes.append((fp16, output.dtype)))
        # plain SGD without clipping: an update that missed the unscaling would be 65536 times too large
        args = _args(tmp_path, fp16=fp16, distillation_mode="kd", optim="sgd", learning_rate=0.5, max_grad_norm=0)
        outcome = LockstepTrainer(Accelerator(cpu=True), args, teacher).train(students, data)
        handle.remove()
        assert outcome["rank-3"].skipped_steps == 0  # (no overflow at the default scale here: every step taken)
        trained[fp16] = students["rank-3"].state_dict()
    assert {dtype for fp16, dtype in dtypes if fp16} == {torch.float16}
    assert {dtype for fp16, dtype in dtypes if not fp16} == {torch.float32}
    assert all(trained[True][name].dtype == value.dtype for name, value in trained[False].items())  # float32 weights

    def flat(state):
        return torch.cat([value.flatten() for value in state.values()])

    full, half, start = flat(trained[False]), flat(trained[True]), flat(initial)
    difference = (half - full).norm() / (full - start).norm()  # relative to float32 training's whole update
    assert 0 < difference < 0.05, difference  # (measured: 0.016; float16 keeps 11 significant bits)


def test_a_student_trained_in_an_fp16_group_equals_it_trained_alone(tmp_path):
    teacher, data = _setup()
    args = _args(tmp_path, max_steps=12)  # the first steps overflow at the initial scale 2**16: skipped
    group = _students(teacher)
    outcome = LockstepTrainer(Accelerator(cpu=True), args, teacher).train(group, data)
    alone = _students(teacher, (3,))
    expected = LockstepTrainer(Accelerator(cpu=True), args, teacher).train(alone, data)
    _assert_equal_weights(group["rank-3"], alone["rank-3"])
    assert outcome["rank-3"].loss_history == expected["rank-3"].loss_history
    assert outcome["rank-3"].skipped_steps == expected["rank-3"].skipped_steps
    assert outcome["rank-3"].skipped_steps < 12  # it trained
    assert outcome["rank-1"].skipped_steps != expected["rank-3"].skipped_steps  # rank-1's overflows were its own


def test_an_fp16_overflow_skips_only_that_students_step(tmp_path):
    """Student rank-1's loss scale is so large that its float16 gradients overflow at every step: each of its steps
    is skipped and its scale halved (GradScaler's rule); it is not stopped, and rank-3 trains as it does alone."""
    teacher, data = _setup()
    students = _students(teacher)
    before = {name: value.clone() for name, value in students["rank-1"].state_dict().items()}
    args = _args(tmp_path, distillation_mode="kd")  # (no overflow at the default scale)
    trainer = GroupDistillationTrainer(students, args, data, teacher_model=teacher)
    trainer.runs[0].scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    trainer.train()
    trainer.close()
    overflowing, other = trainer.runs
    assert overflowing.error is None and overflowing.skipped_steps == 4 and other.skipped_steps == 0
    assert overflowing.scaler.get_scale() == 2.0**96 and other.scaler.get_scale() == 2.0**16
    for name, value in students["rank-1"].state_dict().items():
        assert torch.equal(value, before[name]), name
    alone = _students(teacher, (3,))
    LockstepTrainer(Accelerator(cpu=True), args, teacher).train(alone, data)
    _assert_equal_weights(students["rank-3"], alone["rank-3"])


def test_an_fp16_group_resumes_with_each_students_loss_scale(tmp_path, monkeypatch):
    """The loss scalers start high (2**8: the first steps overflow) and grow every step (growth_interval 1): a run
    killed after a checkpoint and resumed ends bit for bit as the uninterrupted run, so each student's scale was
    restored (a fresh scaler would skip the first steps after the resume again)."""
    from test_checkpoint import Killed, _train

    from hf_lowrank.distillation import GroupCheckpoint

    scaler = functools.partial(torch.amp.GradScaler, init_scale=2.0**8, growth_interval=1)
    monkeypatch.setattr(torch.amp, "GradScaler", scaler)
    teacher, data = _setup()
    args = _args(tmp_path, max_steps=12, save_steps=6)
    reference, expected = _train(args, teacher, data)
    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"stage": "students"})
    with pytest.raises(Killed):
        _train(args, teacher, data, checkpoint, kill_after_batches=15)
    resumed, outcome = _train(args, teacher, data, checkpoint)
    for key in expected:
        assert outcome[key].loss_history == expected[key].loss_history
        assert outcome[key].skipped_steps == expected[key].skipped_steps
        _assert_equal_weights(resumed[key], reference[key])
    assert sum(outcome[key].skipped_steps for key in outcome) > 0  # the scale overflowed: the scalers' state mattered
