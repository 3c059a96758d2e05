"""The sweep on every teacher family: the embedded teachers of six families, a text teacher on a CSV file, a family
named by hand, resume, and each bad input refused before any training."""

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    ConvNextConfig,
    ConvNextForImageClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    pipeline,
)

from hf_lowrank.data import collate_examples, model_inputs
from hf_lowrank.sweep import SweepError, run_sweep

import sweep as sweep_script
from families import TRANSFORMER
from sweep_helpers import sweep_argv, text_csv, word_tokenizer


TINIEST = ["--max_train_samples", 64, "--max_test_samples", 40, "--teacher_num_train_epochs", 1]
TINIEST += ["--num_train_epochs", 1, "--diagnostics_examples", 16]


def _run(argv) -> dict:
    sweep, training = sweep_script.parse([str(a) for a in argv])
    run_sweep(sweep, training)
    return json.loads((Path(training.output_dir) / "results.json").read_text())


def _accuracy(model, dataset) -> float:
    """Test accuracy computed here, batch by batch, independently of the sweep's evaluation."""
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), 16):
            batch = collate_examples([dataset[i] for i in range(start, min(start + 16, len(dataset)))])
            correct += int((model(**model_inputs(batch)).logits.argmax(-1) == batch["labels"]).sum())
    return correct / len(dataset)


@pytest.mark.parametrize("architecture", ["vit", "deit", "beit", "dinov2", "swin", "convnext"])
def test_embedded_teacher_of_every_family_runs_the_sweep(architecture, tmp_path):
    out = tmp_path / "out"
    payload = _run(sweep_argv(out, "--teacher_architecture", architecture, "--ranks", 2, 48, *TINIEST))
    teacher = payload["teacher"]
    assert teacher["model_type"] == architecture and teacher["task"] == "image-classification"
    assert [r["rank"] for r in payload["ranks"]] == [2, 48] and all(r["status"] == "done" for r in payload["ranks"])
    student = AutoModelForImageClassification.from_pretrained(out / "rank-002")
    assert type(student).__name__ == "LowRankForImageClassification"  # one student class for every family
    assert student.config.base_config.model_type == architecture
    from hf_lowrank.data import load_image_classification_data, preprocess

    data = load_image_classification_data(max_train_samples=64, max_test_samples=40)
    processed = preprocess(data, ViTImageProcessorPil.from_pretrained(out / "teacher"))
    record = payload["ranks"][0]
    assert _accuracy(student.eval(), processed["test"]) == pytest.approx(record["accuracy"], abs=1e-9)
    card = (out / "rank-002" / "README.md").read_text()
    assert "pipeline_tag: image-classification" in card


def test_a_hierarchical_family_resumes_without_retraining(tmp_path):
    argv = sweep_argv(tmp_path, "--teacher_architecture", "swin", "--ranks", 4, *TINIEST)
    first = _run(argv)
    again = _run(argv)
    assert again["ranks"] == first["ranks"] and again["teacher"] == first["teacher"]


def _text_teacher(tmp_path, model_class=BertForSequenceClassification, config=None, tokenizer=True) -> str:
    torch.manual_seed(0)
    config = config or BertConfig(vocab_size=16, max_position_embeddings=32, **TRANSFORMER)
    directory = tmp_path / "text-teacher"
    model_class(config).save_pretrained(directory)
    if tokenizer:
        word_tokenizer(tmp_path).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def text_sweep(tmp_path_factory):
    """A BERT text teacher on a CSV file, swept at ranks 2 and 12 once for the module: (output_dir, its results.json).
    Tests only read it; one that pushes it copies it first."""
    root = tmp_path_factory.mktemp("text-sweep")
    data = text_csv(root / "reviews.csv")
    out = root / "out"
    payload = _run(
        sweep_argv(out, "--teacher", _text_teacher(root), "--dataset", data, "--ranks", 2, 12, *TINIEST[2:])
    )
    return out, payload


def test_text_teacher_on_a_csv_file_runs_the_whole_sweep(text_sweep, tmp_path):
    out, payload = text_sweep
    teacher = payload["teacher"]
    assert teacher["model_type"] == "bert" and teacher["task"] == "text-classification"
    assert payload["dataset"]["label_names"] == ["neg", "pos"] and payload["dataset"]["num_test"] == 24
    assert teacher["noise_accuracy"] == {} and teacher["diagnostics"]["num_examples"] == 16  # no noise on token ids
    diagnostics = json.loads((out / "teacher" / "diagnostics.json").read_text())
    assert diagnostics["pooled_dim"] == 12 and diagnostics["layers"][-1]["dim"] == 12
    assert all(r["status"] == "done" for r in payload["ranks"])
    student = AutoModelForSequenceClassification.from_pretrained(out / "rank-002").eval()
    assert type(student).__name__ == "LowRankForSequenceClassification"
    classify = pipeline("text-classification", model=str(out / "rank-002"))
    sentence = "the movie was great"
    inputs = word_tokenizer(tmp_path)(sentence, return_tensors="pt")
    with torch.no_grad():
        expected = student.config.id2label[int(student(**inputs).logits.argmax(-1))]
    assert classify(sentence)[0]["label"] == expected
    report = (out / "report.md").read_text()
    assert "per-text SVD rank (p99)" in report and "padding tokens included" in report and "image" not in report
    card = (out / "rank-002" / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and 'pipeline("text-classification"' in card
    assert "AutoModelForSequenceClassification" in card and "AutoTokenizer" in card


def test_a_family_named_by_hand_runs_and_a_pattern_matching_nothing_is_refused(tmp_path):
    data = text_csv(tmp_path / "reviews.csv")
    config = ElectraConfig(vocab_size=16, embedding_size=12, max_position_embeddings=32, **TRANSFORMER)
    teacher = _text_teacher(tmp_path, ElectraForSequenceClassification, config)
    with pytest.raises(SweepError, match=r"model_type 'electra'.*--block_pattern"):
        _run(sweep_argv(tmp_path / "refused", "--teacher", teacher, "--dataset", data, "--ranks", 2))
    nothing = ["--block_pattern", r"nothing\.\d+", "--block_mlp_output", "output.dense"]
    with pytest.raises(SweepError, match=r"--block_pattern 'nothing\\\\.\\\\d\+': the block pattern .* matches no"):
        _run(sweep_argv(tmp_path / "nothing", "--teacher", teacher, "--dataset", data, "--ranks", 2, *nothing))
    assert not (tmp_path / "nothing" / "results.json").exists()
    by_hand = ["--block_pattern", r"(.+\.)?encoder\.layer\.\d+", "--block_mlp_output", "output.dense"]
    by_hand += ["--block_attention_output", "attention.output.dense"]
    out = tmp_path / "out"
    payload = _run(sweep_argv(out, "--teacher", teacher, "--dataset", data, "--ranks", 3, *by_hand, *TINIEST[2:]))
    assert payload["teacher"]["model_type"] == "electra" and payload["ranks"][0]["status"] == "done"
    student = AutoModelForSequenceClassification.from_pretrained(out / "rank-003")
    assert student.config.block_layout["mlp_output"] == "output.dense"
    assert set(student.config.factorized_layers.values()) == {3}


def _vit_teacher(tmp_path) -> str:
    directory = tmp_path / "vit-teacher"
    config = ViTConfig(image_size=8, patch_size=2, num_labels=10, **TRANSFORMER)
    ViTForImageClassification(config).save_pretrained(directory)
    ViTImageProcessorPil(size={"height": 8, "width": 8}).save_pretrained(directory)
    return str(directory)


def test_a_text_dataset_for_an_image_teacher_and_the_reverse_are_refused(tmp_path):
    data = text_csv(tmp_path / "reviews.csv")
    with pytest.raises(
        SweepError, match=r"is a text dataset \(columns: sentence \(string\), sentiment \(string\)\).*image classifier"
    ):
        _run(sweep_argv(tmp_path / "a", "--teacher", _vit_teacher(tmp_path), "--dataset", data, "--ranks", 2))
    with pytest.raises(SweepError, match=r"is an image dataset \(columns: image \(Image\), label \(ClassLabel\)\)"):
        _run(sweep_argv(tmp_path / "b", "--teacher", _text_teacher(tmp_path), "--ranks", 2))
    assert not os.path.exists(tmp_path / "a" / "results.json") and not os.path.exists(tmp_path / "b" / "results.json")


def test_a_teacher_without_its_processor_is_refused_before_loading_weights(tmp_path):
    config = ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    ConvNextForImageClassification(config).save_pretrained(tmp_path / "convnext")
    with pytest.raises(SweepError, match=r"cannot load its image processor .* An image teacher needs its image"):
        _run(sweep_argv(tmp_path / "out", "--teacher", tmp_path / "convnext", "--ranks", 2))
    data = text_csv(tmp_path / "reviews.csv")
    with pytest.raises(SweepError, match=r"cannot load its tokenizer .* A text teacher needs its tokenizer saved"):
        _run(sweep_argv(tmp_path / "t", "--teacher", _text_teacher(tmp_path, tokenizer=False), "--dataset", data))


def test_rank_above_the_families_smallest_layer_and_vit_only_students_are_refused(tmp_path):
    with pytest.raises(SweepError, match=r"swin students \(48 -> 48\) must be an integer in \[1, 48\], got 49"):
        _run(sweep_argv(tmp_path / "a", "--teacher_architecture", "swin", "--ranks", 2, 49))
    with pytest.raises(SweepError, match=r"is a convnext model: --student_bridge lift builds ViT students only"):
        _run(sweep_argv(tmp_path / "b", "--teacher_architecture", "convnext", "--student_bridge", "lift"))
    with pytest.raises(SweepError, match=r"--teacher_architecture deit chooses the embedded teacher's family"):
        sweep_script.parse(["--teacher", "x", "--teacher_architecture", "deit", "--output_dir", str(tmp_path)])
    assert not (tmp_path / "a" / "teacher").exists()


def test_lora_teacher_stage_on_a_text_teacher_merges_into_a_plain_classifier(tmp_path):
    data = text_csv(tmp_path / "reviews.csv")
    out = tmp_path / "out"
    argv = sweep_argv(out, "--teacher", _text_teacher(tmp_path), "--dataset", data, "--ranks", 2, *TINIEST[2:])
    payload = _run([*argv, "--teacher_finetune", "lora", "--lora_rank", 2])
    assert payload["teacher"]["finetune"] == "lora"
    teacher = AutoModelForSequenceClassification.from_pretrained(out / "teacher")
    assert type(teacher).__name__ == "BertForSequenceClassification"
    assert not any("lora" in name for name in teacher.state_dict())
    before = BertForSequenceClassification.from_pretrained(_text_teacher(tmp_path / "again"))
    changed = [
        name
        for name, tensor in teacher.state_dict().items()
        if name in before.state_dict() and not torch.equal(tensor, before.state_dict()[name])
    ]
    encoder = [name for name in changed if ".encoder.layer." in name]
    assert encoder and all(name.endswith(".weight") for name in encoder)  # LoRA merged into the encoder linears
    assert all(".encoder." in name or name.startswith(("classifier.", "bert.pooler.")) for name in changed)


def test_a_text_sweep_pushes_its_students_and_they_load_back_from_the_hub(text_sweep, tmp_path, monkeypatch):
    import shutil
    import subprocess
    import sys
    import textwrap

    from hf_lowrank.hub import push_sweep

    from fake_hub import FakeHub

    out = tmp_path / "out"
    shutil.copytree(text_sweep[0], out)  # the module's text sweep, pushed from a copy of its own
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    token = "hf_test_secret_token_123"
    with FakeHub(token) as hub:
        repo_ids = push_sweep(out, "text-sweep", token=token, endpoint=hub.url, backoff=0.01)
        files = hub.repos[repo_ids[2]]["files"]
        assert {"model.safetensors", "config.json", "modeling_lowrank.py", "README.md"} <= set(files)
        assert {"tokenizer_config.json"} <= set(files) and ("vocab.txt" in files or "tokenizer.json" in files)
        assert "pipeline_tag: text-classification" in files["README.md"].decode()
        script = textwrap.dedent(f"""
            import sys, torch
            sys.modules["hf_lowrank"] = None
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            model = AutoModelForSequenceClassification.from_pretrained({repo_ids[2]!r}, trust_remote_code=True)
            tokenizer = AutoTokenizer.from_pretrained({repo_ids[2]!r})
            torch.save(model(**tokenizer(["the movie was great"], return_tensors="pt")).logits, sys.argv[1])
        """)
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf-home")}
        env["HF_HUB_DISABLE_XET"] = "1"
        env.pop("HF_TOKEN", None)
        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "remote.pt")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    student = AutoModelForSequenceClassification.from_pretrained(out / "rank-002").eval()
    with torch.no_grad():
        expected = student(**word_tokenizer(tmp_path)(["the movie was great"], return_tensors="pt")).logits
    torch.testing.assert_close(torch.load(tmp_path / "remote.pt"), expected, rtol=0, atol=0)


@pytest.mark.slow
def test_a_two_process_text_sweep_trains_on_both_processes(tmp_path):
    import subprocess

    from sweep_helpers import REPO, SWEEP_SCRIPT, TWO_PROCESSES

    data = text_csv(tmp_path / "reviews.csv")
    argv = sweep_argv(tmp_path / "ddp", "--teacher", _text_teacher(tmp_path), "--dataset", data, "--ranks", 2, 4)
    argv += [str(a) for a in ["--teacher_num_train_epochs", 2, "--per_device_train_batch_size", 16]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [*TWO_PROCESSES, str(SWEEP_SCRIPT), *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert (
        payload["config"]["environment"]["num_processes"] == 2 and payload["teacher"]["task"] == "text-classification"
    )
    # 96 training examples, 2 epochs of students: each process trains on its half of every batch.
    for record in payload["ranks"]:
        first, second = record["examples_per_process"]
        assert record["status"] == "done" and first == second and 96 * 2 <= first + second <= 96 * 2 + 2 * 16 * 2


@pytest.mark.parametrize("model_type", ["vit", "clip", "siglip", "bert", "distilbert", "convnext"])
def test_lora_targets_the_encoder_linears_and_trains_the_head_of_every_family(model_type):
    from peft import get_peft_model

    from hf_lowrank.sweep import SweepArguments
    from hf_lowrank.sweep.families import encoder_linears
    from hf_lowrank.sweep.teacher_stage import lora_config

    from families import example_inputs, tiny_classifier

    model = tiny_classifier(model_type)
    config = lora_config(model, SweepArguments())
    expected_heads = {"distilbert": {"pre_classifier", "classifier"}}.get(model_type, {"classifier"})
    assert set(config.modules_to_save) == expected_heads
    linears = {id(m) for m in encoder_linears(model).values()}
    assert {id(model.get_submodule(name)) for name in config.target_modules} == linears
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        assert peft_model(**example_inputs(model)).logits.shape == (2, 3)


@pytest.mark.slow
def test_a_two_process_sweep_of_a_clip_teacher_whose_classifier_leaves_parameters_unused(tmp_path):
    import subprocess

    from families import tiny_classifier
    from sweep_helpers import REPO, SWEEP_SCRIPT, TWO_PROCESSES

    teacher = tiny_classifier("clip", num_labels=10)
    teacher.config.id2label = {i: str(i) for i in range(10)}
    teacher.config.label2id = {str(i): i for i in range(10)}
    directory = tmp_path / "clip-teacher"
    teacher.save_pretrained(directory)
    ViTImageProcessorPil(size={"height": 8, "width": 8}).save_pretrained(directory)
    argv = sweep_argv(tmp_path / "ddp", "--teacher", directory, "--ranks", 2, *TINIEST[:4])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [*TWO_PROCESSES, str(SWEEP_SCRIPT), *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert payload["config"]["environment"]["num_processes"] == 2 and payload["teacher"]["model_type"] == "clip"
    assert payload["teacher"]["finetune"] == "none" and payload["ranks"][0]["status"] == "done"
    # and a CLIP teacher that is fine-tuned first (its labels are not the dataset's), also on both processes
    argv = sweep_argv(tmp_path / "finetuned", "--teacher", directory, "--ranks", 2, *TINIEST[:4])
    argv += ["--teacher_finetune", "full"]
    result = subprocess.run(
        [*TWO_PROCESSES, str(SWEEP_SCRIPT), *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_max_seq_length_above_the_teachers_positions_is_capped_and_said(tmp_path, capsys):
    data = text_csv(tmp_path / "reviews.csv")
    teacher = _text_teacher(tmp_path)  # max_position_embeddings 32
    argv = sweep_argv(tmp_path / "out", "--teacher", teacher, "--dataset", data, "--max_seq_length", 64)
    _run([*argv, "--ranks", 2, "--preview_only", "--diagnostics_examples", 0])
    assert "note: --max_seq_length 64 is above the teacher's position table: texts are cut at 32 tokens." in (
        capsys.readouterr().out
    )
