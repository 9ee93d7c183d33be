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
    default_anneal_t = False  # DreamFusion / Magic3D: one range for the whole stage

    def t_max_at(self, step: int) -> float:
        """The upper end of the random-t range at `step` (ProlificDreamer's two-stage anneal, when on)."""
        c = self.config
        anneal = self.default_anneal_t if c.anneal_t is None else c.anneal_t
        if anneal and step >= c.anneal_fraction * self.iterations:
            return max(min(c.t_max, c.anneal_t_max), c.t_min)
        return c.t_max

    def sample_index(self, batch: int, step: int) -> torch.Tensor:
        t = random_timesteps(batch, self.config.t_min, self.t_max_at(step), self.generator, self.prior.device_)
        return self.prior.timestep_index(t)

    def residual(self, x_t: torch.Tensor, noise: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
                 camera: torch.Tensor) -> torch.Tensor:
        """What the guided prediction is compared with: the injected noise."""
        return noise

    def __call__(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor, step: int) -> GuidanceOutput:
        index = self.sample_index(latents.shape[0], step)
        with torch.no_grad():
            noise = self.randn(latents.shape)
            x_t = self.prior.add_noise(latents.detach(), noise, index)
            eps_pre = self.prior.predict_eps_cfg(x_t, index, text, self.guidance_scale)
            w = weighting(self.config.weighting, self.prior.alphas_cumprod[index]).view(-1, 1, 1, 1)
            update = self.clip(w * (eps_pre - self.residual(x_t, noise, index, text, camera)))
        info = {"t": index.float().mean() / (self.prior.num_train_timesteps - 1),
                "update_norm": update.norm() / update.shape[0]}
        loss = target_loss(latents, update)
        if self.uses_source_model:
            info |= self.train_source_model(latents, text, camera)  # t ~ U(0, 1), as ProlificDreamer
        return GuidanceOutput(loss, info)
