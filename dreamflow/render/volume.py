"""Volume rendering of the NeRF with empty-space skipping by an occupancy grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from dreamflow.config import ShadingConfig, VolumeRenderConfig
from dreamflow.device import LaggedCapacity, compact_indices, spare_to_first
from dreamflow.render.cameras import Cameras, camera_rays
from dreamflow.render.lighting import light_directions

if TYPE_CHECKING:  # the field is defined above this module (geometry/), which imports the renderer
    from dreamflow.geometry.nerf import NeRFField

SHADING_MODES = ("albedo", "diffuse", "textureless")  # the log records a step's shading as its index here


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # [B, H, W, 3]
    opacity: torch.Tensor  # [B, H, W, 1]
    depth: torch.Tensor  # [B, H, W, 1]
    albedo: torch.Tensor | None = None  # [B, H, W, 3] (albedo composited on the background)
    samples_evaluated: int | torch.Tensor = 0  # occupied samples (a device scalar: read it when logging)


def box_filter(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Image [B,H,W,C] averaged over factor x factor pixel blocks (the last step of supersampling)."""
    return torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)


def box_downsample(output: RenderOutput, factor: int) -> RenderOutput:
    """A render at `factor` x the resolution box-filtered down to the resolution."""
    if factor == 1:
        return output
    albedo = None if output.albedo is None else box_filter(output.albedo, factor)
    return RenderOutput(box_filter(output.rgb, factor), box_filter(output.opacity, factor),
                        box_filter(output.depth, factor), albedo, output.samples_evaluated)


def choose_shading(config: ShadingConfig, step: int, generator: torch.Generator, start_step: int = 0) -> str:
    """DreamFusion: albedo with some probability, else diffuse or textureless with a random light."""
    draw = torch.rand(1, generator=generator).item()
    if step < start_step or draw < config.albedo_ratio:
        return "albedo"
    if draw < config.albedo_ratio + config.textureless_ratio:
        return "textureless"
    return "diffuse"


class OccupancyGrid(nn.Module):
    """A coarse boolean grid of where density is non-negligible (nerfacc-style, EMA of max density)."""

    def __init__(self, radius: float, resolution: int):
        super().__init__()
        self.radius = radius
        self.resolution = resolution
        # -1 marks "never measured": every cell counts as occupied until the first update, which then
        # takes the field's real density (nerfacc does the same). Starting from a large value instead
        # kept every cell occupied for thousands of steps of EMA decay (all 48-128 samples evaluated).
        self.register_buffer("density", torch.full((resolution,) * 3, -1.0))

    @torch.no_grad()
    def update(self, field: "NeRFField", threshold: float, step_size: float, generator: torch.Generator,
               decay: float = 0.95) -> float:
        """EMA of the field's density at a jittered point per cell; returns the occupied share (a device scalar)."""
        r, device = self.resolution, self.density.device
        axis = torch.arange(r, device=device)
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3).float()
        jitter = torch.rand(grid.shape, generator=generator, device=device)
        points = ((grid + jitter) / r * 2 - 1) * self.radius
        density = torch.cat([field.density(chunk) for chunk in points.split(65536)]).view(r, r, r)
        measured = self.density >= 0
        self.density.copy_(torch.where(measured, torch.maximum(self.density * decay, density), density))
        occupied = self.occupied_mask(threshold, step_size)
        return occupied.float().mean()

    def occupied_mask(self, threshold: float, step_size: float) -> torch.Tensor:
        return (self.density < 0) | ((1 - torch.exp(-self.density * step_size)) > threshold)

    def lookup(self, points: torch.Tensor, threshold: float, step_size: float) -> torch.Tensor:
        r = self.resolution
        index = ((points / self.radius + 1) / 2 * r).long().clamp(0, r - 1)
        mask = self.occupied_mask(threshold, step_size)
        return mask[index[..., 0], index[..., 1], index[..., 2]]


class VolumeRenderer(nn.Module):
    """Stratified samples inside the bounding sphere, occupancy skipping, alpha compositing."""

    def __init__(self, field: "NeRFField", config: VolumeRenderConfig, shading: ShadingConfig):
        super().__init__()
        self.field = field
        self.config = config
        self.shading = shading
        self.occupancy = OccupancyGrid(field.config.radius, config.occupancy_grid_resolution)
        # Sizes of the compacted sample buffers: exact on the CPU, from earlier counts on CUDA (no host wait).
        self.occupied_buffer = LaggedCapacity("volume renderer, occupied samples")
        self.shaded_buffer = LaggedCapacity("volume renderer, shaded samples")

    @property
    def step_size(self) -> float:
        return 2 * self.field.config.radius / self.config.samples_per_ray

    def update_occupancy(self, generator: torch.Generator) -> torch.Tensor:
        return self.occupancy.update(self.field, self.config.occupancy_threshold, self.step_size, generator)

    def forward(self, cameras: Cameras, resolution: int, shading: str = "albedo",
                generator: torch.Generator | None = None, light: torch.Tensor | None = None) -> RenderOutput:
        rays_o, rays_d = camera_rays(cameras, resolution, resolution)
        batch = len(cameras)
        rays_o, rays_d = rays_o.reshape(-1, 3), rays_d.reshape(-1, 3)
        radius = self.field.config.radius
        # ray-sphere intersection |o + t d| = R
        b = (rays_o * rays_d).sum(-1)
        c = (rays_o * rays_o).sum(-1) - radius ** 2
        disc = (b * b - c).clamp(min=0).sqrt()
        near, far = (-b - disc).clamp(min=0), -b + disc
        hit_sphere = (b * b - c) > 0
        n = self.config.samples_per_ray
        device = rays_o.device
        jitter = (torch.rand(rays_o.shape[0], n, generator=generator, device=device) if generator is not None
                  else torch.full((rays_o.shape[0], n), 0.5, device=device))
        u = (torch.arange(n, dtype=torch.float32, device=device)[None] + jitter) / n
        t = near[:, None] + (far - near)[:, None] * u  # [R, n]
        delta = ((far - near) / n)[:, None].expand_as(t)
        points = rays_o[:, None] + t[..., None] * rays_d[:, None]
        active = self.occupancy.lookup(points, self.config.occupancy_threshold, self.step_size) & hit_sphere[:, None]
        # Empty-space skipping: the field runs on the occupied samples only, compacted into a buffer
        # whose size the host knows without reading their count (see LaggedCapacity); its spare
        # slots repeat the first sample and their results land in a dropped last slot.
        total = t.numel()
        occupied = active.sum()
        size, = self.occupied_buffer.sizes(occupied.reshape(1), [total], key=total)
        density = torch.zeros(total + 1, device=device)
        albedo_samples = torch.zeros(total + 1, 3, device=device)
        if size > 0:
            index = compact_indices(active, size)
            sample_density, sample_albedo = self.field(points.reshape(-1, 3).index_select(0, spare_to_first(index, total)))
            density = density.index_put((index,), sample_density.reshape(-1).to(density.dtype))
            albedo_samples = albedo_samples.index_put((index,), sample_albedo.to(albedo_samples.dtype))
        density, albedo_samples = density[:total].view(t.shape), albedo_samples[:total].view(*t.shape, 3)
        alpha = 1 - torch.exp(-density * delta)
        transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], dim=1), dim=1)
        weights = alpha * transmittance
        colour = albedo_samples
        if shading != "albedo":
            colour = self._shade(albedo_samples, points, weights, cameras, resolution, shading, light)
        opacity = weights.sum(-1, keepdim=True)
        background = self.field.background(rays_d)
        rgb = (weights[..., None] * colour).sum(1) + (1 - opacity) * background
        albedo = (weights[..., None] * albedo_samples).sum(1) + (1 - opacity) * background
        depth = (weights * t).sum(-1, keepdim=True)
        shape = (batch, resolution, resolution)
        return RenderOutput(rgb.view(*shape, 3), opacity.view(*shape, 1), depth.view(*shape, 1),
                            albedo.view(*shape, 3), occupied)

    def _shade(self, albedo: torch.Tensor, points: torch.Tensor, weights: torch.Tensor, cameras: Cameras,
               resolution: int, shading: str, light: torch.Tensor | None) -> torch.Tensor:
        """Lambertian (or textureless) shading with normals from the density gradient.

        Normals cost six extra field evaluations per sample, so they are computed only where the
        compositing weight is non-negligible (typically a few samples per ray near the surface);
        elsewhere the ambient term alone is used, which changes the image by less than the weight
        threshold.
        """
        ambient = self.shading.ambient
        base = torch.ones_like(albedo) if shading == "textureless" else albedo
        colour = base * ambient
        significant = weights.detach() > 1e-3
        total = significant.numel()
        size, = self.shaded_buffer.sizes(significant.sum().reshape(1), [total], key=total)
        if size > 0:
            index = compact_indices(significant, size)  # spare slots: `total` (see forward)
            sample = spare_to_first(index, total)
            if light is None:
                light = light_directions(cameras)
            view = torch.div(sample, points.shape[1] * resolution * resolution, rounding_mode="floor")
            sample_light = light.index_select(0, view)
            normals = self.field.normals(points.reshape(-1, 3).index_select(0, sample))
            lambert = (normals * sample_light).sum(-1, keepdim=True).clamp(min=0)
            lit = base.reshape(-1, 3).index_select(0, sample) * (ambient + (1 - ambient) * lambert)
            spare_row = colour.new_zeros(1, 3)
            colour = torch.cat([colour.reshape(-1, 3), spare_row]).index_put((index,), lit)[:total].view_as(colour)
        return colour

