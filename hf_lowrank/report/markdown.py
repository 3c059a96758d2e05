"""report.md of a sweep: markdown rendered from its `Report`."""

from .build import Report
from .factorization_markdown import budget_lines, init_lines, nested_lines, preview_lines
from .formatting import NOT_ESTIMATED, at_smallest_rank_note, fmt_interval, fmt_rank, knee_text, region_text
from .latency import latency_lines


__all__ = ["render_markdown"]


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    """`value` in format `spec`, or `missing` where it is None (results.json writes a non-finite number as null)."""
    return missing if value is None else format(value, spec)


def _estimate_lines(report: Report) -> list[str]:
    """The headline bullets: region and knees with their intervals, or one line saying they were not estimated."""
    if not report.estimated:
        return [f"- Region and knee: {NOT_ESTIMATED}."]
    low, high = report.thresholds["low"], report.thresholds["high"]
    region, knee = report.region, report.knee
    lines = [
        f"- Region [r_{low:.0%}, r_{high:.0%}] of the teacher's accuracy: **{region_text(report)}**; 95% intervals "
        f"r_low {fmt_interval(region['r_low_interval'])}, r_high {fmt_interval(region['r_high_interval'])}.",
    ]
    note = at_smallest_rank_note(report)
    if note:
        lines.append(f"- Note: {note}")
    if report.aurac is not None:
        lines.append(
            f"- AURAC (mean normalised accuracy over log2 rank, ranks {report.ranks[0]}–{report.ranks[-1]}): "
            f"**{report.aurac:.3f}**"
            + (" (students cut from one nested student)" if report.curve == "nested" else "")
            + "."
        )
    for axis, label, interval in (
        ("linear", "Knee (headline, linear rank axis)", "linear_interval"),
        ("log_rank", "Knee on the log-rank axis", "log_rank_interval"),
    ):
        if knee[axis] is None:
            lines.append(f"- {label}: **none**: {knee.get(f'{axis}_why') or 'no knee'}.")
        else:
            lines.append(f"- {label}: **{knee_text(report, axis)}** {fmt_interval(knee[interval])}.")
    return lines


def _per_seed_lines(report: Report) -> list[str]:
    """The per-seed estimates; none when the report estimated nothing (no seed has more ranks than all together,
    so every row would repeat the headline's "not estimated")."""
    if not report.per_seed or not report.estimated:
        return []
    lines = [
        "## Across seeds",
        "",
        "| seed | r_low | r_high | knee | knee (log-rank) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for seed, values in report.per_seed.items():
        if not values.get("estimated", True):
            lines.append(f"| {seed} | {NOT_ESTIMATED} | | | |")
            continue
        lines.append(
            f"| {seed} | {fmt_rank(values['r_low'])} | {fmt_rank(values['r_high'])} | "
            f"{fmt_rank(values['knee'], missing='none')} | {fmt_rank(values['knee_log'], missing='none')} |"
        )
    return lines + [""]


def _failed_student(failed: dict) -> str:
    """A failed student as report.json lists it: ``rank 8`` or ``budget 0.3``."""
    return f"rank {failed['rank']}" if "rank" in failed else f"budget {failed['budget']:g}"


def render_markdown(report: Report) -> str:
    """report.md: the headline estimates, the student table, robustness, representations and notes."""
    teacher = report.teacher
    dataset = report.dataset or {}
    lines = [
        "# Effective-rank report",
        "",
        f"Teacher: {teacher['source']} ({teacher['parameters']:,} parameters, teacher stage: {teacher['finetune']}), "
        f"test accuracy **{teacher['accuracy']:.4f}**"
        + (f" {fmt_interval(report.teacher_accuracy_interval, 4)}." if report.teacher_accuracy_interval else "."),
        f"Dataset: {dataset.get('name')} ({dataset.get('num_train')} training / {dataset.get('num_test')} test "
        f"examples). Distillation: {report.distillation or report.distillation_mode}.",
        "",
        *init_lines(report),
        "## Effective rank region and knee",
        "",
        *_estimate_lines(report),
        "",
        "![knee plot](knee.png)",
        "",
        "## Students",
        "",
        "| rank | parameters | compression | accuracy | 95% interval | of teacher | seeds |",
        "| ---: | ---: | ---: | ---: | :---: | ---: | :---: |",
    ]
    for row in report.rows:
        interval = fmt_interval(row["accuracy_interval"], 4)
        lines.append(
            f"| {row['rank']} | {row['parameters']:,} | {row['compression']:.2f}x | {row['accuracy']:.4f} | "
            f"{interval} | {row['normalized_accuracy']:.1%} | {', '.join(map(str, row['seeds']))} |"
        )
    lines += ["", "![parameters against accuracy](params_vs_accuracy.png)", ""]
    lines += nested_lines(report) + preview_lines(report) + budget_lines(report)
    lines += _learning_curve_lines(report)
    lines += _rank_search_lines(report)
    lines += latency_lines(report)
    lines += _robustness_lines(report) + _representation_lines(report) + _collapse_lines(report)
    lines += _per_seed_lines(report)
    if report.failed:
        lines += (
            ["## Failed students", ""]
            + [f"- {_failed_student(f)}, seed {f['seed']}: {f['error']}" for f in report.failed]
            + [""]
        )
    if report.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    lines += ["## How these numbers were computed", "", report.method, ""]
    return "\n".join(lines)


def _learning_curve_lines(report: Report) -> list[str]:
    """Each student's validation curve (evaluation during training), its best step and where it stopped early."""
    if not report.learning_curves:
        return []
    dataset = report.dataset or {}
    lines = [
        "## Learning curves",
        "",
        f"Validation split: {dataset.get('num_validation')} examples carved from the training data (stratified, "
        "seeded); the accuracies above are on the test split, never seen during training.",
        "",
        "![learning curves](learning_curves.png)",
        "",
        "| rank | evaluations | best step | best validation accuracy | last validation accuracy | stopped early at |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for curve in report.learning_curves:
        history = curve["validation_history"]
        best = next((entry for entry in history if entry[0] == curve["best_step"]), None)
        lines.append(
            f"| {curve['rank']} | {len(history)} | {_fmt(curve['best_step'], 'd')} | "
            f"{_fmt(best[1] if best else None, '.4f')} | {history[-1][1]:.4f} | "
            f"{_fmt(curve['stopped_step'], 'd', 'did not stop')} |"
        )
    return lines + [""]


def _rank_search_lines(report: Report) -> list[str]:
    """--ranks auto: every rank the search trained, in order, and why it was chosen."""
    if not report.rank_search:
        return []
    lines = [
        "## Ranks chosen (--ranks auto)",
        "",
        "Round 0 is the coarse grid, with the ranks whose training-free preview already reached the teacher (for "
        "`preview`: measured untrained, 0 optimizer steps); each later round adds a rank between two measured ranks "
        "farther apart than the tolerance around a quantity's estimate or its 95% interval (first seed's students; "
        "200 bootstrap resamples).",
        "",
        "| order | rank | round | for | why |",
        "| ---: | ---: | ---: | --- | --- |",
    ]
    for order, choice in enumerate(report.rank_search, 1):
        lines.append(f"| {order} | {choice['rank']} | {choice['round']} | {choice['target']} | {choice['reason']} |")
    return lines + [""]


def _robustness_lines(report: Report) -> list[str]:
    teacher = report.teacher
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
    entries += [(f"rank {row['rank']}", row["accuracy"], row["ece"], row["noise_accuracy"]) for row in report.rows]
    for name, accuracy, ece, noise in entries:
        ece_text = "" if ece is None else f"{ece:.4f}"
        noise_text = " | ".join("" if noise.get(s) is None else f"{noise[s]:.4f}" for s in sigmas)
        lines.append(f"| {name} | {accuracy:.4f} | {ece_text} | {noise_text} |")
    return lines + [""]


def _representation_lines(report: Report) -> list[str]:
    teacher = report.teacher.get("diagnostics")
    if not teacher:
        return []
    text = report.teacher.get("task") == "text-classification"
    unit, padding = ("text", " (padding tokens included)") if text else ("image", "")
    lines = [
        "## Representations",
        "",
        f"Final-layer tokens{padding} of each model on the test {unit}s: per-{unit} SVD rank holding 95% of a "
        f"{unit}'s energy (99th percentile over {unit}s), the shared PCA dimension at which 99% of {unit}s keep 95% "
        "of their energy, the spectral bandwidth b_0.9 of single tokens (fraction of the channel spectrum holding "
        "90% of their energy), and the centred entropy effective rank of the pooled representation.",
        "",
        "![representations against rank](representations.png)",
        "",
        f"| model | per-{unit} SVD rank (p99) | shared PCA dimension | b_0.9 | pooled effective rank |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    entries = [("teacher", teacher)] + [(f"rank {row['rank']}", row["diagnostics"]) for row in report.rows]
    for name, d in entries:
        if d:
            lines.append(
                f"| {name} | {_fmt(d['svd_rank_p99']['0.95'], '.0f')} | {_fmt(d['shared_dimension'], '')} | "
                f"{_fmt(d['bandwidth']['0.9'], '.2f')} | {_fmt(d['pooled_entropy_rank'], '.2f')} |"
            )
    return lines + [""]


def _collapse_lines(report: Report) -> list[str]:
    students = [s for s in report.cnn_students if s["status"] == "done"]
    if not students:
        return []
    teacher = report.teacher
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
        noise = f"{_fmt((entry.get('noise_accuracy') or {}).get(sigma), '.4f')} | " if sigma else ""
        erank = entry["diagnostics"]["pooled_entropy_rank"] if entry.get("diagnostics") else None
        lines.append(
            f"| {name} | {parameters:,} | {_fmt(entry['accuracy'], '.4f')} | {noise}{_fmt(erank, '.2f', '')} |"
        )
    return lines + [""]
