"""`RNGStream`: a private torch RNG stream per model, so a model draws the same numbers whatever trains beside it."""

import contextlib

import torch

from .checkpoint import CheckpointError


__all__ = ["RNGStream"]


class RNGStream:
    """A private torch RNG stream (CPU, and this process's CUDA device when there is one), started as
    `torch.manual_seed(seed)` would start it. Every process of a group draws the same numbers from it (same seed,
    same shapes), so one process's state stands for all of them in a checkpoint."""

    def __init__(self, seed: int):
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        self._devices = devices
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self._cpu = torch.get_rng_state()
            self._cuda = [torch.cuda.get_rng_state(d) for d in devices]

    @contextlib.contextmanager
    def active(self):
        """Draw from this stream inside the block; the global RNG is left as it was."""
        with torch.random.fork_rng(devices=self._devices):
            torch.set_rng_state(self._cpu)
            for device, state in zip(self._devices, self._cuda):
                torch.cuda.set_rng_state(state, device)
            yield
            self._cpu = torch.get_rng_state()
            self._cuda = [torch.cuda.get_rng_state(d) for d in self._devices]

    def state_dict(self) -> dict:
        return {"cpu": self._cpu.clone(), "cuda": [state.clone() for state in self._cuda]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["cuda"]) != len(self._devices):
            raise CheckpointError(
                f"the checkpoint's RNG streams are of {len(state['cuda'])} CUDA device(s) per process, this process "
                f"has {len(self._devices)}: resume on the same kind of machine, or delete the checkpoint directory "
                "to restart this stage."
            )
        self._cpu, self._cuda = state["cpu"].clone(), [s.clone() for s in state["cuda"]]
