"""Renders of toy scenes from the shared camera sampler, with view-dependent prompts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from dreamflow.config import CameraConfig
from dreamflow.io import save_checkpoint
from dreamflow.render.cameras import sample_cameras, view_direction_suffix
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import (
    ToyScene,
    composition_scenes,
    pattern_scenes,
    plain_scenes,
)


@dataclass
class ToyDataset:
    """Images (uint8, [N,3,H,W]) at several resolutions, their prompts and scene indices."""

    images: dict[int, torch.Tensor]
    prompts: list[str]
    scene_index: torch.Tensor
    scenes: list[ToyScene]

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, resolution: int, indices: torch.Tensor) -> torch.Tensor:
        """Float images in [-1, 1] for the given indices."""
        return self.images[resolution][indices].float() / 127.5 - 1.0


def view_prompt(scene: ToyScene, elevation: float, azimuth: float) -> str:
    return f"{scene.prompt}, {view_direction_suffix(elevation, azimuth)}"


def world_views(plain: int, pattern: int, composition: int) -> list[tuple[ToyScene, int]]:
    """(scene, number of views) for the whole toy world: few views of each of the many variants."""
    return ([(s, plain) for s in plain_scenes()] + [(s, pattern) for s in pattern_scenes()]
            + [(s, composition) for s in composition_scenes()])


def render_dataset(camera: CameraConfig, scene_views: list[tuple[ToyScene, int]], resolutions: tuple[int, ...],
                   seed: int, render_resolution: int | None = None) -> ToyDataset:
    """Render each scene from its number of random cameras; downsample by area averaging."""
    generator = torch.Generator().manual_seed(seed)
    top = render_resolution or max(resolutions)
    images: dict[int, list[torch.Tensor]] = {r: [] for r in resolutions}
    prompts, scene_index = [], []
    for index, (scene, views) in enumerate(tqdm(scene_views, desc="render toy dataset")):
        cameras = sample_cameras(camera, views, generator)
        for start in range(0, views, 32):
            rgb = render_scene(scene, cameras[start:start + 32], top)["rgb"].permute(0, 3, 1, 2)
            for resolution in resolutions:
                scaled = torch.nn.functional.adaptive_avg_pool2d(rgb, resolution) if resolution != top else rgb
                images[resolution].append((scaled * 255).round().clamp(0, 255).to(torch.uint8))
        prompts += [view_prompt(scene, float(e), float(a)) for e, a in zip(cameras.elevation, cameras.azimuth)]
        scene_index += [index] * views
    return ToyDataset({r: torch.cat(v) for r, v in images.items()}, prompts, torch.tensor(scene_index),
                      [scene for scene, _ in scene_views])


def cached_dataset(cache_dir: str | Path, camera: CameraConfig, scene_views: list[tuple[ToyScene, int]],
                   resolutions: tuple[int, ...], seed: int) -> ToyDataset:
    """`render_dataset`, kept in `cache_dir` under a hash of its arguments (trainers share and resume it)."""
    key = json.dumps([repr(camera), [(s.prompt, n) for s, n in scene_views], sorted(resolutions), seed])
    path = Path(cache_dir) / f"toy-dataset-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        state = torch.load(path, weights_only=False)
        return ToyDataset(state["images"], state["prompts"], state["scene_index"], [s for s, _ in scene_views])
    dataset = render_dataset(camera, scene_views, resolutions, seed)
    save_checkpoint({"images": dataset.images, "prompts": dataset.prompts, "scene_index": dataset.scene_index}, path)
    return dataset
