"""The sweep's command line: the parser (the sweep's and the method's flags first, then the TrainingArguments the
sweep honours; refused ones are parsed to be refused by name, and hidden from --help), YAML configs with exact keys,
and one clear line for a user error (the traceback is kept for bugs, or with HF_LOWRANK_TRACEBACK=1)."""

import argparse
import dataclasses
import difflib
import json
import os
import shlex
import sys
from typing import get_type_hints

import torch
import yaml
from transformers import HfArgumentParser

from .. import cli_errors
from ..distillation import HARMLESS, HONOURED, DistillationConfig
from ..distillation.feature_checks import launcher_problems
from ..hub import HubPushError
from .arguments import SweepArguments, SweepError
from .run import run_sweep


__all__ = ["EMBEDDED_DEFAULTS", "USER_ERRORS", "build_parser", "main", "parse", "redact", "yaml_to_argv"]

# Defaults sized for the embedded digits run (a few minutes on two CPU cores); every one is a flag.
EMBEDDED_DEFAULTS = dict(
    output_dir="outputs/sweep",
    learning_rate=1e-3,
    num_train_epochs=20,
    per_device_train_batch_size=64,
    per_device_eval_batch_size=256,
    lr_scheduler_type="cosine",
    warmup_steps=0.05,
    weight_decay=0.0,
    logging_steps=10,
    save_steps=100,
    report_to="none",
    seed=0,
    # Without a GPU, run on the CPU; under `accelerate launch --multi_gpu` that is real DDP over gloo.
    use_cpu=not torch.cuda.is_available(),
)

DESCRIPTION = (
    "Distil one low-rank student per rank from a ViT teacher, fit accuracy against rank and report the effective "
    "rank region and the knee. Without arguments: the embedded digits data and a small ViT teacher trained first."
)
EPILOG = (
    "--config FILE reads flags from a YAML mapping (keys spelt exactly as the flags); flags on the command line win. "
    "Rerunning the same command resumes: finished students are kept and an interrupted group continues from its "
    "latest checkpoint. A bad value stops the run before any work with one line naming it (exit status 2)."
)

# Errors that are the user's input, not a bug: one line, exit status 2 (the convention of every script).
USER_ERRORS = (SweepError, *cli_errors.USER_ERRORS)

_OWN_FIELDS = {f.name for f in dataclasses.fields(DistillationConfig)} - {
    f.name for f in dataclasses.fields(DistillationConfig.__mro__[1])
}
_GROUPS = (
    ("sweep", "What to distil and measure: the teacher, the data, the ranks, the students."),
    ("distillation", "The distillation method's own settings."),
    (
        "training",
        "transformers TrainingArguments the sweep honours as Trainer does (the students' and, with the teacher_* "
        "overrides, the teacher's training). Flags that would not change anything in this sweep are refused by name "
        "and not listed here.",
    ),
)


class SweepArgumentParser(cli_errors.OneLineErrors, HfArgumentParser):
    """`HfArgumentParser` over (SweepArguments, DistillationConfig) with the help in three groups, refused
    TrainingArguments hidden from --help (still parsed, so that they are refused with the reason), no prefix
    abbreviations (`--rank` is not `--ranks`), and argparse's own refusals as one `error:` line."""

    def __init__(self):
        super().__init__(
            (SweepArguments, DistillationConfig),
            allow_abbrev=False,
            usage="%(prog)s [-h] [--config FILE] [--FLAG VALUE ...]",
            description=DESCRIPTION,
            epilog=EPILOG,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )

    def _add_dataclass_arguments(self, dtype):
        if not hasattr(self, "_sweep_groups"):
            self._sweep_groups = {name: self.add_argument_group(name, text) for name, text in _GROUPS}
        groups = self._sweep_groups
        hints = get_type_hints(dtype)
        for field in dataclasses.fields(dtype):
            if not field.init:
                continue
            field.type = hints[field.name]
            if dtype is SweepArguments:
                group = groups["sweep"]
            else:
                group = groups["distillation" if field.name in _OWN_FIELDS else "training"]
            before = len(group._group_actions)
            self._parse_dataclass_field(group, field)
            shown = dtype is SweepArguments or field.name in HONOURED or field.name in HARMLESS
            if not shown:
                for action in group._group_actions[before:]:
                    action.help = argparse.SUPPRESS


def build_parser() -> SweepArgumentParser:
    parser = SweepArgumentParser()
    parser.set_defaults(**EMBEDDED_DEFAULTS)
    return parser


def _known_keys(parser: argparse.ArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions if action.dest != "help"}


def yaml_to_argv(path: str, known: set[str] | None = None) -> list[str]:
    """Turn a YAML mapping of argument names to values into command-line flags; with `known`, a key that is not
    exactly one of them is refused, naming the closest."""
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except OSError as error:
        raise SweepError(f"--config {path}: cannot read it ({error.strerror}).") from error
    except yaml.YAMLError as error:
        raise SweepError(f"--config {path}: not valid YAML: {error}") from error
    if not isinstance(values, dict):
        kind = type(values).__name__
        raise SweepError(f"--config {path}: expected a mapping of argument names to values, got a {kind}.")
    argv = []
    for key, value in values.items():
        if known is not None and key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SweepError(f"--config {path}: unknown key {key!r}{hint} Keys are the flags' names, spelt exactly.")
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        else:
            argv.append(json.dumps(_numbers(value)) if isinstance(value, dict) else str(value))
    return argv


def _expand_config(argv: list[str], known: set[str]) -> list[str]:
    """`--config FILE` (or `--config=FILE`) replaced by the file's flags, put first so that flags on the command
    line win."""
    for position, arg in enumerate(argv):
        if arg == "--config" or arg.startswith("--config="):
            if arg == "--config":
                if position + 1 >= len(argv) or argv[position + 1].startswith("--"):
                    raise SweepError("--config needs a value: the path of a YAML file of arguments.")
                path = argv[position + 1]
            else:
                path = arg.split("=", 1)[1]
            return yaml_to_argv(path, known) + argv
    return argv


def _ranks_auto(argv: list[str]) -> list[str]:
    """`--ranks auto` (or `--ranks=auto`) as the flag it stands for, `--adaptive_ranks true`."""
    result, position = [], 0
    while position < len(argv):
        arg = argv[position]
        if arg == "--ranks=auto" or (arg == "--ranks" and argv[position + 1 : position + 2] == ["auto"]):
            result += ["--adaptive_ranks", "true"]
            position += 1 if arg == "--ranks=auto" else 2
            continue
        result.append(arg)
        position += 1
    return result


def parse(argv: list[str], prog: str | None = None) -> tuple[SweepArguments, DistillationConfig]:
    """(SweepArguments, DistillationConfig) from command-line flags (and a --config YAML file). Bad values raise
    `SweepError`; argparse's own refusals (a missing value, a value not among the choices) exit with status 2 and one
    `error:` line. `prog`: the program's name in --help (default: the script's file name)."""
    parser = build_parser()
    if prog is not None:
        parser.prog = prog
    known = _known_keys(parser)
    argv = _expand_config(list(argv), known)
    argv = _ranks_auto(argv)
    launcher = launcher_problems()  # (before TrainingArguments, which fails on its own when deepspeed is missing)
    if launcher:
        raise SweepError(launcher[0])
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except SweepError:
        raise
    except ValueError as error:  # TrainingArguments' and DistillationConfig's own checks, as one line
        raise SweepError(" ".join(str(error).split())) from error
    if remaining:
        flags = [arg for arg in remaining if arg.startswith("-")]
        hints = [
            f"{flag} (did you mean --{close[0]}?)" if close else flag
            for flag in flags
            for close in [difflib.get_close_matches(flag.lstrip("-").split("=")[0], known, n=1)]
        ]
        raise SweepError(f"unknown arguments: {' '.join(hints or remaining)}; see --help for the flags.")
    return tuple(parsed)


def redact(argv: list[str]) -> list[str]:
    """`argv` with the value of every option naming a token (--hub_token, --hub-token, ...) hidden: the command line
    is recorded in results.json and the cards."""
    shown, hide = [], False
    for arg in argv:
        name = arg.split("=", 1)[0]
        secret = arg.startswith("--") and "token" in name.lower()
        if hide:
            shown.append("***")
        elif secret and "=" in arg:
            shown.append(f"{name}=***")
        else:
            shown.append(arg)
        hide = secret and "=" not in arg
    return shown


def _numbers(value):
    """Numbers inside a YAML mapping that YAML 1.1 read as strings ("1e-5") made numbers again."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """`hf-lowrank sweep` and `scripts/sweep.py`: parse, run, and turn a user error into one line on stderr (exit
    status 2). `prog`: the command as the user typed it, recorded in results.json and the cards (default:
    `python scripts/sweep.py`, or `accelerate launch scripts/sweep.py` under accelerate)."""
    argv = sys.argv[1:] if argv is None else argv
    if prog is None:
        prog = ("accelerate launch" if "LOCAL_RANK" in os.environ else "python") + " scripts/sweep.py"
    with cli_errors.user_errors(USER_ERRORS, prefixes={HubPushError: "push failed (the sweep itself is saved)"}):
        sweep, training = parse(argv, prog=prog)
        command = f"{prog} {shlex.join(redact(argv))}".strip()
        run_sweep(sweep, training, command=command)
