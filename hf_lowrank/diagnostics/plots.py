"""Figures of representation diagnostics for one or more models."""

from pathlib import Path

import numpy as np

from ..plotting import pyplot


__all__ = ["plot_diagnostics"]


def _plot_rank_vs_depth(plt, diagnostics: dict[str, dict], colors, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for (name, diag), color in zip(diagnostics.items(), colors):
        layers = [layer for layer in diag["layers"] if "skipped" not in layer]
        depth = [layer["depth"] for layer in layers]
        ax.plot(
            depth,
            [layer["svd_rank_p99"]["0.95"] for layer in layers],
            "o-",
            color=color,
            label=f"{name}: per-image SVD rank",
        )
        ax.plot(
            depth,
            [layer["shared_dimension"] for layer in layers],
            "s--",
            color=color,
            label=f"{name}: shared PCA dimension",
        )
        cls_ranks = [layer.get("cls_entropy_rank") for layer in layers]
        if all(rank is None for rank in cls_ranks):  # no class token (Swin, ConvNeXt, SigLIP): the mean token's
            cls_ranks, what = [layer.get("mean_token_entropy_rank") for layer in layers], "mean-token"
        else:
            what = "CLS"
        ax.plot(
            depth,
            [np.nan if rank is None else rank for rank in cls_ranks],
            "^:",
            color=color,
            label=f"{name}: {what} effective rank",
        )
    ax.set_xticks(range(max(len(diag["layers"]) for diag in diagnostics.values())))
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("dimensions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_svd_vs_pca(plt, diagnostics: dict[str, dict], colors, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for (name, diag), color in zip(diagnostics.items(), colors):
        final = diag["layers"][-1]
        ranks = final["svd_ranks"]["0.95"]
        ax.hist(
            ranks, bins=np.arange(0.5, max(ranks) + 1.5), alpha=0.45, color=color, label=f"{name}: per-image SVD (95%)"
        )
        ax.axvline(final["shared_dimension"], color=color, ls="--", label=f"{name}: shared PCA dimension")
    ax.set_xlabel("dimensions (final layer)")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_sep(plt, diagnostics: dict[str, dict], colors, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.6), dpi=120)
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls=":", label="uniform spectrum")
    for (name, diag), color in zip(diagnostics.items(), colors):
        curve = diag["layers"][-1]["sep_curve"]
        ax.plot(curve["bandwidth"], curve["cumulative"], color=color, label=name)
    ax.set_xlabel("normalised bandwidth d / D'")
    ax.set_ylabel("cumulative spectral energy of a token")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


FIGURES = ((_plot_rank_vs_depth, "rank_vs_depth.png"), (_plot_svd_vs_pca, "svd_vs_pca.png"), (_plot_sep, "sep.png"))


def plot_diagnostics(diagnostics: dict[str, dict], output_dir) -> list[str]:
    """Three figures for one or more models (name -> `diagnose_model` output); returns the file names.

    rank_vs_depth.png: per-image SVD rank (p99, 95% energy), shared PCA dimension and CLS effective rank per layer;
    svd_vs_pca.png: the final layer's per-image SVD ranks as a histogram, with the shared PCA dimension marked;
    sep.png: the final layer's Token Spectral Energy Pattern against the diagonal.
    """
    plt = pyplot()
    output_dir = Path(output_dir)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for function, name in FIGURES:
        function(plt, diagnostics, colors, output_dir / name)
    return [name for _, name in FIGURES]
