import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    BertConfig,
    BertForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    pipeline,
)

from hf_lowrank import (
    BridgedViTForImageClassification,
    FactorizedLinear,
    FactorizedViTConfig,
    FactorizedViTForImageClassification,
    FactorizedViTModel,
    LowRankForImageClassification,
    LowRankModel,
    count_parameters,
)
from hf_lowrank.models import VIT_B32_CIFAR100, check_safetensors_files, resolve_pretrained_source
from hf_lowrank.models.modeling_factorized_vit import lowrank_config_of

from remote_code import remote_code_logits
from vit_tester import TinyViTTester


tester = TinyViTTester()
FIXTURE = Path(__file__).parent / "fixtures" / "v0_1_0" / "factorized_vit"  # saved by hf_lowrank 0.1.0


def _save_student(student, directory):
    student.save_pretrained(directory)
    size = {"height": tester.image_size, "width": tester.image_size}
    ViTImageProcessorPil(size=size).save_pretrained(directory)
    return directory


# ---------------------------------------------------------------- configuration


def test_config_is_a_vit_config_with_its_own_model_type():
    config = tester.get_factorized_config(rank=5, rank_pattern={"fc2": 7}, exclude_modules=["o_proj"])
    assert isinstance(config, ViTConfig) and config.model_type == "factorized_vit"
    reloaded = FactorizedViTConfig.from_dict(config.to_dict())
    assert (reloaded.rank, reloaded.rank_pattern, reloaded.exclude_modules) == (5, {"fc2": 7}, ["o_proj"])
    assert config.rank_spec() == {"fc2": 7, ".*": 5}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": -3}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"rank": "8"}, "rank"),
        ({"rank_pattern": {"fc1": 0}}, "rank_pattern"),
        ({"rank_pattern": {"fc1": 1.5}}, "rank_pattern"),
        ({"rank_pattern": {"(": 4}}, "rank_pattern"),
        ({"exclude_modules": [""]}, "exclude_modules"),
        ({"exclude_modules": ["[unclosed"]}, "exclude_modules"),
    ],
)
def test_config_rejects_bad_fields_naming_them(kwargs, field):
    with pytest.raises(StrictDataclassError) as error:
        tester.get_factorized_config(**kwargs)
    assert field in str(error.value)


def test_rank_above_a_layer_dimension_names_the_layer():
    with pytest.raises(ValueError) as error:
        FactorizedViTForImageClassification(tester.get_factorized_config(rank=19))
    assert "layers.0.attention.q_proj" in str(error.value) and "[1, 18]" in str(error.value)


def test_rank_pattern_that_names_no_layer_is_an_error():
    with pytest.raises(ValueError, match="fc3"):
        FactorizedViTModel(tester.get_factorized_config(rank=4, rank_pattern={"fc3": 2}))


# ---------------------------------------------------------------- structure


def test_a_factorized_vit_is_the_lowrank_student_of_a_vit():
    """FactorizedViT is an alias: constructing one gives the LowRank student its config describes."""
    config = tester.get_factorized_config(rank=4, rank_pattern={"fc2": 6})
    model = FactorizedViTForImageClassification(config)
    assert (
        type(model) is LowRankForImageClassification and model.config.base_architecture == "ViTForImageClassification"
    )
    factorized = {name: m for name, m in model.named_modules() if isinstance(m, FactorizedLinear)}
    assert set(factorized) == {f"model.vit.{name}" for name in tester.encoder_linear_names}
    assert {m.rank for name, m in factorized.items() if name.endswith("fc2")} == {6}
    assert {m.rank for name, m in factorized.items() if not name.endswith("fc2")} == {4}
    assert model.config.factorized_layers == {name.removeprefix("model."): m.rank for name, m in factorized.items()}
    assert isinstance(model.model.classifier, nn.Linear)
    assert isinstance(model.model.vit.embeddings.patch_embeddings.projection, nn.Conv2d)
    assert model.config.id2label == config.id2label
    assert lowrank_config_of(model.config) is model.config


def test_exclude_modules_keeps_layers_dense():
    model = FactorizedViTModel(tester.get_factorized_config(rank=4, exclude_modules=["o_proj", "layers.1.mlp"]))
    assert type(model) is LowRankModel
    layers = model.base_model.layers
    assert isinstance(layers[0].attention.o_proj, nn.Linear)
    assert isinstance(layers[1].mlp.fc1, nn.Linear) and isinstance(layers[0].mlp.fc1, FactorizedLinear)


def test_random_init_product_has_initializer_range_scale():
    config = tester.get_factorized_config(rank=6, hidden_size=60, num_attention_heads=3, intermediate_size=120)
    model = FactorizedViTModel(config)
    product = model.base_model.layers[0].mlp.fc1.merged_weight()
    assert 0.5 * config.initializer_range < product.std().item() < 2.0 * config.initializer_range
    assert torch.all(model.base_model.layers[0].mlp.fc1.bias == 0)


def test_forward_shapes_and_hidden_states():
    model = FactorizedViTForImageClassification(tester.get_factorized_config(rank=3)).eval()
    outputs = model(tester.pixel_values(), output_hidden_states=True)
    assert outputs.logits.shape == (tester.batch_size, tester.num_labels)
    assert len(outputs.hidden_states) == tester.num_hidden_layers + 1
    assert outputs.hidden_states[-1].shape == (tester.batch_size, 10, tester.hidden_size)
    labels = torch.arange(tester.batch_size) % tester.num_labels
    loss = model(tester.pixel_values(), labels=labels).loss
    torch.testing.assert_close(loss, nn.functional.cross_entropy(outputs.logits, labels))


# ---------------------------------------------------------------- from_teacher


def test_from_teacher_at_full_rank_reproduces_the_teacher():
    teacher = tester.create_teacher()
    with pytest.warns(UserWarning, match="break-even"):
        student = FactorizedViTForImageClassification.from_teacher(teacher, rank=tester.hidden_size)
    pixel_values = tester.pixel_values()
    torch.testing.assert_close(student(pixel_values).logits, teacher(pixel_values).logits, rtol=1e-4, atol=1e-4)


def test_from_teacher_copies_dense_weights_and_truncates_the_rest():
    teacher = tester.create_teacher()
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank=3)
    teacher_state, student_state = teacher.state_dict(), student.state_dict()
    for key in (
        "vit.embeddings.cls_token",
        "vit.embeddings.position_embeddings",
        "vit.layernorm.weight",
        "vit.layers.1.layernorm_after.bias",
        "classifier.weight",
        "vit.layers.0.mlp.fc1.bias",
    ):
        torch.testing.assert_close(student_state[f"model.{key}"], teacher_state[key], rtol=0, atol=0)
    weight = teacher.vit.layers[1].attention.v_proj.weight.detach().double().numpy()
    u, s, vt = np.linalg.svd(weight)
    merged = student.model.vit.layers[1].attention.v_proj.merged_weight().double().numpy()
    np.testing.assert_allclose(merged, (u[:, :3] * s[:3]) @ vt[:3], atol=1e-5)
    assert student.config.id2label == teacher.config.id2label
    assert not student.training


def test_from_teacher_with_energy_fraction_stores_per_layer_ranks():
    teacher = tester.create_teacher()
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank=0.6)
    assert set(student.config.factorized_layers) == {f"vit.{name}" for name in tester.encoder_linear_names}
    for name, rank in student.config.factorized_layers.items():
        weight = teacher.get_submodule(name).weight.detach().double()
        energy = np.cumsum(torch.linalg.svdvals(weight).numpy() ** 2)
        assert rank == int(np.searchsorted(energy / energy[-1], 0.6) + 1)
        assert student.model.get_submodule(name).rank == rank


def test_from_teacher_with_mapping_leaves_unmatched_layers_dense(tmp_path):
    teacher = tester.create_teacher()
    student = FactorizedViTForImageClassification.from_teacher(teacher, rank={"fc1": 4, "q_proj": 2})
    layers = student.model.vit.layers
    assert isinstance(layers[0].attention.k_proj, nn.Linear)
    assert layers[1].mlp.fc1.rank == 4 and layers[0].attention.q_proj.rank == 2
    # The stored config rebuilds exactly this structure.
    _save_student(student, tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert isinstance(reloaded.model.vit.layers[0].attention.k_proj, nn.Linear)
    torch.testing.assert_close(reloaded(tester.pixel_values()).logits, student(tester.pixel_values()).logits)


def test_from_teacher_loads_a_teacher_from_a_path(tmp_path):
    teacher = tester.create_teacher()
    teacher.save_pretrained(tmp_path)
    student = FactorizedViTForImageClassification.from_teacher(str(tmp_path), rank=5)
    reference = FactorizedViTForImageClassification.from_teacher(teacher, rank=5)
    torch.testing.assert_close(student(tester.pixel_values()).logits, reference(tester.pixel_values()).logits)


def test_from_teacher_rejects_non_vit_models():
    bert = BertForSequenceClassification(
        BertConfig(hidden_size=18, num_attention_heads=3, intermediate_size=37, num_hidden_layers=1, vocab_size=20)
    )
    with pytest.raises(TypeError, match="ViTForImageClassification"):
        FactorizedViTForImageClassification.from_teacher(bert, rank=4)


# ---------------------------------------------------------------- saving and loading


def test_save_load_round_trip_through_auto_classes(tmp_path):
    """A FactorizedViT student saves as the LowRank student it is, and loads back through the Auto classes."""
    student = FactorizedViTForImageClassification.from_teacher(tester.create_teacher(), rank=4)
    _save_student(student, tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    saved_config = json.loads((tmp_path / "config.json").read_text())
    assert saved_config["model_type"] == "lowrank" and set(saved_config["factorized_layers"].values()) == {4}
    assert saved_config["id2label"]["3"] == "digit-3"
    processor_type = json.loads((tmp_path / "preprocessor_config.json").read_text())["image_processor_type"]
    assert processor_type.startswith("ViTImageProcessor")
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(reloaded) is LowRankForImageClassification
    pixel_values = tester.pixel_values()
    torch.testing.assert_close(reloaded(pixel_values).logits, student(pixel_values).logits, rtol=0, atol=0)
    again = FactorizedViTForImageClassification.from_pretrained(tmp_path)  # a LowRank checkpoint, as it is
    torch.testing.assert_close(again(pixel_values).logits, student(pixel_values).logits, rtol=0, atol=0)
    backbone = FactorizedViTModel.from_pretrained(tmp_path)
    assert type(backbone) is LowRankModel
    torch.testing.assert_close(
        backbone(pixel_values).last_hidden_state, student.model.vit(pixel_values).last_hidden_state, rtol=0, atol=0
    )
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), ViTImageProcessorPil)


def _factorized_vit_checkpoint(directory, backbone_only=False):
    """The 0.1.0 FactorizedViT fixture (keys `vit.*`, `classifier.*`), or its bare backbone (keys `embeddings.*`,
    `layers.*`, `layernorm.*`) as a `FactorizedViTModel` saved it, with model type `factorized_vit`."""
    shutil.copytree(FIXTURE, directory)
    if backbone_only:
        tensors = load_file(directory / "model.safetensors")
        backbone = {key.removeprefix("vit."): value for key, value in tensors.items() if key.startswith("vit.")}
        save_file(backbone, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def test_a_0_1_0_checkpoint_loads_as_the_lowrank_student_with_the_same_weights(tmp_path):
    directory = _factorized_vit_checkpoint(tmp_path / "student")
    tensors = load_file(directory / "model.safetensors")
    model, info = FactorizedViTForImageClassification.from_pretrained(directory, output_loading_info=True)
    assert type(model) is LowRankForImageClassification
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state = model.state_dict()
    assert set(state) == {f"model.{key}" for key in tensors}
    assert all(torch.equal(state[f"model.{key}"], value) for key, value in tensors.items())
    config = json.loads((directory / "config.json").read_text())
    assert set(model.config.factorized_layers.values()) == {config["rank"]}


def test_weights_a_checkpoint_lacks_are_initialised_and_reported(tmp_path):
    directory = _factorized_vit_checkpoint(tmp_path / "student")
    tensors = load_file(directory / "model.safetensors")
    del tensors["vit.layers.1.mlp.fc2.up"]  # one factor lost: initialised, listed, not an error
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    model, info = AutoModelForImageClassification.from_pretrained(directory, output_loading_info=True)
    assert set(info["missing_keys"]) == {"model.vit.layers.1.mlp.fc2.up"}
    torch.testing.assert_close(model.model.vit.layers[0].mlp.fc2.up, tensors["vit.layers.0.mlp.fc2.up"])

    # Another rank: shapes differ; with ignore_mismatched_sizes they are initialised and reported.
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "rank": config["rank"] + 1}))
    with pytest.raises((ValueError, RuntimeError), match="(?i)mismatch|size"):
        FactorizedViTForImageClassification.from_pretrained(directory)
    model, info = FactorizedViTForImageClassification.from_pretrained(
        directory, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert model.model.vit.layers[0].mlp.fc1.rank == config["rank"] + 1 and len(info["mismatched_keys"]) > 0


def test_classifier_head_is_initialised_from_a_backbone_checkpoint_and_num_labels_can_change(tmp_path):
    backbone_dir = _factorized_vit_checkpoint(tmp_path / "backbone", backbone_only=True)
    tensors = load_file(backbone_dir / "model.safetensors")
    model, info = FactorizedViTForImageClassification.from_pretrained(backbone_dir, output_loading_info=True)
    assert {"model.classifier.weight", "model.classifier.bias"} <= set(info["missing_keys"])
    torch.testing.assert_close(
        model.model.vit.layers[1].attention.q_proj.down, tensors["layers.1.attention.q_proj.down"]
    )
    bare = FactorizedViTModel.from_pretrained(backbone_dir)
    torch.testing.assert_close(bare.base_model.layers[0].mlp.fc1.up, tensors["layers.0.mlp.fc1.up"])
    head_dir = _factorized_vit_checkpoint(tmp_path / "head")
    relabelled = FactorizedViTForImageClassification.from_pretrained(
        head_dir, num_labels=3, ignore_mismatched_sizes=True
    )
    assert relabelled.model.classifier.out_features == 3 and relabelled.config.num_labels == 3
    torch.testing.assert_close(
        relabelled.model.vit.layers[0].mlp.fc1.up, load_file(head_dir / "model.safetensors")["vit.layers.0.mlp.fc1.up"]
    )


def test_dense_vit_checkpoint_is_not_silently_loaded_as_a_student(tmp_path):
    teacher = tester.create_teacher()
    teacher.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "factorized_vit", "rank": 4}))
    with pytest.raises(ValueError, match="from_teacher") as error:
        FactorizedViTForImageClassification.from_pretrained(tmp_path)
    assert "vit.layers.0.attention.q_proj" in str(error.value) and "12 layer(s)" in str(error.value)


def test_trust_remote_code_load_without_hf_lowrank(tmp_path):
    student = FactorizedViTForImageClassification.from_teacher(tester.create_teacher(), rank=4)
    model_dir = _save_student(student, tmp_path / "student")
    pixel_values = tester.pixel_values()
    logits = remote_code_logits(model_dir, pixel_values, tmp_path)
    torch.testing.assert_close(logits, student(pixel_values).logits, rtol=0, atol=0)
    for name in ("modeling_lowrank.py", "configuration_lowrank.py", "factorized_linear.py"):
        assert (model_dir / name).exists()


def test_pipeline_returns_labelled_predictions(tmp_path):
    student = FactorizedViTForImageClassification.from_teacher(tester.create_teacher(), rank=4)
    model_dir = _save_student(student, tmp_path)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (tester.image_size, tester.image_size, 3), dtype=np.uint8))
    classifier = pipeline("image-classification", model=str(model_dir), top_k=tester.num_labels)
    predictions = classifier(image)

    processor = ViTImageProcessorPil.from_pretrained(model_dir)
    probabilities = student(**processor(image, return_tensors="pt")).logits.softmax(-1)[0]
    expected = sorted(((f"digit-{i}", p.item()) for i, p in enumerate(probabilities)), key=lambda kv: -kv[1])
    assert [p["label"] for p in predictions] == [label for label, _ in expected]
    np.testing.assert_allclose([p["score"] for p in predictions], [score for _, score in expected], rtol=1e-5)


# ---------------------------------------------------------------- parameter accounting


def test_vit_b32_geometry_rank_32_is_about_11x_smaller():
    # ViT-B/32 on CIFAR-100 geometry; built on the meta device: nothing is allocated or downloaded.
    geometry = VIT_B32_CIFAR100  # 768 wide, 12 blocks, MLP 3072, 224x224 inputs, patches of 32, 100 labels
    with torch.device("meta"):
        dense = ViTForImageClassification(ViTConfig(**geometry))
        student = FactorizedViTForImageClassification(FactorizedViTConfig(**geometry, rank=32))
    d, f, r, layers = 768, 3072, 32, 12
    # Closed form, independent of hf_lowrank's accounting.
    embeddings = 3 * 32 * 32 * d + d + d + (49 + 1) * d  # patch conv + bias, CLS, positions
    norms_per_block = 2 * 2 * d
    head = d * 100 + 100 + 2 * d  # classifier + final layer norm
    dense_block = 4 * (d * d + d) + (d * f + f) + (f * d + d) + norms_per_block
    factorized_block = 4 * (r * 2 * d + d) + (r * (d + f) + f) + (r * (f + d) + d) + norms_per_block
    assert count_parameters(dense) == embeddings + layers * dense_block + head
    assert count_parameters(student) == embeddings + layers * factorized_block + head
    assert count_parameters(dense) / count_parameters(student) >= 10


# ---------------------------------------------------------------- teachers and checkpoints named by a string


def _save_tiny_bert(directory):
    bert = BertForSequenceClassification(
        BertConfig(hidden_size=18, num_attention_heads=3, intermediate_size=37, num_hidden_layers=1, vocab_size=20)
    )
    bert.save_pretrained(directory)
    return directory


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_from_teacher_refuses_a_local_checkpoint_of_another_family_before_loading_it(tmp_path):
    bert_dir = _save_tiny_bert(tmp_path / "bert")
    with pytest.raises(ValueError) as error:
        FactorizedViTForImageClassification.from_teacher(str(bert_dir), rank=4)
    assert str(error.value) == (
        f"teacher {str(bert_dir)!r} is a BertForSequenceClassification (model_type 'bert'); teacher must be a model "
        "of model_type 'vit'."
    )


def test_from_teacher_path_that_does_not_exist_says_so(tmp_path):
    for missing in (str(tmp_path / "no" / "such" / "teacher"), "./no-such-teacher", "~/no-such/teacher", "a/b/c"):
        with pytest.raises(ValueError) as error:
            FactorizedViTForImageClassification.from_teacher(missing, rank=4)
        message = str(error.value)
        assert message.startswith(f"teacher {missing!r} does not exist: there is no such local directory")
        assert "Repo id must" not in message


def test_from_teacher_hub_id_found_neither_locally_nor_on_the_hub_says_both():
    with pytest.raises(ValueError) as error:
        FactorizedViTForImageClassification.from_teacher("no-such-user/no-such-teacher", rank=4)
    assert str(error.value).startswith(
        "teacher 'no-such-user/no-such-teacher': no local directory 'no-such-user/no-such-teacher' and no Hub model "
        "'no-such-user/no-such-teacher': "
    )
    assert isinstance(error.value.__cause__, OSError)  # transformers' own error, kept as the cause


def test_resolve_pretrained_source_reads_the_config_of_a_local_directory(tmp_path):
    tester.create_teacher().save_pretrained(tmp_path)
    source = resolve_pretrained_source(tmp_path, argument="--teacher")
    assert source.name_or_path == str(tmp_path) and source.is_local
    assert source.config.model_type == "vit" and source.config.num_labels == tester.num_labels
    with pytest.raises(ValueError, match=r"^--teacher '.*' is a file; give the directory of a saved model"):
        resolve_pretrained_source(tmp_path / "config.json", argument="--teacher")
    assert resolve_pretrained_source(_save_tiny_bert(tmp_path / "bert"), model_types=None).config.model_type == "bert"


def test_truncated_safetensors_file_is_named_by_from_pretrained_and_from_teacher(tmp_path):
    student = FactorizedViTForImageClassification.from_teacher(tester.create_teacher(), rank=4)
    model_dir = _save_student(student, tmp_path / "student")
    _truncate(model_dir / "model.safetensors")
    expected = f"{model_dir / 'model.safetensors'} is not a readable safetensors file (truncated or corrupt?): "
    with pytest.raises(ValueError, match=re.escape(expected)):
        FactorizedViTForImageClassification.from_pretrained(model_dir)
    with pytest.raises(ValueError, match=re.escape(expected)):
        AutoModelForImageClassification.from_pretrained(model_dir)
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_safetensors_files(model_dir)

    teacher_dir = tmp_path / "teacher"
    tester.create_teacher().save_pretrained(teacher_dir)
    assert check_safetensors_files(teacher_dir) == [str(teacher_dir / "model.safetensors")]
    _truncate(teacher_dir / "model.safetensors")
    with pytest.raises(ValueError, match=re.escape(f"{teacher_dir / 'model.safetensors'} is not a readable")):
        FactorizedViTForImageClassification.from_teacher(teacher_dir, rank=4)


def test_from_teacher_accepts_numpy_and_torch_integer_ranks():
    teacher = tester.create_teacher()
    reference = FactorizedViTForImageClassification.from_teacher(teacher, rank=4)
    for rank in (np.int64(4), torch.tensor(4)):
        student = FactorizedViTForImageClassification.from_teacher(
            teacher, rank=rank, rank_pattern={"fc2": np.int64(3)}
        )
        ranks = student.config.factorized_layers
        assert all(type(rank) is int for rank in ranks.values())
        assert {rank for name, rank in ranks.items() if name.endswith("fc2")} == {3}
        assert {rank for name, rank in ranks.items() if not name.endswith("fc2")} == {4}
        assert student.model.vit.layers[0].mlp.fc1.rank == 4 and student.model.vit.layers[0].mlp.fc2.rank == 3
    assert reference.model.vit.layers[0].mlp.fc2.rank == 4


@pytest.mark.parametrize("path", ["outputs/sweep/rank-999", "./nothing-here"])
def test_from_pretrained_of_a_path_that_does_not_exist_says_so(tmp_path, monkeypatch, path):
    """transformers answers "Repo id must be in the form ..." for a relative path that is not there."""
    monkeypatch.chdir(tmp_path)
    for model_class in (FactorizedViTForImageClassification, BridgedViTForImageClassification):
        with pytest.raises(FileNotFoundError, match=f"'{path}' does not exist: there is no such local directory"):
            model_class.from_pretrained(path)
