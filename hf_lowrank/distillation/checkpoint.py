"""Mid-training checkpoints of a lock-step group: every model's weights, optimizer and scheduler state, RNG stream and
record, and the position in the data order.

On disk (safetensors plus plain JSON, never pickles), only the latest kept:

    DIR/latest.json                      {"checkpoint": "step-000239"}, replaced atomically after the step is complete
    DIR/step-000239/state.json           identity, position, and every run's state with tensors as references
    DIR/step-000239/<key>.safetensors    the tensors of run <key> (weights, optimizer moments, RNG states)
    DIR/step-000239/trainer_state.json   transformers' TrainerState (global step, log history): Trainer resumes there
"""

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..file_modes import give_umask_modes


__all__ = ["CHECKPOINT_VERSION", "CheckpointError", "GroupCheckpoint", "TrainingPosition", "decode", "encode"]

CHECKPOINT_VERSION = 2  # 2: the Trainer-based group (trainer_state.json, optimizer moments by parameter name)
LATEST = "latest.json"
TRAINER_STATE = "trainer_state.json"  # transformers.trainer_utils.TRAINER_STATE_NAME


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read back."""


@dataclass
class TrainingPosition:
    """Where a lock-step run is: optimizer steps done, the epoch, batches of that epoch each process has consumed,
    and the examples this process has seen."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    examples: int = 0


def encode(value, tensors: dict, path: str):
    """`value` (nested dicts, lists, tuples, numbers, strings, tensors) as plain JSON; tensors go into `tensors`
    under their path and are referenced by it. Every type is tagged, so decoding gives back the same types."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"tensor": path}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {"dict": {key: encode(item, tensors, f"{path}.{key}") for key, item in value.items()}}
        return {"items": [[key, encode(item, tensors, f"{path}.{key}")] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [encode(item, tensors, f"{path}.{i}") for i, item in enumerate(value)]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise CheckpointError(f"cannot checkpoint {path}: a {type(value).__name__} is neither a tensor nor plain data")


def decode(encoded, tensors: dict):
    """The inverse of `encode`."""
    ((kind, payload),) = encoded.items()
    if kind == "tensor":
        return tensors[payload]
    if kind == "dict":
        return {key: decode(item, tensors) for key, item in payload.items()}
    if kind == "items":
        return {key: decode(item, tensors) for key, item in payload}
    if kind in ("list", "tuple"):
        items = [decode(item, tensors) for item in payload]
        return tuple(items) if kind == "tuple" else items
    return float(payload) if kind == "float" else payload


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to the disk (a power loss after this keeps it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_json(path: Path, payload) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, allow_nan=False))
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


class GroupCheckpoint:
    """The latest checkpoint of one lock-step group in `directory`. `identity` (plain JSON: the models' keys, the
    seed, the step count, ...) must match for `load` to resume from it. Only `is_main_process` writes."""

    def __init__(self, directory: str | os.PathLike, identity: dict, is_main_process: bool = True):
        self.directory = Path(directory)
        self.identity = json.loads(json.dumps(identity))
        self.is_main_process = is_main_process

    def save(self, position: TrainingPosition, runs: dict[str, dict], trainer_state=None, keep: int = 1) -> None:
        """Write `runs` (key -> nested state with tensors) at `position`, and `trainer_state` (a transformers
        `TrainerState`: Trainer resumes from the directory) as trainer_state.json; then point latest.json at it and
        remove the checkpoints older than the `keep` latest (`--save_total_limit`). A crash at any moment leaves the
        previous checkpoint or this one, never a mix."""
        if not self.is_main_process:
            return
        name = f"step-{position.step:06d}"
        tmp = self.directory / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        states = {}
        for key, state in runs.items():
            tensors = {}
            states[key] = encode(state, tensors, key)
            save_file(tensors, tmp / f"{key}.safetensors")
        payload = {"version": CHECKPOINT_VERSION, "identity": self.identity, "position": asdict(position)}
        (tmp / "state.json").write_text(json.dumps({**payload, "runs": states}, allow_nan=False))
        if trainer_state is not None:
            trainer_state.save_to_json(str(tmp / TRAINER_STATE))
        give_umask_modes(tmp)  # safetensors writes 0600
        for file in (*tmp.iterdir(), tmp):
            _fsync(file)
        shutil.rmtree(self.directory / name, ignore_errors=True)
        os.replace(tmp, self.directory / name)
        _write_json(self.directory / LATEST, {"checkpoint": name})
        kept = sorted(c.name for c in self.directory.iterdir() if c.is_dir() and c.name.startswith("step-"))[-keep:]
        for child in self.directory.iterdir():
            if child.is_dir() and child.name not in {name, *kept}:  # older ones, and any half-written .tmp
                shutil.rmtree(child, ignore_errors=True)

    def latest(self) -> Path | None:
        """The directory latest.json points to, if there is one."""
        try:
            name = json.loads((self.directory / LATEST).read_text())["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path = self.directory / name
        return path if (path / "state.json").is_file() else None

    def _state(self) -> tuple[Path, dict] | None:
        """The latest checkpoint's directory and state.json, when it is of this identity (None otherwise)."""
        path = self.latest()
        if path is None:
            return None
        try:
            state = json.loads((path / "state.json").read_text())
        except ValueError as error:
            raise CheckpointError(
                f"{path / 'state.json'} is not valid JSON ({error}); delete {self.directory} to restart this stage "
                "from its beginning."
            ) from error
        if state.get("version") != CHECKPOINT_VERSION or state.get("identity") != self.identity:
            return None
        return path, state

    def keys(self) -> list[str]:
        """The models of the latest checkpoint of this identity ([] when there is none); reads no tensor."""
        found = self._state()
        return sorted(found[1]["runs"]) if found else []

    def load(self, keys: list[str] | None = None) -> tuple[TrainingPosition, dict[str, dict]] | None:
        """The position and the states of `keys` (default: every model) of the latest checkpoint; None when there
        is none, it belongs to another stage or sweep, or it lacks one of `keys`. Only the tensors of `keys` are
        read."""
        found = self._state()
        if found is None:
            return None
        path, state = found
        keys = list(state["runs"]) if keys is None else keys
        if not set(keys) <= set(state["runs"]):
            return None
        runs = {}
        for key in keys:
            file = path / f"{key}.safetensors"
            try:
                tensors = load_file(file)
            except Exception as error:  # safetensors raises its own error types
                raise CheckpointError(
                    f"{file} is not a readable safetensors file ({error}); delete {self.directory} to restart this "
                    "stage from its beginning."
                ) from error
            runs[key] = decode(state["runs"][key], tensors)
        return TrainingPosition(**state["position"]), runs

    def describe(self) -> str | None:
        """What the checkpoint on disk is (its identity and step), for a message when it is not resumed."""
        path = self.latest()
        if path is None:
            return None
        try:
            state = json.loads((path / "state.json").read_text())
            return f"step {state['position']['step']} of {sorted(state['runs'])}"
        except (OSError, ValueError, KeyError, TypeError):
            return str(path)

    def remove(self) -> None:
        if self.is_main_process:
            shutil.rmtree(self.directory, ignore_errors=True)
