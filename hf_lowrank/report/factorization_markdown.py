"""report.md's sections on how the students start: the init and its calibration, the training-free preview curves,
and the budget students against uniform ranks."""

from .formatting import fmt_interval, fmt_rank, region_text, region_words


__all__ = ["budget_lines", "init_lines", "nested_lines", "preview_lines"]


def _region(entry: dict) -> str:
    """The region of a preview or nested curve section (`region_words`, `<=` at its smallest rank)."""
    return region_words(entry["region"], entry["rows"][0]["rank"] if entry["rows"] else None)


def init_lines(report) -> list[str]:
    """One line: the trained students' init, and the calibration the sweep gathered (examples, tokens, time)."""
    record = report.factorization or {}
    text = f"Students start from the **{report.init}** factorization of each teacher weight"
    if record.get("calibration_examples"):
        seconds = record.get("seconds", {})
        per_layer = record.get("calibration_tokens_per_layer")
        tokens = (
            f"{min(per_layer.values()):,} to {max(per_layer.values()):,} tokens per layer, by layer in results.json"
            if per_layer
            else f"{record['calibration_tokens']:,} tokens per layer"
        )
        text += (
            f"; calibration statistics from {record['calibration_examples']} training examples ({tokens}) in "
            f"{seconds.get('calibration', 0.0):.2f} s"
        )
        decompose = {key.removeprefix("decomposition_"): v for key, v in seconds.items() if key != "calibration"}
        if decompose:
            text += ", decomposed once per init (" + ", ".join(f"{k} {v:.2f} s" for k, v in decompose.items()) + ")"
    lines = [text + "."]
    for init, fallbacks in (record.get("fallbacks") or {}).items():
        lines += [f"- {init}: {line}." for line in fallbacks]
    return lines + [""]


def preview_lines(report) -> list[str]:
    """The preview table (normalised accuracy at init per init and rank, with the trained students beside them),
    each preview's region and knee, and how far it predicts the trained curve."""
    previews = report.previews
    if not previews:
        return []
    inits = list(previews)
    trained = {row["rank"]: row for row in report.rows}
    ranks = sorted({row["rank"] for entry in previews.values() for row in entry["rows"]} | set(trained))
    by_init = {init: {row["rank"]: row for row in entry["rows"]} for init, entry in previews.items()}
    lines = [
        "## Training-free preview: students at initialisation",
        "",
        "Each rank's student evaluated right after initialisation, before any distillation (normalised accuracy, "
        "95% interval); the trained column is the students above (started from "
        f"{report.init}).",
        "",
        "| rank | " + " | ".join(f"{init} at init" for init in inits) + f" | trained ({report.init}) |",
        "| ---: | " + " | ".join(":---:" for _ in inits) + " | :---: |",
    ]
    teacher = report.teacher["accuracy"]

    def cell(row):
        if row is None:
            return ""
        interval = row.get("accuracy_interval")
        bounds = f" [{interval[0] / teacher:.0%}, {interval[1] / teacher:.0%}]" if interval else ""
        return f"{row['normalized_accuracy']:.1%}{bounds}"

    for rank in ranks:
        cells = [cell(by_init[init].get(rank)) for init in inits]
        lines.append(f"| {rank} | " + " | ".join(cells) + f" | {cell(trained.get(rank))} |")
    lines += [
        "",
        "| init | region at init (r_high 95% interval) | knee at init | trained minus at init (mean, range) "
        "| Spearman |",
    ]
    lines.append("| :--- | :---: | ---: | :---: | ---: |")
    for init, entry in previews.items():
        agreement = entry.get("agreement")
        gain = (
            f"{agreement['mean_gain']:+.1%} ({agreement['min_gain']:+.1%} to {agreement['max_gain']:+.1%})"
            if agreement
            else "no trained students"
        )
        rho = f"{agreement['spearman']:.2f}" if agreement and agreement.get("spearman") is not None else "n/a"
        knee = fmt_rank(entry["knee"]["linear"], missing="none") if entry["region"]["estimated"] else "n/a"
        lines.append(
            f"| {init} | {_region(entry)} {fmt_interval(entry['region']['r_high_interval'])} | {knee} | {gain} | "
            f"{rho} |"
        )
    lines += ["", _prediction_sentence(report), ""]
    return lines


def _prediction_sentence(report) -> str:
    """How far the preview predicts the trained result: the trained region beside the preview of the same init."""
    entry = report.previews.get(report.init)
    if not report.rows:
        return (
            "No rank student finished (or, with --preview_only, none was distilled): the previews are the only curves."
        )
    if entry is None or not entry.get("agreement"):
        return f"No preview of the trained students' init ({report.init}) to compare with."
    agreement = entry["agreement"]
    return (
        f"How far the preview predicts training: the {report.init} students' region is {_region(entry)} at init and "
        f"{region_text(report)} after distillation; distillation raised their normalised accuracy by "
        f"{agreement['mean_gain']:+.1%} on average over ranks {agreement['ranks']} (from "
        f"{agreement['min_gain']:+.1%} to {agreement['max_gain']:+.1%})."
    )


def budget_lines(report) -> list[str]:
    """The budget students against the uniform-rank students of the same budget, and the per-layer rank chart."""
    rows = report.budget_students
    if not rows:
        return []
    lines = [
        "## Per-layer ranks from a parameter budget",
        "",
        "Per budget, ranks allocated greedily per layer by output error removed per parameter (whitened spectra), "
        "against one rank everywhere within the same budget (encoder-linear parameters; accuracy at init and "
        "after distillation; difference with a paired 95% bootstrap interval).",
        "",
        "| budget | allocated: parameters | at init | trained | uniform rank: parameters | at init | trained | "
        "trained difference |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for row in rows:

        def accuracy(value):
            return "n/a" if value is None else f"{value:.4f}"

        difference = "n/a" if row["difference"] is None else f"{row['difference']:+.4f}"
        interval = fmt_interval(row["difference_interval"], 4)
        lines.append(
            f"| {row['budget']:g} ({row['budget_parameters']:,}) | {row['linear_parameters']:,} | "
            f"{accuracy(row['init_accuracy'])} | {accuracy(row['accuracy'])} | r={row['uniform_rank']}: "
            f"{row['uniform_linear_parameters']:,} | {accuracy(row['uniform_init_accuracy'])} | "
            f"{accuracy(row['uniform_accuracy'])} | {difference} {interval} |"
        )
    for row in rows:
        dense = [name for name, rank in row["layer_ranks"].items() if rank is None]
        if dense:
            lines += [
                "",
                f"Budget {row['budget']:g}: {len(dense)} layer(s) kept dense, where the allocation reached their "
                f"break-even rank (a factorization there is no smaller than the dense layer): {', '.join(dense)}.",
            ]
    return lines + ["", "![per-layer ranks](budget_ranks.png)", ""]


def nested_lines(report) -> list[str]:
    """The nested curve beside the lock-step one (`--curve both`): per rank, both accuracies and their difference;
    each curve's region, knee and AURAC; each curve's training time."""
    nested = report.nested
    if not nested:
        return []
    teacher = report.teacher["accuracy"]
    training = nested.get("training", {})
    lines = [
        "## Nested curve: every rank from one training run",
        "",
        f"One student at rank {training.get('rank')} distilled through truncated views of its factors "
        f"({training.get('strategy')}: {training.get('samples_per_step')} rank(s) per batch, "
        f"{training.get('distribution')}), then every rank cut from it"
        + (f" and fine-tuned alone for {nested['finetune_steps']} steps" if nested["finetune_steps"] else "")
        + "; beside it the lock-step students trained one per rank.",
        "",
        "| rank | nested | lock-step | nested minus lock-step (paired 95% interval) |",
        "| ---: | ---: | ---: | :---: |",
    ]
    for row in nested["rows"]:
        lockstep = "n/a" if row["lockstep_accuracy"] is None else f"{row['lockstep_accuracy']:.4f}"
        difference = "n/a" if row["difference"] is None else f"{row['difference']:+.4f}"
        interval = fmt_interval(row["difference_interval"], 4)
        lines.append(f"| {row['rank']} | {row['accuracy']:.4f} | {lockstep} | {difference} {interval} |")
    nested_region, main_region = region_words(nested["region"], nested["rows"][0]["rank"]), region_text(report)

    def area(value):
        return "n/a" if value is None else f"{value:.3f}"

    seconds, lockstep_seconds = nested["nested_train_seconds"], nested["lockstep_train_seconds"]
    ratio = f" ({seconds / lockstep_seconds:.2f}x)" if lockstep_seconds else ""
    lines += [
        "",
        f"- Nested: region {nested_region}, knee {fmt_rank(nested['knee']['linear'], missing='none')}, AURAC "
        f"{area(nested['aurac'])}; lock-step: region {main_region}, knee "
        f"{fmt_rank(report.knee['linear'], missing='none')}, AURAC {area(report.aurac)} (teacher {teacher:.4f}).",
        f"- Student training time: nested {seconds:.1f} s{ratio}, lock-step {lockstep_seconds:.1f} s (each "
        "student's own forward, backward and step; the teacher's shared forward excluded).",
        "",
    ]
    return lines
