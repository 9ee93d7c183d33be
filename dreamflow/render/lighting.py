"""The one lighting model shared by the toy world's ground truth, the volume renderer and the mesh stages."""

from __future__ import annotations

import torch

from dreamflow.render.cameras import Cameras

AMBIENT = 0.35


def light_directions(cameras: Cameras) -> torch.Tensor:
    """Light from above and slightly behind the camera, so every rendered side is lit ([B, 3], cameras' device)."""
    to_camera = torch.nn.functional.normalize(cameras.positions, dim=-1)
    up = torch.zeros_like(to_camera)
    up[:, 2] = 0.6  # a fill on the device, not a copy of host data
    return torch.nn.functional.normalize(to_camera + up, dim=-1)


def diffuse_shading(albedo: torch.Tensor, normals: torch.Tensor, light_dir: torch.Tensor,
                    ambient: float = AMBIENT) -> torch.Tensor:
    """Lambertian shading with an ambient term; `light_dir` broadcasts against `normals`."""
    lambert = (normals * light_dir).sum(-1, keepdim=True).clamp(min=0.0)
    return albedo * (ambient + (1.0 - ambient) * lambert)
