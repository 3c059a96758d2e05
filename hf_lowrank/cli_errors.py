"""The command lines' convention for a user error (a bad path, a bad value, the wrong kind of model): one line
``error: <message>`` on stderr, naming the argument, the value and what would be valid, and exit status 2, without a
traceback. The traceback is kept for bugs, or for every error when HF_LOWRANK_TRACEBACK=1 is set.

`user_errors` turns the errors a script names into that line; `ArgumentParser` (or `OneLineErrors` mixed into
another parser) does the same for argparse's own refusals; `positive_int` / `non_negative_int` are argparse types
that refuse a bad count by name. Errors of other kinds propagate with their traceback.
"""

import argparse
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

from .distillation import CheckpointError
from .hub import HubPushError
from .results import ResultsError


__all__ = [
    "EXIT_STATUS",
    "TRACEBACK_VARIABLE",
    "USER_ERRORS",
    "ArgumentParser",
    "OneLineErrors",
    "UserError",
    "exit_with_error",
    "non_negative_int",
    "one_line",
    "positive_int",
    "user_errors",
]

EXIT_STATUS = 2
TRACEBACK_VARIABLE = "HF_LOWRANK_TRACEBACK"


class UserError(ValueError):
    """A command line's input is wrong; the message names the argument, the value and what would be valid."""


# The errors of the packages that are the user's input, not a bug (the sweep adds its SweepError).
USER_ERRORS = (UserError, ResultsError, CheckpointError, HubPushError)


def one_line(error: BaseException | str) -> str:
    """The message of `error` on one line (a library's multi-line message joined with spaces)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def exit_with_error(message: BaseException | str, prefix: str = "error") -> NoReturn:
    """Print ``{prefix}: {message}`` as one line on stderr and exit with status 2."""
    print(f"{prefix}: {one_line(message)}", file=sys.stderr)
    sys.exit(EXIT_STATUS)


@contextmanager
def user_errors(
    kinds: tuple[type[BaseException], ...] = USER_ERRORS, prefixes: Mapping[type[BaseException], str] | None = None
) -> Iterator[None]:
    """Inside, an error of `kinds` is the user's: one line on stderr (``error: ...``, or the prefix `prefixes` gives
    its type) and exit status 2; with HF_LOWRANK_TRACEBACK set it propagates with its traceback."""
    try:
        yield
    except kinds as error:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        prefix = next((text for kind, text in (prefixes or {}).items() if isinstance(error, kind)), "error")
        exit_with_error(error, prefix)


class OneLineErrors:
    """Mixed into an `argparse.ArgumentParser` (before it): argparse's own refusals (unknown flag, missing or
    malformed value) as the same one line and exit status 2, pointing at --help instead of printing the usage."""

    def error(self, message: str) -> NoReturn:
        exit_with_error(f"{message} (see {self.prog} --help)")


class ArgumentParser(OneLineErrors, argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose refusals are one `error: ` line (`OneLineErrors`)."""


def _count(minimum: int, what: str, valid: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer: give {what}, {valid}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is {'negative' if value < 0 else 'zero'}: give {what}, {valid}")
        return value

    parse.__name__ = "positive_int" if minimum == 1 else "non_negative_int"
    return parse


def positive_int(what: str):
    """An argparse `type` for a count of at least 1 (`what` is the count, for the message: "the number of ...")."""
    return _count(1, what, "1 or more")


def non_negative_int(what: str, zero: str | None = None):
    """An argparse `type` for a count of 0 or more; `zero` says what 0 means, for the message."""
    return _count(0, what, f"0 or more ({zero})" if zero else "0 or more")
