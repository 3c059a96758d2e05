"""Budget students (`--param_budget`) as first-class students: a model card each, pushed like the rank students, and a
failed one listed among the failed students and not retried on resume."""

import json

import pytest
import yaml

from hf_lowrank.hub import push_sweep
from hf_lowrank.sweep import budget_stage, run_sweep

import sweep as sweep_script  # scripts/sweep.py
from fake_hub import FakeHub
from sweep_helpers import sweep_argv


TOKEN = "hf_test_budget_token"
BUDGETS = (0.3, 0.5)
FAILING = "budget-0.5"  # the budget student whose training is made to fail


def _argv(output_dir):
    return sweep_argv(output_dir, "--ranks", 1, "--calibration_samples", 24, "--param_budget", *BUDGETS)


@pytest.fixture(scope="module")
def budget_sweep(tmp_path_factory):
    """A sweep with two budget students, the second one's training failing; then resumed once. Returns the
    output directory and the budget keys each run trained."""
    output_dir = tmp_path_factory.mktemp("budget-sweep")
    trained, real = [], budget_stage.distil

    def failing_distil(ctx, students, seed, checkpoint, description):
        trained.append(sorted(students))
        outcomes = real(ctx, students, seed, checkpoint, description)
        if FAILING in outcomes:
            outcomes[FAILING].status, outcomes[FAILING].error = "failed", "loss is nan at optimizer step 2 (test)"
        return outcomes

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(budget_stage, "distil", failing_distil)
        run_sweep(*sweep_script.parse(_argv(output_dir)), command="hf-lowrank sweep --param_budget 0.3 0.5")
        first = list(trained)
        run_sweep(*sweep_script.parse(_argv(output_dir)), command="hf-lowrank sweep --param_budget 0.3 0.5")
    return output_dir, first, trained[len(first) :]


def test_a_failed_budget_student_is_listed_and_not_retried(budget_sweep):
    output_dir, first, resumed = budget_sweep
    assert first == [["budget-0.3", "budget-0.5"]] and resumed == []  # the failed one is not trained again
    results = json.loads((output_dir / "results.json").read_text())
    status = {b["budget"]: b["status"] for b in results["budget_students"]}
    assert status == {0.3: "done", 0.5: "failed"}
    report = json.loads((output_dir / "report.json").read_text())
    assert report["failed"] == [{"budget": 0.5, "seed": 0, "error": "loss is nan at optimizer step 2 (test)"}]
    assert "- budget 0.5, seed 0: loss is nan at optimizer step 2 (test)" in (output_dir / "report.md").read_text()
    assert not (output_dir / FAILING).exists()


def test_a_budget_student_has_its_card_and_figure(budget_sweep):
    output_dir, _, _ = budget_sweep
    results = json.loads((output_dir / "results.json").read_text())
    record = next(b for b in results["budget_students"] if b["budget"] == 0.3)
    uniform = next(r for r in results["ranks"] if r["rank"] == record["uniform_rank"])
    card = (output_dir / "budget-0.3" / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers" and "hf_lowrank" in metadata["tags"]
    card_accuracy = metadata["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert card_accuracy == pytest.approx(record["accuracy"], abs=1e-4)
    ranks = sorted(r for r in record["layer_ranks"].values() if r is not None)
    dense = sum(r is None for r in record["layer_ranks"].values())
    assert f"ranks {ranks[0]} to {ranks[-1]}, median {ranks[len(ranks) // 2]}" in card
    assert f"{len(ranks)} are replaced" in card and (dense == 0) == ("stay dense (their" not in card)
    assert f"{record['budget_parameters']:,}" in card and f"uniform rank {record['uniform_rank']}" in card
    assert f"| {record['accuracy']:.4f} | {uniform['accuracy']:.4f} |" in card
    assert "hf-lowrank sweep --param_budget 0.3 0.5" in card and "knee.png" not in card
    figure = (output_dir / "budget-0.3" / "budget_ranks.png").read_bytes()
    assert figure == (output_dir / "budget_ranks.png").read_bytes()


def test_budget_students_are_pushed_like_rank_students(budget_sweep, monkeypatch):
    output_dir, _, _ = budget_sweep
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with FakeHub(TOKEN) as hub:
        every = push_sweep(output_dir, "digits", token=TOKEN, endpoint=hub.url, backoff=0.01)
        files = hub.repos["tester/digits-budget-0.3"]["files"]
        only_ranks = push_sweep(output_dir, "ranks-only", ["1"], token=TOKEN, endpoint=hub.url, backoff=0.01)
        only_budgets = push_sweep(output_dir, "budgets", ["budgets"], token=TOKEN, endpoint=hub.url, backoff=0.01)
    assert every["budget-0.3"] == "tester/digits-budget-0.3" and FAILING not in every  # the failed one is not pushed
    assert {key for key in every if isinstance(key, int)} == {1, *(r for r in range(2, 400) if every.get(r))}
    assert {"model.safetensors", "config.json", "README.md", "budget_ranks.png"} <= set(files)
    assert "tester/digits-budget-0.3" in files["README.md"].decode()  # the card names its repository
    assert set(only_ranks) == {1} and set(only_budgets) == {"budget-0.3"}
