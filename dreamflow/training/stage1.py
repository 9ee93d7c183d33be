"""Stage 1: hash-grid NeRF at the base resolution (paper: 256 px, SD 2.1, APFO t 1.0 -> 0.2)."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamflow.config import RunConfig, StageConfig
from dreamflow.export.media import save_preview, save_turntable
from dreamflow.geometry.nerf import NeRFField
from dreamflow.render.cameras import Cameras, orbit_cameras
from dreamflow.render.volume import RenderOutput, VolumeRenderer
from dreamflow.training.logger import RunLogger
from dreamflow.training.trainer import StageModel, StageResult, build_trainer, fault_point


class NeRFModel(StageModel):
    def __init__(self, config: RunConfig):
        super().__init__()
        self.field = NeRFField(config.nerf)
        self.renderer = VolumeRenderer(self.field, config.volume, config.shading)
        self.update_every = config.volume.occupancy_update_every

    def param_groups(self, stage: StageConfig) -> list[dict]:
        encoding = list(self.field.encoding.parameters())
        others = [p for n, p in self.field.named_parameters() if not n.startswith("encoding.")]
        return [{"params": encoding, "lr": stage.learning_rate, "name": "encoding"},
                {"params": others, "lr": stage.mlp_learning_rate, "name": "mlp"}]

    def before_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        if step % self.update_every == 0:
            return {"occupied_fraction": self.renderer.update_occupancy(generator)}
        return {}

    def render(self, cameras: Cameras, resolution: int, shading: str = "albedo",
               generator: torch.Generator | None = None) -> RenderOutput:
        return self.renderer(cameras, resolution, shading, generator)

    def regularisers(self, stage: StageConfig, output: RenderOutput) -> dict[str, torch.Tensor]:
        if stage.opacity_weight > 0:
            return {"opacity": stage.opacity_weight * output.opacity.clamp(1e-4, 1 - 1e-4).sqrt().mean()}
        return {}

    def backend(self) -> dict[str, str]:
        return {"hash_grid": self.field.encoding.backend}



def load_nerf(checkpoint: str | Path, config: RunConfig, device: torch.device | str = "cpu") -> NeRFModel:
    from dreamflow.training.checkpoint import load_checkpoint

    model = NeRFModel(config)
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    return model.to(device).eval()


def run_stage1(config: RunConfig, prompt: str, out_dir: str | Path, logger: RunLogger) -> StageResult:
    """Optimise a NeRF for `prompt`; writes ckpt.pt, preview.png and turntable.gif in `out_dir`."""
    out_dir = Path(out_dir)
    stage = config.stage1
    trainer = build_trainer("stage1", config, prompt, out_dir, logger, lambda: NeRFModel(config))
    model, device = trainer.model, trainer.prior.device_
    result = trainer.run()
    fault_point("stage1:export", stage.iterations)
    model.eval()
    preview = model.render_views(orbit_cameras(config.camera, stage.preview_views).to(device), stage.resolution)
    turntable = model.render_views(orbit_cameras(config.camera, stage.turntable_views).to(device), stage.resolution,
                                   shading="diffuse")
    images = {"preview": save_preview(preview.rgb, out_dir / "preview.png")}
    videos = {"turntable": save_turntable(turntable.rgb, out_dir / "turntable.gif")}
    logger.log_media(stage.iterations, images=images, videos=videos)
    logger.summary({"seconds": result.seconds, "backend": model.backend()})
    trainer.finish()
    return result
