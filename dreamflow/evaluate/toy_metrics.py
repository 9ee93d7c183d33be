"""Ground-truth metrics for toy prompts: silhouette IoU, colour error, detail error, Chamfer distance."""

from __future__ import annotations

import functools

import mcubes
import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from dreamflow.config import CameraConfig
from dreamflow.render.cameras import Cameras, orbit_cameras
from dreamflow.render.volume import RenderOutput, box_downsample
from dreamflow.toyworld.render import BACKGROUND, TRUTH_SUPERSAMPLE, render_scene
from dreamflow.toyworld.scenes import ToyScene

SCENE_RADIUS = 0.5  # characteristic size of toy shapes; Chamfer is also reported relative to it


def held_out_cameras(camera: CameraConfig, n_views: int = 16) -> Cameras:
    """16 fixed views around the object, offset in azimuth from the preview/turntable views."""
    return orbit_cameras(camera, n_views, azimuth_offset=360.0 / (2 * n_views))


def render_like_truth(model, cameras: Cameras, resolution: int, supersample: int = TRUTH_SUPERSAMPLE) -> RenderOutput:
    """A stage's albedo renders sampled as `render_scene` samples the truth: `supersample` rays per
    pixel side, box-filtered. The pattern error compares spectra up to the pixel frequency, so the
    sampling must match: the true scene rendered at pixel centres scores 0.40 against its own 2x
    render (aliased pattern edges), and the true albedo painted on a marching-cubes mesh of the true
    shape scores 0.39 at pixel centres and 0.05 sampled like the truth."""
    with torch.no_grad():
        return box_downsample(model.render_views(cameras, resolution * supersample), supersample)


def high_pass(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Image [B,H,W,C] minus its Gaussian blur: what is finer than about 2 sigma pixels."""
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = image.shape[-1]
    blurred = image.permute(0, 3, 1, 2)
    blurred = torch.nn.functional.pad(blurred, (radius,) * 4, mode="replicate")
    blurred = torch.nn.functional.conv2d(blurred, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    blurred = torch.nn.functional.conv2d(blurred, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return image - blurred.permute(0, 2, 3, 1)


def erode(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Boolean mask [B,H,W] shrunk by `pixels` (a square structuring element)."""
    kernel = 2 * pixels + 1
    outside = torch.nn.functional.max_pool2d((~mask).float()[:, None], kernel, stride=1, padding=pixels)
    return outside[:, 0] < 0.5


def image_metrics(scene: ToyScene, cameras: Cameras, alpha: torch.Tensor, albedo: torch.Tensor,
                  resolution: int, truth: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Silhouette IoU, colour error and detail error of albedo renders against the true scene.

    * `iou`: of silhouettes (alpha > 0.5).
    * `colour_error`: mean RGB distance to the true albedo where both are foreground.
    * `detail_error`: mean RGB distance between the high-pass-filtered albedo and the true one
      (Gaussian sigma = resolution / 64, i.e. 2 px at 128 px), on the true foreground eroded by
      3 sigma so silhouette edges do not count. A flat colour scores the pattern's own
      high-pass energy (`detail_energy`); the true pattern scores 0. It needs the pattern's
      phase, not just its frequency: stripes in the wrong place score worse than none.
    * `detail_amount`: the prediction's own mean high-pass magnitude there, blind to placement
      (compare with `detail_energy`: how much detail a stage draws, right or wrong).
    * `pattern_error`: the same high-pass images compared by their amplitude spectra
      (`pattern_spectrum_error`): blind to the pattern's phase, which a prompt does not fix, but
      not to its kind, period, orientation or colours. 0 = the true pattern, 1 = a flat colour.
      NaN for a scene without a pattern: it is relative to the true pattern's spectrum, which is
      then only the faint shading of flat colours (its ratio reaches 10^5 and means nothing).

    `truth`: `render_scene(scene, cameras, resolution)` when the caller already has it.
    """
    truth = truth if truth is not None else render_scene(scene, cameras, resolution)
    coverage = truth["mask"]
    true_mask = coverage[..., 0] > 0.5
    # Pixels on the silhouette average surface and background: divide the background out.
    true_albedo = (truth["albedo"] - torch.tensor(BACKGROUND) * (1 - coverage)) / coverage.clamp(min=1e-6)
    mask = alpha[..., 0].cpu() > 0.5
    union = (mask | true_mask).sum().item()
    both = mask & true_mask
    iou = both.sum().item() / max(union, 1)
    # The prediction's silhouette pixels are divided out the same way, so a render scored against
    # itself scores 0 (outside its mask it is replaced below).
    coverage_predicted = alpha.cpu().float()
    albedo = (albedo.cpu().float() - torch.tensor(BACKGROUND) * (1 - coverage_predicted)) / coverage_predicted.clamp(min=1e-6)
    colour_error = float((albedo[both] - true_albedo[both]).norm(dim=-1).mean()) if both.any() else float("nan")
    sigma = resolution / 64
    # Outside its own silhouette the prediction is filled with its mean colour, so that the
    # background's white does not enter the high-pass of interior pixels near a silhouette error.
    mean_colour = albedo[mask].mean(0) if mask.any() else torch.full((3,), 0.5)
    filled = torch.where(mask[..., None], albedo, mean_colour)
    inner = erode(true_mask, int(3 * sigma + 0.5)) & mask
    detail_truth, detail = high_pass(true_albedo, sigma), high_pass(filled, sigma)
    if inner.any():
        detail_error = float((detail[inner] - detail_truth[inner]).norm(dim=-1).mean())
        detail_energy = float(detail_truth[inner].norm(dim=-1).mean())
        detail_amount = float(detail[inner].norm(dim=-1).mean())
        pattern_error = pattern_spectrum_error(detail, detail_truth, inner) if scene.patterned else float("nan")
    else:
        detail_error = detail_energy = detail_amount = pattern_error = float("nan")
    return {"iou": iou, "colour_error": colour_error, "detail_error": detail_error, "detail_energy": detail_energy,
            "detail_amount": detail_amount, "pattern_error": pattern_error}


def pattern_spectrum_error(detail: torch.Tensor, detail_truth: torch.Tensor, window: torch.Tensor) -> float:
    """Relative distance between amplitude spectra of two high-pass images [B,H,W,C] in `window` [B,H,W].

    Per view and colour channel, |FFT| of the windowed high-pass image; the error is
    ||A_pred - A_true|| / ||A_true|| over all views, channels and frequencies. A translation of the
    pattern leaves it (nearly: the window is fixed) unchanged, so stripes at another height score
    as well as the true ones; a flat colour scores 1, detail at the wrong frequency, orientation or
    colour, or noise of the pattern's energy, scores about 1 or more.
    """
    weight = window[..., None].float()
    spectrum = torch.fft.rfft2((detail * weight).permute(0, 3, 1, 2)).abs()
    true_spectrum = torch.fft.rfft2((detail_truth * weight).permute(0, 3, 1, 2)).abs()
    return float((spectrum - true_spectrum).norm() / true_spectrum.norm().clamp(min=1e-12))


@functools.lru_cache(maxsize=32)
def true_surface_points(scene: ToyScene, count: int = 20000, resolution: int = 128, seed: int = 0) -> np.ndarray:
    axis = torch.linspace(-0.8, 0.8, resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    sdf = scene.sdf(grid.reshape(-1, 3)).view(resolution, resolution, resolution).numpy()
    vertices, faces = mcubes.marching_cubes(-sdf, 0.0)
    vertices = vertices / (resolution - 1) * 1.6 - 0.8
    mesh = trimesh.Trimesh(vertices, faces)
    points = trimesh.sample.sample_surface(mesh, count, seed=seed)[0]
    points.setflags(write=False)  # cached and shared: callers must not modify it
    return points


def chamfer_distance(mesh: trimesh.Trimesh, scene: ToyScene, count: int = 20000, seed: int = 0) -> dict[str, float]:
    """Symmetric mean nearest-neighbour distance between surface samples (scene units)."""
    predicted = trimesh.sample.sample_surface(mesh, count, seed=seed)[0]
    truth = true_surface_points(scene, count, seed=seed)
    forward = cKDTree(truth).query(predicted)[0].mean()
    backward = cKDTree(predicted).query(truth)[0].mean()
    chamfer = float((forward + backward) / 2)
    return {"chamfer": chamfer, "chamfer_relative": chamfer / SCENE_RADIUS}
