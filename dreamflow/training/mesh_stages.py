"""Stages 2 and 3: the extracted mesh optimised (base prior) and refined (refiner prior), then exported."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamflow.config import RunConfig
from dreamflow.export.media import save_preview, save_turntable
from dreamflow.export.texture import bake_texture, write_glb, write_obj
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.render.cameras import orbit_cameras
from dreamflow.training.checkpoint import load_checkpoint
from dreamflow.training.logger import RunLogger
from dreamflow.training.trainer import StageResult, build_trainer, fault_point


def build_mesh_model(stage: str, config: RunConfig, init: str | Path, mesh: str | Path | None) -> TexturedMesh:
    state = load_checkpoint(init)
    if stage == "stage2":
        if mesh is None:
            raise ValueError("stage2 needs --mesh (the extracted mesh/coarse.obj)")
        return TexturedMesh.from_stage1(mesh, state, config)
    return TexturedMesh.from_stage2(state, config)


def export_asset(model: TexturedMesh, config: RunConfig, out_dir: Path, resolution: int, with_obj: bool) -> dict:
    """Textured mesh.glb (+ .obj/.mtl/.png), preview, turntable and per-view PNGs."""
    mesh = model.to_trimesh()
    device = model.base_vertices.device
    textured = bake_texture(mesh.vertices, mesh.faces, lambda p: model.colour(p.to(device)).cpu(),
                            config.export.texture_size)
    files = {"mesh": write_glb(textured, out_dir / "mesh.glb")}
    if with_obj:
        files["obj"] = write_obj(textured, out_dir / "mesh.obj")
    stage_config = getattr(config, "stage3" if with_obj else "stage2")
    preview = model.render_views(orbit_cameras(config.camera, stage_config.preview_views).to(device), resolution)
    turntable = model.render_views(orbit_cameras(config.camera, stage_config.turntable_views).to(device), resolution,
                                   shading="diffuse")
    files["preview"] = save_preview(preview.rgb, out_dir / "preview.png")
    files["turntable"] = save_turntable(turntable.rgb, out_dir / "turntable.gif")
    if with_obj:
        views = model.render_views(orbit_cameras(config.camera, config.export.views).to(device), resolution)
        for i, image in enumerate(views.rgb):
            save_preview(image[None], out_dir / "views" / f"view_{i:02d}.png")
    return files


def run_mesh_stage(stage: str, config: RunConfig, prompt: str, out_dir: str | Path, logger: RunLogger,
                   init: str | Path, mesh: str | Path | None = None) -> StageResult:
    """Run stage 2 or 3 and export its outputs into `out_dir`."""
    out_dir = Path(out_dir)
    stage_config = getattr(config, stage)
    trainer = build_trainer(stage, config, prompt, out_dir, logger, lambda: build_mesh_model(stage, config, init, mesh))
    model = trainer.model
    result = trainer.run()
    fault_point(f"{stage}:export", stage_config.iterations)
    model.eval()
    with torch.no_grad():
        files = export_asset(model, config, out_dir, stage_config.resolution, with_obj=stage == "stage3")
    logger.log_media(stage_config.iterations, images={"preview": files["preview"]},
                     videos={"turntable": files["turntable"]}, meshes={"mesh": files["mesh"]})
    logger.summary({"seconds": result.seconds, "backend": model.backend(), "faces": int(model.faces.shape[0])})
    trainer.finish()
    return result
