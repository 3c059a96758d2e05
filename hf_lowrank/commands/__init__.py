"""The installed command line: `hf-lowrank COMMAND ...`, also `python -m hf_lowrank COMMAND ...` (and so
`accelerate launch -m hf_lowrank sweep ...`). The scripts in `scripts/` are thin wrappers over the same functions.

- `sweep`: distil one student per rank and report the effective-rank region (`hf_lowrank.sweep.cli`)
- `report`: rebuild report.md, report.json and the figures of a sweep directory
- `push`: publish a finished sweep's students, cards and report on the Hub
- `diagnose`: representation diagnostics of image classifiers
"""

import importlib
import os
import sys

from ..cli_errors import exit_with_error


__all__ = ["COMMANDS", "main", "module_program"]

# command -> (module holding its `main(argv, prog)`, one line of help)
COMMANDS = {
    "sweep": ("hf_lowrank.sweep.cli", "distil one student per rank, fit the curve, report region and knee"),
    "report": ("hf_lowrank.commands.report", "rebuild a sweep directory's report (report.md, report.json, figures)"),
    "push": ("hf_lowrank.commands.push", "publish a finished sweep's students, cards and report on the Hub"),
    "diagnose": ("hf_lowrank.commands.diagnose", "representation diagnostics of image classifiers on a dataset"),
}


def _usage(program: str) -> str:
    lines = [f"usage: {program} COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<10}{help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", f"{program} COMMAND --help shows a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, program: str | None = None) -> None:
    """Run `argv[0]` (one of `COMMANDS`) with the rest of `argv`. `program`: how the user called us, for --help and
    the command a sweep records (default `hf-lowrank`; `python -m hf_lowrank` through `__main__`)."""
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    program = program or "hf-lowrank"
    if not argv:
        print(_usage(program), file=sys.stderr)
        sys.exit(2)
    if argv[0] in ("-h", "--help"):
        print(_usage(program))
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        exit_with_error(f"unknown command {name!r}: choose one of {', '.join(COMMANDS)} ({program} --help).")
    module = importlib.import_module(COMMANDS[name][0])
    module.main(rest, prog=f"{program} {name}")


def module_program() -> str:
    """The program name of `python -m hf_lowrank`, or of `accelerate launch -m hf_lowrank` under accelerate."""
    return ("accelerate launch" if "LOCAL_RANK" in os.environ else "python") + " -m hf_lowrank"
