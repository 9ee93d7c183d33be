"""What a stage optimises: the interface shared by the NeRF (stage 1) and the textured mesh (stages 2-3)."""

from __future__ import annotations


import torch
from torch import nn

from dreamflow.config import StageConfig
from dreamflow.render.volume import RenderOutput


class StageModel(nn.Module):
    """What a stage optimises: a NeRF (stage 1) or a textured mesh (stages 2-3)."""

    def param_groups(self, stage: StageConfig) -> list[dict]:
        raise NotImplementedError

    def render(self, cameras, resolution: int, shading: str = "albedo",
               generator: torch.Generator | None = None) -> RenderOutput:
        raise NotImplementedError

    def before_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        return {}

    def regularisers(self, stage: StageConfig, output: RenderOutput) -> dict[str, torch.Tensor]:
        return {}

    def backend(self) -> dict[str, str]:
        return {}

    @torch.no_grad()
    def render_views(self, cameras, resolution: int, shading: str = "albedo") -> RenderOutput:
        """Render views one at a time (bounded memory) and stack them."""
        outputs = [self.render(cameras[i:i + 1], resolution, shading) for i in range(len(cameras))]
        return RenderOutput(*(torch.cat([getattr(o, k) for o in outputs]) for k in ("rgb", "opacity", "depth", "albedo")))

    @property
    def device(self) -> torch.device:
        """Where the model lives (its first buffer's or parameter's device)."""
        return next(iter(self.buffers()), next(self.parameters())).device

    def to_trimesh(self):
        """The surface as a trimesh.Trimesh, where the model has an explicit one (else None)."""
        return None
