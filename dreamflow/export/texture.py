"""UV unwrapping (xatlas), baking the colour field into a texture, textured .glb / .obj export.

Meshes are baked in the world frame (Z-up); the writers put them in glTF's frame (+Y up, metres,
`dreamflow.export.frames`) with smooth per-vertex normals, so any viewer shows them upright and
smoothly shaded. The .obj gets the same frame (Y-up is also the .obj convention of most tools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import trimesh
import xatlas
from PIL import Image
from scipy import ndimage

from dreamflow.export.frames import gltf_to_world, world_to_gltf
from dreamflow.io import atomic_write_bytes
from dreamflow.render.rasterize import TorchRasterizer


@torch.no_grad()
def bake_texture(vertices: np.ndarray, faces: np.ndarray, colour: Callable[[torch.Tensor], torch.Tensor],
                 size: int) -> trimesh.Trimesh:
    """Unwrap with xatlas and bake `colour(points)` into a size x size texture on a new mesh.

    Vertex normals come from the welded input mesh, so UV seams (where xatlas splits vertices)
    do not show as shading creases.
    """
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
    vmapping, indices, uvs = xatlas.parametrize(vertices.astype(np.float32), faces.astype(np.uint32))
    positions = torch.as_tensor(vertices[vmapping], dtype=torch.float32)
    tri = torch.as_tensor(indices.astype(np.int64))
    # Rasterise the UV layout: texel (row j, col i) <-> uv ((i + .5) / S, 1 - (j + .5) / S).
    screen = torch.as_tensor(np.stack([uvs[:, 0] * size, (1 - uvs[:, 1]) * size], -1), dtype=torch.float32)[None]
    w = torch.ones(1, screen.shape[1])
    rasterizer = TorchRasterizer()
    face_id = rasterizer.visible_faces(screen, w, tri, size)
    pixel = (face_id.reshape(-1) >= 0).nonzero().squeeze(1)  # texels inside a chart, row-major
    bary, corners = rasterizer.barycentrics(screen, w, tri, pixel, face_id.reshape(-1)[pixel], size, clamp=True)
    points = (bary[..., None] * positions[corners]).sum(-2)  # [N, 3]
    covered = (face_id[0] >= 0).numpy()
    texture = np.ones((size, size, 3), dtype=np.float32)
    if covered.any():
        values = torch.cat([colour(chunk) for chunk in points.split(65536)])
        texture[covered] = values.cpu().numpy()
        # Fill texels outside the charts with their nearest baked texel so filtering never bleeds white.
        _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
        texture = texture[rows, cols]
    image = Image.fromarray((texture.clip(0, 1) * 255).round().astype(np.uint8))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0)
    visual = trimesh.visual.TextureVisuals(uv=uvs, material=material)
    return trimesh.Trimesh(vertices[vmapping], indices, vertex_normals=normals[vmapping], visual=visual,
                           process=False)


def in_gltf_frame(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy of a world-frame (Z-up) mesh in glTF's frame (+Y up), normals rotated with it."""
    return trimesh.Trimesh(world_to_gltf(mesh.vertices), mesh.faces, vertex_normals=world_to_gltf(mesh.vertex_normals),
                           visual=mesh.visual.copy(), process=False)


def write_glb(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write a world-frame mesh as .glb in glTF's frame, with its normals and texture."""
    data = in_gltf_frame(mesh).export(file_type="glb", include_normals=True)
    atomic_write_bytes(path, lambda stream: stream.write(data))
    return Path(path)


def write_obj(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write a world-frame mesh as .obj + .mtl + texture .png beside it, in the .glb's frame (+Y up)."""
    path = Path(path)
    text, files = trimesh.exchange.obj.export_obj(in_gltf_frame(mesh), include_normals=True, include_texture=True,
                                                   return_texture=True, mtl_name=path.with_suffix(".mtl").name)
    for name, data in files.items():
        atomic_write_bytes(path.parent / name, lambda stream, data=data: stream.write(data))
    atomic_write_bytes(path, lambda stream: stream.write(text.encode()))
    return path


def load_textured(path: str | Path, frame: str = "world") -> trimesh.Trimesh:
    """Load an exported .glb as one textured mesh, in the world frame (Z-up) or as stored (`frame="gltf"`)."""
    if frame not in ("world", "gltf"):
        raise ValueError(f"frame must be 'world' or 'gltf', got {frame!r}")
    scene = trimesh.load(path, process=False)
    mesh = next(iter(scene.geometry.values())) if isinstance(scene, trimesh.Scene) else scene
    if frame == "world":
        mesh = trimesh.Trimesh(gltf_to_world(mesh.vertices), mesh.faces, vertex_normals=gltf_to_world(mesh.vertex_normals),
                               visual=mesh.visual, process=False)
    return mesh


__all__ = ["bake_texture", "in_gltf_frame", "write_glb", "write_obj", "load_textured"]
