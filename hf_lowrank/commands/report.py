"""Write the effective-rank report of a sweep: report.md, report.json, knee.png, params_vs_accuracy.png.

hf-lowrank report outputs/sweep [--low 0.85 --high 0.95 --num_bootstrap 1000]

A user error (no results.json, thresholds out of range, a directory that cannot be written) prints one line
``error: ...`` and exits with status 2; HF_LOWRANK_TRACEBACK=1 keeps the traceback.
"""

import argparse
import os

from ..cli_errors import ArgumentParser, UserError, non_negative_int, user_errors
from ..report import build_report, summary_line, write_report
from ..results import SweepResults


__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "hf-lowrank report") -> None:
    """`hf-lowrank report` (and `scripts/report.py`); `prog`: the program's name in --help and its errors."""
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a sweep's output directory (holding results.json)")
    parser.add_argument("--low", type=float, default=0.85, help="lower threshold, fraction of teacher accuracy")
    parser.add_argument("--high", type=float, default=0.95, help="upper threshold, fraction of teacher accuracy")
    parser.add_argument(
        "--num_bootstrap",
        type=non_negative_int("the number of bootstrap resamples", zero="0: no intervals"),
        default=1000,
        help="bootstrap resamples of the test set (0: no intervals)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    with user_errors():
        results = SweepResults.load(args.output_dir)  # ResultsError: missing or malformed results.json
        try:
            report = build_report(
                results, low=args.low, high=args.high, num_bootstrap=args.num_bootstrap, seed=args.seed
            )
        except ValueError as error:  # thresholds out of range
            raise UserError(str(error)) from error
        try:
            written = write_report(report, args.output_dir)
        except OSError as error:
            raise UserError(f"cannot write the report into {args.output_dir}: {error.strerror or error}.") from error
    print(summary_line(report))
    print(f"wrote {', '.join(os.path.join(args.output_dir, name) for name in written)}")
