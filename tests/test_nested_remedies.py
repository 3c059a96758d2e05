"""The remedies of nested training at small ranks: the sandwich rule (the smallest and the largest rank in every
batch) and in-place distillation (each smaller view also distils the largest view's logits), each checked against a
hand computation, and their bad input."""

import numpy as np
import pytest
import torch
from accelerate import Accelerator  # noqa: F401  (the group trainer's process state)

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.data import model_inputs
from hf_lowrank.distillation import DistillationConfig, GroupDistillationTrainer, NestedRankSchedule
from hf_lowrank.distillation.sampling import derived_seed
from hf_lowrank.distillation.targets import teacher_targets
from hf_lowrank.models import truncated_view
from hf_lowrank.sweep import SweepError

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import pixel_dataset, sweep_argv
from vit_tester import TinyViTTester


tester = TinyViTTester()
RANKS = (1, 2, 4, 8, 16)


def test_the_default_schedule_draws_as_before_one_rank_besides_the_largest():
    """The draw written out: one of the smaller ranks, uniformly, from the (seed, epoch, batch) stream."""
    schedule = NestedRankSchedule(RANKS, samples_per_step=2, seed=5)
    for epoch, batch in [(0, 1), (0, 7), (3, 2)]:
        rng = np.random.default_rng(derived_seed(5, epoch, batch))
        other = RANKS[:-1][rng.choice(4, size=1, replace=False, p=np.full(4, 0.25))[0]]
        assert schedule.views(epoch, batch) == [(16, 1.0), (other, 1.0)]


def test_the_sandwich_rule_distils_the_smallest_and_the_largest_rank_every_batch():
    sandwich = NestedRankSchedule(RANKS, samples_per_step=2, always_smallest=True, seed=5)
    assert {tuple(sandwich.views(0, b)) for b in range(1, 50)} == {((16, 1.0), (1, 1.0))}
    three = NestedRankSchedule(RANKS, samples_per_step=3, always_smallest=True, seed=5)
    draws = [three.views(e, b) for e in range(2) for b in range(1, 100)]
    assert all(d[0] == (16, 1.0) and d[-1] == (1, 1.0) and d[1][0] in (2, 4, 8) for d in draws)
    assert {d[1][0] for d in draws} == {2, 4, 8}
    assert draws == [NestedRankSchedule(RANKS, samples_per_step=3, always_smallest=True, seed=5).views(e, b)
                     for e in range(2) for b in range(1, 100)]  # fmt: skip
    with pytest.raises(ValueError, match=r"samples_per_step must be at least 2 with always_smallest"):
        NestedRankSchedule(RANKS, samples_per_step=1, always_smallest=True)
    with pytest.raises(ValueError, match="inplace_weight must be a finite number >= 0, got -1"):
        NestedRankSchedule(RANKS, inplace_weight=-1)


def _kd_by_hand(student_logits, teacher_logits, temperature):
    """T^2 * mean over the batch of sum_c p_t(c) (log p_t(c) - log p_s(c)), softmaxes at temperature T."""
    p_teacher = torch.softmax(teacher_logits / temperature, dim=-1)  # (batch, num_labels)
    log_ratio = torch.log(p_teacher) - torch.log_softmax(student_logits / temperature, dim=-1)
    return temperature**2 * (p_teacher * log_ratio).sum(-1).mean()


@pytest.mark.parametrize("inplace_weight", [0.0, 0.5])
def test_in_place_distillation_adds_the_largest_views_kd_to_each_smaller_view(tmp_path, inplace_weight):
    """One batch, ranks 3 and 1 summed with weights 1 and 2: the loss is (L_3 + 2 (L_1 + w KD(l_1, l_3))) / 3, with
    L_r the view's distillation loss from the teacher and l_r its logits (l_3 detached as the target)."""
    torch.manual_seed(0)
    teacher = tester.create_teacher()
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank=3)
    schedule = NestedRankSchedule((1, 3), strategy="sum", weights=(2.0, 1.0), inplace_weight=inplace_weight)
    args = DistillationConfig(
        output_dir=str(tmp_path), distillation_mode="kd", temperature=2.0, report_to="none", use_cpu=True,
        disable_tqdm=True, max_steps=1,
    )  # fmt: skip
    data = pixel_dataset(6, tester.image_size, tester.num_labels)
    trainer = GroupDistillationTrainer({"s": student}, args, data, teacher_model=teacher, nested=schedule)
    trainer._batches_per_epoch = 1
    batch = data[:6]
    inputs = model_inputs({"pixel_values": batch["pixel_values"]})
    targets = teacher_targets(trainer.teacher_model, trainer.teacher_recorder, inputs, trainer.final_tokens)
    loss = trainer._student_loss(trainer.group, trainer.runs[0], inputs, batch["labels"], targets)
    trainer.close()
    with torch.no_grad():
        teacher_logits = teacher(**inputs).logits
        logits = {}
        for rank in (3, 1):
            with truncated_view(student, rank):
                logits[rank] = student(**inputs).logits
    from_teacher = {rank: _kd_by_hand(logits[rank], teacher_logits, 2.0) for rank in (3, 1)}  # the "kd" mode
    expected = (from_teacher[3] + 2 * (from_teacher[1] + inplace_weight * _kd_by_hand(logits[1], logits[3], 2.0))) / 3
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--curve", "nested", "--nested_sandwich", "true", "--nested_samples", 1],
            "--nested_samples 1: the",
        ),
        (["--curve", "nested", "--nested_inplace_weight", -1], "--nested_inplace_weight -1.0: must be a finite"),
        # the sandwich rule is on by default: one rank per batch cannot hold the smallest and the largest
        (["--curve", "nested", "--nested_samples", 1], "use --nested_samples 2 or more, or --nested_sandwich false"),
        (["--nested_sandwich", "false"], "--nested_sandwich False has no effect: it applies to --curve nested"),
        (
            ["--curve", "nested", "--nested_strategy", "sum", "--nested_sandwich", "false"],
            "--nested_sandwich False has no effect: it applies to --nested_strategy sample",
        ),
    ],
)
def test_bad_nested_remedy_arguments(tmp_path, extra, message):
    with pytest.raises(SweepError) as error:
        sweep_script.parse(sweep_argv(tmp_path / "out", "--ranks", 1, 2, 4, *extra))
    assert message in str(error.value)
