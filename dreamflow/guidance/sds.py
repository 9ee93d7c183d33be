"""SDS: score distillation sampling (DreamFusion, Poole et al., ICLR 2023, Eq. 3).

    t ~ U(t_min, t_max),  x_t = a_t x + s_t e
    grad = w(t) (eps_pre^cfg(x_t; y, t) - e),   w(t) = sigma_t^2 = 1 - alphabar_t (DreamFusion §3.2)
    loss = 0.5 ||x - sg(x - grad)||^2
on SD latents as stable-dreamfusion and threestudio. The recipe (CFG 100, t ~ U(0.02, 0.98), the
mesh stages' U(0.02, 0.5)) and each default's source: `SDSConfig` in dreamflow/config/methods.py.
"""

from __future__ import annotations

import torch

from dreamflow.config import SDSConfig
from dreamflow.guidance.base import Guidance, GuidanceOutput, target_loss
from dreamflow.guidance.registry import register
from dreamflow.guidance.schedules import random_timesteps
from dreamflow.priors.base import TextEmbeddings


def weighting(name: str, alphabar: torch.Tensor) -> torch.Tensor:
    """w(t): `one_minus_alphabar` is DreamFusion's sigma_t^2 (alpha_t^2 + sigma_t^2 = 1), as
    stable-dreamfusion's `w = 1 - alphas[t]` and threestudio's `sds` strategy; `uniform` is w = 1."""
    if name == "one_minus_alphabar":
        return 1 - alphabar
    if name == "uniform":
        return torch.ones_like(alphabar)
    raise ValueError(f"unknown weighting {name!r}")


@register("sds")
class SDSGuidance(Guidance):
    Config = SDSConfig
    config: SDSConfig

    def t_max_at(self, step: int) -> float:
        """The upper end of the random-t range at `step` (ProlificDreamer's two-stage anneal, when on)."""
        c = self.config
        if c.anneal and step >= c.anneal_fraction * self.iterations:
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
            eps_pre = self.prior.predict_eps_cfg(x_t, index, text, self.config.guidance_scale)
            w = weighting(self.config.weighting, self.prior.alphas_cumprod[index]).view(-1, 1, 1, 1)
            update = self.clip(w * (eps_pre - self.residual(x_t, noise, index, text, camera)))
        info = {"t": index.float().mean() / (self.prior.num_train_timesteps - 1),
                "update_norm": update.norm() / update.shape[0]}
        loss = target_loss(latents, update)
        if self.source is not None:
            info |= self.source.train(latents, text, camera)  # t ~ U{0, ..., T-1}, as ProlificDreamer
        return GuidanceOutput(loss, info)
