"""Renders of toy scenes from the shared camera sampler, with view-dependent prompts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from dreamflow.config import CameraConfig
from dreamflow.render.cameras import sample_cameras, view_direction_suffix
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import ToyScene, all_scenes


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


def render_dataset(camera: CameraConfig, views_per_scene: int, resolutions: tuple[int, ...],
                   seed: int, render_resolution: int | None = None) -> ToyDataset:
    """Render every toy scene from `views_per_scene` random cameras; downsample by area averaging."""
    generator = torch.Generator().manual_seed(seed)
    top = render_resolution or max(resolutions)
    scenes = all_scenes()
    images: dict[int, list[torch.Tensor]] = {r: [] for r in resolutions}
    prompts, scene_index = [], []
    for index, scene in enumerate(tqdm(scenes, desc="render toy dataset")):
        cameras = sample_cameras(camera, views_per_scene, generator)
        for start in range(0, views_per_scene, 32):
            rgb = render_scene(scene, cameras[start:start + 32], top)["rgb"].permute(0, 3, 1, 2)
            for resolution in resolutions:
                scaled = torch.nn.functional.adaptive_avg_pool2d(rgb, resolution) if resolution != top else rgb
                images[resolution].append((scaled * 255).round().clamp(0, 255).to(torch.uint8))
        prompts += [view_prompt(scene, float(e), float(a)) for e, a in zip(cameras.elevation, cameras.azimuth)]
        scene_index += [index] * views_per_scene
    return ToyDataset({r: torch.cat(v) for r, v in images.items()}, prompts, torch.tensor(scene_index), scenes)
