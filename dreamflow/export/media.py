"""Previews (PNG grids) and turntables (GIF) of renders."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B,H,W,3] floats in [0,1] -> uint8 array."""
    return (images.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def upscale(images: np.ndarray, minimum: int = 128) -> np.ndarray:
    """Nearest-neighbour enlarge tiny toy renders so previews are viewable."""
    factor = max(1, minimum // images.shape[-2])
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def save_preview(images: torch.Tensor, path: str | Path, columns: int | None = None) -> Path:
    """Save a grid of renders [B,H,W,3] as one PNG."""
    frames = upscale(to_uint8(images))
    b, h, w, _ = frames.shape
    columns = columns or b
    rows = -(-b // columns)
    grid = np.full((rows * h, columns * w, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = frame
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, grid)
    return path


def save_turntable(images: torch.Tensor, path: str | Path, fps: int = 12) -> Path:
    """Save renders around the object as an animated GIF (loops forever)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, list(upscale(to_uint8(images))), duration=1000 / fps, loop=0)
    return path
