"""Ground-truth metrics for toy prompts: silhouette IoU, colour error, Chamfer distance."""

from __future__ import annotations

import functools

import mcubes
import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from dreamflow.config import CameraConfig
from dreamflow.render.cameras import Cameras, orbit_cameras
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import ToyScene

SCENE_RADIUS = 0.5  # characteristic size of toy shapes; Chamfer is also reported relative to it


def held_out_cameras(camera: CameraConfig, n_views: int = 16) -> Cameras:
    """16 fixed views around the object, offset in azimuth from the preview/turntable views."""
    return orbit_cameras(camera, n_views, azimuth_offset=360.0 / (2 * n_views))


def image_metrics(scene: ToyScene, cameras: Cameras, alpha: torch.Tensor, albedo: torch.Tensor,
                  resolution: int) -> dict[str, float]:
    """IoU of silhouettes (alpha > 0.5) and mean RGB distance of albedo where both are foreground."""
    truth = render_scene(scene, cameras, resolution)
    true_mask = truth["mask"][..., 0] > 0.5
    mask = alpha[..., 0].cpu() > 0.5
    union = (mask | true_mask).sum().item()
    both = mask & true_mask
    iou = (mask & true_mask).sum().item() / max(union, 1)
    colour_error = float((albedo.cpu()[both] - scene.rgb).norm(dim=-1).mean()) if both.any() else float("nan")
    return {"iou": iou, "colour_error": colour_error}


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
