"""`dreamflow extract`: marching cubes on the stage-1 density, cleaned and decimated -> coarse.obj."""

from __future__ import annotations

import json
from pathlib import Path

import mcubes
import numpy as np
import torch
import trimesh

from dreamflow.config import RunConfig
from dreamflow.geometry.mesh import EmptyMeshError
from dreamflow.geometry.nerf import load_nerf
from dreamflow.io import atomic_write_bytes


@torch.no_grad()
def density_grid(field, resolution: int, radius: float, chunk: int = 65536) -> np.ndarray:
    axis = torch.linspace(-radius, radius, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    values = torch.cat([field.density(p) for p in points.split(chunk)])
    return values.view(resolution, resolution, resolution).cpu().numpy()


def surface_at(grid: np.ndarray, threshold: float, radius: float) -> trimesh.Trimesh:
    """Marching cubes of a density grid sampled on [-radius, radius]^3, in scene units (uncleaned)."""
    vertices, faces = mcubes.marching_cubes(grid, threshold)
    vertices = vertices / (grid.shape[0] - 1) * 2 * radius - radius
    return trimesh.Trimesh(vertices, faces, process=False)


def clean_mesh(mesh: trimesh.Trimesh, keep_largest: bool, target_faces: int) -> trimesh.Trimesh:
    """Drop degenerate faces, keep the largest component(s), decimate to `target_faces`."""
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    mesh.merge_vertices()
    if keep_largest:
        parts = mesh.split(only_watertight=False)
        if len(parts) > 1:
            mesh = max(parts, key=lambda part: len(part.faces))
    if target_faces and len(mesh.faces) > target_faces:
        mesh = mesh.simplify_quadric_decimation(face_count=target_faces)
    mesh.fix_normals()
    return mesh


def extract_mesh(checkpoint: str | Path, config: RunConfig, out_path: str | Path) -> dict:
    """Extract and write the coarse mesh; returns a report (threshold used, faces, watertight...)."""
    settings = config.extract
    model = load_nerf(checkpoint, config)
    radius = config.nerf.radius
    grid = density_grid(model.field, settings.grid_resolution, radius, settings.chunk)
    if grid.max() <= settings.threshold:
        raise EmptyMeshError(f"the stage-1 density never exceeds extract.threshold={settings.threshold} "
                             f"(max {grid.max():.3g}) in '{checkpoint}': lower the threshold or check stage 1")
    raw = surface_at(grid, settings.threshold, radius)
    raw_faces, components = len(raw.faces), len(raw.split(only_watertight=False))
    mesh = clean_mesh(raw, settings.keep_largest_component, settings.target_faces)
    out_path = Path(out_path)
    atomic_write_bytes(out_path, lambda stream: stream.write(trimesh.exchange.obj.export_obj(mesh).encode()))
    report = {"threshold": settings.threshold, "grid_resolution": settings.grid_resolution,
              "density_max": float(grid.max()), "faces_raw": raw_faces, "faces": len(mesh.faces),
              "vertices": len(mesh.vertices), "components_raw": components, "watertight": bool(mesh.is_watertight),
              "extent": [float(x) for x in mesh.extents]}
    atomic_write_bytes(out_path.with_name("extract.json"), lambda s: s.write(json.dumps(report, indent=2).encode()))
    return report
