"""--report_to: the group's Trainer reports to the trackers transformers integrates. Read back with TensorBoard's own
EventAccumulator: one loss and gradient-norm series per student, the learning rate, the teacher's fine-tuning."""

import pytest
import torch
from accelerate import Accelerator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.distillation import DistillationConfig, LockstepTrainer, check_training_arguments, distillation_loss
from hf_lowrank.distillation.sampling import epoch_permutation
from hf_lowrank.distillation.student_group import run_slug
from hf_lowrank.sweep import run_sweep

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import pixel_dataset, sweep_argv
from vit_tester import TinyViTTester


tester = TinyViTTester()


def _scalars(directory) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_each_students_loss_and_grad_norm_and_the_learning_rate(tmp_path):
    args = DistillationConfig(
        output_dir=str(tmp_path), learning_rate=2e-3, max_steps=4, per_device_train_batch_size=5, logging_steps=1,
        lr_scheduler_type="linear", warmup_steps=1, max_grad_norm=1.0, distillation_mode="logits",
        report_to=["tensorboard"], use_cpu=True, seed=3, disable_tqdm=True,
    )  # fmt: skip
    torch.manual_seed(0)
    teacher = tester.create_teacher()
    students = {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in (1, 3)}
    first = FactorizedViTForImageClassification.from_teacher(teacher, rank=1)  # rank 1 before training
    data = pixel_dataset(17, tester.image_size, tester.num_labels)
    outcome = LockstepTrainer(Accelerator(cpu=True), args, teacher, description="students [1, 3]").train(
        students, data
    )

    scalars = _scalars(tmp_path / "runs" / run_slug("students [1, 3]"))
    for key in students:  # one series per student, distinguishable by its key; the history results.json keeps
        logged = scalars[f"train/loss/{key}"]
        assert [step for step, _ in logged] == [1, 2, 3, 4]
        assert [value for _, value in logged] == pytest.approx([v for _, v in outcome[key].loss_history], rel=1e-6)
        assert len(scalars[f"train/grad_norm/{key}"]) == 4
    # linear schedule, 1 warm-up step of 4: 0, then 2e-3 decaying linearly to 0 over the last 3
    assert [v for _, v in scalars["train/learning_rate"]] == pytest.approx([0.0, 2e-3, 2e-3 * 2 / 3, 2e-3 / 3])

    # the first step's gradient norm of rank 1, computed by hand on the first batch of the seeded order
    rows = data[epoch_permutation(17, 3, 0)[:5].tolist()]
    with torch.no_grad():
        teacher_logits = teacher(pixel_values=rows["pixel_values"]).logits
    first.train()
    distillation_loss("logits", first(pixel_values=rows["pixel_values"]).logits, teacher_logits).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in first.parameters() if p.grad is not None]))
    assert scalars["train/grad_norm/rank-1"][0][1] == pytest.approx(norm.item(), rel=1e-5)


def test_a_sweep_reports_the_teachers_fine_tuning_and_every_group(tmp_path):
    argv = sweep_argv(tmp_path, "--ranks", 2, "--report_to", "tensorboard", "--logging_steps", 1)
    results = run_sweep(*sweep_script.parse(argv))
    runs = {path.name: _scalars(path) for path in (tmp_path / "runs").iterdir()}
    assert "teacher" in runs and runs["teacher"]["train/loss/teacher"]
    (group,) = [name for name in runs if name != "teacher"]
    steps = [step for step, _ in runs[group]["train/loss/rank-002"]]
    assert steps == [step for step, _ in results.ranks[0].loss_history] and len(steps) == results.ranks[0].steps


@pytest.mark.parametrize(
    "report_to, message",
    [
        (["wandb"], "--report_to wandb: the wandb package is not installed (pip install wandb)"),
        (
            ["tensorboard", "clearml"],
            "--report_to clearml: the clearml package is not installed (pip install clearml)",
        ),
    ],
)
def test_a_tracker_that_is_not_installed_is_named_with_its_package(tmp_path, report_to, message, monkeypatch):
    from transformers.integrations import integration_utils

    monkeypatch.setattr(integration_utils, "is_wandb_available", lambda: False)
    monkeypatch.setattr(integration_utils, "is_clearml_available", lambda: False)
    problems = check_training_arguments(DistillationConfig(output_dir=str(tmp_path), use_cpu=True))
    assert problems == []
    args = DistillationConfig(output_dir=str(tmp_path), use_cpu=True)
    args.report_to = report_to
    assert check_training_arguments(args) == [message]


def test_a_tracker_missing_stops_the_sweep_before_any_work(tmp_path, monkeypatch):
    from transformers.integrations import integration_utils

    from hf_lowrank.sweep import SweepError

    monkeypatch.setattr(integration_utils, "is_mlflow_available", lambda: False)
    with pytest.raises(SweepError, match=r"pip install mlflow"):
        run_sweep(*sweep_script.parse(sweep_argv(tmp_path / "out", "--report_to", "mlflow")))
    assert not (tmp_path / "out").exists()
