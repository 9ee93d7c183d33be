"""Ground-truth renderer for toy scenes: sphere tracing of the exact SDF, its albedo, diffuse shading."""

from __future__ import annotations

import torch

from dreamflow.render.cameras import Cameras, camera_rays
from dreamflow.render.lighting import diffuse_shading, light_directions
from dreamflow.render.volume import box_filter
from dreamflow.toyworld.scenes import ToyScene

BACKGROUND = (1.0, 1.0, 1.0)
TRUTH_SUPERSAMPLE = 2  # rays per pixel side; evaluation renders the stages the same way


@torch.no_grad()
def render_scene(scene: ToyScene, cameras: Cameras, resolution: int, supersample: int = TRUTH_SUPERSAMPLE,
                 steps: int = 64) -> dict[str, torch.Tensor]:
    """Render `scene` from `cameras`; returns rgb [B,H,W,3], mask [B,H,W,1], albedo, normal."""
    size = resolution * supersample
    rays_o, rays_d = camera_rays(cameras, size, size)
    t = torch.zeros(rays_o.shape[:-1])
    for _ in range(steps):
        dist = scene.sdf(rays_o + t[..., None] * rays_d)
        t = (t + dist).clamp(max=10.0)
    points = rays_o + t[..., None] * rays_d
    hit = scene.sdf(points).abs() < 2e-3
    normal = scene.normals(points)
    albedo = scene.albedo(points, normal)
    light = light_directions(cameras)[:, None, None, :]
    shaded = diffuse_shading(albedo, normal, light)
    mask = hit[..., None].float()
    background = torch.tensor(BACKGROUND)
    out = {
        "rgb": shaded * mask + background * (1 - mask),
        "albedo": albedo * mask + background * (1 - mask),
        "mask": mask,
        "normal": normal * mask,
    }
    if supersample > 1:
        out = {key: box_filter(value, supersample) for key, value in out.items()}
    return out
