"""Write the effective-rank report of a sweep: report.md, report.json, knee.png, params_vs_accuracy.png.

python scripts/report.py outputs/sweep [--low 0.85 --high 0.95 --num_bootstrap 1000]
"""

import argparse
import os
import sys

from hf_lowrank.report import build_report, summary_line, write_report
from hf_lowrank.results import ResultsError, SweepResults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a sweep's output directory (holding results.json)")
    parser.add_argument("--low", type=float, default=0.85, help="lower threshold, fraction of teacher accuracy")
    parser.add_argument("--high", type=float, default=0.95, help="upper threshold, fraction of teacher accuracy")
    parser.add_argument("--num_bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    try:
        results = SweepResults.load(args.output_dir)
        report = build_report(results, low=args.low, high=args.high, num_bootstrap=args.num_bootstrap, seed=args.seed)
    except (ResultsError, ValueError) as error:  # a missing or malformed results.json, thresholds out of range
        sys.exit(f"report failed: {error}")
    try:
        written = write_report(report, args.output_dir)
    except OSError as error:
        sys.exit(f"report failed: cannot write the report into {args.output_dir}: {error.strerror or error}.")
    print(summary_line(report))
    print(f"wrote {', '.join(os.path.join(args.output_dir, name) for name in written)}")


if __name__ == "__main__":
    main()
