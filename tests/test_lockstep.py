import numpy as np
import pytest
import torch
from accelerate import Accelerator
from torch import nn

from hf_lowrank import FactorizedLinear, FactorizedViTForImageClassification
from hf_lowrank.distillation import DistillationConfig, LockstepTrainer, RNGStream, evaluate_models

from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


def _args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path),
        learning_rate=3e-3,
        max_steps=6,
        per_device_train_batch_size=4,
        lr_scheduler_type="linear",
        warmup_steps=2,
        weight_decay=0.01,
        max_grad_norm=0.5,
        report_to="none",
        use_cpu=True,
        seed=11,
        disable_tqdm=True,
        logging_steps=1,
    )
    kwargs.update(overrides)
    return DistillationConfig(**kwargs)


def _teacher_with_dropout():
    torch.manual_seed(0)
    from transformers import ViTForImageClassification

    # Dropout exercises the per-student RNG streams: lock-step must not change what each student draws.
    return ViTForImageClassification(tester.get_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))


def _students(teacher, ranks):
    return {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in ranks}


@pytest.mark.parametrize("mode", ["geometric", "kd"])
def test_lockstep_student_equals_one_trained_alone(tmp_path, mode):
    args = _args(tmp_path, distillation_mode=mode, temperature=2.0, gradient_accumulation_steps=2)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    data = pixel_dataset(20, tester.image_size, tester.num_labels)
    teacher = _teacher_with_dropout()

    together = _students(teacher, [1, 3, 5])
    LockstepTrainer(accelerator, args, teacher).train(together, data)
    alone = _students(teacher, [3])
    results = LockstepTrainer(accelerator, args, teacher).train(alone, data)

    assert results["rank-3"].status == "done" and results["rank-3"].steps == 6
    initial = _students(teacher, [3])["rank-3"].state_dict()
    moved = False
    for key, value in alone["rank-3"].state_dict().items():
        torch.testing.assert_close(together["rank-3"].state_dict()[key], value, rtol=0, atol=0)
        moved |= not torch.equal(value, initial[key])
    assert moved  # the students did train
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_rng_stream_is_private_and_reproducible():
    torch.manual_seed(123)
    outside = torch.rand(3)
    torch.manual_seed(123)
    stream_a, stream_b = RNGStream(5), RNGStream(5)
    with stream_a.active():
        first = torch.rand(4)
    with stream_b.active():
        second = torch.rand(4)
    with stream_a.active():
        third = torch.rand(4)
    torch.testing.assert_close(first, second)  # same seed, same draws
    assert not torch.equal(first, third)  # a stream continues where it stopped
    torch.testing.assert_close(torch.rand(3), outside)  # the global stream was not touched
    torch.manual_seed(5)
    torch.testing.assert_close(torch.rand(4), first)  # as torch.manual_seed(5) would start


class _Exploding(nn.Module):
    """Wraps a student; from its `after`-th forward on, the logits are NaN."""

    def __init__(self, model, after):
        super().__init__()
        self.model, self.after, self.calls = model, after, 0

    def forward(self, pixel_values, labels=None):
        self.calls += 1
        outputs = self.model(pixel_values=pixel_values)
        if self.calls >= self.after:
            outputs.logits = outputs.logits * float("nan")
        return outputs


def test_non_finite_loss_stops_that_model_only(tmp_path):
    args = _args(tmp_path, distillation_mode="logits")
    accelerator = Accelerator(cpu=True)
    teacher = _teacher_with_dropout()
    students = _students(teacher, [2, 4])
    students["rank-4"] = _Exploding(students["rank-4"], after=3)
    results = LockstepTrainer(accelerator, args, teacher).train(students, pixel_dataset(24, 12, 7))
    assert results["rank-2"].status == "done" and results["rank-2"].steps == 6
    assert results["rank-4"].status == "failed"
    assert "optimizer step 3" in results["rank-4"].error and "rank-4" in results["rank-4"].error
    assert all(torch.isfinite(p).all() for p in students["rank-4"].parameters())  # the NaN step was not applied


def test_evaluate_models_accuracy_and_order(tmp_path):
    _args(tmp_path)  # TrainingArguments first: it sets up accelerate's shared state
    accelerator = Accelerator(cpu=True)
    teacher = _teacher_with_dropout().eval()
    data = pixel_dataset(23, tester.image_size, tester.num_labels)
    results = evaluate_models(accelerator, {"teacher": teacher}, data, batch_size=5)
    with torch.no_grad():
        predicted = teacher(pixel_values=data[:]["pixel_values"]).logits.argmax(-1).numpy()
    expected = predicted == data[:]["labels"].numpy()
    np.testing.assert_array_equal(results["teacher"].correct, expected)
    assert results["teacher"].accuracy == pytest.approx(expected.mean())


def test_calibration_and_noise_robustness_match_an_independent_computation(tmp_path):
    from hf_lowrank.diagnostics import expected_calibration_error
    from hf_lowrank.distillation import example_noise

    _args(tmp_path)
    accelerator = Accelerator(cpu=True)
    teacher = _teacher_with_dropout().eval()
    data = pixel_dataset(23, tester.image_size, tester.num_labels)
    sigmas = (0.5, 2.0)
    small = evaluate_models(accelerator, {"t": teacher}, data, batch_size=4, noise_sigmas=sigmas, noise_seed=3)["t"]
    large = evaluate_models(accelerator, {"t": teacher}, data, batch_size=9, noise_sigmas=sigmas, noise_seed=3)["t"]
    assert small.noise_accuracy == large.noise_accuracy  # noise is per example, not per batch

    rows = data[:]
    noise = torch.stack(
        [
            torch.randn(rows["pixel_values"].shape[1:], generator=torch.Generator().manual_seed(3 * 1_000_003 + i))
            for i in range(23)
        ]
    )
    torch.testing.assert_close(example_noise(torch.arange(23), rows["pixel_values"].shape[1:], 3), noise)
    with torch.no_grad():
        probabilities = teacher(pixel_values=rows["pixel_values"]).logits.softmax(-1)
        for sigma in sigmas:
            noisy = teacher(pixel_values=rows["pixel_values"] + sigma * noise).logits.argmax(-1)
            assert small.noise_accuracy[sigma] == pytest.approx((noisy == rows["labels"]).float().mean().item())
    correct = (probabilities.argmax(-1) == rows["labels"]).numpy()
    assert small.ece == pytest.approx(expected_calibration_error(probabilities.max(-1).values.numpy(), correct))


def test_a_student_that_starts_as_its_teacher_stays_there(tmp_path):
    """Encoder weights of rank 3: the rank-3 and full-rank students compute the teacher's function at init (to
    float round-off) and must still do so after training, not drift away under Adam."""
    teacher = tester.create_teacher()
    with torch.no_grad():
        for module in teacher.vit.layers.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(FactorizedLinear.from_linear(module, 3).merged_weight())
    train, test = pixel_dataset(96, tester.image_size, tester.num_labels), pixel_dataset(60, tester.image_size, 7, 9)
    students = {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in (3, 18)}
    args = DistillationConfig(
        output_dir=str(tmp_path), learning_rate=1e-3, max_steps=30, per_device_train_batch_size=16,
        report_to="none", disable_tqdm=True, use_cpu=True, seed=0,
    )  # fmt: skip
    pixel_values = test[:]["pixel_values"]
    with torch.no_grad():
        before = {
            key: (s(pixel_values).logits - teacher(pixel_values).logits).abs().max() for key, s in students.items()
        }
    LockstepTrainer(Accelerator(cpu=True), args, teacher=teacher).train(students, train)
    with torch.no_grad():
        reference = teacher(pixel_values).logits
        for key, student in students.items():
            logits = student.eval()(pixel_values).logits
            assert before[key] < 1e-4 and (logits - reference).abs().max() < 1e-4, key
            assert (logits.argmax(-1) != reference.argmax(-1)).sum() <= 1, key
