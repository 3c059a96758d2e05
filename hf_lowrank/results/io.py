"""results.json on disk: atomic JSON writes and the checked read of a results file."""

import json
import math
import os
import tempfile
from pathlib import Path

from ..file_modes import umask_file_mode


__all__ = [
    "RESULTS_FORMAT",
    "RESULTS_VERSION",
    "ResultsError",
    "atomic_write_json",
    "read_results_payload",
    "strict_json",
]

RESULTS_FORMAT = "hf_lowrank.sweep"
RESULTS_VERSION = 1


class ResultsError(ValueError):
    """A results file that is missing, truncated, or not one this version of hf_lowrank writes."""


def strict_json(value):
    """`value` with every non-finite float (NaN, inf: no JSON number) replaced by None, tuples as lists, numpy
    scalars and arrays as Python values: what `json.dumps(..., allow_nan=False)` accepts."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write `payload` to `path` so that a reader (or a crash) never sees a half-written file.

    The file is strict JSON: a non-finite float (a NaN loss, an undefined ECE) is written as null, never as the
    NaN / Infinity tokens other parsers reject. It gets the mode the umask gives (not the temporary file's 0600)."""
    path = Path(path)
    text = json.dumps(strict_json(payload), indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), umask_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_type(value) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_results_payload(path: str | os.PathLike) -> dict:
    """Read and check a results.json: the raw payload (`SweepResults.load` makes it typed)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no results file at {path}.")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not valid JSON (truncated?): {error}.") from error
    if not isinstance(payload, dict):
        raise ResultsError(
            f"{path} is not an hf_lowrank sweep results file: its top level is a JSON {_json_type(payload)}, not an "
            f"object with 'format': {RESULTS_FORMAT!r}."
        )
    if payload.get("format") != RESULTS_FORMAT:
        raise ResultsError(
            f"{path} is not an hf_lowrank sweep results file (format {payload.get('format')!r}, expected "
            f"{RESULTS_FORMAT!r})."
        )
    if payload.get("version") != RESULTS_VERSION:
        raise ResultsError(
            f"{path} has results version {payload.get('version')!r}; this hf_lowrank reads version {RESULTS_VERSION}."
        )
    return payload
