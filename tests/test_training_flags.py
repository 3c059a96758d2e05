"""Every TrainingArguments field is honoured as Trainer honours it, harmless, or refused by name before any work."""

import copy
from dataclasses import fields

import pytest
import torch
from accelerate import Accelerator
from transformers import Trainer

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.distillation import (
    HARMLESS,
    HONOURED,
    NUMBER_CHANGING,
    REFUSED,
    DistillationConfig,
    GroupDistillationTrainer,
    LockstepTrainer,
    build_optimizer,
    check_training_arguments,
)
from hf_lowrank.distillation.sampling import EpochShuffleSampler, epoch_permutation
from hf_lowrank.sweep import SweepArguments, SweepError, differences, fingerprint
from hf_lowrank.sweep.run import build_accelerator

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


def _args(tmp_path, **overrides):
    return DistillationConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **overrides)


def _student():
    torch.manual_seed(0)
    from transformers import ViTForImageClassification

    teacher = ViTForImageClassification(tester.get_config())
    return FactorizedViTForImageClassification.from_teacher(teacher, rank=3)


def test_every_training_field_is_classified_once():
    names = [f.name for f in fields(DistillationConfig) if f.init]
    tables = {"honoured": set(HONOURED), "harmless": set(HARMLESS), "refused": set(REFUSED)}
    for name in names:
        owners = [table for table, members in tables.items() if name in members]
        assert len(owners) == 1, f"{name} is in {owners or 'no table'}: classify it as honoured, harmless or refused"
    assert set(NUMBER_CHANGING) <= set(HONOURED)
    assert not set().union(*tables.values()) - set(names), "a table names a field TrainingArguments does not have"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_refused_field_is_refused_by_name_when_set(tmp_path, name):
    args = _args(tmp_path)
    assert check_training_arguments(args) == []
    default = getattr(args, name)
    sentinel = "something" if not isinstance(default, bool) else not default
    setattr(args, name, sentinel)
    problems = check_training_arguments(args)
    assert any(problem.startswith(f"--{name} ") and "not supported" in problem for problem in problems), problems


def test_a_field_unknown_to_the_tables_is_refused_when_set(tmp_path, monkeypatch):
    args = _args(tmp_path)
    monkeypatch.delitem(REFUSED, "auto_find_batch_size")
    args.auto_find_batch_size = True
    assert any("does not know" in p for p in check_training_arguments(args) if p.startswith("--auto_find_batch_size"))


@pytest.mark.parametrize("name", sorted(NUMBER_CHANGING))
def test_every_number_changing_field_is_in_the_resume_fingerprint(tmp_path, name):
    args = _args(tmp_path)  # before the Accelerator: building TrainingArguments resets accelerate's state
    accelerator = Accelerator(cpu=True)
    before = fingerprint(SweepArguments(), args, accelerator)
    changed = copy.copy(args)
    value = getattr(args, name)
    other = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v / 2 + 0.125}.get(type(value))
    setattr(changed, name, other(value) if other else {"a": 1} if name.endswith("kwargs") else "other")
    assert f"training.{name}" in differences(fingerprint(SweepArguments(), changed, accelerator), before)


def _group_names(optimizer, model) -> list[list[str]]:
    lookup = {id(p): name for name, p in model.named_parameters()}
    return [[lookup[id(p)] for p in group["params"]] for group in optimizer.param_groups]


@pytest.mark.parametrize("optim", ["adamw_torch", "adamw_torch_fused", "sgd", "adafactor", "adagrad", "rmsprop"])
def test_optimizer_is_the_one_trainer_builds(tmp_path, optim):
    args = _args(tmp_path, optim=optim, weight_decay=0.03, learning_rate=2e-3)
    mine, reference = _student(), _student()
    ours = build_optimizer(mine, args)
    theirs = Trainer(model=reference, args=args).create_optimizer()
    assert type(ours) is type(theirs)
    assert _group_names(ours, mine) == _group_names(theirs, reference)
    assert [{k: v for k, v in g.items() if k != "params"} for g in ours.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in theirs.param_groups
    ]


def test_optim_args_reach_the_optimizer(tmp_path):
    args = _args(tmp_path, optim="sgd", optim_args="momentum=0.5")
    assert build_optimizer(_student(), args).param_groups[0]["momentum"] == 0.5


def test_scheduler_kwargs_and_warmup_follow_trainer(tmp_path):
    args = _args(
        tmp_path,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": 1e-4},
        warmup_steps=0.25,
        learning_rate=1e-2,
        max_steps=8,
        per_device_train_batch_size=4,
        disable_tqdm=True,
        logging_steps=1,
    )
    trainer = LockstepTrainer(Accelerator(cpu=True), args)
    trainer.train({"m": _student()}, pixel_dataset(16, tester.image_size, tester.num_labels))
    ours = [entry["learning_rate"] for entry in trainer.trainer.state.log_history if "learning_rate" in entry]
    reference = Trainer(model=_student(), args=args)
    reference.create_optimizer()
    schedule = reference.create_scheduler(num_training_steps=8)
    theirs = []
    for _ in range(8):
        theirs.append(schedule.get_last_lr()[0])
        reference.optimizer.step(), schedule.step()
    assert ours == theirs
    assert ours[0] == 0 and min(ours[2:]) >= 1e-4 - 1e-12  # 2 warm-up steps, then no lower than min_lr


def test_bf16_trains_the_students_under_autocast(tmp_path):
    args = _args(tmp_path, bf16=True, max_steps=1, per_device_train_batch_size=4, disable_tqdm=True)
    accelerator = build_accelerator(args)
    assert accelerator.mixed_precision == "bf16"
    model = _student()
    seen = []
    model.base_model.layers[0].mlp.fc1.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    LockstepTrainer(accelerator, args).train({"m": model}, pixel_dataset(8, tester.image_size, tester.num_labels))
    assert seen and set(seen) == {torch.bfloat16}


def test_data_order_is_a_function_of_seed_and_epoch_and_data_seed_overrides_seed(tmp_path):
    sampler = EpochShuffleSampler(50, seed=3)
    sampler.set_epoch(2)
    assert list(sampler) == epoch_permutation(50, 3, 2).tolist()
    assert sorted(sampler) == list(range(50))
    orders = {tuple(epoch_permutation(50, seed, epoch).tolist()) for seed in (0, 1) for epoch in (0, 1)}
    assert len(orders) == 4  # seed 0 epoch 1 is not seed 1 epoch 0
    data = pixel_dataset(12, tester.image_size, tester.num_labels)
    args = _args(tmp_path, seed=1, data_seed=7, disable_tqdm=True)
    loader = GroupDistillationTrainer({"m": _student()}, args, data).get_train_dataloader()
    loader.set_epoch(0)
    order = torch.cat([batch["index"] for batch in loader]).tolist()
    assert order == epoch_permutation(12, 7, 0).tolist()


def _parse_error(argv) -> str:
    with pytest.raises(SweepError) as error:
        sweep_script.parse(argv)
    return str(error.value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--fsdp", "full_shard"], "--fsdp True is not supported (FSDP and DeepSpeed own the clipping"),
        (["--eval_strategy", "steps"], "--eval_strategy steps needs a validation split to evaluate on"),
        (["--validation_split", "0.2"], "--validation_split 0.2 without --eval_strategy steps or epoch"),
        (["--validation_split", "0"], "--validation_split 0.0: must be a fraction in (0, 1) or a count"),
        (["--validation_split", "1.5"], "--validation_split 1.5: must be a fraction in (0, 1) or a count"),
        (["--early_stopping_patience", "2"], "--early_stopping_patience 2 needs evaluation during training"),
        (
            ["--eval_strategy", "steps", "--validation_split", "0.1", "--metric_for_best_model", "f1"],
            "--metric_for_best_model 'f1': must be one of ['loss', 'accuracy']",
        ),
        (
            [
                "--eval_strategy",
                "steps",
                "--validation_split",
                "0.1",
                "--load_best_model_at_end",
                "true",
                "--save_strategy",
                "epoch",
            ],
            "--load_best_model_at_end requires the save and eval strategy to match",
        ),
        (["--torch_compile_backend", "no_such_backend"], "'no_such_backend' is not a torch.compile backend"),
        (["--auto_find_batch_size", "true"], "halved on an out-of-memory error would train the ranks of one sweep"),
        (["--label_smoothing_factor", "1"], "--label_smoothing_factor 1.0: must be in [0, 1)"),
        (["--resume_from_checkpoint", "x"], "resuming is automatic"),
        (["--optim", "lomo"], "--optim 'lomo'"),
        (["--optim", "schedule_free_adamw"], "schedule-free optimizers need train/eval switches"),
        (["--lr_scheduler_type", "cosine_with_min_lr"], "--lr_scheduler_type 'cosine_with_min_lr' with"),
        (["--lr_scheduler_kwargs", '{"bogus": 1}'], 'with --lr_scheduler_kwargs {"bogus": 1} cannot be built'),
        (["--save_strategy", "best"], "--save_strategy 'best' is not supported; use steps, epoch or no"),
        (["--seeds", 0, 1, "--data_seed", 3], "--data_seed 3 with --seeds [0, 1]"),
        (["--max_grad_norm", "inf"], "--max_grad_norm inf: must be a finite number >= 0"),
        (["--temperature", "inf"], "--temperature inf: must be finite"),
    ],
)
def test_refused_flags_stop_the_sweep_before_any_work(tmp_path, argv, message):
    from hf_lowrank.sweep.run import check_arguments

    with pytest.raises(SweepError) as error:  # at parsing (the values) or in check_arguments (the combinations)
        check_arguments(*sweep_script.parse(["--output_dir", str(tmp_path / "out"), *map(str, argv)]))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variable", ["ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"])
def test_sharding_asked_of_accelerate_launch_is_refused_not_ignored(tmp_path, monkeypatch, variable):
    """`accelerate launch --use_fsdp` (or its config file) reaches the sweep only through the environment; on a CPU
    accelerate would replicate without a word. Refused before any work, naming the setting."""
    from hf_lowrank.sweep.run import check_arguments

    monkeypatch.setenv(variable, "true")
    with pytest.raises(SweepError) as error:
        check_arguments(*sweep_script.parse(["--output_dir", str(tmp_path / "out")]))
    assert f"{variable}=true, is not supported (FSDP and DeepSpeed own the clipping" in str(error.value)
    assert not (tmp_path / "out").exists()


def _train_tiny(tmp_path, **overrides):
    """Weights and loss history of a tiny model after 4 optimizer steps (one epoch of 4 batches)."""
    args = _args(
        tmp_path, num_train_epochs=1, per_device_train_batch_size=4, disable_tqdm=True, logging_steps=3, **overrides
    )
    accelerator = Accelerator(cpu=True)
    model = _student()
    result = LockstepTrainer(accelerator, args).train({"m": model}, pixel_dataset(16, tester.image_size, 5))["m"]
    return model.state_dict(), result.loss_history


# Non-default values of the honoured-but-not-number-changing and harmless fields, set after construction.
_OTHER_VALUES = {
    "output_dir": "elsewhere",
    "save_strategy": "epoch",
    "save_steps": 1,
    "logging_steps": 1,
    "logging_strategy": "epoch",
    "logging_first_step": True,
    "disable_tqdm": False,
    "push_to_hub": True,
    "hub_model_id": "me/x",
    "hub_token": "hf_x",
    "hub_private_repo": True,
    "dataloader_num_workers": 1,
    "dataloader_pin_memory": False,
    "dataloader_persistent_workers": True,
    "dataloader_prefetch_factor": 3,
    "dataloader_multiprocessing_context": "spawn",
    "ddp_timeout": 60,
    "ddp_find_unused_parameters": False,
    "report_to": ["tensorboard"],
    "save_total_limit": 3,
    "local_rank": 0,
}


def test_fields_outside_number_changing_do_not_change_the_numbers(tmp_path):
    """The fingerprint holds NUMBER_CHANGING only: every other honoured or harmless field must leave the trained
    weights bit for bit as they were (the dataloader worker fields together, with one worker)."""
    baseline, _ = _train_tiny(tmp_path)
    defaults = _args(tmp_path)
    missing = sorted(set(HONOURED) - set(NUMBER_CHANGING) - set(_OTHER_VALUES))
    assert not missing, f"give these fields a test value: {missing}"
    harmless = {n: not getattr(defaults, n) if isinstance(getattr(defaults, n), bool) else "other" for n in HARMLESS}
    harmless.update(log_level="info", log_level_replica="error")  # Trainer reads these by name
    workers = {k: v for k, v in _OTHER_VALUES.items() if k.startswith("dataloader_")}
    trials = [workers] + [{k: v} for k, v in {**_OTHER_VALUES, **harmless}.items() if k not in workers]
    for trial in trials:
        args = _args(tmp_path, num_train_epochs=1, per_device_train_batch_size=4, disable_tqdm=True, logging_steps=3)
        for name, value in trial.items():
            setattr(args, name, value)
        accelerator = Accelerator(cpu=True)
        model = _student()
        LockstepTrainer(accelerator, args).train({"m": model}, pixel_dataset(16, tester.image_size, 5))
        state = model.state_dict()
        assert all(torch.equal(state[k], baseline[k]) for k in baseline), f"{trial} changed the trained weights"


def test_logging_strategy_steps_first_step_epoch_and_no(tmp_path):
    assert [s for s, _ in _train_tiny(tmp_path)[1]] == [3, 4]
    assert [s for s, _ in _train_tiny(tmp_path, logging_first_step=True)[1]] == [1, 3, 4]
    assert [s for s, _ in _train_tiny(tmp_path, logging_strategy="epoch")[1]] == [4]
    assert [s for s, _ in _train_tiny(tmp_path, logging_strategy="epoch", logging_first_step=True)[1]] == [1, 4]
    assert _train_tiny(tmp_path, logging_strategy="no")[1] == []


def test_an_empty_training_loader_is_refused_not_looped_over(tmp_path):
    args = _args(tmp_path, per_device_train_batch_size=32, dataloader_drop_last=True, disable_tqdm=True)
    with pytest.raises(ValueError, match=r"no training batch: 16 examples, per_device_train_batch_size 32"):
        LockstepTrainer(Accelerator(cpu=True), args).train({"m": _student()}, pixel_dataset(16, tester.image_size, 5))


def test_the_recorded_command_hides_the_hub_token():
    from hf_lowrank.sweep.cli import redact

    argv = ["--hub_token", "hf_secret", "--seed", "1", "--hub_token=hf_x", "--hub-token", "hf_y", "--hub-token=hf_z"]
    assert redact(argv) == [
        "--hub_token",
        "***",
        "--seed",
        "1",
        "--hub_token=***",
        "--hub-token",
        "***",
        "--hub-token=***",
    ]


def test_yaml_mappings_become_json_flags(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr: 1e-5\n"
    )  # YAML 1.1: a str
    _, training = sweep_script.parse(["--config", str(config)])
    assert training.lr_scheduler_kwargs == {"min_lr": 1e-5}


def test_the_fingerprint_is_as_results_json_holds_it(tmp_path):
    import json

    from hf_lowrank.results import strict_json

    args = _args(tmp_path, lr_scheduler_kwargs={"min_lr": 1e-5}, lr_scheduler_type="cosine_with_min_lr")
    recorded = fingerprint(SweepArguments(noise_sigmas=[0.1]), args, Accelerator(cpu=True))
    assert json.loads(json.dumps(strict_json(recorded), allow_nan=False)) == recorded


def test_label_smoothing_trains_on_the_smoothed_target(tmp_path):
    """Training on the labels (the teacher's stage) with --label_smoothing_factor: one SGD step equals a hand-written
    step on the cross-entropy with the smoothed target (1 - eps on the label, eps / C on every class)."""
    from transformers import ViTForImageClassification

    from hf_lowrank.distillation.sampling import epoch_permutation

    data = pixel_dataset(8, tester.image_size, tester.num_labels)
    args = _args(
        tmp_path, optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0,
        max_steps=1, per_device_train_batch_size=8, learning_rate=0.5, label_smoothing_factor=0.3, disable_tqdm=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = ViTForImageClassification(tester.get_config())
    manual, initial = copy.deepcopy(model), copy.deepcopy(model)
    LockstepTrainer(Accelerator(cpu=True), args).train({"m": model}, data)
    rows = data[epoch_permutation(8, args.seed, 0).tolist()]
    log_probs = manual(pixel_values=rows["pixel_values"]).logits.log_softmax(-1)
    target = torch.full_like(log_probs, 0.3 / tester.num_labels)
    target += 0.7 * torch.nn.functional.one_hot(rows["labels"], tester.num_labels)
    (-(target * log_probs).sum(-1).mean()).backward()
    with torch.no_grad():
        for p in manual.parameters():
            p -= 0.5 * p.grad
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, manual.state_dict()[name], rtol=1e-5, atol=1e-6)
    assert not torch.equal(model.classifier.weight, initial.classifier.weight)  # the step moved it
