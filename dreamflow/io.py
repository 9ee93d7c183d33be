"""Atomic file IO shared by every step: temp file, fsync, rename, so a reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


class CorruptCheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read."""


def atomic_write_bytes(path: str | Path, write, before_rename=None) -> None:
    """Call `write(stream)` on a temp file beside `path`, then atomically move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(temp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def save_checkpoint(state: dict[str, Any], path: str | Path, before_rename=None) -> None:
    import torch  # here, not at the top: reports and the study write files through this module without torch

    atomic_write_bytes(path, lambda stream: torch.save(state, stream), before_rename)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint; a missing or damaged file is a clear error naming it and what to do."""
    import torch

    if not Path(path).exists():
        raise CorruptCheckpointError(f"checkpoint '{path}' does not exist: run the stage that writes it first")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CorruptCheckpointError(
            f"checkpoint '{path}' is corrupt or truncated ({type(error).__name__}: {error}). "
            f"Delete it to restart this stage from scratch.") from error
