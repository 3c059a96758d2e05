"""Which init should students start from? svd, whitened and activation side by side, on the embedded digits teachers
of two families, at every rank: accuracy right after initialisation (the sweep's preview) and after the sweep's
distillation, with 95% intervals, region and knee per init; and at two parameter budgets, per-layer ranks allocated
from the whitened spectra against one rank everywhere.

Per family, the first sweep (--init svd) trains the embedded teacher; the other inits distil from that same saved
teacher (--teacher OUT/teacher), so every init starts from one teacher and sees the same data, seed and schedule.
Each sweep runs in its own process (scripts/sweep.py, the README's defaults); its peak resident memory is read from
the operating system when it exits. Calibration time and the bytes its statistics hold come from results.json.

    python benchmarks/bench_init.py [--families vit dinov2] [--budgets 0.1 0.2] [--output_dir outputs/bench_init]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
INITS = ("svd", "whitened", "activation")


def run(argv: list[str]) -> tuple[float, float]:
    """Run scripts/sweep.py with `argv`; (wall seconds, peak RSS in MiB) of that process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "scripts" / "sweep.py"), *argv], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"sweep failed (exit {process.returncode}): {' '.join(argv)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def pct(value, interval=None, teacher=None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.1%}"
    if interval and teacher:
        text += f" [{interval[0] / teacher:.0%}, {interval[1] / teacher:.0%}]"
    return text


def rank_text(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def region(entry: dict) -> str:
    r = entry["region"] if "region" in entry else entry
    if not r.get("estimated", True):
        return "not estimated"
    return f"[{rank_text(r['r_low'])}, {rank_text(r['r_high'])}]"


def interval_text(interval) -> str:
    return "" if not interval or interval[0] is None else f"[{interval[0]:.1f}, {interval[1]:.1f}]"


def family_table(family: str, reports: dict, runs: dict) -> list[str]:
    """The per-rank table and the region / knee / budget / cost lines of one family."""
    first = reports["svd"]
    teacher = first["teacher"]["accuracy"]
    previews = first["previews"]  # identical in every run of the family (one teacher, the same calibration rows)
    ranks = [row["rank"] for row in first["rows"]]
    lines = [
        f"## {family}: teacher test accuracy {teacher:.4f} ({first['dataset']['num_test']} test images)",
        "",
        "normalised accuracy (student / teacher) with 95% bootstrap intervals over test images",
        "",
        f"{'rank':>5} " + " ".join(f"{init + ' init':>18} {init + ' trained':>18}" for init in INITS),
    ]
    for rank in ranks:
        cells = []
        for init in INITS:
            at_init = next(r for r in previews[init]["rows"] if r["rank"] == rank)
            trained = next(r for r in reports[init]["rows"] if r["rank"] == rank)
            cells.append(
                f"{pct(at_init['normalized_accuracy'], at_init['accuracy_interval'], teacher):>18} "
                f"{pct(trained['normalized_accuracy'], trained['accuracy_interval'], teacher):>18}"
            )
        lines.append(f"{rank:>5} " + " ".join(cells))
    lines += ["", f"{'init':<11}{'region at init':>16}{'knee at init':>14}{'trained region':>16}"
              f"{'r_high 95% interval':>21}{'trained knee':>14}{'knee 95% interval':>19}"]  # fmt: skip
    for init in INITS:
        report = reports[init]
        lines.append(
            f"{init:<11}{region(previews[init]):>16}{rank_text(previews[init]['knee']['linear']):>14}"
            f"{region(report['region']):>16}{interval_text(report['region']['r_high_interval']):>21}"
            f"{rank_text(report['knee']['linear']):>14}{interval_text(report['knee']['linear_interval']):>19}"
        )
    lines += ["", f"{'init':<11}{'budget':>8}{'allocated params':>18}{'trained':>9}{'uniform':>9}{'params':>8}"
              f"{'trained':>9}{'allocated - uniform [95%]':>29}"]  # fmt: skip
    for init in INITS:
        for row in reports[init]["budget_students"]:
            difference = row["difference_interval"]
            lines.append(
                f"{init:<11}{row['budget']:>8g}{row['linear_parameters']:>18,}{row['accuracy']:>9.4f}"
                f"{'r=' + str(row['uniform_rank']):>9}{row['uniform_linear_parameters']:>8,}"
                f"{row['uniform_accuracy']:>9.4f}{row['difference']:>+12.4f} "
                f"[{difference[0]:+.4f}, {difference[1]:+.4f}]"
            )
    lines += ["", f"{'init':<11}{'calibration s':>14}{'statistics MiB':>15}{'decompose s':>12}{'training s':>11}"
              f"{'sweep s':>9}{'peak RSS MiB':>13}"]  # fmt: skip
    for init in INITS:
        results = json.loads((runs[init][0] / "results.json").read_text())
        record = results["factorization"] or {}
        seconds = record.get("seconds", {})
        training = sum(r["train_seconds"] for r in results["ranks"]) + sum(
            b["train_seconds"] for b in results["budget_students"]
        )
        lines.append(
            f"{init:<11}{seconds.get('calibration', 0):>14.2f}{record.get('statistics_bytes', 0) / 2**20:>15.2f}"
            f"{seconds.get(f'decomposition_{init}', 0):>12.3f}{training:>11.1f}{runs[init][1]:>9.0f}"
            f"{runs[init][2]:>13,.0f}"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=["vit", "dinov2"])
    parser.add_argument("--budgets", nargs="+", default=["0.1", "0.2"])
    parser.add_argument("--output_dir", default="outputs/bench_init")
    parser.add_argument("extra", nargs="*", help="further scripts/sweep.py flags for every run (after --)")
    args = parser.parse_args()
    out = Path(args.output_dir)
    lines = []
    for family in args.families:
        reports, runs = {}, {}
        for init in INITS:
            directory = out / f"{family}-{init}"
            source = (
                ["--teacher_architecture", family]
                if init == "svd"
                else ["--teacher", str(out / f"{family}-svd" / "teacher")]
            )
            argv = [
                "--output_dir", str(directory), "--overwrite_output_dir", *source, "--init", init,
                "--param_budget", *args.budgets, *args.extra,
            ]  # fmt: skip
            seconds, rss = run(argv)
            runs[init] = (directory, seconds, rss)
            reports[init] = json.loads((directory / "report.json").read_text())
            print(f"{family} {init}: {seconds:.0f} s", file=sys.stderr)
        table = family_table(family, reports, runs)
        print("\n".join(table), flush=True)
        lines += table
    (out / "bench_init.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
