"""A finished asset's renders in an external evaluator's layout (`dreamflow export-views`).

GPTEval3D (Wu et al. 2024, 3DTopia/GPTEval3D) places a method in its GPT-4V Elo tournament from 120
views per asset "with the camera angle chosen by the threestudio codebase", RGB and surface normals at
512 x 512, filed as `methods/<method>/<prompt-id>/<seed>/rgb_<i>.png` and `normal_<i>.png`, i unpadded
(its assets/data_format.md; its loader opens `"rgb_%d.png" % i` and reads every folder under
`methods/<method>/` as an integer prompt id, so nothing else may sit there).

threestudio's test cameras (threestudio/data/uncond.py @ 28d9d80, `RandomCameraDataset` for the test
split): 120 views at azimuth `linspace(0, 360, 120)`, both ends included (view 119 repeats view 0), at
elevation 15 deg, distance 1.5 and vertical field of view 70 deg (`eval_elevation_deg`,
`eval_camera_distance`, `eval_fovy_deg`), placed as this project's cameras are: the same spherical
formula, +z up, azimuth 0 on +x (`dreamflow.render.cameras`). Those cameras frame threestudio's scene of
bounding radius 1 (configs/prolificdreamer*.yaml: `geometry.radius: 1.0` with `eval_camera_distance: 1.5`),
so the asset is scaled by 1 / `nerf.radius`, our scene's bounding radius.

Renders are threestudio's test outputs for a textured mesh (configs/prolificdreamer-texture.yaml:
`no-material`, `nvdiff-rasterizer`): RGB is the texture's colour, unlit, over the asset's background
colour; the normal map is threestudio's `comp_normal` of models/renderers/nvdiff_rasterizer.py: the
interpolated world-space vertex normal n (z up), written as (n + 1) / 2 and blended with black by
coverage (`torch.lerp(zeros, (n + 1) / 2, mask)`), so the background is black.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from dreamflow.config import RunConfig
from dreamflow.export.layouts import GPTEVAL3D, ViewExportError, ViewLayout
from dreamflow.export.media import to_uint8
from dreamflow.geometry.mesh import TexturedMesh, vertex_normals
from dreamflow.render.cameras import Cameras, cameras_from_spherical
from dreamflow.stages import FINAL_STAGE


def layout_cameras(layout: ViewLayout) -> Cameras:
    """threestudio's test cameras: azimuth linspace(0, 360, views) with both ends, fixed elevation and distance."""
    azimuth = torch.linspace(0.0, 360.0, layout.views)
    full = lambda value: torch.full((layout.views,), float(value))  # noqa: E731
    return cameras_from_spherical(full(layout.elevation), azimuth, full(layout.distance), full(layout.fovy))


@torch.no_grad()
def render_colour_and_normals(model: TexturedMesh, cameras: Cameras, resolution: int,
                              scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unlit texture colour over the model's background, encoded world normals (n + 1) / 2 over black, and
    coverage, [B, H, W, 3|3|1], of the mesh scaled by `scale` about the origin (colours read where it lies)."""
    vertices, faces = model.vertices, model.faces
    attributes = torch.cat([vertices, vertex_normals(vertices, faces)], dim=-1)

    def shade(values: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        normal = F.normalize(values[:, 3:6], dim=-1, eps=1e-12)
        return torch.cat([model.colour(values[:, :3]), (normal + 1) / 2], dim=-1)

    black = torch.zeros(3, device=vertices.device)
    out = model.rasterizer(vertices * scale, faces, attributes, cameras.to(vertices.device), resolution, shade, black)
    colour = out.rgb[..., :3] + (1 - out.alpha) * model.background_color
    return colour, out.rgb[..., 3:6], out.alpha


def layout_folder(root: str | Path, method: str, prompt_id: str | int, seed: int) -> Path:
    """ROOT/methods/<method>/<prompt-id>/<seed>/ (GPTEval3D's tournament layout)."""
    return Path(root) / "methods" / method / str(prompt_id) / str(seed)


def check_final_checkpoint(state: dict, ckpt: str | Path) -> None:
    if state.get("stage") != FINAL_STAGE:
        raise ViewExportError(f"checkpoint '{ckpt}' is a {state.get('stage')!r} checkpoint; export-views renders a "
                              f"finished asset: pass the {FINAL_STAGE} checkpoint ({FINAL_STAGE}/ckpt.pt)")


def export_layout_views(state: dict, config: RunConfig, folder: str | Path, layout: ViewLayout = GPTEVAL3D,
                        resolution: int | None = None, device: torch.device | str = "cpu",
                        pixels_per_batch: int = 8 * 512 * 512) -> dict:
    """Render the final-stage checkpoint `state` with the layout's cameras into `folder`: rgb_<i>.png and
    normal_<i>.png, i = 0..views-1 (unpadded), and prompt.txt (the checkpoint's prompt, beside the views)."""
    resolution = resolution or layout.resolution
    model = TexturedMesh.from_stage2(state, config).eval().to(device)
    scale = layout.scene_radius / config.nerf.radius
    cameras = layout_cameras(layout)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    batch = max(1, pixels_per_batch // resolution**2)  # views per render: memory bounded at any resolution
    for start in range(0, len(cameras), batch):
        colours, normals, _ = render_colour_and_normals(model, cameras[start:start + batch], resolution, scale)
        for index, (colour, normal) in enumerate(zip(to_uint8(colours), to_uint8(normals)), start=start):
            Image.fromarray(colour).save(folder / f"rgb_{index}.png")
            Image.fromarray(normal).save(folder / f"normal_{index}.png")
    (folder / "prompt.txt").write_text(f"{state.get('prompt', '')}\n", encoding="utf-8")
    return {"layout": layout.name, "folder": str(folder), "views": len(cameras), "resolution": resolution,
            "scale": scale, "faces": int(model.faces.shape[0]), "backend": model.backend()["rasterizer"]}
