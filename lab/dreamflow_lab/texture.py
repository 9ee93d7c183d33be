"""Texture apart from geometry: the true albedo painted on a stage's own geometry.

Renders of a model with the scene's true albedo in place of its learned colour are the best any
texture can do on that geometry: with them as the reference, the pattern error measures the texture
alone; scored against the true scene, they give the geometry's ceiling (a lumpy sphere warps even
perfect stripes in the image). Used by the texture-oracle and stage-detail experiments.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from dreamflow.config import RunConfig
from dreamflow.evaluate.toy_metrics import held_out_cameras, image_metrics, render_like_truth
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.geometry.nerf import NeRFModel
from dreamflow.io import load_checkpoint
from dreamflow.render.cameras import Cameras
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import ToyScene, parse_toy_prompt
from dreamflow.training.stages import STAGES


class _Albedo(nn.Module):
    """A function of position as a module, so that it can stand in for a mesh's colour field."""

    def __init__(self, albedo):
        super().__init__()
        self.albedo = albedo

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.albedo(points)


@contextlib.contextmanager
def painted_with_truth(model, scene: ToyScene):
    """`model`'s learned geometry with the scene's true albedo in place of its learned colour,
    restored on exit."""
    if isinstance(model, TexturedMesh):
        learned, model.colour = model.colour, _Albedo(scene.albedo)
        try:
            yield model
        finally:
            model.colour = learned
    elif isinstance(model, NeRFModel):
        # The renderer asks the field for albedo(points, features): shadow that method on the instance.
        object.__setattr__(model.field, "albedo", lambda points, features=None: scene.albedo(points))
        try:
            yield model
        finally:
            del model.field.__dict__["albedo"]
    else:
        raise TypeError(f"cannot paint the true albedo on a {type(model).__name__}")


def texture_metrics(model, scene: ToyScene, cameras: Cameras, resolution: int, view,
                    truth: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detail of a stage's texture separated from its geometry (`view`: the stage's `render_like_truth`).

    * `pattern_ceiling`: `pattern_error` of the true albedo painted on the stage's geometry,
      against the true scene: the best pattern error that geometry allows.
    * `texture_pattern_error`: the stage's own render against that painted one (same geometry,
      so only the texture differs): 0 = the true pattern, 1 = a flat colour.
    """
    with painted_with_truth(model, scene):
        painted = render_like_truth(model, cameras, resolution)
    ceiling = image_metrics(scene, cameras, painted.opacity, painted.albedo, resolution, truth)["pattern_error"]
    reference = {"albedo": painted.albedo.cpu().float(), "mask": painted.opacity.cpu().float()}
    texture = image_metrics(scene, cameras, view.opacity, view.albedo, resolution, reference)["pattern_error"]
    return {"pattern_ceiling": ceiling, "texture_pattern_error": texture}


def stage_texture_metrics(config: RunConfig, prompt: str, folder: str | Path) -> dict[str, float]:
    """Texture apart from geometry for a finished toy asset (`folder` holds stage1-3/ckpt.pt): per
    stage, `pattern_ceiling` and `texture_pattern_error` (`texture_metrics`). A diagnosis
    for the stage-detail experiment (about a minute per asset on 2 cores)."""
    scene = parse_toy_prompt(prompt)
    if scene is None:
        raise ValueError(f"{prompt!r} is not a toy-world prompt: texture metrics need its true albedo")
    folder = Path(folder)
    cameras, resolution = held_out_cameras(config.camera), config.stage3.resolution
    truth = render_scene(scene, cameras, resolution)
    models = {name: spec.load_trained(load_checkpoint(folder / name / "ckpt.pt"), config)
              for name, spec in STAGES.items()}
    out = {}
    for stage, model in models.items():
        view = render_like_truth(model, cameras, resolution)
        for key, value in texture_metrics(model, scene, cameras, resolution, view, truth).items():
            out[f"{stage}_{key}"] = value
    return out
