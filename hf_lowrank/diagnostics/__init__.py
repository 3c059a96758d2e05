"""Representation diagnostics (the encoding-mismatch and dimensional-collapse papers) and calibration.

- `spectra`: pure numpy on token matrices and features (per-image SVD rank, dataset PCA, token spectral energy,
  entropy effective rank).
- `calibration`: expected calibration error.
- `representations`: collect a model's hidden states on a dataset and summarise them.
- `plots`: the figures of `scripts/diagnose.py`.
"""

from .calibration import expected_calibration_error
from .plots import plot_diagnostics
from .representations import RepresentationError, collect_representations, diagnose_model, has_class_token
from .spectra import (
    dataset_pca_retention,
    entropy_effective_rank,
    per_image_svd_rank,
    sample_svd_ranks,
    shared_dimension,
    spectral_bandwidth,
    token_spectral_energy,
)


__all__ = [
    "has_class_token",
    "RepresentationError",
    "collect_representations",
    "dataset_pca_retention",
    "diagnose_model",
    "entropy_effective_rank",
    "expected_calibration_error",
    "per_image_svd_rank",
    "plot_diagnostics",
    "sample_svd_ranks",
    "shared_dimension",
    "spectral_bandwidth",
    "token_spectral_energy",
]
