"""What each stage leaves beside its checkpoint: previews, turntables, textured meshes and views."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamflow.config import RunConfig, StageConfig
from dreamflow.export.media import save_preview, save_turntable
from dreamflow.export.texture import bake_texture, write_glb, write_obj
from dreamflow.geometry.base import StageModel
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.render.cameras import orbit_cameras


@torch.no_grad()
def export_previews(model: StageModel, config: RunConfig, stage: StageConfig, out_dir: Path) -> dict[str, Path]:
    """preview.png (albedo, `stage.preview_views` orbit views) and turntable.gif (diffuse shading)."""
    device = model.device
    preview = model.render_views(orbit_cameras(config.camera, stage.preview_views).to(device), stage.resolution)
    turntable = model.render_views(orbit_cameras(config.camera, stage.turntable_views).to(device), stage.resolution,
                                   shading="diffuse")
    return {"preview": save_preview(preview.rgb, out_dir / "preview.png"),
            "turntable": save_turntable(turntable.rgb, out_dir / "turntable.gif")}


@torch.no_grad()
def export_mesh(model: TexturedMesh, config: RunConfig, stage: StageConfig, out_dir: Path,
                final: bool = False) -> dict[str, Path]:
    """Previews plus the textured mesh.glb (UV-unwrapped, colour field baked into a texture).

    `final` (the last stage) adds mesh.obj + .mtl + texture and `export.views` PNG views.
    """
    mesh = model.to_trimesh()
    device = model.device
    textured = bake_texture(mesh.vertices, mesh.faces, lambda p: model.colour(p.to(device)).cpu(),
                            config.export.texture_size)
    files = {"mesh": write_glb(textured, out_dir / "mesh.glb"), **export_previews(model, config, stage, out_dir)}
    if final:
        files["obj"] = write_obj(textured, out_dir / "mesh.obj")
        views = model.render_views(orbit_cameras(config.camera, config.export.views).to(device), stage.resolution)
        for i, image in enumerate(views.rgb):
            save_preview(image[None], out_dir / "views" / f"view_{i:02d}.png")
    return files
