"""The names earlier releases promised stay importable where they were, and every package's __all__ is real."""

import importlib

import pytest


PROMISED = {
    "hf_lowrank": [
        "FactorizedLinear",
        "factorize_model",
        "plan_factorization",
        "factorization_report",
        "FactorizedViTConfig",
        "FactorizedViTModel",
        "FactorizedViTForImageClassification",
        "BridgedViTConfig",
        "BridgedViTForImageClassification",
        "DistillationConfig",
        "DistillationTrainer",
    ],
    "hf_lowrank.analysis": ["effective_rank_region", "effective_knee", "bootstrap_intervals", "fit_curve"],
    "hf_lowrank.diagnostics": ["entropy_effective_rank", "per_image_svd_rank", "dataset_pca_retention"],
    "hf_lowrank.distillation": ["DistillationConfig", "DistillationTrainer", "LockstepTrainer", "distillation_loss"],
    "hf_lowrank.sweep": ["SweepArguments", "run_sweep", "embedded_teacher"],
    "hf_lowrank.hub": ["push_sweep"],
    "hf_lowrank.report": ["build_report", "write_report"],
}
PACKAGES = ["hf_lowrank"] + [
    f"hf_lowrank.{name}"
    for name in ("models", "distillation", "data", "analysis", "diagnostics", "results", "report", "hub", "sweep")
]


@pytest.mark.parametrize("module", sorted(PROMISED))
def test_promised_names_are_importable(module):
    loaded = importlib.import_module(module)
    missing = [name for name in PROMISED[module] if not hasattr(loaded, name)]
    assert not missing, f"{module} lost {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_exists(package):
    loaded = importlib.import_module(package)
    assert [name for name in loaded.__all__ if not hasattr(loaded, name)] == []


def test_the_remote_code_folder_imports_nothing_else_of_hf_lowrank():
    """models/ is copied next to checkpoints for trust_remote_code: only flat relative imports, no hf_lowrank."""
    import ast
    from pathlib import Path

    import hf_lowrank.models

    for path in Path(hf_lowrank.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1 and not (node.module or "").startswith("hf_lowrank"), (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith("hf_lowrank") for alias in node.names), path.name
