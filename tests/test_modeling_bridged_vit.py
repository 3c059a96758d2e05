import numpy as np
import pytest
import torch
from accelerate import Accelerator
from huggingface_hub.errors import StrictDataclassError
from torch.nn import functional as F
from transformers import AutoModelForImageClassification

from hf_lowrank import BridgedViTConfig, BridgedViTForImageClassification, FactorizedLinear
from hf_lowrank.distillation import (
    DistillationConfig,
    DistillationTrainer,
    LockstepTrainer,
    bridged_distillation_loss,
    distillation_loss,
)

from remote_code import remote_code_logits
from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bridge": "bottleneck"}, "bridge"),
        ({"hidden_size": 24, "teacher_hidden_size": 18}, "wider than `teacher_hidden_size`"),
        ({"bridge": "widelast", "num_hidden_layers": 1}, "at least 2 for WideLast"),
        ({"bridge": "widelast", "teacher_hidden_size": 20, "teacher_num_attention_heads": 3}, "not a multiple"),
        ({"rank": 0}, "rank"),
    ],
)
def test_config_rejects_pairs_where_the_bridge_cannot_apply(kwargs, message):
    with pytest.raises(StrictDataclassError, match=message):
        BridgedViTConfig(**{**tester.config_kwargs(), "teacher_hidden_size": 18, **kwargs})


@pytest.mark.parametrize("bridge", ["lift", "widelast"])
def test_at_the_teacher_width_the_student_starts_as_the_teacher(bridge):
    teacher = tester.create_teacher()
    pixel_values = tester.pixel_values()
    student = BridgedViTForImageClassification.from_teacher(teacher, bridge=bridge)
    torch.testing.assert_close(student(pixel_values).logits, teacher(pixel_values).logits, rtol=0, atol=1e-6)
    factorized = BridgedViTForImageClassification.from_teacher(teacher, bridge=bridge, rank=tester.hidden_size)
    assert isinstance(factorized.layers[0].mlp.fc1, FactorizedLinear)
    torch.testing.assert_close(factorized(pixel_values).logits, teacher(pixel_values).logits, rtol=1e-4, atol=1e-4)
    if bridge == "widelast":  # the last block is the teacher's, dense
        assert len(factorized.layers) == tester.num_hidden_layers - 1
        assert isinstance(factorized.wide_layer.mlp.fc1, torch.nn.Linear)


@pytest.mark.parametrize("bridge", ["lift", "widelast"])
def test_narrow_student_reaches_the_teacher_width(bridge, tmp_path):
    teacher = tester.create_teacher()
    student = BridgedViTForImageClassification.from_teacher(
        teacher, bridge=bridge, hidden_size=9, num_attention_heads=3
    )
    outputs = student(tester.pixel_values(), output_hidden_states=True)
    assert outputs.bridged_tokens.shape == (tester.batch_size, 10, tester.hidden_size)
    widths = [h.shape[-1] for h in outputs.hidden_states]
    assert widths == ([9] * 3 if bridge == "lift" else [9, 9, tester.hidden_size])
    assert student.classifier.in_features == tester.hidden_size
    student.save_pretrained(tmp_path / "student")
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "student")
    assert type(reloaded) is BridgedViTForImageClassification
    torch.testing.assert_close(reloaded(tester.pixel_values()).logits, student(tester.pixel_values()).logits)
    if bridge == "widelast":  # and without hf_lowrank, from the code saved beside the weights
        logits = remote_code_logits(tmp_path / "student", tester.pixel_values(), tmp_path)
        torch.testing.assert_close(logits, student(tester.pixel_values()).logits, rtol=0, atol=0)


def test_bridged_loss_is_feature_mse_plus_the_logit_term():
    generator = torch.Generator().manual_seed(0)
    s_logits, t_logits = torch.randn(4, 7, generator=generator), torch.randn(4, 7, generator=generator)
    s_tokens, t_tokens = torch.randn(4, 10, 18, generator=generator), torch.randn(4, 10, 18, generator=generator)
    expected = distillation_loss("logits", s_logits, t_logits) + ((s_tokens - t_tokens) ** 2).mean()
    torch.testing.assert_close(
        bridged_distillation_loss("geometric", s_logits, t_logits, s_tokens, t_tokens), expected
    )
    kd = bridged_distillation_loss("kd", s_logits, t_logits, s_tokens, t_tokens, temperature=2.0)
    torch.testing.assert_close(
        kd, distillation_loss("kd", s_logits, t_logits, temperature=2.0) + F.mse_loss(s_tokens, t_tokens)
    )
    with pytest.raises(ValueError, match="do not match"):
        bridged_distillation_loss("logits", s_logits, t_logits, s_tokens[:, :, :9], t_tokens)


def test_trainer_distils_the_final_tokens_of_the_teacher(tmp_path):
    teacher = tester.create_teacher()
    student = BridgedViTForImageClassification.from_teacher(
        teacher, bridge="lift", hidden_size=9, num_attention_heads=3
    )
    args = DistillationConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=4,
        disable_tqdm=True,
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=pixel_dataset(8, tester.image_size, tester.num_labels),
    )
    batch = {"pixel_values": tester.pixel_values(), "labels": torch.zeros(tester.batch_size, dtype=torch.long)}
    with torch.no_grad():
        teacher_tokens = teacher.vit(pixel_values=batch["pixel_values"]).last_hidden_state  # normalised
        outputs = student(batch["pixel_values"])
        expected = distillation_loss("logits", outputs.logits, teacher(batch["pixel_values"]).logits) + F.mse_loss(
            outputs.bridged_tokens, teacher_tokens
        )
        torch.testing.assert_close(trainer.compute_loss(student, batch), expected)


def test_lockstep_training_reduces_the_feature_gap(tmp_path):
    args = DistillationConfig(
        output_dir=str(tmp_path),
        max_steps=30,
        learning_rate=3e-3,
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=8,
        disable_tqdm=True,
        seed=0,
    )
    accelerator = Accelerator(cpu=True)
    teacher = tester.create_teacher()
    data = pixel_dataset(32, tester.image_size, tester.num_labels)
    students = {
        bridge: BridgedViTForImageClassification.from_teacher(
            teacher, bridge=bridge, hidden_size=9, num_attention_heads=3
        )
        for bridge in ("lift", "widelast")
    }
    pixel_values = data[:]["pixel_values"]
    with torch.no_grad():
        target = teacher.vit(pixel_values=pixel_values).last_hidden_state
        before = {k: F.mse_loss(s(pixel_values).bridged_tokens, target).item() for k, s in students.items()}
    results = LockstepTrainer(accelerator, args, teacher).train(students, data)
    with torch.no_grad():
        for key, student in students.items():
            assert results[key].status == "done"
            assert F.mse_loss(student(pixel_values).bridged_tokens, target).item() < 0.9 * before[key]


# ---------------------------------------------------------------- the transformers contract of the forward pass


def _bridged(bridge="widelast", **config):
    teacher = tester.create_teacher()
    student = BridgedViTForImageClassification.from_teacher(
        teacher, bridge=bridge, hidden_size=9, num_attention_heads=3
    )
    student.config.update(config)
    return teacher, student.eval()


@pytest.mark.parametrize("bridge", ["lift", "widelast"])
def test_attentions_and_hidden_states_are_returned_as_vit_returns_them(bridge):
    _, student = _bridged(bridge)
    student.set_attn_implementation("eager")  # as for ViT, the attention weights come from the eager backend
    pixel_values = tester.pixel_values()
    outputs = student(pixel_values, output_attentions=True, output_hidden_states=True)
    assert len(outputs.attentions) == tester.num_hidden_layers == len(outputs.hidden_states) - 1
    heads = [a.shape[1] for a in outputs.attentions]
    assert heads == ([3, 3] if bridge == "lift" else [3, tester.num_attention_heads])
    assert all(a.shape[-2:] == (10, 10) and torch.allclose(a.sum(-1), torch.ones(())) for a in outputs.attentions)
    # The config's flag is honoured; chosen layers return only those.
    student.config.output_hidden_states = True
    assert len(student(pixel_values).hidden_states) == tester.num_hidden_layers + 1
    student.config.output_hidden_states = False
    chosen = student(pixel_values, output_hidden_states=[0, -1]).hidden_states
    assert chosen[1] is None and chosen[0] is not None and chosen[-1] is not None
    torch.testing.assert_close(chosen[-1], outputs.hidden_states[-1])


def test_return_dict_false_gives_tuples_with_the_same_tensors():
    _, student = _bridged()
    pixel_values, labels = tester.pixel_values(), torch.arange(tester.batch_size) % tester.num_labels
    as_dict = student(pixel_values, labels=labels)
    as_tuple = student(pixel_values, labels=labels, return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.loss)
    torch.testing.assert_close(as_tuple[1], as_dict.logits)


@pytest.mark.parametrize(
    ("problem_type", "make_labels", "loss"),
    [
        ("single_label_classification", lambda n, k: torch.arange(n) % k, lambda z, y: F.cross_entropy(z, y)),
        ("multi_label_classification", lambda n, k: (torch.arange(n * k).view(n, k) % 2).float(),
         lambda z, y: F.binary_cross_entropy_with_logits(z, y)),
    ],
)  # fmt: skip
def test_problem_type_picks_the_loss_as_transformers_heads_do(problem_type, make_labels, loss):
    _, student = _bridged(problem_type=problem_type)
    labels = make_labels(tester.batch_size, tester.num_labels)
    outputs = student(tester.pixel_values(), labels=labels)
    torch.testing.assert_close(outputs.loss, loss(outputs.logits, labels))


def test_regression_with_one_label():
    config = BridgedViTConfig(**{**tester.config_kwargs(num_labels=1), "teacher_hidden_size": 18, "bridge": "lift"})
    config.problem_type = "regression"
    student = BridgedViTForImageClassification(config).eval()
    targets = torch.linspace(-1, 1, tester.batch_size)
    outputs = student(tester.pixel_values(), labels=targets)
    torch.testing.assert_close(outputs.loss, F.mse_loss(outputs.logits.squeeze(-1), targets))


def test_set_attn_implementation_reaches_the_wide_block():
    _, student = _bridged("widelast")
    pixel_values = tester.pixel_values()
    student.set_attn_implementation("eager")
    eager = student(pixel_values, output_attentions=True)
    assert student.wide_layer.attention.config._attn_implementation == "eager"
    student.set_attn_implementation("sdpa")
    sdpa = student(pixel_values)
    assert student.wide_layer.attention.config._attn_implementation == "sdpa"
    torch.testing.assert_close(sdpa.logits, eager.logits, rtol=1e-5, atol=1e-5)


def test_one_function_copies_the_teacher_into_every_student_kind():
    from hf_lowrank import copy_teacher_weights
    from hf_lowrank.models import CNNEmbeddingStudent

    teacher = tester.create_teacher()
    widelast = BridgedViTForImageClassification.from_teacher(teacher, bridge="widelast", rank=5)
    last = teacher.vit.layers[-1]
    torch.testing.assert_close(widelast.wide_layer.mlp.fc1.weight, last.mlp.fc1.weight, rtol=0, atol=0)
    torch.testing.assert_close(
        widelast.layers[0].attention.q_proj.merged_weight(),
        FactorizedLinear.from_linear(teacher.vit.layers[0].attention.q_proj, 5).merged_weight(),
    )
    cnn = CNNEmbeddingStudent.from_teacher(teacher, "small", tester.pixel_values())
    torch.testing.assert_close(cnn.classifier.weight, teacher.classifier.weight, rtol=0, atol=0)
    # A shape the teacher cannot fill is an error naming both tensors.
    narrow = BridgedViTForImageClassification.from_teacher(
        teacher, bridge="lift", hidden_size=9, num_attention_heads=3
    )
    with pytest.raises(ValueError, match=r"'embeddings\.cls_token'.*'vit\.embeddings\.cls_token'"):
        copy_teacher_weights(narrow, teacher, {"embeddings": "vit.embeddings"})


def test_from_teacher_loads_a_vit_teacher_from_a_path_and_refuses_other_families(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    teacher = tester.create_teacher()
    teacher.save_pretrained(tmp_path / "vit")
    student = BridgedViTForImageClassification.from_teacher(str(tmp_path / "vit"), bridge="widelast", rank=4)
    reference = BridgedViTForImageClassification.from_teacher(teacher, bridge="widelast", rank=4)
    pixel_values = tester.pixel_values()
    torch.testing.assert_close(student(pixel_values).logits, reference(pixel_values).logits, rtol=0, atol=0)

    bert = BertForSequenceClassification(
        BertConfig(hidden_size=18, num_attention_heads=3, intermediate_size=37, num_hidden_layers=1, vocab_size=20)
    )
    bert.save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError) as error:
        BridgedViTForImageClassification.from_teacher(str(tmp_path / "bert"), bridge="lift")
    assert str(error.value) == (
        f"teacher {str(tmp_path / 'bert')!r} is a BertForSequenceClassification (model_type 'bert'); teacher must "
        "be a model of model_type 'vit'."
    )
    with pytest.raises(ValueError, match=r"^teacher '/no/such/teacher' does not exist: there is no such local"):
        BridgedViTForImageClassification.from_teacher("/no/such/teacher")


def test_truncated_safetensors_file_is_named_when_loading_a_student(tmp_path):
    student = BridgedViTForImageClassification.from_teacher(tester.create_teacher(), bridge="lift", rank=np.int64(4))
    assert student.config.rank == 4 and type(student.config.rank) is int
    student.save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        AutoModelForImageClassification.from_pretrained(tmp_path)
    assert str(error.value).startswith(
        f"{tmp_path / 'model.safetensors'} is not a readable safetensors file (truncated or corrupt?): "
    )
