"""Camera sampling shared by the toy world, the prior's training data and every 3D stage.

Conventions follow threestudio / OpenGL: the camera looks down its local -z axis, +y is up,
world +z is up, azimuth 0 looks at the object from +x ("front").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dreamflow.config import CameraConfig


@dataclass
class Cameras:
    """A batch of pinhole cameras."""

    c2w: torch.Tensor  # [B, 4, 4] camera-to-world
    fovy: torch.Tensor  # [B] radians
    elevation: torch.Tensor  # [B] degrees
    azimuth: torch.Tensor  # [B] degrees
    distance: torch.Tensor  # [B]
    extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def to(self, device: torch.device | str) -> "Cameras":
        return Cameras(self.c2w.to(device), self.fovy.to(device), self.elevation.to(device),
                       self.azimuth.to(device), self.distance.to(device), dict(self.extras))

    def __getitem__(self, index) -> "Cameras":
        if not isinstance(index, slice):
            index = torch.as_tensor(index).reshape(-1)
        return Cameras(self.c2w[index], self.fovy[index], self.elevation[index],
                       self.azimuth[index], self.distance[index], dict(self.extras))

    @property
    def positions(self) -> torch.Tensor:
        return self.c2w[:, :3, 3]

    def conditioning(self) -> torch.Tensor:
        """Flattened 4x4 camera-to-world matrices: the LoRA's camera condition (ProlificDreamer)."""
        return self.c2w.reshape(len(self), 16)


def look_at_c2w(position: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-to-world matrices for cameras at `position` [B,3] looking at `target` (origin)."""
    if target is None:
        target = torch.zeros_like(position)
    forward = torch.nn.functional.normalize(target - position, dim=-1)
    up_world = torch.zeros_like(forward)
    up_world[:, 2] = 1.0  # a fill on the device, not a copy of host data
    right = torch.nn.functional.normalize(torch.cross(forward, up_world, dim=-1), dim=-1)
    up = torch.cross(right, forward, dim=-1)
    c2w = torch.eye(4, dtype=position.dtype, device=position.device).repeat(position.shape[0], 1, 1)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = position
    return c2w


def cameras_from_spherical(elevation_deg: torch.Tensor, azimuth_deg: torch.Tensor,
                           distance: torch.Tensor, fovy_deg: torch.Tensor) -> Cameras:
    """Cameras on a sphere around the origin, all looking at it."""
    elev = torch.deg2rad(elevation_deg.float())
    azim = torch.deg2rad(azimuth_deg.float())
    position = torch.stack([
        distance * torch.cos(elev) * torch.cos(azim),
        distance * torch.cos(elev) * torch.sin(azim),
        distance * torch.sin(elev),
    ], dim=-1)
    return Cameras(look_at_c2w(position), torch.deg2rad(fovy_deg.float()), elevation_deg.float(),
                   azimuth_deg.float(), distance.float())


def sample_cameras(config: CameraConfig, batch_size: int, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> Cameras:
    """Random training views, uniform in each range (the same sampler the prior was trained on).

    Drawn on `device` (the generator's), so a training step sends nothing from the host.
    """
    device = device if device is not None else (generator.device if generator is not None else "cpu")

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(batch_size, generator=generator, device=device)

    return cameras_from_spherical(uniform(config.elevation_range), uniform(config.azimuth_range),
                                  uniform(config.distance_range), uniform(config.fovy_range))


def orbit_cameras(config: CameraConfig, n_views: int, elevation: float | None = None,
                  azimuth_offset: float = 0.0) -> Cameras:
    """Evenly spaced views around the object for turntables and held-out evaluation."""
    azimuth = torch.linspace(0.0, 360.0, n_views + 1)[:-1] + azimuth_offset
    azimuth = (azimuth + 180.0) % 360.0 - 180.0
    full = lambda value: torch.full((n_views,), float(value))  # noqa: E731
    return cameras_from_spherical(full(config.eval_elevation if elevation is None else elevation),
                                  azimuth, full(config.eval_distance), full(config.eval_fovy))


VIEW_SUFFIXES = ("front view", "side view", "back view", "overhead view")
OVERHEAD_THRESHOLD, FRONT_THRESHOLD = 60.0, 45.0


def view_direction_suffix(elevation_deg: float, azimuth_deg: float, overhead_threshold: float = OVERHEAD_THRESHOLD,
                          front_threshold: float = FRONT_THRESHOLD) -> str:
    """DreamFusion's view-dependent prompt suffix for one camera."""
    if elevation_deg > overhead_threshold:
        return "overhead view"
    azimuth = (azimuth_deg + 180.0) % 360.0 - 180.0
    if abs(azimuth) < front_threshold:
        return "front view"
    if abs(azimuth) > 180.0 - front_threshold:
        return "back view"
    return "side view"


def view_direction_index(cameras: "Cameras") -> torch.Tensor:
    """Index into VIEW_SUFFIXES per camera, computed where the cameras are (no host read);
    the same rule as `view_direction_suffix`."""
    azimuth = (cameras.azimuth + 180.0) % 360.0 - 180.0
    side = torch.where(azimuth.abs() < FRONT_THRESHOLD, 0, torch.where(azimuth.abs() > 180.0 - FRONT_THRESHOLD, 2, 1))
    return torch.where(cameras.elevation > OVERHEAD_THRESHOLD, 3, side)


def camera_rays(cameras: Cameras, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and unit directions, [B, H, W, 3] each, through pixel centres."""
    device = cameras.c2w.device
    focal = 0.5 * height / torch.tan(0.5 * cameras.fovy)  # [B]
    j, i = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32) + 0.5,
                          torch.arange(width, device=device, dtype=torch.float32) + 0.5, indexing="ij")
    dirs = torch.stack([
        (i[None] - 0.5 * width) / focal[:, None, None],
        -(j[None] - 0.5 * height) / focal[:, None, None],
        -torch.ones_like(i)[None].expand(len(cameras), -1, -1),
    ], dim=-1)
    rays_d = torch.einsum("bhwc,bdc->bhwd", dirs, cameras.c2w[:, :3, :3])
    rays_d = torch.nn.functional.normalize(rays_d, dim=-1)
    rays_o = cameras.c2w[:, None, None, :3, 3].expand_as(rays_d)
    return rays_o, rays_d


def projection_matrix(fovy: torch.Tensor, aspect: float = 1.0, near: float = 0.1, far: float = 100.0) -> torch.Tensor:
    """OpenGL perspective projection, [B, 4, 4]."""
    proj = torch.zeros(fovy.shape[0], 4, 4, dtype=torch.float32, device=fovy.device)
    focal = 1.0 / torch.tan(0.5 * fovy)
    proj[:, 0, 0] = focal / aspect
    proj[:, 1, 1] = focal
    proj[:, 2, 2] = -(far + near) / (far - near)
    proj[:, 2, 3] = -2.0 * far * near / (far - near)
    proj[:, 3, 2] = -1.0
    return proj


def rigid_inverse(c2w: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid camera-to-world matrices [B,4,4]: [R^T, -R^T t] (no host-side check, unlike
    `linalg.inv`, which reads its error flag back from the GPU)."""
    rotation_t = c2w[:, :3, :3].transpose(1, 2)
    w2c = torch.zeros_like(c2w)
    w2c[:, :3, :3] = rotation_t
    w2c[:, :3, 3] = -(rotation_t @ c2w[:, :3, 3:4])[..., 0]
    w2c[:, 3, 3] = 1.0
    return w2c


def mvp_matrix(cameras: Cameras) -> torch.Tensor:
    """World-to-clip matrices for rasterisation, [B, 4, 4]."""
    return projection_matrix(cameras.fovy) @ rigid_inverse(cameras.c2w)


__all__ = ["CameraConfig", "Cameras", "sample_cameras", "orbit_cameras", "cameras_from_spherical",
           "view_direction_suffix", "view_direction_index", "VIEW_SUFFIXES", "camera_rays", "mvp_matrix",
           "look_at_c2w", "rigid_inverse"]
