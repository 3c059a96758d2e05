"""Figures of the report: the knee plot, parameters against accuracy, representations against rank."""

import os

import numpy as np

from ..analysis import secant
from ..factorization.inits import INIT_REGISTRY
from ..plotting import pyplot
from .build import Report
from .formatting import region_text


__all__ = [
    "error_bars",
    "knee_figure",
    "plot_budget_ranks",
    "plot_knee",
    "plot_params_vs_accuracy",
    "plot_representations",
]

PREVIEW_STYLES = {name: init.plot_style for name, init in INIT_REGISTRY.items()}  # init -> (color, marker)


def plot_representations(report: Report, path: str | os.PathLike) -> None:
    """Pooled effective rank, shared PCA dimension and per-example (image or text) SVD rank of every student against
    its rank, with the teacher's values as horizontal lines."""
    plt = pyplot()
    rows = [row for row in report.rows if row.get("diagnostics")]
    teacher = report.teacher["diagnostics"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    ranks = [row["rank"] for row in rows]
    series = [
        ("pooled effective rank", lambda d: d["pooled_entropy_rank"], "tab:blue"),
        ("shared PCA dimension", lambda d: d["shared_dimension"], "tab:orange"),
        ("per-example SVD rank (p99, 95%)", lambda d: d["svd_rank_p99"]["0.95"], "tab:green"),
    ]
    for label, value, color in series:
        ax.plot(ranks, [value(row["diagnostics"]) for row in rows], "o-", color=color, label=label)
        ax.axhline(value(teacher), color=color, ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks)
    ax.set_xticklabels([str(r) for r in ranks])
    ax.set_xlabel("factorization rank (dashed: teacher)")
    ax.set_ylabel("dimensions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def error_bars(report: Report, normalised: np.ndarray) -> np.ndarray:
    """`(2, num_ranks)`: the distances from each normalised accuracy down and up to its interval's ends, clipped at
    zero: a percentile bootstrap interval need not contain the point estimate (few resamples, a skewed resampling
    distribution), and a bar cannot be negative: the bar on that side is then empty."""
    teacher_accuracy = report.teacher["accuracy"]
    lo, hi = (np.array([r["accuracy_interval"][end] for r in report.rows]) / teacher_accuracy for end in (0, 1))
    return np.clip(np.stack([normalised - lo, hi - normalised]), 0.0, None)


def _plot_points(ax, report: Report, ranks: np.ndarray, normalised: np.ndarray) -> None:
    """The measured students, with their 95% intervals when the report has them."""
    rows = report.rows
    if rows and rows[0]["accuracy_interval"]:
        ax.errorbar(
            ranks,
            normalised,
            yerr=error_bars(report, normalised),
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="students (95% interval)",
            zorder=3,
        )
    else:
        ax.plot(ranks, normalised, "o", color="tab:blue", label="students", zorder=3)


SECANT_LABEL = "secant (log-rank knee)"


def _plot_estimates(ax, report: Report, curve, ranks: np.ndarray) -> None:
    """The fitted curve, the secant, the region and the knees.

    The x axis is logarithmic, so the secant drawn is the one the log-rank knee is measured against (`secant`
    with `log_rank=True`: straight in log-rank, hence straight here). The linear-rank knee's secant is straight in
    rank and would be a curve on this axis; it is not drawn."""
    grid = np.exp(np.linspace(np.log(ranks[0]), np.log(ranks[-1]), 400))
    ax.plot(grid, curve(grid), color="tab:blue", lw=1.5, label="monotone PCHIP fit")
    secant_ranks, secant_values = secant(curve, log_rank=True, num=50)
    ax.plot(secant_ranks, secant_values, color="tab:gray", lw=1, ls="--", label=SECANT_LABEL, gid="secant")
    region, knee = report.region, report.knee
    if report.estimated and region["r_low"] is not None:
        right = region["r_high"] if region["r_high"] is not None else ranks[-1]
        ax.axvspan(region["r_low"], right, color="tab:orange", alpha=0.15, label=f"region {region_text(report)}")
    if knee["linear"] is not None:
        ax.axvline(knee["linear"], color="tab:red", lw=1.2, label=f"knee {knee['linear']:.1f}")
        ax.plot([knee["linear"]], [float(curve(knee["linear"]))], "D", color="tab:red", zorder=4)
    if knee["log_rank"] is not None:
        ax.axvline(knee["log_rank"], color="tab:purple", lw=1, ls="-.", label=f"log-rank knee {knee['log_rank']:.1f}")


def _preview_ranks(report: Report) -> set:
    return {row["rank"] for entry in report.previews.values() for row in entry["rows"]}


def _plot_previews(ax, report: Report) -> None:
    """Each init's students at initialisation (before distillation): dashed, hollow markers."""
    for init, entry in report.previews.items():
        color, marker = PREVIEW_STYLES.get(init, ("tab:olive", "x"))
        rows = entry["rows"]
        ax.plot(
            [row["rank"] for row in rows],
            [row["normalized_accuracy"] for row in rows],
            ls="--",
            lw=1,
            marker=marker,
            mfc="none",
            color=color,
            label=f"{init} at init (no training)",
        )


def _plot_nested(ax, report: Report) -> None:
    """The nested curve's students (`--curve both`): purple points joined by a line."""
    if not report.nested:
        return
    rows = report.nested["rows"]
    ax.plot(
        [row["rank"] for row in rows],
        [row["normalized_accuracy"] for row in rows],
        "D-",
        color="tab:purple",
        ms=4,
        lw=1,
        label="nested (one training run)",
    )


def plot_knee(report: Report, path: str | os.PathLike) -> None:
    """Normalised accuracy against rank (log axis): points with interval bars, the PCHIP curve, the threshold band,
    the region, the knees and the log-rank knee's secant."""
    plt = pyplot()
    fig = knee_figure(report)
    fig.savefig(path)
    plt.close(fig)


def knee_figure(report: Report):
    """The figure `plot_knee` saves (the caller closes it)."""
    plt = pyplot()
    ranks = np.array(report.ranks, dtype=float)
    normalised = np.array([r["normalized_accuracy"] for r in report.rows])
    low, high = report.thresholds["low"], report.thresholds["high"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ax.axhspan(low, high, color="tab:green", alpha=0.12, label=f"{low:.0%}-{high:.0%} of teacher")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    if len(ranks):
        _plot_points(ax, report, ranks, normalised)
    _plot_previews(ax, report)
    _plot_nested(ax, report)
    curve = report.summary.curve if report.summary is not None else None
    if curve is not None:
        _plot_estimates(ax, report, curve, ranks)  # the trained curve, over its own ranks only
    ranks = np.array(sorted(set(ranks.tolist()) | _preview_ranks(report)), dtype=float)  # every curve's ticks
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks)
    ax.set_xticklabels([f"{int(r)}" for r in ranks])
    ax.set_xlabel("rank r (every encoder linear layer)")
    ax.set_ylabel("student accuracy / teacher accuracy")
    name = (report.dataset or {}).get("name", "")
    ax.set_title(f"Effective rank: {name}, teacher {report.teacher['accuracy']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_params_vs_accuracy(report: Report, path: str | os.PathLike) -> None:
    """Test accuracy against parameter count (log axis) for every student, with the teacher."""
    plt = pyplot()
    rows = report.rows
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    params = [r["parameters"] for r in rows]
    accuracy = [r["accuracy"] for r in rows]
    ax.plot(params, accuracy, "o-", color="tab:blue", label="students")
    for row in rows:
        ax.annotate(
            f"r={row['rank']}",
            (row["parameters"], row["accuracy"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=8,
        )
    teacher = report.teacher
    ax.plot([teacher["parameters"]], [teacher["accuracy"]], "*", ms=14, color="tab:red", label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_learning_curves(report: Report, path: str | os.PathLike) -> None:
    """Validation accuracy against optimizer step, one line per rank (primary seed); a circle marks each student's
    best step, a cross the step it stopped early at."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for i, curve in enumerate(report.learning_curves):
        steps, accuracy, _ = zip(*curve["validation_history"])
        color = f"C{i % 10}"
        ax.plot(steps, accuracy, "-", color=color, lw=1.2, label=f"r={curve['rank']}")
        for marker, step in (("o", curve["best_step"]), ("x", curve["stopped_step"])):
            if step in steps:
                ax.plot([step], [accuracy[steps.index(step)]], marker, color=color, ms=6, mfc="none")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Learning curves (o: best step, x: stopped early)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_budget_ranks(report: Report, path: str | os.PathLike) -> None:
    """The per-layer ranks of every budget student (bars, one group per layer in forward order), with the uniform
    rank of the same budget as a dashed line of the same colour; a layer kept dense is marked "dense" (no bar)."""
    plt = pyplot()
    rows = report.budget_students
    layers = list(rows[0]["layer_ranks"])
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(6.5, 0.28 * len(layers) + 2), 4.2), dpi=120)
    positions = np.arange(len(layers))
    for i, row in enumerate(rows):
        color = f"C{i}"
        offsets = positions + (i - (len(rows) - 1) / 2) * width
        ranks = [row["layer_ranks"][name] for name in layers]
        ax.bar(
            offsets,
            [np.nan if rank is None else rank for rank in ranks],
            width,
            color=color,
            label=f"budget {row['budget']:g} ({row['linear_parameters']:,} parameters)",
        )
        for offset, rank in zip(offsets, ranks):
            if rank is None:
                ax.annotate("dense", (offset, 0), xytext=(0, 2), textcoords="offset points", rotation=90,
                            ha="center", va="bottom", fontsize=6, color=color)  # fmt: skip
        ax.axhline(row["uniform_rank"], color=color, ls="--", lw=1, label=f"uniform rank {row['uniform_rank']}")
    ax.set_xticks(positions)
    ax.set_xticklabels([_short(name) for name in layers], rotation=90, fontsize=7)
    ax.set_ylabel("rank")
    ax.set_title("Per-layer ranks allocated within each budget")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _short(name: str) -> str:
    """A layer's name without the model prefixes: the block number and the module (``3.attention.q_proj``)."""
    parts = name.split(".")
    numbers = [i for i, part in enumerate(parts) if part.isdigit()]
    return ".".join(parts[numbers[0] :]) if numbers else name
