"""Does the effective rank region depend on the architecture? The embedded sweep for teachers of several families.

For every family, `scripts/sweep.py --teacher_architecture FAMILY` (a small teacher of that family trained from
scratch on the digits data, at width 48 and depth 3 where the family allows, swept over the same ranks) into
OUTPUT_DIR/FAMILY; then one table (table.md, table.json) and one figure (curves.png) of every family's teacher
accuracy, region [r_85, r_95] and knee with their 95% bootstrap intervals, and parameters at the knee. A family whose
sweep is already finished is not rerun (the sweep resumes).

    python experiments/cross_architecture.py [--output_dir cross_architecture] [--families vit deit ...] \
        [-- extra sweep flags, e.g. --ranks 1 2 4 8]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hf_lowrank.report import Report, fmt_rank  # noqa: E402
from hf_lowrank.results import SweepResults  # noqa: E402
from hf_lowrank.sweep import EMBEDDED_ARCHITECTURES, EMBEDDED_NAMES  # noqa: E402


FAMILIES = EMBEDDED_ARCHITECTURES
NAMES = EMBEDDED_NAMES
SWEEP = Path(__file__).resolve().parents[1] / "scripts" / "sweep.py"


def run_family(family: str, output_dir: Path, extra: list[str]) -> float:
    """The embedded sweep of `family` into `output_dir` (resumed when finished); its wall time in seconds."""
    command = [sys.executable, str(SWEEP), "--teacher_architecture", family, "--output_dir", str(output_dir), *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def parameters_at(rank: float | None, results: SweepResults) -> float | None:
    """Student parameters at a (fractional) rank: a factorized student's count is linear in its rank, so the
    interpolation between the measured ranks is exact."""
    if rank is None:
        return None
    students = sorted(results.done_students(results.primary_seed), key=lambda r: r.rank)
    return float(np.interp(rank, [r.rank for r in students], [r.parameters for r in students]))


def rank_independent_parameters(results: SweepResults) -> float | None:
    """Parameters a student keeps whatever its rank (everything outside the factorized layers' factors: embeddings,
    dense parts, biases, head): the student count extrapolated to rank 0 along its exact line (None with fewer than
    two finished ranks)."""
    students = sorted(results.done_students(results.primary_seed), key=lambda r: r.rank)
    if len(students) < 2:
        return None
    (r1, p1), (r2, p2) = [(s.rank, s.parameters) for s in students[:2]]
    return p1 - r1 * (p2 - p1) / (r2 - r1)


def family_row(family: str, report: Report, results: SweepResults) -> dict:
    """One row of the table: teacher, region and knee (with their intervals), parameters at the knee."""
    knee = report.knee.get("linear") if report.estimated else None
    return {
        "family": family,
        "teacher_parameters": report.teacher["parameters"],
        "teacher_accuracy": report.teacher["accuracy"],
        "teacher_accuracy_interval": report.teacher_accuracy_interval,
        "r_low": report.region.get("r_low"),
        "r_low_interval": report.region.get("r_low_interval"),
        "r_high": report.region.get("r_high"),
        "r_high_interval": report.region.get("r_high_interval"),
        "knee": knee,
        "knee_interval": report.knee.get("linear_interval") if report.estimated else None,
        "parameters_at_knee": parameters_at(knee, results),
        "rank_independent_parameters": rank_independent_parameters(results),
        "ranks": report.ranks,
        "normalized_accuracy": [row["normalized_accuracy"] for row in report.rows],
    }


def _with_interval(value, interval, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    text = fmt_rank(value) if digits == 1 else f"{value:.{digits}f}"
    if interval:
        low, high = interval[0], interval[1]
        text += f" [{fmt_rank(low)}, {fmt_rank(high)}]" if digits == 1 else f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def markdown_table(rows: list[dict], thresholds: dict) -> str:
    low, high = f"{thresholds['low']:.0%}", f"{thresholds['high']:.0%}"
    header = f"| family | teacher parameters | teacher accuracy | r_{low[:-1]} | r_{high[:-1]} | knee |"
    lines = [
        header + " parameters at knee | parameters at any rank |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        knee_parameters = row["parameters_at_knee"]
        lines.append(
            f"| {NAMES.get(row['family'], row['family'])} | {row['teacher_parameters']:,} | "
            f"{_with_interval(row['teacher_accuracy'], row['teacher_accuracy_interval'], 4)} | "
            f"{_with_interval(row['r_low'], row['r_low_interval'])} | "
            f"{_with_interval(row['r_high'], row['r_high_interval'])} | "
            f"{_with_interval(row['knee'], row['knee_interval'])} | "
            f"{_count(knee_parameters)} | "
            f"{_count(row['rank_independent_parameters'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(
    rows: list[dict],
    thresholds: dict,
    path: Path,
    label=lambda row: NAMES.get(row["family"]),
    title: str | None = None,
    xlabel: str = "rank of every encoder linear layer",
) -> None:
    """Normalised accuracy against rank (log axis) per row (`label(row)` in the legend), the thresholds dashed,
    each knee dotted. Shared by the experiments."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        (line,) = axis.plot(row["ranks"], row["normalized_accuracy"], marker="o", label=label(row))
        if row["knee"] is not None:
            axis.axvline(row["knee"], color=line.get_color(), linestyle=":", linewidth=1)
    for threshold in (thresholds["low"], thresholds["high"]):
        axis.axhline(threshold, color="grey", linestyle="--", linewidth=0.8)
    axis.set_xscale("log", base=2)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("student accuracy / teacher accuracy")
    axis.set_title(title or f"Digits, embedded teachers of {len(rows)} families (knees dotted)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="cross_architecture", help="one sweep per family inside it")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, help="families to sweep")
    args = parser.parse_args(own)
    root = Path(args.output_dir)
    rows, seconds, thresholds = [], {}, None
    for family in args.families:
        seconds[family] = run_family(family, root / family, extra)
        report = Report.load(root / family / "report.json")
        rows.append(family_row(family, report, SweepResults.load(root / family)))
        thresholds = report.thresholds
    table = markdown_table(rows, thresholds)
    (root / "table.md").write_text(table)
    (root / "table.json").write_text(json.dumps({"rows": rows, "seconds": seconds, "extra_flags": extra}, indent=1))
    plot_curves(rows, thresholds, root / "curves.png")
    print(table)
    print("wall time per family (s): " + ", ".join(f"{f} {s:.0f}" for f, s in seconds.items()))
    print(f"wrote {root / 'table.md'}, {root / 'table.json'}, {root / 'curves.png'}")


if __name__ == "__main__":
    main()
