"""What hf_lowrank 0.1.0 wrote (tests/fixtures/v0_1_0, saved by the code of commit 7a40643) still loads."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

import hf_lowrank  # noqa: F401  (registers the students with the Auto classes)
from hf_lowrank.report import build_report
from hf_lowrank.results import SweepResults


FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_0"

# The expected logits were computed on another machine. float32 matmuls take other kernels on another CPU (AVX2 or
# AVX-512 blocking, another split of the sums over threads), so each dot product is summed in another order and the
# logits differ in their last bits. The round-off of a sum scales with its terms, not with one small element, so the
# bound is absolute, in units of the largest logit: 16 float32 ulps of it (16 * eps * max |logit|, 2.8e-7 to 4.3e-7
# here). On an AMD EPYC the three students differ from the stored logits by 1.5e-8 to 4.4e-8 (0.05 to 0.1 of it);
# scaling any one weight matrix by 0.99 moves the logits past it in 68 of 80 cases (the misses: key / query
# projections of the tiny models' near-uniform attention).
ULPS = 16


def _across_cpus(expected: torch.Tensor) -> dict:
    return dict(rtol=0.0, atol=ULPS * torch.finfo(torch.float32).eps * float(expected.abs().max()))


@pytest.mark.parametrize("name", ["factorized_vit", "bridged_vit_lift", "bridged_vit_widelast"])
def test_students_saved_by_0_1_0_load_and_give_the_same_logits(name):
    expected = load_file(FIXTURES / "expected_logits.safetensors")
    model, info = AutoModelForImageClassification.from_pretrained(FIXTURES / name, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        logits = model(expected["pixel_values"]).logits
    torch.testing.assert_close(logits, expected[name], **_across_cpus(expected[name]))
    assert torch.equal(logits.argmax(-1), expected[name].argmax(-1))


def test_results_json_of_0_1_0_loads_round_trips_and_reports():
    payload = json.loads((FIXTURES / "results.json").read_text())
    results = SweepResults.load(FIXTURES)
    # Nothing dropped; the one thing added is what 0.1.0 did not record: the teacher's family and task, at the
    # defaults that describe every 0.1.0 sweep (ViT image classifiers), the students' init (the SVD, the only one
    # 0.1.0 had) and how they were trained (lock-step, distilled, no evaluation during training: no validation
    # split), and empty preview, budget, factorization, nested and rank-search records, no fp16-skipped steps, no
    # latency measured.
    added = {"model_type": "vit", "task": "image-classification", "latency": None}
    made = {"init": "svd", "curve": "lockstep", "nested_rank": None, "finetune_steps": 0, "untrained": False}
    evaluation = {"validation_history": [], "best_step": None, "stopped_step": None, "skipped_steps": 0}
    evaluation["latency"] = None
    ranks = [{**r, **evaluation, "config": {**r["config"], **made}} for r in payload["ranks"]]
    empty = {"previews": [], "budget_students": [], "factorization": None, "nested": [], "nested_training": {}}
    empty.update(stage_seconds={}, rank_search=[])
    dataset = {**payload["dataset"], "num_validation": 0}
    expected = {**payload, "teacher": {**payload["teacher"], **added}, "ranks": ranks, "dataset": dataset, **empty}
    assert json.loads(json.dumps(results.to_dict())) == expected
    assert [r.rank for r in results.ranks] == [1, 2, 4] and results.cnn_students[0].capacity == "small"
    report = build_report(results, num_bootstrap=10)
    assert report.ranks == [1, 2, 4] and report.teacher["accuracy"] == payload["teacher"]["accuracy"]


def test_results_json_with_nan_tokens_of_earlier_writers_loads_and_is_rewritten_strict(tmp_path):
    """Earlier writers let a NaN loss reach results.json as the token NaN: such a file still loads, and saving it
    again writes null."""
    payload = json.loads((FIXTURES / "results.json").read_text())
    payload["ranks"][0]["loss_history"] = [[1, 2.0], [2, float("nan")]]
    (tmp_path / "results.json").write_text(json.dumps(payload))  # Python's default: allow_nan=True
    assert "NaN" in (tmp_path / "results.json").read_text()
    results = SweepResults.load(tmp_path)
    assert results.ranks[0].loss_history[1][1] != results.ranks[0].loss_history[1][1]  # NaN
    results.save(tmp_path / "results.json")

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    rewritten = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert rewritten["ranks"][0]["loss_history"] == [[1, 2.0], [2, None]]
    assert SweepResults.load(tmp_path).ranks[0].loss_history == [[1, 2.0], [2, None]]
