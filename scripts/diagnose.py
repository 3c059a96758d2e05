"""Representation diagnostics of one or more image classifiers on a dataset's test split.

python scripts/diagnose.py ...   (the same as `hf-lowrank diagnose ...`; --help lists the flags)
"""

from hf_lowrank.commands import diagnose as command


__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    command.main(argv, prog="diagnose.py")


if __name__ == "__main__":
    main()
