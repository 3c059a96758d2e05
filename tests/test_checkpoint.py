"""Mid-training checkpoints: the format round-trips exactly, and a lock-step group killed mid-training and resumed
ends bit for bit as an uninterrupted one."""

import contextlib
import json
import math

import pytest
import torch
from accelerate import Accelerator

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.distillation import (
    DistillationConfig,
    GroupCheckpoint,
    GroupDistillationTrainer,
    LockstepTrainer,
    TrainingPosition,
)
from hf_lowrank.distillation.checkpoint import decode, encode

from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


class Killed(Exception):
    """Stands for kill -9: raised inside training, after some optimizer steps."""


def test_encode_decode_round_trip_keeps_types_and_bits():
    value = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(3, 5, dtype=torch.float64)}, 7: {}},
        "param_groups": [{"betas": (0.9, 0.999), "lr": 1 / 3, "fused": None, "params": [0, 7]}],
        "loss": float("nan"),
        "inf": -math.inf,
        "rng": torch.randint(0, 255, (17,), dtype=torch.uint8),
    }
    tensors = {}
    plain = json.loads(json.dumps(encode(value, tensors, "run"), allow_nan=False))
    back = decode(plain, tensors)
    assert back["param_groups"] == value["param_groups"] and isinstance(back["param_groups"][0]["betas"], tuple)
    assert list(back["state"]) == [0, 7] and math.isnan(back["loss"]) and back["inf"] == -math.inf
    assert torch.equal(back["state"][0]["exp_avg"], value["state"][0]["exp_avg"])
    assert back["rng"].dtype == torch.uint8 and torch.equal(back["rng"], value["rng"])


def _args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path),
        learning_rate=3e-3,
        num_train_epochs=3,
        per_device_train_batch_size=4,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        weight_decay=0.01,
        report_to="none",
        use_cpu=True,
        seed=5,
        disable_tqdm=True,
        logging_steps=1,
        save_steps=2,
        gradient_accumulation_steps=2,
    )
    kwargs.update(overrides)
    return DistillationConfig(**kwargs)


def _teacher():
    torch.manual_seed(0)
    from transformers import ViTForImageClassification

    return ViTForImageClassification(tester.get_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))


def _students(teacher):
    return {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in (1, 4)}


@contextlib.contextmanager
def _batches_seen(kill_after_batches=None):
    """Count the group's training batches (a list of one count); raise Killed at batch `kill_after_batches` + 1."""
    batches, step = [0], GroupDistillationTrainer.training_step

    def counting_step(self, *args, **kwargs):
        batches[0] += 1
        if kill_after_batches is not None and batches[0] > kill_after_batches:
            raise Killed
        return step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GroupDistillationTrainer, "training_step", counting_step)
        yield batches


def _train(args, teacher, data, checkpoint=None, kill_after_batches=None, students=None, validation=None):
    trainer = LockstepTrainer(Accelerator(cpu=True), args, teacher)
    students = students if students is not None else _students(teacher)
    if kill_after_batches is None:
        return students, trainer.train(students, data, checkpoint, validation)
    with _batches_seen(kill_after_batches):
        return students, trainer.train(students, data, checkpoint, validation)


# 22 examples, batch 4: 6 batches per epoch (the last one short), 3 optimizer steps per epoch, 9 in all.
@pytest.mark.parametrize(
    "kill_after_batches, overrides",
    [
        (9, {}),
        (6, {"save_steps": 3}),
        (13, {"save_strategy": "epoch"}),
        (5, {"gradient_accumulation_steps": 1, "save_steps": 3}),
    ],
    ids=["mid-epoch", "at-an-epoch-end", "epoch-strategy", "no-accumulation"],
)
def test_a_group_killed_mid_training_resumes_bit_for_bit(tmp_path, kill_after_batches, overrides):
    args = _args(tmp_path, **overrides)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    teacher = _teacher()
    reference, expected = _train(args, teacher, data)

    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"stage": "students", "ranks": [1, 4], "seed": 5})
    with pytest.raises(Killed):
        _train(args, teacher, data, checkpoint, kill_after_batches)
    saved = checkpoint.load()
    total = expected["rank-1"].steps
    assert saved is not None and 0 < saved[0].step < total, "the test must kill after a checkpoint, before the end"
    resumed, outcome = _train(args, teacher, data, checkpoint)

    for key in reference:
        a, b = reference[key].state_dict(), resumed[key].state_dict()
        assert all(torch.equal(a[name], b[name]) for name in a), key
        assert outcome[key].loss_history == expected[key].loss_history
        assert outcome[key].steps == expected[key].steps == total
        assert outcome[key].examples_per_process == expected[key].examples_per_process


def test_a_group_evaluated_during_training_resumes_its_bests_and_early_stops_bit_for_bit(tmp_path):
    """Evaluation every step, each student's best weights kept (load_best_model_at_end) and early stopping with
    patience 2: killed after step 4 (checkpointed every 2 steps; one student stopped before, one stops after), the
    resumed group ends with the same weights, validation histories, best steps and stopping steps as the
    uninterrupted one."""
    overrides = dict(
        eval_strategy="steps", eval_steps=1, save_steps=2, load_best_model_at_end=True, metric_for_best_model="loss",
        early_stopping_patience=2, early_stopping_threshold=0.03, gradient_accumulation_steps=1, max_steps=12,
        per_device_eval_batch_size=8,
        learning_rate=1e-3, warmup_steps=0, lr_scheduler_type="constant",
    )  # fmt: skip
    args = _args(tmp_path, **overrides)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    validation = pixel_dataset(11, tester.image_size, tester.num_labels, seed=3)
    teacher = _teacher()
    reference, expected = _train(args, teacher, data, validation=validation)
    stops = sorted(outcome.stopped_step or 99 for outcome in expected.values())
    assert stops[0] < 4 < stops[1] < 12, f"the test must stop one student before the kill and one after: {stops}"
    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"stage": "students"})
    with pytest.raises(Killed):
        _train(args, teacher, data, checkpoint, kill_after_batches=5, validation=validation)
    assert checkpoint.load()[0].step == 4
    resumed, outcome = _train(args, teacher, data, checkpoint, validation=validation)
    for key in reference:
        a, b = reference[key].state_dict(), resumed[key].state_dict()
        assert all(torch.equal(a[name], b[name]) for name in a), key
        for field in ("validation_history", "best_step", "stopped_step", "steps", "loss_history"):
            assert getattr(outcome[key], field) == getattr(expected[key], field), (key, field)


def test_only_the_latest_checkpoint_is_kept_and_another_groups_is_not_resumed(tmp_path):
    args = _args(tmp_path, num_train_epochs=2, save_steps=1)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    teacher = _teacher()
    mine = GroupCheckpoint(tmp_path / "checkpoint", {"ranks": [1, 4]})
    with pytest.raises(Killed):
        _train(args, teacher, data, mine, kill_after_batches=9)
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == ["latest.json", "step-000004"]
    assert mine.load()[0] == TrainingPosition(step=4, epoch=1, batch=2, examples=8 * 4 - 2)

    other = GroupCheckpoint(tmp_path / "checkpoint", {"ranks": [1, 4, 8]})
    assert other.load() is None and "step 4" in other.describe()
    students, outcome = _train(args, teacher, data, other)
    reference, expected = _train(args, teacher, data)
    assert outcome["rank-4"].loss_history == expected["rank-4"].loss_history


def test_save_total_limit_keeps_that_many_latest_checkpoints_and_resumes_the_latest(tmp_path):
    args = _args(tmp_path, num_train_epochs=2, save_steps=1, save_total_limit=3)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    teacher = _teacher()
    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"ranks": [1, 4]})
    with pytest.raises(Killed):
        _train(args, teacher, data, checkpoint, kill_after_batches=9)
    names = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    assert names == ["latest.json", "step-000002", "step-000003", "step-000004"]
    assert checkpoint.load()[0].step == 4
    _, outcome = _train(args, teacher, data, checkpoint)
    _, expected = _train(args, teacher, data)
    assert outcome["rank-4"].loss_history == expected["rank-4"].loss_history


def test_a_half_written_checkpoint_is_never_read(tmp_path):
    checkpoint = GroupCheckpoint(tmp_path, {"ranks": [1]})
    checkpoint.save(TrainingPosition(step=2), {"m": {"w": torch.ones(2)}})
    (tmp_path / ".step-000004.tmp").mkdir()  # a save killed before its rename
    (tmp_path / ".step-000004.tmp" / "state.json").write_text("{")
    position, runs = checkpoint.load()
    assert position.step == 2 and torch.equal(runs["m"]["w"], torch.ones(2))


def test_a_checkpoint_of_a_larger_group_serves_the_models_still_pending(tmp_path):
    """Killed after rank 1 was recorded but before rank 4 was: the rerun trains [4] alone from the group's
    checkpoint, and rank 4 ends as in the uninterrupted group."""
    args = _args(tmp_path)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    teacher = _teacher()
    reference, expected = _train(args, teacher, data)
    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"stage": "students", "seed": 5})
    with pytest.raises(Killed):
        _train(args, teacher, data, checkpoint, kill_after_batches=9)
    alone = {"rank-4": FactorizedViTForImageClassification.from_teacher(teacher, rank=4)}
    _, outcome = _train(args, teacher, data, checkpoint, students=alone)
    a, b = reference["rank-4"].state_dict(), alone["rank-4"].state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert outcome["rank-4"].loss_history == expected["rank-4"].loss_history


def test_the_end_of_training_is_checkpointed_so_a_crash_in_evaluation_loses_no_training(tmp_path):
    args = _args(tmp_path, num_train_epochs=1)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    teacher = _teacher()
    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"stage": "students"})
    trained, expected = _train(args, teacher, data, checkpoint)
    assert checkpoint.load()[0].step == expected["rank-1"].steps == 3
    with _batches_seen() as batches:
        students, outcome = _train(args, teacher, data, checkpoint)
    assert batches == [0] and outcome["rank-1"].loss_history == expected["rank-1"].loss_history
    assert all(torch.equal(students["rank-1"].state_dict()[k], v) for k, v in trained["rank-1"].state_dict().items())


def test_a_failed_student_stays_failed_after_a_resume(tmp_path):
    args = _args(tmp_path)
    data = pixel_dataset(22, tester.image_size, tester.num_labels)
    teacher = _teacher()
    checkpoint = GroupCheckpoint(tmp_path / "checkpoint", {"stage": "students"})
    students = _students(teacher)
    with torch.no_grad():
        students["rank-1"].model.classifier.weight.fill_(float("nan"))  # its loss is NaN from the first step
    with pytest.raises(Killed):
        _train(args, teacher, data, checkpoint, kill_after_batches=9, students=students)
    _, outcome = _train(args, teacher, data, checkpoint)
    assert outcome["rank-1"].status == "failed" and "optimizer step 1" in outcome["rank-1"].error
    assert outcome["rank-4"].status == "done" and outcome["rank-4"].steps == 9


def test_rng_state_of_another_machine_is_refused_with_the_remedy():
    from hf_lowrank.distillation import CheckpointError, RNGStream

    stream = RNGStream(0)
    state = stream.state_dict()
    with pytest.raises(CheckpointError, match="resume on the same kind of machine, or delete the checkpoint"):
        stream.load_state_dict({**state, "cuda": [*state["cuda"], torch.zeros(3, dtype=torch.uint8)]})


def test_gradient_accumulation_averages_over_the_real_window_as_trainer_does(tmp_path):
    """5 batches per epoch, 2 per optimizer step: the last step of an epoch has 1 batch, whose gradient is not
    halved (Trainer divides by the window's real length). Checked against a hand-written SGD loop."""
    from transformers import ViTForImageClassification

    from hf_lowrank.distillation.sampling import epoch_permutation

    data = pixel_dataset(20, tester.image_size, tester.num_labels)
    args = _args(
        tmp_path,
        optim="sgd",
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=0,
        num_train_epochs=1,
        save_strategy="no",
        learning_rate=0.1,
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(tester.get_config())
    manual = ViTForImageClassification(tester.get_config())
    manual.load_state_dict(model.state_dict())
    LockstepTrainer(Accelerator(cpu=True), args).train({"m": model}, data)

    order = epoch_permutation(20, args.seed, 0).tolist()
    batches = [order[i : i + 4] for i in range(0, 20, 4)]  # 5 batches: windows [0, 1], [2, 3], [4]
    manual.train()
    for window in ([0, 1], [2, 3], [4]):
        for b in window:
            rows = data[batches[b]]
            loss = manual(pixel_values=rows["pixel_values"], labels=rows["labels"]).loss / len(window)
            loss.backward()
        with torch.no_grad():
            for p in manual.parameters():
                p -= 0.1 * p.grad
                p.grad = None
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, manual.state_dict()[name], rtol=1e-5, atol=1e-6)


def test_loading_some_models_reads_only_their_files(tmp_path):
    checkpoint = GroupCheckpoint(tmp_path, {"stage": "students"})
    checkpoint.save(TrainingPosition(step=3), {"a": {"w": torch.ones(2)}, "b": {"w": torch.zeros(2)}})
    (checkpoint.latest() / "b.safetensors").write_bytes(b"broken")
    position, runs = checkpoint.load(["a"])
    assert position.step == 3 and list(runs) == ["a"] and checkpoint.keys() == ["a", "b"]
    assert checkpoint.load(["a", "c"]) is None
    with pytest.raises(Exception, match=r"b\.safetensors is not a readable safetensors file .*delete"):
        checkpoint.load()


def test_ranks_an_interrupted_group_holds_are_grouped_first_to_resume(tmp_path):
    from types import SimpleNamespace

    from hf_lowrank.sweep.students import student_groups

    config = {"sweep": {}}
    store = SimpleNamespace(checkpoint=lambda identity: GroupCheckpoint(tmp_path, {**identity, "config": config}))
    ctx = SimpleNamespace(store=store, sweep=SimpleNamespace(lockstep_group_size=1))
    assert student_groups(ctx, [4, 8, 16, 32], seed=0) == [[4], [8], [16], [32]]
    store.checkpoint({"stage": "students", "seed": 0}).save(
        TrainingPosition(step=239), {"rank-008": {"w": torch.ones(1)}, "rank-016": {"w": torch.ones(1)}}
    )
    assert student_groups(ctx, [4, 8, 16, 32], seed=0) == [[8, 16], [4], [32]]
    assert student_groups(ctx, [4, 8, 16, 32], seed=1) == [[4], [8], [16], [32]]  # another seed's groups
