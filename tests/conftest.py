import os
import warnings

import pytest
import torch


# No network here or in CI: anything that would reach the Hub must fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(autouse=True)
def _seed_and_quiet():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*requires torchvision.*")
        yield


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory):
    """The tiny sweep at ranks FINISHED_RANKS, run once for the whole session (test_sweep.py and
    test_sweep_bad_input.py read it): (output_dir, its results.json, checked equal to the results run_sweep returned).
    Tests only read it; one that adds to it, overwrites it or resumes it copies it first."""
    import json

    from hf_lowrank.results import read_results_payload
    from hf_lowrank.sweep import run_sweep

    import sweep as sweep_script  # scripts/sweep.py
    from sweep_helpers import FINISHED_RANKS, sweep_argv

    output_dir = tmp_path_factory.mktemp("sweep")
    results = run_sweep(*sweep_script.parse(sweep_argv(output_dir, "--ranks", *FINISHED_RANKS)))
    payload = read_results_payload(output_dir / "results.json")
    assert payload == json.loads(json.dumps(results.to_dict()))
    return output_dir, payload
