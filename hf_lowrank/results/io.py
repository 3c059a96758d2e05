"""results.json on disk: atomic JSON writes and the checked read of a results file."""

import json
import os
import tempfile
from pathlib import Path


__all__ = ["RESULTS_FORMAT", "RESULTS_VERSION", "ResultsError", "atomic_write_json", "read_results_payload"]

RESULTS_FORMAT = "hf_lowrank.sweep"
RESULTS_VERSION = 1


class ResultsError(ValueError):
    """A results file that is missing, truncated, or not one this version of hf_lowrank writes."""


def atomic_write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write `payload` to `path` so that a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_results_payload(path: str | os.PathLike) -> dict:
    """Read and check a results.json: the raw payload (`SweepResults.load` makes it typed)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no results file at {path}.")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not valid JSON (truncated?): {error}.") from error
    if not isinstance(payload, dict) or payload.get("format") != RESULTS_FORMAT:
        raise ResultsError(f"{path} is not an hf_lowrank sweep results file (format {payload.get('format')!r}).")
    if payload.get("version") != RESULTS_VERSION:
        raise ResultsError(
            f"{path} has results version {payload.get('version')!r}; this hf_lowrank reads version {RESULTS_VERSION}."
        )
    return payload
