"""Publish a finished sweep on the Hub: the chosen students with their cards, and the report.

python scripts/push.py ...   (the same as `hf-lowrank push ...`; --help lists the flags)
"""

from hf_lowrank.commands import push as command


__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    command.main(argv, prog="push.py")


if __name__ == "__main__":
    main()
