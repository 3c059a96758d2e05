"""The generic LowRank student, for every family of the block table: SVD initialisation (full rank reproduces the
teacher), save / load through the Auto classes, `trust_remote_code` without hf_lowrank, pipelines, and one
distillation step in every mode."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from torch import nn
from torch.nn import functional as F
from transformers import (
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    ViTImageProcessorPil,
    pipeline,
)

from hf_lowrank import (
    FactorizedLinear,
    LowRankConfig,
    LowRankForImageClassification,
    LowRankForSequenceClassification,
    LowRankModel,
)
from hf_lowrank.distillation import DISTILLATION_MODES, BlockOutputRecorder, DistillationConfig
from hf_lowrank.distillation.targets import student_loss, teacher_targets
from hf_lowrank.factorization import collect_input_statistics, decompose_layers
from hf_lowrank.models import BLOCK_LAYOUTS, BlockLayout, find_blocks

from families import TEXT_MODEL_TYPES, TRANSFORMER, example_inputs, tiny_classifier
from sweep_helpers import word_tokenizer


TEXT = TEXT_MODEL_TYPES
FAMILIES = sorted(BLOCK_LAYOUTS)


def _student_class(model_type: str):
    return LowRankForSequenceClassification if model_type in TEXT else LowRankForImageClassification


def _auto_class(model_type: str):
    return AutoModelForSequenceClassification if model_type in TEXT else AutoModelForImageClassification


def _encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    blocks = [name for name, _ in find_blocks(model)]
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(name.startswith(f"{block}.") for block in blocks)
    }


@pytest.mark.parametrize("model_type", FAMILIES)
def test_full_rank_student_reproduces_the_teacher_and_factorizes_the_encoder_linears(model_type):
    teacher = tiny_classifier(model_type)
    full = {name: min(m.in_features, m.out_features) for name, m in _encoder_linears(teacher).items()}
    student = _student_class(model_type).from_teacher(teacher, rank=full_rank_map(full))
    assert student.config.factorized_layers == full  # every encoder linear, at its own full rank
    factorized = {name for name, m in student.model.named_modules() if isinstance(m, FactorizedLinear)}
    assert factorized == set(full)
    with torch.no_grad():
        torch.testing.assert_close(
            student(**example_inputs(teacher)).logits, teacher(**example_inputs(teacher)).logits, rtol=1e-4, atol=1e-5
        )


def full_rank_map(full: dict[str, int]) -> dict[str, int]:
    """A rank mapping giving each named layer its own rank (exact names as patterns)."""
    return {re.escape(name): rank for name, rank in full.items()}


@pytest.mark.parametrize("model_type", ["vit", "bert", "swin"])
def test_low_rank_student_is_the_truncated_svd_of_each_layer(model_type):
    teacher = tiny_classifier(model_type)
    student = _student_class(model_type).from_teacher(teacher, rank=2)
    for name, linear in _encoder_linears(teacher).items():
        layer = student.model.get_submodule(name)
        u, s, vh = torch.linalg.svd(linear.weight.detach(), full_matrices=False)
        best = (u[:, :2] * s[:2]) @ vh[:2]  # Eckart-Young: the best rank-2 approximation
        torch.testing.assert_close(layer.merged_weight(), best, rtol=1e-4, atol=1e-5)
        assert layer.rank == 2


def _calibration_inputs(teacher: nn.Module) -> dict:
    """Twelve seeded examples (more tokens than any tiny layer's input width)."""
    generator = torch.Generator().manual_seed(5)
    if teacher.config.model_type in TEXT:
        return {"input_ids": torch.randint(3, 40, (12, 7), generator=generator)}
    return {"pixel_values": torch.randn(12, 3, 8, 8, generator=generator)}


def _inputs_of_layers(teacher: nn.Module, names) -> dict[str, torch.Tensor]:
    """Each named layer's inputs `(tokens, in_features)` on `_calibration_inputs`, captured here by plain hooks."""
    captured, handles = {}, []

    def hook_for(name):
        def hook(module, args):
            captured[name] = args[0].reshape(-1, args[0].shape[-1])  # (tokens, in_features); returns None

        return hook

    for name in names:
        handles.append(teacher.get_submodule(name).register_forward_pre_hook(hook_for(name)))
    with torch.no_grad():
        teacher(**_calibration_inputs(teacher))
    for handle in handles:
        handle.remove()
    return captured


@pytest.mark.parametrize("model_type", ["vit", "bert", "swin", "clip"])
@pytest.mark.parametrize("init", ["whitened", "activation"])
def test_data_aware_students_of_every_kind_of_family(model_type, init):
    """from_teacher(init=...) with the teacher's calibration statistics: at full rank the teacher's logits; at rank 2,
    (whitened) each layer's output error on the calibration inputs is the smallest any rank-2 map reaches, below the
    plain SVD's; the same student comes from decompositions computed once."""
    teacher = tiny_classifier(model_type)
    linears = _encoder_linears(teacher)
    calibration = collect_input_statistics(teacher, [_calibration_inputs(teacher)], list(linears))
    full = {name: min(m.in_features, m.out_features) for name, m in linears.items()}
    student = _student_class(model_type).from_teacher(
        teacher, rank=full_rank_map(full), init=init, calibration=calibration
    )
    with torch.no_grad():
        torch.testing.assert_close(
            student(**example_inputs(teacher)).logits, teacher(**example_inputs(teacher)).logits, rtol=1e-4, atol=1e-4
        )
    low = _student_class(model_type).from_teacher(teacher, rank=2, init=init, calibration=calibration)
    decompositions = decompose_layers(teacher, list(linears), init, calibration)
    again = _student_class(model_type).from_teacher(teacher, rank=2, init=init, decompositions=decompositions)
    for key, tensor in low.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], tensor, rtol=0, atol=0)
    if init != "whitened":
        return
    inputs = _inputs_of_layers(teacher, linears)
    exact = 0
    for name, linear in linears.items():
        x = inputs[name].double()  # (tokens, in)
        w = linear.weight.detach().double()
        target = x @ w.T  # (tokens, out)
        optimum = torch.linalg.svdvals(target)[2:].square().sum()  # best rank-2 output error (Eckart-Young on W X^T)
        error = (x @ low.model.get_submodule(name).merged_weight().double().T - target).square().sum()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        plain = (x @ ((u[:, :2] * s[:2]) @ vh[:2]).T - target).square().sum()
        assert error <= plain * (1 + 1e-4) + 1e-6, name
        if x.shape[0] >= x.shape[1]:  # a full-rank calibration: exactly the optimum
            torch.testing.assert_close(error, optimum, rtol=2e-3, atol=1e-5)
            exact += 1
    assert exact > 0  # some layer had more calibration tokens than input features


def test_data_aware_init_without_calibration_is_refused():
    teacher = tiny_classifier("bert")
    with pytest.raises(ValueError, match="init 'whitened' needs calibration statistics"):
        LowRankForSequenceClassification.from_teacher(teacher, rank=2, init="whitened")
    with pytest.raises(ValueError, match=r"init must be one of \['svd', 'whitened', 'activation', 'fisher'\]"):
        LowRankForSequenceClassification.from_teacher(teacher, rank=2, init="qr")


@pytest.mark.parametrize("model_type", FAMILIES)
def test_save_and_load_through_the_auto_classes(model_type, tmp_path):
    teacher = tiny_classifier(model_type)
    student = _student_class(model_type).from_teacher(teacher, rank=2)
    student.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "lowrank" and config["base_config"]["model_type"] == model_type
    loaded = _auto_class(model_type).from_pretrained(tmp_path)
    assert type(loaded) is type(student)
    inputs = example_inputs(teacher)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)
        backbone = AutoModel.from_pretrained(tmp_path)
        assert isinstance(backbone, LowRankModel)
        torch.testing.assert_close(
            _features(backbone(**inputs)), _features(student.base_model(**inputs)), rtol=0, atol=0
        )


def _features(outputs) -> torch.Tensor:
    return outputs.last_hidden_state if outputs.last_hidden_state is not None else outputs.pooler_output


def test_the_backbone_has_the_task_models_parameter_names_and_loads_from_a_teacher():
    teacher = tiny_classifier("vit")
    task = LowRankForImageClassification.from_teacher(teacher, rank=3)
    backbone = LowRankModel.from_teacher(teacher, rank=3)
    task_keys = set(task.state_dict())
    assert set(backbone.state_dict()) == {key for key in task_keys if not key.startswith("model.classifier.")}
    with torch.no_grad():
        torch.testing.assert_close(
            backbone(**example_inputs(teacher)).last_hidden_state,
            task.base_model(**example_inputs(teacher)).last_hidden_state,
            rtol=0,
            atol=0,
        )


def test_config_validates_its_fields():
    with pytest.raises(StrictDataclassError, match=r"`base_architecture` must name a transformers model class"):
        LowRankConfig(base_architecture="not a class")
    with pytest.raises(
        StrictDataclassError, match=r"`factorized_layers\['vit.layers.0.mlp.fc1'\]` must be a positive integer"
    ):
        LowRankConfig(factorized_layers={"vit.layers.0.mlp.fc1": 0})
    with pytest.raises(StrictDataclassError, match=r"`block_layout` must be a dict with exactly the keys"):
        LowRankConfig(block_layout={"blocks": "x"})
    with pytest.raises(ValueError, match=r"`base_architecture` 'NoSuchModelForImageClassification' is not a"):
        LowRankModel(LowRankConfig(base_architecture="NoSuchModelForImageClassification"))
    with pytest.raises(
        ValueError,
        match=r"LowRankForImageClassification wraps image-classification models, but `base_architecture` is "
        r"'BertForSequenceClassification'",
    ):
        LowRankForImageClassification.from_teacher(tiny_classifier("bert"), rank=2)


def test_config_mirrors_the_base_labels_and_records_the_layout():
    teacher = tiny_classifier("bert")
    teacher.config.id2label = {0: "neg", 1: "neu", 2: "pos"}
    teacher.config.label2id = {"neg": 0, "neu": 1, "pos": 2}
    student = LowRankForSequenceClassification.from_teacher(teacher, rank=2)
    assert student.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert student.config.block_layout == dict(vars(BLOCK_LAYOUTS["bert"]))


def test_an_unlisted_family_is_refused_then_works_with_a_layout_by_hand():
    torch.manual_seed(0)
    teacher = ElectraForSequenceClassification(
        ElectraConfig(vocab_size=40, embedding_size=12, num_labels=3, **TRANSFORMER)
    ).eval()
    with pytest.raises(ValueError, match=r"model_type 'electra' is not in hf_lowrank's block table; supported"):
        LowRankForSequenceClassification.from_teacher(teacher, rank=2)
    layout = BlockLayout(r"(.+\.)?encoder\.layer\.\d+", "attention.output.dense", "output.dense")
    student = LowRankForSequenceClassification.from_teacher(teacher, rank=12, layout=layout)
    assert student.config.block_layout == dict(vars(layout))
    inputs = {"input_ids": torch.randint(3, 40, (2, 7), generator=torch.Generator().manual_seed(1))}
    with torch.no_grad():
        torch.testing.assert_close(student(**inputs).logits, teacher(**inputs).logits, rtol=1e-4, atol=1e-5)
    assert len(BlockOutputRecorder(student).__dict__["_handles"]) == 4  # the recorded layout finds the blocks


def _processor(model_type: str, tmp_path):
    if model_type in TEXT:
        return word_tokenizer(tmp_path)
    return ViTImageProcessorPil(size={"height": 8, "width": 8}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_the_pipeline_of_the_task_runs_the_student(model_type, tmp_path):
    from PIL import Image

    teacher = tiny_classifier(model_type)
    student = _student_class(model_type).from_teacher(teacher, rank=2)
    processor = _processor(model_type, tmp_path)
    directory = tmp_path / "student"
    student.save_pretrained(directory)
    processor.save_pretrained(directory)
    if model_type in TEXT:
        task, example = "text-classification", "the movie was good"
        inputs = processor(example, return_tensors="pt")
    else:
        task, example = "image-classification", Image.new("RGB", (8, 8), (200, 30, 90))
        inputs = processor(example, return_tensors="pt")
    with torch.no_grad():
        expected = student(**inputs).logits.softmax(-1)[0]  # (num_labels,)
    classify = pipeline(task, model=str(directory), top_k=None)
    scores = {item["label"]: item["score"] for item in classify([example])[0]}
    labels = [student.config.id2label[i] for i in range(student.config.num_labels)]
    torch.testing.assert_close(torch.tensor([scores[label] for label in labels]), expected, rtol=1e-4, atol=1e-5)


def test_trust_remote_code_loads_every_family_without_hf_lowrank(tmp_path):
    expected = {}
    for model_type in FAMILIES:
        teacher = tiny_classifier(model_type)
        student = _student_class(model_type).from_teacher(teacher, rank=2)
        student.save_pretrained(tmp_path / model_type)
        inputs = example_inputs(teacher)
        torch.save(inputs, tmp_path / model_type / "inputs.pt")
        with torch.no_grad():
            expected[model_type] = student(**inputs).logits
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_lowrank"] = None  # any `import hf_lowrank` now raises ImportError
        import torch
        from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification
        from transformers import AutoModel
        for model_type in {FAMILIES!r}:
            auto = AutoModelForSequenceClassification if model_type in {TEXT!r} else AutoModelForImageClassification
            directory = {str(tmp_path)!r} + "/" + model_type
            model = auto.from_pretrained(directory, trust_remote_code=True)
            assert "hf_lowrank" not in type(model).__module__, type(model).__module__
            with torch.no_grad():
                logits = model(**torch.load(directory + "/inputs.pt")).logits
            torch.save(logits, directory + "/remote_logits.pt")
            backbone = AutoModel.from_pretrained(directory, trust_remote_code=True)
            assert type(backbone).__name__ == "LowRankModel", type(backbone)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for model_type in FAMILIES:
        remote = torch.load(tmp_path / model_type / "remote_logits.pt")
        torch.testing.assert_close(remote, expected[model_type], rtol=0, atol=0)


def _independent_geometric_loss(student, teacher, inputs) -> torch.Tensor:
    """The geometric loss computed without hf_lowrank's recorders or losses: hooks on each block's attention and
    MLP output modules (by the table), MSE + (1 - cosine) per pair and on the logits."""
    layout = BLOCK_LAYOUTS[teacher.config.model_type]

    def outputs_of(model):
        seen = []
        handles = []
        for _, block in find_blocks(model, layout):
            for relative in (layout.attention_output, layout.mlp_output):
                if relative is not None:
                    handles.append(block.get_submodule(relative).register_forward_hook(lambda m, a, o: seen.append(o)))
        logits = model(**inputs).logits
        for handle in handles:
            handle.remove()
        return seen, logits

    with torch.no_grad():
        teacher_blocks, teacher_logits = outputs_of(teacher)
    student_blocks, student_logits = outputs_of(student)

    def pair(s, t):
        return F.mse_loss(s, t) + (1 - F.cosine_similarity(s, t, dim=-1)).mean()

    return sum(pair(s, t) for s, t in zip(student_blocks, teacher_blocks)) + pair(student_logits, teacher_logits)


@pytest.mark.parametrize("model_type", FAMILIES)
@pytest.mark.parametrize("mode", DISTILLATION_MODES)
def test_one_distillation_step_in_every_mode(model_type, mode, tmp_path):
    teacher = tiny_classifier(model_type)
    student = _student_class(model_type).from_teacher(teacher, rank=1)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():  # moved well away from the teacher (tiny random models all give near-zero logits)
        for parameter in student.parameters():
            parameter += 0.3 * torch.randn(parameter.shape, generator=generator)
    args = DistillationConfig(output_dir=str(tmp_path), distillation_mode=mode, use_cpu=True, report_to="none")
    inputs = example_inputs(teacher)
    labels = torch.tensor([0, 2])
    geometric = mode == "geometric"
    teacher_recorder = BlockOutputRecorder(teacher) if geometric else None
    student_recorder = BlockOutputRecorder(student) if geometric else None
    targets = teacher_targets(teacher, teacher_recorder, inputs)
    per_block = 1 if model_type == "convnext" else 2
    assert len(targets[1]) == (2 * per_block if geometric else 0)
    loss, _ = student_loss(student, student_recorder, inputs, labels, targets[0], targets[1], args)
    if geometric:
        torch.testing.assert_close(loss, _independent_geometric_loss(student, teacher, inputs), rtol=1e-5, atol=1e-6)
    assert loss.item() > 0
    loss.backward()
    factors = [p for n, p in student.named_parameters() if n.endswith((".down", ".up"))]
    assert all(p.grad is not None for p in factors) and any(p.grad.abs().sum() > 0 for p in factors)
    trained = [p for p in student.parameters() if p.grad is not None]
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in trained))
    with torch.no_grad():
        for parameter in trained:  # a step of length 1e-4 down the gradient
            parameter -= 1e-4 * parameter.grad / norm
    after, _ = student_loss(student, student_recorder, inputs, labels, targets[0], targets[1], args)
    assert after.item() < loss.item()  # a short step down the gradient lowers the loss it follows


def test_labels_and_output_flags_are_one_with_the_base_config():
    base = tiny_classifier("vit").config
    config = LowRankConfig(base_config=base, num_labels=5)
    assert config.base_config.num_labels == 5 and config.num_labels == 5  # given here: the head's
    config.id2label = {0: "a", 1: "b"}
    assert config.base_config.id2label == {0: "a", 1: "b"} and config.base_config.num_labels == 2
    config.problem_type = "multi_label_classification"
    config.output_hidden_states = True
    assert config.base_config.problem_type == "multi_label_classification" and config.base_config.output_hidden_states
    model = LowRankForImageClassification(config)
    outputs = model(**example_inputs(tiny_classifier("vit")))
    assert outputs.logits.shape == (2, 2) and outputs.hidden_states is not None
    assert base.num_labels == 3  # the config given is copied, never changed
    assert LowRankConfig(base_config=base).num_labels == 3  # not given: the base's


def test_forward_signatures_name_the_inputs_and_checkpointing_follows_the_base():
    import inspect

    image = LowRankForImageClassification.from_teacher(tiny_classifier("vit"), rank=2)
    text = LowRankForSequenceClassification.from_teacher(tiny_classifier("distilbert"), rank=2)
    assert list(inspect.signature(image.forward).parameters)[:2] == ["pixel_values", "labels"]
    assert list(inspect.signature(text.forward).parameters)[:2] == ["input_ids", "attention_mask"]
    assert LowRankModel.from_teacher(tiny_classifier("vit"), rank=2).main_input_name == "pixel_values"
    image.gradient_checkpointing_enable()  # ViT supports it, so its student does
    image.train()
    loss = image(**example_inputs(tiny_classifier("vit")), labels=torch.tensor([0, 1])).loss
    loss.backward()
    assert image.model.vit.layers[0].gradient_checkpointing


@pytest.mark.parametrize("model_type", FAMILIES)
def test_a_dense_checkpoint_where_factors_are_expected_is_refused(model_type, tmp_path):
    from safetensors.torch import save_file

    teacher = tiny_classifier(model_type)
    student = _student_class(model_type).from_teacher(teacher, rank=2)
    student.save_pretrained(tmp_path)
    dense = {f"model.{key}": tensor.contiguous() for key, tensor in teacher.state_dict().items()}
    save_file(dense, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"holds dense weights where LowRankFor\w+ expects low-rank factors"):
        _auto_class(model_type).from_pretrained(tmp_path)


def test_a_student_pickles_and_deep_copies_with_its_weights_and_init():
    import copy
    import pickle

    teacher = tiny_classifier("vit")
    student = LowRankForImageClassification.from_teacher(teacher, rank=2)
    inputs = example_inputs(teacher)
    for clone in (pickle.loads(pickle.dumps(student)), copy.deepcopy(student)):
        with torch.no_grad():
            torch.testing.assert_close(clone(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)
        assert clone.model._init_weights.owner is clone.model  # the copy initialises itself, not the original


def test_random_factors_have_the_dense_layers_init_scale():
    torch.manual_seed(0)
    config = LowRankForImageClassification.from_teacher(tiny_classifier("vit"), rank=3).config
    model = LowRankForImageClassification(config)
    products = torch.cat([m.merged_weight().flatten() for m in model.modules() if isinstance(m, FactorizedLinear)])
    # up @ down sums rank products of two N(0, s^2) entries, s^2 = initializer_range / sqrt(rank): std 0.02.
    assert abs(float(products.std()) - config.base_config.initializer_range) < 0.003


@pytest.mark.parametrize("model_type", ["clip", "swin", "convnext", "distilbert"])
def test_diagnostics_of_every_kind_of_backbone(model_type):
    from datasets import Dataset

    from hf_lowrank.diagnostics import diagnose_model

    teacher = tiny_classifier(model_type)
    inputs = {key: value.repeat(4, *[1] * (value.ndim - 1)) for key, value in example_inputs(teacher).items()}
    rows = Dataset.from_dict({**{k: v.numpy() for k, v in inputs.items()}, "labels": [0] * 8, "index": list(range(8))})
    for model in (teacher, _student_class(model_type).from_teacher(teacher, rank=2)):
        summary = diagnose_model(model, rows.with_format("torch"), max_examples=8)
        assert summary["num_examples"] == 8 and summary["pooled_dim"] > 0


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_an_attention_implementation_asked_of_the_student_reaches_its_base_model(implementation, tmp_path):
    LowRankForSequenceClassification.from_teacher(tiny_classifier("bert"), rank=2).save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation=implementation)
    assert model.config._attn_implementation == implementation
    assert model.model.config._attn_implementation == implementation  # what the BERT layers run
