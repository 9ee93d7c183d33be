"""SDS: score distillation sampling (DreamFusion, Poole et al., ICLR 2023, Eq. 3).

    t ~ U(t_min, t_max),  x_t = a_t x + s_t e
    grad = w(t) (eps_pre^cfg(x_t; y, t) - e),   w(t) = 1 - alphabar_t (threestudio's weighting)
    loss = 0.5 ||x - sg(x - grad)||^2
CFG 100 (DreamFusion section 3), t in [0.02, 0.98] (threestudio), on SD latents as Magic3D/threestudio.
"""

from __future__ import annotations

import torch

from dreamflow.guidance.base import Guidance, GuidanceOutput, target_loss
from dreamflow.guidance.registry import register
from dreamflow.guidance.schedules import random_timesteps
from dreamflow.priors.base import TextEmbeddings


def weighting(name: str, alphabar: torch.Tensor) -> torch.Tensor:
    if name == "one_minus_alphabar":
        return 1 - alphabar
    if name == "uniform":
        return torch.ones_like(alphabar)
    if name == "sds_dreamfusion":  # sigma_t^2 weighting written as in DreamFusion's appendix
        return (1 - alphabar).sqrt() * alphabar.sqrt()
    raise ValueError(f"unknown weighting {name!r}")


@register("sds")
class SDSGuidance(Guidance):
    default_guidance_scale = 100.0  # DreamFusion

    def sample_index(self, batch: int) -> torch.Tensor:
        t = random_timesteps(batch, self.config.t_min, self.config.t_max, self.generator)
        return self.prior.timestep_index(t)

    def residual(self, x_t: torch.Tensor, noise: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
                 camera: torch.Tensor) -> torch.Tensor:
        """What the guided prediction is compared with: the injected noise."""
        return noise

    def __call__(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor, step: int) -> GuidanceOutput:
        index = self.sample_index(latents.shape[0])
        with torch.no_grad():
            noise = self.randn(latents.shape)
            x_t = self.prior.add_noise(latents.detach(), noise, index)
            eps_pre = self.prior.predict_eps_cfg(x_t, index, text, self.guidance_scale)
            w = weighting(self.config.weighting, self.prior.alphas_cumprod[index]).view(-1, 1, 1, 1)
            update = self.clip(w * (eps_pre - self.residual(x_t, noise, index, text, camera)))
        info = {"t": float(index.float().mean() / (self.prior.num_train_timesteps - 1)),
                "update_norm": float(update.norm() / update.shape[0])}
        loss = target_loss(latents, update)
        if self.uses_source_model:
            info["source_loss"] = self.train_source_model(latents, text, camera)
        return GuidanceOutput(loss, info)
