"""Written files get the mode the process's umask gives (``0o666 & ~umask``), as `open()` would give them.

Two writers do not: `tempfile.mkstemp` (the atomic writes' temporary file) and safetensors 0.8.0
(safetensors/safetensors#782: its own temporary file, renamed into place), both 0600. On a shared filesystem a
colleague, or another user's Hub upload, could then not read results.json or a model.safetensors.
"""

import os
from pathlib import Path


__all__ = ["give_umask_modes", "umask_file_mode"]


def _umask() -> int:
    """The process's umask: read from /proc where there is one (no change to it), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)  # the narrowest, should another thread write in between
    os.umask(umask)
    return umask


def umask_file_mode() -> int:
    """The mode `open()` gives a new file under the current umask (0o644 under umask 022)."""
    return 0o666 & ~_umask()


def give_umask_modes(path: str | os.PathLike) -> None:
    """Give the file `path`, or every file under the directory `path`, the mode `umask_file_mode` says."""
    path = Path(path)
    mode = umask_file_mode()
    files = [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file()]
    for file in files:
        os.chmod(file, mode)
