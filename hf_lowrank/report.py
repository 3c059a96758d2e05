"""The effective-rank report of a sweep: report.json, report.md, knee.png and params_vs_accuracy.png.

Built from results.json alone, so `scripts/report.py OUTPUT_DIR` can (re)make it at any time.
"""

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from .analysis import bootstrap_intervals, effective_knee, effective_rank_region, fit_curve
from .results import atomic_write_json, load_results


__all__ = [
    "HEADLINE_KNEE",
    "build_report",
    "plot_knee",
    "plot_params_vs_accuracy",
    "plot_representations",
    "write_report",
]

HEADLINE_KNEE = "linear"  # the paper's definition; the log-rank knee is reported beside it
MIN_RANKS = 3
METHOD = (
    "Normalised accuracy n(r) = a(r) / a_T of each student against the teacher's test accuracy. Monotonicity is "
    "enforced on the measured points by isotonic regression (pool adjacent violators: the closest non-decreasing "
    "sequence in least squares), then fitted with a monotone PCHIP interpolant (scipy.interpolate."
    "PchipInterpolator); the raw points are kept in the table. r_x is the smallest rank at which the curve reaches "
    "x (none if it never does within the measured ranks). The knee is the rank maximising the perpendicular "
    "distance from the curve to the secant through its endpoints, on axes normalised to [0, 1]; the headline uses "
    "the linear rank axis (the paper's definition), the log-rank knee is given beside it because ranks are usually "
    "spaced geometrically. Intervals are 95% percentile bootstraps over test examples, resampling the per-example "
    "correctness of the teacher and every student jointly; with several seeds, the per-seed values are given too."
)


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _seed_curves(records: list[dict]) -> dict[int, list[dict]]:
    by_seed = defaultdict(list)
    for record in records:
        by_seed[record["seed"]].append(record)
    return {seed: sorted(rows, key=lambda r: r["rank"]) for seed, rows in sorted(by_seed.items())}


def _estimates(ranks, accuracies, teacher_accuracy, low, high) -> dict:
    if len(ranks) < MIN_RANKS:
        return {"r_low": None, "r_high": None, "knee": None, "knee_log": None}
    r_low, r_high = effective_rank_region(ranks, accuracies, teacher_accuracy, low, high)
    return {
        "r_low": r_low,
        "r_high": r_high,
        "knee": effective_knee(ranks, accuracies, teacher_accuracy),
        "knee_log": effective_knee(ranks, accuracies, teacher_accuracy, log_rank=True),
    }


def build_report(
    results: dict, low: float = 0.85, high: float = 0.95, num_bootstrap: int = 1000, seed: int = 0
) -> dict:
    """The report's content from a results.json payload.

    With several seeds, a rank's accuracy is the mean over seeds and an example counts as the fraction of seeds
    that got it right; region and knee are also computed per seed.
    """
    teacher = results["teacher"]
    if teacher is None:
        raise ValueError("the results hold no teacher yet: the sweep has not finished its teacher stage.")
    done = [r for r in results["ranks"] if r["status"] == "done"]
    failed = [
        {"rank": r["rank"], "seed": r["seed"], "error": r["error"]} for r in results["ranks"] if r["status"] != "done"
    ]
    per_seed = _seed_curves(done)
    by_rank = defaultdict(list)
    for record in done:
        by_rank[record["rank"]].append(record)
    ranks = sorted(by_rank)
    accuracies = [float(np.mean([r["accuracy"] for r in by_rank[rank]])) for rank in ranks]
    correct = [np.mean([r["correct"] for r in by_rank[rank]], axis=0) for rank in ranks]
    teacher_accuracy = teacher["accuracy"]

    notes = []
    if len(ranks) < MIN_RANKS:
        notes.append(
            f"Only {len(ranks)} rank(s) finished: the effective rank region and the knee need at least "
            f"{MIN_RANKS} and are not estimated."
        )
    estimates = _estimates(ranks, accuracies, teacher_accuracy, low, high)
    intervals = None
    if ranks and num_bootstrap > 0:
        intervals = (
            bootstrap_intervals(
                ranks, np.stack(correct), np.asarray(teacher["correct"]), num_bootstrap, seed, low, high
            )
            if len(ranks) >= 2
            else None
        )
    above = [rank for rank, a in zip(ranks, accuracies) if a > teacher_accuracy]
    if above:
        notes.append(
            f"Students at ranks {above} score above the teacher (normalised accuracy > 1); kept as "
            "measured, the curve saturates at their level."
        )
    if len(ranks) >= 2 and not fit_curve(ranks, accuracies, teacher_accuracy).was_monotone:
        notes.append(
            "The measured accuracies are not monotone in rank; isotonic regression pooled the "
            "violating points before the PCHIP fit (raw points are in the table)."
        )

    rows = []
    for i, rank in enumerate(ranks):
        first = by_rank[rank][0]
        rows.append(
            {
                "rank": rank,
                "parameters": first["parameters"],
                "compression": first["compression"],
                "accuracy": accuracies[i],
                "normalized_accuracy": accuracies[i] / teacher_accuracy,
                "accuracy_interval": list(intervals["accuracy"][i]) if intervals else None,
                "seeds": [r["seed"] for r in by_rank[rank]],
                "model_dir": first["model_dir"],
                "ece": _mean([r.get("ece") for r in by_rank[rank]]),
                "noise_accuracy": {
                    sigma: _mean([r["noise_accuracy"].get(sigma) for r in by_rank[rank]])
                    for sigma in first.get("noise_accuracy", {})
                },
                "diagnostics": first.get("diagnostics"),
            }
        )
    seed_estimates = {}
    if len(per_seed) > 1:
        for seed_value, seed_rows in per_seed.items():
            seed_estimates[seed_value] = _estimates(
                [r["rank"] for r in seed_rows], [r["accuracy"] for r in seed_rows], teacher_accuracy, low, high
            )
    return {
        "teacher": {
            key: teacher.get(key)
            for key in ("source", "accuracy", "parameters", "finetune", "ece", "noise_accuracy", "diagnostics")
        },
        "teacher_accuracy_interval": list(intervals["teacher_accuracy"]) if intervals else None,
        "dataset": results.get("dataset"),
        "distillation_mode": results["config"]["training"]["distillation_mode"],
        "thresholds": {"low": low, "high": high},
        "rows": rows,
        "region": {
            "r_low": estimates["r_low"],
            "r_high": estimates["r_high"],
            "r_low_interval": list(intervals["r_low"]) if intervals else None,
            "r_high_interval": list(intervals["r_high"]) if intervals else None,
        },
        "knee": {
            "headline": HEADLINE_KNEE,
            "linear": estimates["knee"],
            "log_rank": estimates["knee_log"],
            "linear_interval": list(intervals["knee"]) if intervals else None,
            "log_rank_interval": list(intervals["knee_log"]) if intervals else None,
        },
        "per_seed": {str(k): v for k, v in seed_estimates.items()},
        "bootstrap": {"num_samples": num_bootstrap, "seed": seed, "level": 0.95},
        "cnn_students": [
            {
                key: r.get(key)
                for key in (
                    "capacity",
                    "status",
                    "error",
                    "parameters",
                    "accuracy",
                    "ece",
                    "noise_accuracy",
                    "diagnostics",
                )
            }
            for r in results.get("cnn_students", [])
        ],
        "failed": failed,
        "notes": notes,
        "method": METHOD,
    }


def _fmt(value, digits=1, missing="not reached"):
    return missing if value is None else f"{value:.{digits}f}"


def _fmt_interval(interval, digits=1):
    if not interval:
        return ""
    lo, hi = interval[0], interval[1]
    text = "n/a" if lo is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"
    if len(interval) > 2 and interval[2]:
        text += f" (undefined in {interval[2]:.0%} of resamples)"
    return text


def render_markdown(report: dict) -> str:
    teacher, region, knee = report["teacher"], report["region"], report["knee"]
    low, high = report["thresholds"]["low"], report["thresholds"]["high"]
    dataset = report["dataset"] or {}
    lines = [
        "# Effective-rank report",
        "",
        f"Teacher: {teacher['source']} ({teacher['parameters']:,} parameters, teacher stage: {teacher['finetune']}), "
        f"test accuracy **{teacher['accuracy']:.4f}** {_fmt_interval(report['teacher_accuracy_interval'], 4)}.",
        f"Dataset: {dataset.get('name')} ({dataset.get('num_train')} training / {dataset.get('num_test')} test "
        f"examples). Distillation: {report['distillation_mode']}.",
        "",
        "## Effective rank region and knee",
        "",
        f"- Region [r_{low:.0%}, r_{high:.0%}] of the teacher's accuracy: **[{_fmt(region['r_low'])}, "
        f"{_fmt(region['r_high'])}]**; 95% intervals r_low {_fmt_interval(region['r_low_interval'])}, "
        f"r_high {_fmt_interval(region['r_high_interval'])}.",
        f"- Knee (headline, linear rank axis): **{_fmt(knee['linear'], missing='none')}** "
        f"{_fmt_interval(knee['linear_interval'])}.",
        f"- Knee on the log-rank axis: {_fmt(knee['log_rank'], missing='none')} "
        f"{_fmt_interval(knee['log_rank_interval'])}.",
        "",
        "![knee plot](knee.png)",
        "",
        "## Students",
        "",
        "| rank | parameters | compression | accuracy | 95% interval | of teacher | seeds |",
        "| ---: | ---: | ---: | ---: | :---: | ---: | :---: |",
    ]
    for row in report["rows"]:
        interval = _fmt_interval(row["accuracy_interval"], 4)
        lines.append(
            f"| {row['rank']} | {row['parameters']:,} | {row['compression']:.2f}x | {row['accuracy']:.4f} | "
            f"{interval} | {row['normalized_accuracy']:.1%} | {', '.join(map(str, row['seeds']))} |"
        )
    lines += ["", "![parameters against accuracy](params_vs_accuracy.png)", ""]
    lines += _robustness_lines(report) + _representation_lines(report) + _collapse_lines(report)
    if report["per_seed"]:
        lines += [
            "## Across seeds",
            "",
            "| seed | r_low | r_high | knee | knee (log-rank) |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for seed, values in report["per_seed"].items():
            lines.append(
                f"| {seed} | {_fmt(values['r_low'])} | {_fmt(values['r_high'])} | {_fmt(values['knee'])} | "
                f"{_fmt(values['knee_log'])} |"
            )
        lines.append("")
    if report["failed"]:
        lines += (
            ["## Failed students", ""]
            + [f"- rank {f['rank']}, seed {f['seed']}: {f['error']}" for f in report["failed"]]
            + [""]
        )
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    lines += ["## How these numbers were computed", "", report["method"], ""]
    return "\n".join(lines)


def _robustness_lines(report: dict) -> list[str]:
    teacher = report["teacher"]
    sigmas = list((teacher.get("noise_accuracy") or {}).keys())
    if teacher.get("ece") is None:
        return []
    lines = [
        "## Calibration and robustness",
        "",
        "Expected calibration error (15 bins) and accuracy under additive Gaussian noise of standard deviation "
        "sigma on the normalised inputs (the same seeded noise for every model).",
        "",
        "| model | accuracy | ECE | " + " | ".join(f"sigma={s}" for s in sigmas) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in sigmas) + " |",
    ]
    entries = [("teacher", teacher["accuracy"], teacher["ece"], teacher.get("noise_accuracy") or {})]
    entries += [(f"rank {row['rank']}", row["accuracy"], row["ece"], row["noise_accuracy"]) for row in report["rows"]]
    for name, accuracy, ece, noise in entries:
        ece_text = "" if ece is None else f"{ece:.4f}"
        noise_text = " | ".join("" if noise.get(s) is None else f"{noise[s]:.4f}" for s in sigmas)
        lines.append(f"| {name} | {accuracy:.4f} | {ece_text} | {noise_text} |")
    return lines + [""]


def _representation_lines(report: dict) -> list[str]:
    teacher = report["teacher"].get("diagnostics")
    if not teacher:
        return []
    lines = [
        "## Representations",
        "",
        "Final-layer tokens of each model on the test images: per-image SVD rank holding 95% of an image's "
        "energy (99th percentile over images), the shared PCA dimension at which 99% of images keep 95% of their "
        "energy, the spectral bandwidth b_0.9 of single tokens (fraction of the channel spectrum holding 90% of "
        "their energy), and the centred entropy effective rank of the pooled representation.",
        "",
        "![representations against rank](representations.png)",
        "",
        "| model | per-image SVD rank (p99) | shared PCA dimension | b_0.9 | pooled effective rank |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    entries = [("teacher", teacher)] + [(f"rank {row['rank']}", row["diagnostics"]) for row in report["rows"]]
    for name, d in entries:
        if d:
            lines.append(
                f"| {name} | {d['svd_rank_p99']['0.95']:.0f} | {d['shared_dimension']} | "
                f"{d['bandwidth']['0.9']:.2f} | {d['pooled_entropy_rank']:.2f} |"
            )
    return lines + [""]


def _collapse_lines(report: dict) -> list[str]:
    students = [s for s in report.get("cnn_students", []) if s["status"] == "done"]
    if not students:
        return []
    teacher = report["teacher"]
    sigma = "0.1" if "0.1" in (teacher.get("noise_accuracy") or {}) else None
    lines = [
        "## Dimensional collapse: CNN students",
        "",
        "ResNet students (transformers' ResNet classes) trained by cosine distillation of the teacher's "
        "embedding; pooled effective rank of their embedding against the teacher's.",
        "",
        "| model | trainable parameters | accuracy | "
        + (f"accuracy at sigma={sigma} | " if sigma else "")
        + "pooled effective rank |",
        "| --- | ---: | ---: | " + ("---: | " if sigma else "") + "---: |",
    ]
    entries = [("teacher", teacher["parameters"], teacher)] + [
        (f"CNN {s['capacity']}", s["parameters"], s) for s in students
    ]
    for name, parameters, entry in entries:
        noise = f"{entry['noise_accuracy'][sigma]:.4f} | " if sigma else ""
        erank = entry["diagnostics"]["pooled_entropy_rank"] if entry.get("diagnostics") else None
        lines.append(
            f"| {name} | {parameters:,} | {entry['accuracy']:.4f} | {noise}{'' if erank is None else f'{erank:.2f}'} |"
        )
    return lines + [""]


def plot_representations(report: dict, path: str | os.PathLike) -> None:
    """Pooled effective rank, shared PCA dimension and per-image SVD rank of every student against its rank, with
    the teacher's values as horizontal lines."""
    plt = _pyplot()
    rows = [row for row in report["rows"] if row.get("diagnostics")]
    teacher = report["teacher"]["diagnostics"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    ranks = [row["rank"] for row in rows]
    series = [
        ("pooled effective rank", lambda d: d["pooled_entropy_rank"], "tab:blue"),
        ("shared PCA dimension", lambda d: d["shared_dimension"], "tab:orange"),
        ("per-image SVD rank (p99, 95%)", lambda d: d["svd_rank_p99"]["0.95"], "tab:green"),
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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_knee(report: dict, path: str | os.PathLike) -> None:
    """Normalised accuracy against rank (log axis): points with interval bars, the PCHIP curve, the threshold band,
    the region, the knee and the secant."""
    plt = _pyplot()
    rows = report["rows"]
    teacher_accuracy = report["teacher"]["accuracy"]
    ranks = np.array([r["rank"] for r in rows], dtype=float)
    normalised = np.array([r["normalized_accuracy"] for r in rows])
    low, high = report["thresholds"]["low"], report["thresholds"]["high"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ax.axhspan(low, high, color="tab:green", alpha=0.12, label=f"{low:.0%}-{high:.0%} of teacher")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    if rows and rows[0]["accuracy_interval"]:
        lo = np.array([r["accuracy_interval"][0] for r in rows]) / teacher_accuracy
        hi = np.array([r["accuracy_interval"][1] for r in rows]) / teacher_accuracy
        ax.errorbar(
            ranks,
            normalised,
            yerr=[normalised - lo, hi - normalised],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="students (95% interval)",
            zorder=3,
        )
    else:
        ax.plot(ranks, normalised, "o", color="tab:blue", label="students", zorder=3)
    if len(rows) >= 2:
        curve = fit_curve(ranks, normalised, 1.0)
        grid = np.exp(np.linspace(np.log(ranks[0]), np.log(ranks[-1]), 400))
        ax.plot(grid, curve(grid), color="tab:blue", lw=1.5, label="monotone PCHIP fit")
        y0, y1 = float(curve(ranks[0])), float(curve(ranks[-1]))
        ax.plot(
            grid,
            y0 + (y1 - y0) * (grid - ranks[0]) / (ranks[-1] - ranks[0]),
            color="tab:gray",
            lw=1,
            ls="--",
            label="secant (linear-rank knee)",
        )
        region, knee = report["region"], report["knee"]
        if region["r_low"] is not None:
            right = region["r_high"] if region["r_high"] is not None else ranks[-1]
            ax.axvspan(
                region["r_low"],
                right,
                color="tab:orange",
                alpha=0.15,
                label=f"region [{_fmt(region['r_low'])}, {_fmt(region['r_high'])}]",
            )
        if knee["linear"] is not None:
            ax.axvline(knee["linear"], color="tab:red", lw=1.2, label=f"knee {knee['linear']:.1f}")
            ax.plot([knee["linear"]], [float(curve(knee["linear"]))], "D", color="tab:red", zorder=4)
        if knee["log_rank"] is not None:
            ax.axvline(
                knee["log_rank"], color="tab:purple", lw=1, ls="-.", label=f"log-rank knee {knee['log_rank']:.1f}"
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks)
    ax.set_xticklabels([f"{int(r)}" for r in ranks])
    ax.set_xlabel("rank r (every encoder linear layer)")
    ax.set_ylabel("student accuracy / teacher accuracy")
    ax.set_title(
        f"Effective rank: {report['dataset'].get('name') if report['dataset'] else ''}, teacher {teacher_accuracy:.3f}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_params_vs_accuracy(report: dict, path: str | os.PathLike) -> None:
    """Test accuracy against parameter count (log axis) for every student, with the teacher."""
    plt = _pyplot()
    rows = report["rows"]
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
    teacher = report["teacher"]
    ax.plot([teacher["parameters"]], [teacher["accuracy"]], "*", ms=14, color="tab:red", label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(output_dir: str | os.PathLike, **build_kwargs) -> dict:
    """Read `output_dir/results.json`; write report.json, report.md, knee.png, params_vs_accuracy.png beside it."""
    output_dir = Path(output_dir)
    report = build_report(load_results(output_dir / "results.json"), **build_kwargs)
    atomic_write_json(output_dir / "report.json", report)
    plot_knee(report, output_dir / "knee.png")
    plot_params_vs_accuracy(report, output_dir / "params_vs_accuracy.png")
    if report["teacher"].get("diagnostics") and any(row.get("diagnostics") for row in report["rows"]):
        plot_representations(report, output_dir / "representations.png")
    (output_dir / "report.md").write_text(render_markdown(report))
    return report
