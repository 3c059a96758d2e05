"""What a sweep computes once per teacher to factorize it, and the registry of inits: calibration statistics of the
layer inputs (`statistics`), the teacher's decompositions per init (`decompose_layers`; the per-layer math and the
students' `from_teacher` live in `models/`, which a loaded student needs), per-layer ranks within a parameter budget
(`rank_allocation`), and what each init is called and how it is described (`inits`)."""

from ..models.decomposition import LinearDecomposition, decompose_layers, fallback_summary
from .inits import DATA_AWARE_INITS, DEFAULT_PREVIEW_INITS, INIT_REGISTRY, INITS, Init, init_help
from .rank_allocation import LayerSpectrum, allocate_ranks, budget_parameters, plan_parameters, uniform_rank_within
from .statistics import collect_input_statistics


__all__ = [
    "DATA_AWARE_INITS",
    "DEFAULT_PREVIEW_INITS",
    "INITS",
    "INIT_REGISTRY",
    "Init",
    "LayerSpectrum",
    "LinearDecomposition",
    "allocate_ranks",
    "budget_parameters",
    "collect_input_statistics",
    "decompose_layers",
    "fallback_summary",
    "init_help",
    "plan_parameters",
    "uniform_rank_within",
]
