"""Samples of the toy priors, graded by the judge (model cards, docs, tests)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from dreamflow.render.cameras import cameras_from_spherical
from dreamflow_lab.judge import judge_many
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import ToyScene


def _ddim(pipe):
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def sample_base(pipe, scenes: list[ToyScene], resolution: int, seed: int = 0, steps: int = 30,
                guidance_scale: float = 5.0, batch: int = 32) -> torch.Tensor:
    """Text-to-image DDIM samples [N,H,W,3] of "<prompt>, front view"."""
    pipe, generator, images = _ddim(pipe), torch.Generator().manual_seed(seed), []
    for start in range(0, len(scenes), batch):
        prompts = [f"{s.prompt}, front view" for s in scenes[start:start + batch]]
        images.append(pipe(prompts, height=resolution, width=resolution, num_inference_steps=steps,
                           guidance_scale=guidance_scale, generator=generator, output_type="pt").images)
    return torch.cat(images).permute(0, 2, 3, 1)


@torch.no_grad()
def refine(pipe, scenes: list[ToyScene], coarse: torch.Tensor, resolution: int, strength: float = 0.5,
           seed: int = 0, steps: int = 20, guidance_scale: float = 5.0, batch: int = 16) -> torch.Tensor:
    """Refiner img2img of coarse images [N,h,w,3] upsampled (bilinear) to `resolution`."""
    pipe, generator, images = _ddim(pipe), torch.Generator().manual_seed(seed), []
    upsampled = F.interpolate(coarse.permute(0, 3, 1, 2), size=resolution, mode="bilinear", align_corners=False)
    for start in range(0, len(scenes), batch):
        prompts = [s.prompt for s in scenes[start:start + batch]]
        images.append(pipe(prompts, image=upsampled[start:start + batch], strength=strength,
                           num_inference_steps=steps, guidance_scale=guidance_scale, generator=generator,
                           output_type="pt").images)
    return torch.cat(images).permute(0, 2, 3, 1)


def front_renders(scenes: list[ToyScene], resolution: int, seed: int = 1) -> torch.Tensor:
    """True renders [N,H,W,3], each from a random view that a "front view" prompt covers."""
    generator = torch.Generator().manual_seed(seed)
    n = len(scenes)
    cameras = cameras_from_spherical(torch.rand(n, generator=generator) * 40 - 5,
                                     torch.rand(n, generator=generator) * 90 - 45,
                                     torch.full((n,), 2.25), torch.full((n,), 45.0))
    return torch.cat([render_scene(s, cameras[i:i + 1], resolution)["rgb"] for i, s in enumerate(scenes)])


def grade(images: torch.Tensor, scenes: list[ToyScene]) -> dict[str, float]:
    """The judge's shares (colour, shape, pattern) for images of scenes."""
    return judge_many(images.clamp(0, 1).float(), scenes)


def grid(images: torch.Tensor, columns: int, size: int) -> torch.Tensor:
    """Images [N,H,W,3] tiled into one [rows*size, columns*size, 3] picture (nearest upsampling)."""
    images = F.interpolate(images.permute(0, 3, 1, 2), size=size, mode="nearest").permute(0, 2, 3, 1)
    rows = -(-len(images) // columns)
    padded = torch.ones(rows * columns, size, size, 3)
    padded[:len(images)] = images
    return padded.view(rows, columns, size, size, 3).permute(0, 2, 1, 3, 4).reshape(rows * size, columns * size, 3)
