"""Representation diagnostics (the encoding-mismatch and dimensional-collapse papers), pure numpy on arrays.

Token matrices are `(n_tokens, dim)` per image, or `(n_images, n_tokens, dim)` stacked; pooled features are
`(n_samples, dim)`. `collect_representations` gets them from any model that returns hidden states.
"""

import warnings

import numpy as np


__all__ = [
    "dataset_pca_retention",
    "entropy_effective_rank",
    "per_image_svd_rank",
    "sample_svd_ranks",
    "shared_dimension",
    "spectral_bandwidth",
    "token_spectral_energy",
]


def _energy_rank(singular_values: np.ndarray, energy: float) -> int:
    """Smallest k whose top-k singular values hold `energy` of the squared sum (at least 1)."""
    power = np.cumsum(np.sort(singular_values)[::-1] ** 2)
    if power[-1] <= 0:
        return 1
    return int(min(np.searchsorted(power / power[-1], energy - 1e-12) + 1, len(power)))


def per_image_svd_rank(tokens, energy: float) -> int:
    """Smallest k whose top-k singular values hold a fraction `energy` of ||X||_F^2, for one `(n_tokens, dim)`
    token matrix X (sample-wise SVD, not centred)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be one (n_tokens, dim) matrix, got shape {tokens.shape}.")
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}.")
    return _energy_rank(np.linalg.svd(tokens, compute_uv=False), energy)


def sample_svd_ranks(token_matrices, energies=(0.95, 0.99)) -> dict[float, np.ndarray]:
    """Per-image SVD ranks of `(n_images, n_tokens, dim)` token matrices, for every energy: {energy: (n_images,)}."""
    token_matrices = np.asarray(token_matrices, dtype=np.float64)
    singular_values = np.linalg.svd(token_matrices, compute_uv=False)  # (n_images, min(n_tokens, dim))
    return {energy: np.array([_energy_rank(s, energy) for s in singular_values]) for energy in energies}


def dataset_pca_retention(token_matrices) -> np.ndarray:
    """E_i(d) = ||X_i V_d||_F^2 / ||X_i||_F^2 for every image i and every d = 1..dim, where V_d are the top-d
    eigenvectors of C = (1/T) sum_i X_i^T X_i (T = all tokens): shape `(n_images, dim)`, non-decreasing in d.

    Warns (and still computes) when there are fewer tokens in all than dimensions: C is then rank-deficient.
    """
    token_matrices = np.asarray(token_matrices, dtype=np.float64)
    n_images, n_tokens, dim = token_matrices.shape
    if n_images * n_tokens < dim:
        warnings.warn(
            f"dataset PCA on {n_images * n_tokens} tokens in {dim} dimensions: the covariance is "
            "rank-deficient, retention beyond that rank is not informative.",
            UserWarning,
            stacklevel=2,
        )
    flat = token_matrices.reshape(-1, dim)  # (T, dim)
    covariance = flat.T @ flat / flat.shape[0]  # (dim, dim)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    basis = eigenvectors[:, np.argsort(eigenvalues)[::-1]]  # (dim, dim), columns by decreasing variance
    projected = np.einsum("itd,de->ite", token_matrices, basis) ** 2  # (n_images, n_tokens, dim)
    per_direction = projected.sum(axis=1)  # (n_images, dim): energy of image i along direction d
    total = (token_matrices**2).sum(axis=(1, 2))[:, None]  # (n_images, 1)
    return np.cumsum(per_direction, axis=1) / np.maximum(total, 1e-300)


def shared_dimension(retention: np.ndarray, image_fraction: float = 0.99, energy: float = 0.95) -> int:
    """Smallest d at which a fraction `image_fraction` of images keep at least `energy` of their energy in the
    shared top-d subspace (from `dataset_pca_retention`)."""
    kept = (retention >= energy - 1e-12).mean(axis=0)  # (dim,) fraction of images satisfied at each d
    reached = np.flatnonzero(kept >= image_fraction - 1e-12)
    return int(reached[0] + 1) if len(reached) else retention.shape[1]


def token_spectral_energy(tokens) -> tuple[np.ndarray, np.ndarray]:
    """Token Spectral Energy Pattern: the 1-D DFT of every token along the channel axis, and the cumulative spectral
    energy (mean over tokens of each token's fraction) against normalised bandwidth d / D', D' = dim // 2 + 1
    one-sided frequency bins, lowest frequency first.

    Returns `(bandwidth (D',), cumulative (D',))`; a curve on the diagonal means energy spread over all frequencies.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    tokens = tokens.reshape(-1, tokens.shape[-1])  # (n_tokens, dim)
    dim = tokens.shape[1]
    spectrum = np.abs(np.fft.rfft(tokens, axis=1)) ** 2  # (n_tokens, D')
    spectrum[:, 1 : (dim + 1) // 2] *= 2  # one-sided: non-DC, non-Nyquist bins stand for two frequencies (Parseval)
    totals = spectrum.sum(axis=1, keepdims=True)
    keep = totals[:, 0] > 0
    cumulative = np.cumsum(spectrum[keep] / totals[keep], axis=1).mean(axis=0)  # (D',)
    bins = spectrum.shape[1]
    return np.arange(1, bins + 1) / bins, cumulative


def spectral_bandwidth(bandwidth: np.ndarray, cumulative: np.ndarray, alpha: float) -> float:
    """b_alpha: the smallest normalised bandwidth whose cumulative spectral energy reaches `alpha`."""
    return float(bandwidth[int(np.searchsorted(cumulative, alpha - 1e-12))])


def entropy_effective_rank(features) -> float:
    """Roy & Vetterli's effective rank of `(n_samples, dim)` features, centred (mean vector removed) and
    variance-based: p_k = s_k^2 / sum s^2 over the singular values s, erank = exp(-sum p_k log p_k)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (n_samples, dim), got shape {features.shape}.")
    centred = features - features.mean(axis=0, keepdims=True)
    variances = np.linalg.svd(centred, compute_uv=False) ** 2
    if variances.sum() <= 0:
        return 0.0
    p = variances / variances.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
