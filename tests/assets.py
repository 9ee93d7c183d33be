"""Small finished-looking assets for report and study tests: the exporters' real files (a textured
.glb of a toy scene's true surface, a labelled stage strip, a turntable) and a metrics.json, without
running the stages."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import mcubes
import numpy as np
import torch

from dreamflow.evaluate.metrics import save_stage_strip
from dreamflow.export.media import save_turntable
from dreamflow.export.texture import bake_texture, write_glb
from dreamflow.prompts import slugify
from dreamflow.toyworld.scenes import parse_toy_prompt


@functools.lru_cache(maxsize=8)
def true_surface(prompt: str, resolution: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the toy scene's exact SDF, in the world frame (Z-up)."""
    axis = torch.linspace(-0.8, 0.8, resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
    sdf = parse_toy_prompt(prompt).sdf(grid.reshape(-1, 3)).view(resolution, resolution, resolution).numpy()
    vertices, faces = mcubes.marching_cubes(-sdf, 0.0)
    return vertices / (resolution - 1) * 1.6 - 0.8, faces


def write_true_glb(prompt: str, path: Path, texture_size: int = 64) -> Path:
    """The toy scene's true surface and albedo, exported by the project's .glb writer."""
    vertices, faces = true_surface(prompt)
    scene = parse_toy_prompt(prompt)
    return write_glb(bake_texture(vertices, faces, lambda p: scene.albedo(p), texture_size), path)


def make_asset(results: Path, suite: str, method: str, prompt: str, seed: int, clip_score: float,
               status: str = "ok") -> Path:
    """results/{suite}/{method}/{slug}/seed{seed}/ with metrics.json, stages.png and stage3/ files."""
    folder = results / suite / method / slugify(prompt) / f"seed{seed}"
    generator = torch.Generator().manual_seed(hash((method, prompt, seed)) % 2**31)
    views = {stage: SimpleNamespace(rgb=torch.rand(2, 32, 32, 3, generator=generator))
             for stage in ("stage1", "stage2", "stage3")}
    folder.mkdir(parents=True, exist_ok=True)
    save_stage_strip(views, {"rgb": torch.rand(2, 32, 32, 3, generator=generator)}, folder / "stages.png")
    save_turntable(torch.rand(4, 32, 32, 3, generator=generator), folder / "stage3" / "turntable.gif")
    write_true_glb(prompt, folder / "stage3" / "mesh.glb")
    metrics = {"prompt": prompt, "method": method, "seed": seed, "status": status, "clip_score": clip_score,
               "clip_rank": 1, "seconds_total": 300.0, "seconds_stage1": 100.0}
    for i, stage in enumerate(("stage1", "stage2", "stage3")):
        metrics |= {f"{stage}_iou": 0.7 + 0.1 * i, f"{stage}_colour_error": 0.2 - 0.05 * i,
                    f"{stage}_detail_error": 0.9, f"{stage}_pattern_error": 0.95 - 0.05 * i,
                    f"{stage}_chamfer": 0.05, f"{stage}_chamfer_relative": 0.05}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder / "metrics.json"
