"""`--ranks auto`, per-student early stopping and both, against the dense rank grid, side by side in one run.

For each embedded family (`--families`, default vit and dinov2): one sweep trains the teacher and the dense default
grid (1, 2, 4, ..., 48) in lock-step; then, from that same teacher (`--teacher OUT/teacher --teacher_finetune none
--init svd`, so the students start as the dense sweep's do), one sweep per `--modes`: `auto` (`--ranks auto`),
`early` (per-student early stopping on a 10% validation split: evaluated every `--eval_steps`, stopped after
`--patience` evaluations without a better validation accuracy) and `auto+early`. Printed for each: the region
[r_85, r_95] and the knee with their 95% intervals, whether each estimate lies inside the dense sweep's interval,
AURAC, the students trained, their optimizer steps and the seconds of the student stage (results.json's
`stage_seconds`, lock-step stage only: preview and teacher apart).

    python benchmarks/bench_rank_search.py [--families vit dinov2] [--modes auto early auto+early] \
        [--max_students 6] [--rank_tolerance 1.0] [--patience 3] [--eval_steps 20]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def _sweep(argv: list[str]) -> tuple[dict, dict, float]:
    """Run scripts/sweep.py in this process: (results.json, report.json, wall seconds)."""
    import sweep as sweep_script

    start = time.perf_counter()
    sweep_script.main([str(arg) for arg in argv])
    seconds = time.perf_counter() - start
    output = Path(argv[argv.index("--output_dir") + 1])
    return (
        json.loads((output / "results.json").read_text()),
        json.loads((output / "report.json").read_text()),
        seconds,
    )


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
    stage = sum(seconds for key, seconds in results["stage_seconds"].items() if key.startswith("lockstep"))
    students = results["ranks"]
    return {
        "name": name,
        "ranks": sorted(record["rank"] for record in students),
        "steps": sum(record["steps"] for record in students),
        "seconds": stage,
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


# The cheaper modes: the sweep flags each adds to the dense sweep's (from the same teacher).
MODES = {
    "auto": _auto,
    "early": _early,  # each student stops after --patience evaluations without a better validation accuracy
    "auto+early": lambda options: [*_auto(options), *_early(options)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["vit", "dinov2"], help="embedded teacher families")
    parser.add_argument("--max_students", type=int, default=6, help="--ranks auto's student budget")
    parser.add_argument("--rank_tolerance", type=float, default=1.0, help="--ranks auto's tolerance, in octaves")
    parser.add_argument(
        "--modes", nargs="+", default=["auto"], choices=list(MODES), help="cheaper modes beside the dense grid"
    )
    parser.add_argument("--patience", type=int, default=3, help="early stopping: evaluations without improvement")
    parser.add_argument("--eval_steps", type=int, default=20, help="early stopping: steps between evaluations")
    options = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; embedded digits data, default settings")
    for family in options.families:
        with tempfile.TemporaryDirectory() as directory:
            dense_dir = Path(directory) / "dense"
            quiet = ["--disable_tqdm", "true"]
            dense_results, dense_report, _ = _sweep(
                ["--output_dir", dense_dir, "--teacher_architecture", family, *quiet]
            )
            dense = _row("dense grid", dense_results, dense_report)
            rows, searches = [dense], {}
            for mode in options.modes:
                argv = [
                    "--output_dir", Path(directory) / mode, *quiet, "--teacher", dense_dir / "teacher",
                    "--teacher_finetune", "none", "--init", "svd", *MODES[mode](options),
                ]  # fmt: skip
                results, report, _ = _sweep(argv)
                rows.append(_row(mode, results, report))
                searches[mode] = results["rank_search"]
            print(f"\n{family}: teacher accuracy {dense_results['teacher']['accuracy']:.4f}")
            for row in rows:
                estimates = "  ".join(f"{key} {_text(*value)}" for key, value in row["estimates"].items())
                print(
                    f"  {row['name']:>13}: {len(row['ranks'])} students {row['ranks']}, {row['steps']} optimizer "
                    f"steps, {row['seconds']:.1f} s student stage; AURAC {row['aurac']:.3f}\n    {estimates}"
                )
            for row in rows[1:]:
                inside = []
                for key, (value, _, _) in row["estimates"].items():
                    _, low, high = dense["estimates"][key]
                    inside.append(f"{key} {value is not None and low is not None and low <= value <= high}")
                print(
                    f"  {row['name']} / dense: students {len(row['ranks']) / len(dense['ranks']):.2f}, optimizer "
                    f"steps {row['steps'] / dense['steps']:.2f}, student-stage seconds "
                    f"{row['seconds'] / dense['seconds']:.2f}; estimate inside the dense interval: {', '.join(inside)}"
                )
            for mode, choices in searches.items():
                for choice in choices:
                    print(f"    {mode}, round {choice['round']}: rank {choice['rank']} ({choice['reason']})")


if __name__ == "__main__":
    main()
