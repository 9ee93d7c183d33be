"""On-disk cache of text embeddings, safe when many jobs share it (atomic rename, no locks)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch

from dreamflow.io import atomic_write_bytes


def default_cache_dir() -> Path:
    return Path(os.environ.get("DREAMFLOW_CACHE", Path.home() / ".cache" / "dreamflow")) / "text_embeddings"


class EmbeddingCache:
    """Maps (model, prompt) to a tensor dict stored as one file per key.

    Writers save to a temporary file in the same folder, fsync it and `os.replace` it into place,
    so a reader sees either nothing or a complete file. A file that fails to load (e.g. from an
    older crash of a non-atomic writer) is recomputed and replaced, with no error.
    """

    def __init__(self, folder: str | Path | None, model_key: str):
        self.folder = Path(folder) if folder else default_cache_dir()
        self.model_key = model_key
        self.memory: dict[str, dict[str, torch.Tensor]] = {}  # entries read or made by this process

    def path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{self.model_key}\0{text}".encode()).hexdigest()[:32]
        return self.folder / f"{digest}.pt"

    def get_or_compute(self, text: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The entry for `text`: from memory, else from disk, else computed and written (atomically)."""
        if text in self.memory:
            return self.memory[text]
        path = self.path(text)
        value = None
        if path.exists():
            try:
                value = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - unreadable entry: recompute below
                pass
        if value is None:
            value = {k: v.detach().cpu() for k, v in compute().items()}
            atomic_write_bytes(path, lambda stream: torch.save(value, stream))
        self.memory[text] = value
        return value
