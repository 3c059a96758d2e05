import numpy as np
import pytest

from hf_lowrank.diagnostics import (
    dataset_pca_retention,
    entropy_effective_rank,
    expected_calibration_error,
    per_image_svd_rank,
    sample_svd_ranks,
    shared_dimension,
    spectral_bandwidth,
    token_spectral_energy,
)


def _orthonormal(rows, cols, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(rows, cols)))
    return q  # (rows, cols), orthonormal columns


def test_per_image_svd_rank_of_exact_rank_k_and_identity():
    tokens = _orthonormal(17, 4, 0) @ np.diag([5.0, 3.0, 2.0, 1.0]) @ _orthonormal(11, 4, 1).T  # (17, 11), rank 4
    assert per_image_svd_rank(tokens, 1.0) == 4
    # Energies 25, 9, 4, 1 of 39: cumulative 0.641, 0.872, 0.974, 1.
    assert [per_image_svd_rank(tokens, p) for p in (0.6, 0.87, 0.95, 0.99)] == [1, 2, 3, 4]
    identity = np.eye(20)
    assert per_image_svd_rank(identity, 0.95) == 19 and per_image_svd_rank(identity, 0.5) == 10
    with pytest.raises(ValueError, match="one \\(n_tokens, dim\\) matrix"):
        per_image_svd_rank(np.zeros((2, 3, 4)), 0.9)


def test_sample_ranks_low_but_shared_dimension_full():
    # The encoding-mismatch picture in miniature: each image lives in its own 2-D subspace (low per-image rank),
    # but 6 images use 6 different coordinate pairs, so the shared subspace needs all 12 dimensions.
    dim = 12
    images = []
    for i in range(6):
        x = np.zeros((9, dim))
        x[:, 2 * i] = np.linspace(1, 2, 9)
        x[:, 2 * i + 1] = np.linspace(-1, 1, 9)
        images.append(x)
    images = np.stack(images)  # (6, 9, 12)
    assert set(sample_svd_ranks(images, (0.99,))[0.99]) == {2}
    retention = dataset_pca_retention(images)
    assert retention.shape == (6, dim) and np.all(np.diff(retention, axis=1) >= -1e-12)
    np.testing.assert_allclose(retention[:, -1], 1.0)
    # Each image's second direction holds 14% of its energy , so
    # keeping 95% of every image needs every direction.
    minor = np.sum(np.linspace(-1, 1, 9) ** 2) / (
        np.sum(np.linspace(-1, 1, 9) ** 2) + np.sum(np.linspace(1, 2, 9) ** 2)
    )
    assert minor > 0.05
    assert shared_dimension(retention, image_fraction=0.99, energy=0.95) == dim
    # One shared subspace for everyone: the shared dimension equals the per-image rank.
    basis = _orthonormal(dim, 3, 2)
    shared = np.stack([np.random.default_rng(i).normal(size=(9, 3)) @ basis.T for i in range(20)])
    assert shared_dimension(dataset_pca_retention(shared), 0.99, 0.999) == 3


def test_pca_warns_when_tokens_are_fewer_than_dimensions():
    with pytest.warns(UserWarning, match="rank-deficient"):
        retention = dataset_pca_retention(np.random.default_rng(0).normal(size=(2, 3, 10)))
    np.testing.assert_allclose(retention[:, 6], 1.0)  # 6 tokens span at most 6 directions


def test_single_frequency_and_constant_tokens():
    dim = 32
    channels = np.arange(dim)
    frequency = 5
    tokens = np.stack([np.cos(2 * np.pi * frequency * channels / dim + phase) for phase in (0.0, 0.7, 2.0)])
    bandwidth, cumulative = token_spectral_energy(tokens)
    bins = dim // 2 + 1
    assert len(bandwidth) == bins
    for alpha in (0.5, 0.7, 0.9):  # all energy in bin 5 (the 6th): b_alpha = 6 / D'
        assert spectral_bandwidth(bandwidth, cumulative, alpha) == pytest.approx(6 / bins)
    bandwidth, cumulative = token_spectral_energy(np.ones((4, dim)))
    assert spectral_bandwidth(bandwidth, cumulative, 0.9) == pytest.approx(1 / bins)  # DC only
    # White noise spreads energy evenly: near the diagonal.
    bandwidth, cumulative = token_spectral_energy(np.random.default_rng(0).normal(size=(4000, dim)))
    assert np.max(np.abs(cumulative - np.linspace(1 / (bins - 1) / 2, 1, bins))) < 0.06
    # Parseval: the one-sided energies sum to ||x||^2 * dim (numpy's unnormalised DFT).
    x = np.random.default_rng(1).normal(size=dim)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    spectrum[1 : (dim + 1) // 2] *= 2
    assert spectrum.sum() == pytest.approx(dim * (x**2).sum())


def test_entropy_effective_rank_closed_forms():
    dim, k = 10, 4
    q = _orthonormal(dim, k, 3).T  # (k, dim)
    features = np.concatenate([q, -q]) * 3.0 + 7.0  # k equal variances after centring; the +7 mean is removed
    assert entropy_effective_rank(features) == pytest.approx(k, rel=1e-9)
    line = np.outer(np.arange(12.0), np.ones(dim))  # rank one after centring
    assert entropy_effective_rank(line) == pytest.approx(1.0)
    # Variances proportional to (1, 1, 2): p = (1/4, 1/4, 1/2), erank = exp(1.5 log 2) = 2^1.5.
    axes = np.diag([1.0, 1.0, np.sqrt(2.0)])
    assert entropy_effective_rank(np.concatenate([axes, -axes])) == pytest.approx(2**1.5, rel=1e-9)


def test_expected_calibration_error():
    assert expected_calibration_error([0.9] * 10, [1] * 9 + [0]) == pytest.approx(0.0)
    # One bin at 0.95 confidence with 50% accuracy, one at 0.55 with 100%: 0.5*0.45 + 0.5*0.45.
    confidences = [0.95, 0.95, 0.55, 0.55]
    assert expected_calibration_error(confidences, [1, 0, 1, 1]) == pytest.approx(0.45)
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == pytest.approx(0.0)  # confidence 1 is the last bin
