import pytest
import torch

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.distillation import BlockOutputRecorder, DistillationConfig, DistillationTrainer, distillation_loss

from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


def _config(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=3,
    )
    kwargs.update(overrides)
    return DistillationConfig(**kwargs)


@pytest.mark.parametrize(
    ("field", "value"), [("distillation_mode", "feature"), ("temperature", 0.0), ("ce_weight", -1.0)]
)
def test_config_rejects_bad_values_naming_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})


def test_block_recorder_captures_attention_and_mlp_outputs_of_every_block():
    teacher = tester.create_teacher()
    recorder = BlockOutputRecorder(teacher)
    pixel_values = tester.pixel_values()
    captured = {}
    hooks = [teacher.vit.layers[1].mlp.register_forward_hook(lambda m, a, o: captured.setdefault("mlp1", o))]
    teacher(pixel_values=pixel_values)
    outputs = recorder.pop()
    assert len(outputs) == 2 * tester.num_hidden_layers == recorder.num_outputs
    assert all(o.shape == (tester.batch_size, 10, tester.hidden_size) for o in outputs)
    torch.testing.assert_close(outputs[3], captured["mlp1"])  # order: attn0, mlp0, attn1, mlp1
    assert recorder.pop() == []
    recorder.remove()
    teacher(pixel_values=pixel_values)
    assert recorder.pop() == []
    for hook in hooks:
        hook.remove()
    with pytest.raises(ValueError, match="logits"):
        BlockOutputRecorder(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("mode", ["geometric", "logits", "kd"])
def test_compute_loss_is_the_pure_loss_of_the_two_models(tmp_path, mode):
    teacher = tester.create_teacher()
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank=2)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=_config(tmp_path, distillation_mode=mode, temperature=2.0, ce_weight=0.3),
        train_dataset=pixel_dataset(16, tester.image_size, tester.num_labels),
    )
    batch = {"pixel_values": tester.pixel_values(), "labels": torch.arange(tester.batch_size) % tester.num_labels}
    loss = trainer.compute_loss(student, batch)

    # Independent: block outputs by hand, through each model's own modules.
    def blocks(model):
        outputs = []
        vit = model.base_model  # the teacher's ViTModel, or the LowRank student's
        hidden = vit.embeddings(batch["pixel_values"])
        for layer in vit.layers:
            attention = layer.attention(layer.layernorm_before(hidden))[0]
            hidden = attention + hidden
            mlp = layer.mlp(layer.layernorm_after(hidden))
            hidden = mlp + hidden
            outputs += [attention, mlp]
        return outputs

    with torch.no_grad():
        teacher_logits = teacher(pixel_values=batch["pixel_values"]).logits
        expected = distillation_loss(
            mode,
            student(pixel_values=batch["pixel_values"]).logits,
            teacher_logits,
            blocks(student),
            blocks(teacher),
            batch["labels"],
            0.3,
            2.0,
        )
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    assert trainer.model_accepts_loss_kwargs is False


def test_training_moves_the_student_never_the_teacher_and_saves_only_the_student(tmp_path):
    teacher = tester.create_teacher()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank=2)
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=_config(tmp_path),
        train_dataset=pixel_dataset(16, tester.image_size, tester.num_labels),
    )
    trainer.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key], rtol=0, atol=0)
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())

    trainer.save_model(str(tmp_path / "student"))
    reloaded, info = type(student).from_pretrained(tmp_path / "student", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # the student's weights, and nothing else
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in student.state_dict().items())
    with pytest.raises(TypeError, match="DistillationConfig"):
        from transformers import TrainingArguments

        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        )
