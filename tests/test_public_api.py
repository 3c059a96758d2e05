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
    for name in (
        "models",
        "factorization",
        "distillation",
        "data",
        "analysis",
        "diagnostics",
        "results",
        "report",
        "hub",
        "sweep",
        "commands",
    )
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


@pytest.mark.parametrize(
    "name", ["collect_input_statistics", "allocate_ranks", "budget_parameters", "plan_parameters", "LayerSpectrum"]
)
def test_names_moved_to_factorization_still_resolve_under_models_with_a_warning(name):
    import hf_lowrank.factorization
    import hf_lowrank.models

    with pytest.warns(FutureWarning, match=rf"hf_lowrank\.models\.{name} moved to hf_lowrank\.factorization\.{name}"):
        moved = getattr(hf_lowrank.models, name)
    assert moved is getattr(hf_lowrank.factorization, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        hf_lowrank.models.not_a_name  # noqa: B018


def test_one_init_registry_names_what_the_math_implements_and_feeds_help_cards_and_plots():
    from hf_lowrank.factorization import DATA_AWARE_INITS, INIT_REGISTRY, init_help
    from hf_lowrank.hub.cards import _init_note
    from hf_lowrank.models import INITS, decompose_linear
    from hf_lowrank.report.plots import PREVIEW_STYLES
    from hf_lowrank.sweep import SweepArguments

    assert tuple(INIT_REGISTRY) == INITS
    help_text = SweepArguments.__dataclass_fields__["init"].metadata["help"]
    for name, init in INIT_REGISTRY.items():
        assert f"{name} ({init.help})" in init_help() and init.help in help_text
        assert _init_note(name) == init.card_note and PREVIEW_STYLES[name] == init.plot_style
    assert len({init.plot_style for init in INIT_REGISTRY.values()}) == len(INIT_REGISTRY)  # curves told apart
    import torch

    weight = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    for name in DATA_AWARE_INITS:  # the registry's calibration flag is what the math requires
        with pytest.raises(ValueError, match=f"init '{name}' needs calibration statistics"):
            decompose_linear(weight, name, None)
    assert not INIT_REGISTRY["svd"].needs_calibration
    assert decompose_linear(weight, "svd", None).singular_values.shape == (5,)
