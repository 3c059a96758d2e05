"""Write the effective-rank report of a sweep: report.md, report.json, knee.png, params_vs_accuracy.png.

python scripts/report.py outputs/sweep [--low 0.85 --high 0.95 --num_bootstrap 1000]
"""

import argparse

from hf_lowrank.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a sweep's output directory (holding results.json)")
    parser.add_argument("--low", type=float, default=0.85, help="lower threshold, fraction of teacher accuracy")
    parser.add_argument("--high", type=float, default=0.95, help="upper threshold, fraction of teacher accuracy")
    parser.add_argument("--num_bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args()
    report = write_report(
        args.output_dir, low=args.low, high=args.high, num_bootstrap=args.num_bootstrap, seed=args.seed
    )
    region, knee = report["region"], report["knee"]

    def show(value):
        return "not reached" if value is None else f"{value:.1f}"

    print(
        f"effective rank region [{show(region['r_low'])}, {show(region['r_high'])}], knee {show(knee['linear'])} "
        f"(log-rank axis: {show(knee['log_rank'])})"
    )
    print(f"wrote {args.output_dir}/report.md, report.json, knee.png, params_vs_accuracy.png")


if __name__ == "__main__":
    main()
