"""Write the effective-rank report of a sweep: report.md, report.json, knee.png, params_vs_accuracy.png.

python scripts/report.py ...   (the same as `hf-lowrank report ...`; --help lists the flags)
"""

from hf_lowrank.commands import report as command


__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    command.main(argv, prog="report.py")


if __name__ == "__main__":
    main()
