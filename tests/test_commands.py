"""The installed command line: `hf-lowrank COMMAND` (the console script pip installs) and `python -m hf_lowrank
COMMAND`, run as a user runs them, in a subprocess, outside the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import CURVE, make_results

from hf_lowrank.results import SweepResults


# pip installs the console script beside the interpreter that installed the package.
INSTALLED = Path(sys.executable).parent / "hf-lowrank"


def _run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "HF_LOWRANK_TRACEBACK"}
    env.pop("PYTHONPATH", None)  # the installed package, not the checkout's tests/ or scripts/
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sweep")
    SweepResults.from_dict(make_results(CURVE)).save(directory / "results.json")
    return directory


@pytest.mark.skipif(not INSTALLED.exists(), reason="hf_lowrank is not installed with pip in this interpreter")
def test_the_installed_command_writes_the_same_report_as_the_module_and_the_script(sweep_dir, tmp_path):
    copies = {}
    for name, command in (
        ("installed", [INSTALLED, "report"]),
        ("module", [sys.executable, "-m", "hf_lowrank", "report"]),
        ("script", [sys.executable, Path(__file__).parents[1] / "scripts" / "report.py"]),
    ):
        copies[name] = tmp_path / name
        shutil.copytree(sweep_dir, copies[name])
        done = _run([*command, copies[name], "--num_bootstrap", "20"], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("effective rank region [")
    reports = {name: json.loads((path / "report.json").read_text()) for name, path in copies.items()}
    assert reports["installed"] == reports["module"] == reports["script"]
    assert reports["installed"]["region"]["r_low"] is not None


@pytest.mark.skipif(not INSTALLED.exists(), reason="hf_lowrank is not installed with pip in this interpreter")
def test_the_installed_command_lists_its_commands_and_refuses_an_unknown_one_in_one_line(tmp_path):
    listed = _run([INSTALLED, "--help"], cwd=tmp_path)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines() if line.startswith("  ")] == [
        "sweep", "report", "push", "diagnose"
    ]  # fmt: skip
    unknown = _run([INSTALLED, "sweeep"], cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr == (
        "error: unknown command 'sweeep': choose one of sweep, report, push, diagnose (hf-lowrank --help).\n"
    )
    nothing = _run([INSTALLED], cwd=tmp_path)
    assert nothing.returncode == 2 and nothing.stderr.startswith("usage: hf-lowrank COMMAND")


def test_the_sweep_command_records_how_it_was_called(monkeypatch):
    """The command a sweep records (results.json, cards) is the one the user typed: `hf-lowrank sweep`, `python -m
    hf_lowrank sweep`, or `accelerate launch -m hf_lowrank sweep` under accelerate."""
    from hf_lowrank.commands import main, module_program
    from hf_lowrank.sweep import cli

    recorded = []
    # Parsing under LOCAL_RANK would start torch.distributed (TrainingArguments): only the command is checked here.
    monkeypatch.setattr(cli, "parse", lambda argv, prog=None: (None, None))
    monkeypatch.setattr(cli, "run_sweep", lambda sweep, training, command: recorded.append(command))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    main(["sweep", "--ranks", "2", "3"])
    main(["sweep", "--ranks", "2"], program=module_program())
    monkeypatch.setenv("LOCAL_RANK", "0")
    main(["sweep"], program=module_program())
    cli.main(["--ranks", "4"])
    assert recorded == [
        "hf-lowrank sweep --ranks 2 3",
        "python -m hf_lowrank sweep --ranks 2",
        "accelerate launch -m hf_lowrank sweep",
        "accelerate launch scripts/sweep.py --ranks 4",
    ]
