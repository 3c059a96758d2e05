"""Where a local text dataset file stops parsing: the 1-based line (and the column, for JSON) of its first malformed
record, found with the standard library's own parsers after `load_dataset` failed (its errors name a row of an
internal chunk, or nothing at all)."""

import csv
import json


__all__ = ["locate_parse_error"]


def _parses_as_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def _json_problem(path: str, extension: str) -> str | None:
    """JSON lines (a ``.jsonl`` file, or a ``.json`` file most of whose lines are one object each): the first line
    that is not one JSON value; else one JSON document: where it breaks. As ``line N, column C: reason``."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if extension == ".jsonl" or 2 * sum(_parses_as_object(line) for _, line in lines) >= len(lines):
        for number, line in lines:
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                return f"line {number}, column {error.colno}: {error.msg}"
        return None
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return f"line {error.lineno}, column {error.colno}: {error.msg}"
    return None


def _csv_problem(path: str, delimiter: str) -> str | None:
    """The first record whose number of fields differs from the header's, or that breaks the format (a quote left
    open), as ``line N: ...``."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            for row in reader:
                if row and header is not None and len(row) != len(header):
                    fields = f"{len(row)} field{'s' if len(row) != 1 else ''}"
                    return f"line {reader.line_num}: {fields} where the header (line 1) has {len(header)}"
        except csv.Error as error:
            return f"line {reader.line_num}: {error}"
    return None


def locate_parse_error(path: str, extension: str) -> str | None:
    """``line N[, column C]: reason`` for the first malformed record of the local file `path` read as `extension`
    (``.json``, ``.jsonl``, ``.csv``, ``.tsv``), or None when the standard library's parser finds none (the file is
    then unreadable for another reason)."""
    if extension in (".json", ".jsonl"):
        return _json_problem(path, extension)
    if extension in (".csv", ".tsv"):
        return _csv_problem(path, "\t" if extension == ".tsv" else ",")
    return None
