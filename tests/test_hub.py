import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from test_report import make_results

from hf_lowrank.hub import HubPushError, push_sweep, student_card
from hf_lowrank.report import build_report
from hf_lowrank.results import SweepResults
from hf_lowrank.sweep import run_sweep

import sweep as sweep_script  # scripts/sweep.py
from fake_hub import FakeHub
from sweep_helpers import REPO, sweep_argv


TOKEN = "hf_test_secret_token_123"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("hub-sweep")
    # A teacher trained long enough to be better than chance, so the curve has a knee.
    sweep, training = sweep_script.parse(
        sweep_argv(
            output_dir,
            "--ranks",
            1,
            2,
            3,
            "--max_train_samples",
            600,
            "--teacher_num_train_epochs",
            15,
            "--num_train_epochs",
            3,
        )
    )
    run_sweep(sweep, training, command="python scripts/sweep.py --ranks 1 2 3")
    return output_dir


@pytest.fixture()
def hub(monkeypatch):
    # The suite runs offline (conftest); the fake Hub is on 127.0.0.1, so let huggingface_hub talk to it.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with FakeHub(TOKEN) as server:
        yield server


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_local_cards_carry_metadata_plot_and_loading_instructions(sweep_dir):
    card = (sweep_dir / "rank-002" / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "image-classification"
    assert "hf_lowrank" in metadata["tags"] and metadata["license"] == "apache-2.0"
    accuracy = json.loads((sweep_dir / "results.json").read_text())["ranks"][1]["accuracy"]
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == pytest.approx(accuracy, abs=1e-4)
    assert "![normalised accuracy against rank](knee.png)" in card and (sweep_dir / "rank-002" / "knee.png").is_file()
    assert "trust_remote_code=True" in card and "python scripts/sweep.py --ranks 1 2 3" in card
    assert "# Effective rank of" in (sweep_dir / "README.md").read_text()


def test_push_then_load_back_from_the_hub(sweep_dir, hub, tmp_path, capfd):
    before = _digest(sweep_dir)
    repo_ids = push_sweep(
        sweep_dir, "digits-sweep", push_ranks=["2", "knee"], token=TOKEN, endpoint=hub.url, backoff=0.01
    )
    assert _digest(sweep_dir) == before  # nothing local changed
    knee = json.loads((sweep_dir / "report.json").read_text())["knee"]["linear"]
    nearest = min([1, 2, 3], key=lambda r: abs(r - knee))
    assert set(repo_ids) == {2, nearest} and repo_ids[2] == "tester/digits-sweep-rank-002"
    files = hub.repos["tester/digits-sweep-rank-002"]["files"]
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "knee.png",
        "modeling_lowrank.py",
    } <= set(files)
    assert "tester/digits-sweep-rank-002" in files["README.md"].decode()  # the card names its repository
    report_files = set(hub.repos["tester/digits-sweep"]["files"])
    assert {"README.md", "report.md", "report.json", "results.json", "knee.png"} <= report_files
    assert TOKEN not in capfd.readouterr().out + capfd.readouterr().err

    # Load the pushed student back from the server, with hf_lowrank and without it (remote code).
    pixel_values = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.save(pixel_values, tmp_path / "pixels.pt")
    from transformers import AutoModelForImageClassification

    expected = AutoModelForImageClassification.from_pretrained(sweep_dir / "rank-002")(pixel_values).logits
    script = textwrap.dedent(f"""
        import sys, torch
        if sys.argv[1] == "remote":
            sys.modules["hf_lowrank"] = None
        else:
            import hf_lowrank
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained(
            "tester/digits-sweep-rank-002", trust_remote_code=sys.argv[1] == "remote")
        torch.save(model(torch.load({str(tmp_path / "pixels.pt")!r})).logits, sys.argv[2])
    """)
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_XET": "1",
    }
    env.pop("HF_TOKEN", None)
    for mode in ("installed", "remote"):
        out = tmp_path / f"{mode}.pt"
        result = subprocess.run(
            [sys.executable, "-c", script, mode, str(out)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        torch.testing.assert_close(torch.load(out), expected, rtol=0, atol=0)


def test_transient_failures_are_retried(sweep_dir, hub):
    hub.fail_next["commit"] = 2
    push_sweep(sweep_dir, "tester/retry", push_ranks=["1"], token=TOKEN, endpoint=hub.url, backoff=0.01)
    assert hub.calls["commit"] == 2 + 2  # two 503s, then the student's and the report's commits
    assert "model.safetensors" in hub.repos["tester/retry-rank-001"]["files"]


def test_persistent_failure_stops_with_a_clear_message(sweep_dir, hub):
    before = _digest(sweep_dir)
    hub.fail_next["commit"] = 100
    with pytest.raises(HubPushError) as error:
        push_sweep(sweep_dir, "tester/down", push_ranks=["1"], token=TOKEN, endpoint=hub.url, retries=2, backoff=0.01)
    message = str(error.value)
    assert "HTTP 503" in message and "3 attempt(s)" in message and "scripts/push.py" in message
    assert TOKEN not in message and _digest(sweep_dir) == before


def test_bad_or_missing_token(sweep_dir, hub, monkeypatch, tmp_path):
    with pytest.raises(HubPushError, match="refused the token") as error:
        push_sweep(sweep_dir, "tester/x", token="hf_wrong", endpoint=hub.url, backoff=0.01)
    assert hub.calls["whoami"] == 1 and "hf_wrong" not in str(error.value)  # not retried, not echoed
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.utils._auth.get_token", lambda: None, raising=False)
    monkeypatch.setattr("huggingface_hub.hf_api.get_token", lambda: None)
    with pytest.raises(HubPushError, match="no Hugging Face token"):
        push_sweep(sweep_dir, "tester/x", endpoint=hub.url)


def test_push_script_publishes_a_finished_sweep(sweep_dir, hub, tmp_path):
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "push.py"),
            str(sweep_dir),
            "--hub_model_id",
            "later",
            "--push_ranks",
            "region",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tester/later" in hub.repos and TOKEN not in result.stdout + result.stderr
    assert any(repo.startswith("tester/later-rank-") for repo in hub.repos)


def test_sweep_with_push_to_hub(sweep_dir, hub, tmp_path, monkeypatch):
    with pytest.raises(Exception, match="needs --hub_model_id"):
        sweep, training = sweep_script.parse(sweep_argv(tmp_path / "s", "--ranks", 1, "--push_to_hub", "true"))
        run_sweep(sweep, training)
    # Resuming (a copy of) the finished sweep trains nothing and pushes it; the endpoint comes from huggingface_hub's
    # constants.
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
    resumed = tmp_path / "resumed"
    shutil.copytree(sweep_dir, resumed)
    argv = sweep_argv(
        resumed,
        "--ranks",
        1,
        2,
        3,
        "--max_train_samples",
        600,
        "--teacher_num_train_epochs",
        15,
        "--num_train_epochs",
        3,
        "--push_to_hub",
        "true",
        "--hub_model_id",
        "tester/swept",
        "--hub_token",
        TOKEN,
        "--push_ranks",
        "3",
    )
    sweep, training = sweep_script.parse(argv)
    run_sweep(sweep, training)
    assert set(hub.repos) == {"tester/swept-rank-003", "tester/swept"}
    # The cards are rendered once: the local ones name their repositories and are what was pushed.
    local = (resumed / "rank-003" / "README.md").read_bytes()
    assert b"tester/swept-rank-003" in local and hub.repos["tester/swept-rank-003"]["files"]["README.md"] == local
    assert hub.repos["tester/swept"]["files"]["README.md"] == (resumed / "README.md").read_bytes()


def _card_of(record_fields: dict, teacher_fields: dict) -> str:
    """The rank-2 student card of a three-rank sweep whose records carry `record_fields`, its teacher
    `teacher_fields`."""
    payload = make_results({1: 0.5, 2: 0.8, 4: 0.85})
    payload["teacher"].update(teacher_fields)
    for record in payload["ranks"]:
        record.update(accuracy=float(record["accuracy"]), **record_fields)
    results = SweepResults.from_dict(payload)
    return student_card(results, build_report(results, num_bootstrap=0), results.ranks[1]).content


NOT_MEASURED = "calibration and robustness were not measured"


def test_student_card_reports_calibration_and_robustness_when_the_sweep_measured_them():
    card = _card_of({"ece": 0.05, "noise_accuracy": {"0.1": 0.6}}, {"ece": 0.03, "noise_accuracy": {"0.1": 0.8}})
    assert "| expected calibration error (15 bins) | 0.0500 | 0.0300 |" in card
    assert "| accuracy under Gaussian input noise, sigma=0.1 | 0.6000 | 0.8000 |" in card
    assert NOT_MEASURED not in card


@pytest.mark.parametrize("ece", [None, float("nan")])
def test_student_card_with_noise_robustness_but_no_ece_says_only_the_ece_is_missing(ece):
    card = _card_of({"ece": ece, "noise_accuracy": {"0.1": 0.6}}, {"ece": 0.03, "noise_accuracy": {"0.1": 0.8}})
    assert "| accuracy under Gaussian input noise, sigma=0.1 | 0.6000 | 0.8000 |" in card
    assert "| expected calibration error (15 bins) | not measured | 0.0300 |" in card
    assert NOT_MEASURED not in card and "nan" not in card


def test_student_card_without_measurements_says_so_once():
    card = _card_of({"ece": None, "noise_accuracy": {"0.1": float("nan")}}, {"ece": None, "noise_accuracy": {}})
    assert card.count(NOT_MEASURED) == 1
    assert "expected calibration error" not in card and "Gaussian input noise" not in card
