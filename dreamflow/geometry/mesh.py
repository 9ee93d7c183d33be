"""Stages 2-3 geometry: an explicit triangle mesh with a hash-grid colour field on its surface.

Choice: an explicit mesh initialised from the marching-cubes mesh of stage 1, whose
vertex offsets are optimised with Laplacian and normal-consistency regularisers, rather than a
DMTet grid as Magic3D. The mesh is what stage 1 already produced, needs no tetrahedral grid
(those shipped with threestudio/nvdiffrec carry a restrictive notice) and is cheap to rasterise in
pure PyTorch on a CPU; DMTet's topology changes matter little after a good stage-1 shape. The colour
field is the stage-1 NeRF's albedo branch (hash grid + MLP), copied as threestudio's refine stage
does, so stage 2 starts with the stage-1 colours.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import trimesh
from torch import nn

from dreamflow.config import NeRFConfig, RunConfig, StageConfig
from dreamflow.geometry.base import StageModel
from dreamflow.geometry.hashgrid import HashGridEncoding
from dreamflow.geometry.nerf import mlp
from dreamflow.render.cameras import Cameras
from dreamflow.render.lighting import light_directions
from dreamflow.render.rasterize import NvdiffrastRasterizer, make_rasterizer
from dreamflow.render.volume import RenderOutput



class EmptyMeshError(RuntimeError):
    """No usable mesh: the density never crosses the iso-level, or the mesh file is missing or empty."""


class ColourField(nn.Module):
    """Albedo as a function of surface position; same parameter names as NeRFField's albedo branch."""

    def __init__(self, config: NeRFConfig):
        super().__init__()
        self.radius = config.radius
        self.encoding = HashGridEncoding(config.encoding)
        self.albedo_mlp = mlp(self.encoding.n_output_dims, config.hidden_dim, 3, config.n_hidden_layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        normalised = (points / (2 * self.radius) + 0.5).clamp(0, 1)
        return torch.sigmoid(self.albedo_mlp(self.encoding(normalised)))


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals (differentiable)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals = normals.index_add(0, faces[:, corner], face_normals)
    return F.normalize(normals, dim=-1, eps=1e-12)


class TexturedMesh(StageModel):
    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, config: RunConfig):
        super().__init__()
        self.register_buffer("base_vertices", vertices.float())
        self.register_buffer("faces", faces.long())
        self.offsets = nn.Parameter(torch.zeros_like(self.base_vertices))
        self.colour = ColourField(config.nerf)
        self.shading = config.shading
        self.register_buffer("background_color", torch.tensor(config.nerf.background_color, dtype=torch.float32))
        mesh = trimesh.Trimesh(vertices.numpy(), faces.numpy(), process=False)
        self.register_buffer("edges", torch.tensor(mesh.edges_unique, dtype=torch.long), persistent=False)
        self.register_buffer("face_adjacency", torch.tensor(mesh.face_adjacency, dtype=torch.long), persistent=False)
        self.rasterizer = make_rasterizer(config.rasterizer)

    @property
    def vertices(self) -> torch.Tensor:
        return self.base_vertices + self.offsets

    @classmethod
    def from_stage1(cls, mesh_path: str | Path, stage1_state: dict, config: RunConfig) -> "TexturedMesh":
        if not Path(mesh_path).is_file():
            raise EmptyMeshError(f"mesh '{mesh_path}' does not exist: run `dreamflow extract` on the stage-1 "
                                 "checkpoint first")
        try:
            mesh = trimesh.load(mesh_path, process=False, force="mesh")
        except Exception as error:  # noqa: BLE001 - any parse failure means the file is unusable
            raise EmptyMeshError(f"mesh '{mesh_path}' cannot be read ({type(error).__name__}: {error}); "
                                 "delete it and re-run extraction") from error
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise EmptyMeshError(f"mesh '{mesh_path}' has no faces: delete it and re-run extraction, lowering "
                                 "extract.threshold if the stage-1 density is faint")
        model = cls(torch.as_tensor(mesh.vertices), torch.as_tensor(mesh.faces), config)
        colour = {k[len("field."):]: v for k, v in stage1_state["model"].items()
                  if k.startswith("field.encoding.") or k.startswith("field.albedo_mlp.")}
        model.colour.load_state_dict(colour)
        return model

    @classmethod
    def from_stage2(cls, stage2_state: dict, config: RunConfig) -> "TexturedMesh":
        state = stage2_state["model"]
        model = cls(state["base_vertices"] + state["offsets"], state["faces"], config)
        model.colour.load_state_dict({k[len("colour."):]: v for k, v in state.items() if k.startswith("colour.")})
        return model

    def param_groups(self, stage: StageConfig) -> list[dict]:
        return [{"params": list(self.colour.encoding.parameters()), "lr": stage.learning_rate, "name": "encoding"},
                {"params": list(self.colour.albedo_mlp.parameters()), "lr": stage.mlp_learning_rate, "name": "mlp"},
                {"params": [self.offsets], "lr": stage.geometry_learning_rate, "name": "geometry"}]

    def render(self, cameras: Cameras, resolution: int, shading: str = "albedo",
               generator: torch.Generator | None = None) -> RenderOutput:
        vertices = self.vertices
        normals = vertex_normals(vertices, self.faces)
        light = light_directions(cameras)
        ambient = self.shading.ambient

        def shade(attributes: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
            """Covered pixels' (position, normal) [N, 6] -> shaded colour and albedo [N, 6]."""
            position, normal = attributes[:, :3], F.normalize(attributes[:, 3:6], dim=-1, eps=1e-12)
            albedo = self.colour(position)
            if shading == "albedo":
                return torch.cat([albedo, albedo], dim=-1)
            base = torch.ones_like(albedo) if shading == "textureless" else albedo
            lambert = (normal * light[batch_index]).sum(-1, keepdim=True).clamp(min=0)
            return torch.cat([base * (ambient + (1 - ambient) * lambert), albedo], dim=-1)

        out = self.rasterizer(vertices, self.faces, torch.cat([vertices, normals], dim=-1), cameras, resolution,
                              shade, self.background_color)
        return RenderOutput(out.rgb[..., :3], out.alpha, torch.zeros_like(out.alpha), out.rgb[..., 3:])

    def regularisers(self, stage: StageConfig, output: RenderOutput) -> dict[str, torch.Tensor]:
        vertices = self.vertices
        losses = {}
        if stage.laplacian_weight > 0:
            i, j = self.edges[:, 0], self.edges[:, 1]
            summed = torch.zeros_like(vertices).index_add(0, i, vertices[j]).index_add(0, j, vertices[i])
            degree = torch.zeros(len(vertices), device=vertices.device).index_add(
                0, i, torch.ones_like(i, dtype=torch.float32)).index_add(0, j, torch.ones_like(j, dtype=torch.float32))
            laplacian = summed / degree.clamp(min=1)[:, None] - vertices
            losses["laplacian"] = stage.laplacian_weight * laplacian.square().sum(-1).mean()
        if stage.normal_consistency_weight > 0 and len(self.face_adjacency):
            v = vertices[self.faces]
            face_normals = F.normalize(torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1), dim=-1, eps=1e-12)
            a, b = face_normals[self.face_adjacency[:, 0]], face_normals[self.face_adjacency[:, 1]]
            losses["normal_consistency"] = stage.normal_consistency_weight * (1 - (a * b).sum(-1)).mean()
        return losses

    def backend(self) -> dict[str, str]:
        return {"rasterizer": "nvdiffrast" if isinstance(self.rasterizer, NvdiffrastRasterizer) else "torch",
                "hash_grid": self.colour.encoding.backend}

    def to_trimesh(self) -> trimesh.Trimesh:
        return trimesh.Trimesh(self.vertices.detach().cpu().numpy(), self.faces.cpu().numpy(), process=False)


__all__ = ["TexturedMesh", "ColourField", "vertex_normals"]
