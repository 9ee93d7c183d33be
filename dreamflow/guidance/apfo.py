"""APFO: approximate probability-flow ODE guidance (DreamFlow, Lee, Sohn & Shin, ICLR 2024).

Text-to-3D as multi-view image-to-image translation along the probability-flow ODE of the
Schrödinger bridge from the distribution of current renders to the text-conditioned image
distribution (paper sections 3-4; cf. DDIB, Su et al. 2023: encode with the source model's ODE,
decode with the target's). With latents x = E(render) and a predetermined decreasing schedule
t_0 = t_max > t_1 > ... > t_N = t_min (stage 1: 1.0 -> 0.2, stage 2: 0.5 -> 0.1), the stage's
iterations are spread over the N blocks, K = iterations / N at each t_i (the amortised inner loop),
so every stage ends at t_min whatever its iteration count:

    x_t   = a_t x + s_t e,                         e ~ N(0, I)
    delta = eps_pre^cfg(x_t; y, t_i) - eps_src(x_t; y, t_i, c)
    x*    = sg(x - lambda * (sigma(t_i) - sigma(t_{i+1})) * delta),      sigma = s_t / a_t
    loss  = 0.5 ||x - x*||^2

The weight sigma(t_i) - sigma(t_{i+1}) is a DDIM step of the probability-flow ODE in
sigma-parametrisation (x/a moves by d sigma * eps), i.e. the "time-derivative of the noise scale"
weighting reviewers describe; the paper's Eq. 12-13 were not available to us (docs/design.md §2).
eps_src (`source.py`) is by default the pretrained UNet with a LoRA adapter and camera conditioning,
trained alongside on the renders with the diffusion loss at the current t_i with fresh noise (the
paper's method figure: min_phi ||D_src(x + n'; sigma(t_i)) - x||^2), not at t ~ U(0, 1) as VSD does
(`guidance.apfo.source_timesteps: current | uniform`). `guidance.apfo.apfo_weighting: constant`
replaces the decaying d sigma by its mean over the schedule (same path length), to separate the
schedule's weighting from its t path. The recipe and each default's source: `APFOConfig` in
dreamflow/config/methods.py (`dreamflow recipe` prints it).
"""

from __future__ import annotations

import torch

from dreamflow.config import APFOConfig, ConfigError
from dreamflow.guidance.base import Guidance, GuidanceOutput, target_loss
from dreamflow.guidance.registry import register
from dreamflow.guidance.schedules import apfo_span, apfo_timesteps
from dreamflow.priors.base import TextEmbeddings


@register("apfo")
class APFOGuidance(Guidance):
    Config = APFOConfig
    uses_source_model = True
    config: APFOConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.config
        self.grid = apfo_timesteps(c.t_max, c.t_min, c.num_timesteps, c.schedule, self.prior.alphas_cumprod)
        self.blocks = self.grid.shape[0] - 1
        try:  # a K that does not spend the stage's iterations exactly is an error before the first step
            apfo_span(0, self.iterations, self.blocks, c.steps_per_timestep)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        # The schedule's integer timesteps and sigmas live on the device: a step indexes them there.
        self.grid_index = self.prior.timestep_index(self.grid)
        self.grid_sigma = self.prior.noise_to_signal(self.grid_index)
        self.mean_d_sigma = float(self.grid_sigma[0] - self.grid_sigma[-1]) / self.blocks  # constant weighting
        self.grid_values = self.grid.tolist()  # t_i for the log, on the host (never a device read per step)

    def span(self, step: int) -> tuple[int, int]:
        """(i, j): optimisation `step` runs at t_i and steps to t_j (j = i + 1 unless iterations < N)."""
        return apfo_span(step, self.iterations, self.blocks, self.config.steps_per_timestep)

    def update(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor,
               step: int) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """lambda * (sigma(t_i) - sigma(t_j)) * (eps_pre^cfg - eps_src) at noised latents."""
        i, j = self.span(step)
        batch = latents.shape[0]
        index = self.grid_index[i].expand(batch)
        with torch.no_grad():
            x_t = self.prior.add_noise(latents.detach(), self.randn(latents.shape), index)
            eps_pre = self.prior.predict_eps_cfg(x_t, index, text, self.config.guidance_scale)
            eps_src = self.source.predict_eps(x_t, index, text, camera)
            d_sigma = (self.grid_sigma[i] - self.grid_sigma[j]).expand(batch).view(-1, 1, 1, 1)
            constant = torch.full_like(d_sigma, self.mean_d_sigma * (j - i))
            weight = d_sigma if self.config.apfo_weighting == "dsigma" else constant
            update = self.config.step_scale * weight * (eps_pre - eps_src)
        return self.clip(update), {"t": self.grid_values[i], "t_next": self.grid_values[j],
                                   "d_sigma": d_sigma.mean(), "weight": weight.mean()}

    def __call__(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor, step: int) -> GuidanceOutput:
        update, info = self.update(latents, text, camera, step)
        loss = target_loss(latents, update)
        # The paper's figure fine-tunes the source model at the current noise level sigma(t_i), fresh noise.
        current = self.grid_index[self.span(step)[0]] if self.config.source_timesteps == "current" else None
        info |= self.source.train(latents, text, camera, current)
        info["update_norm"] = update.norm() / update.shape[0]
        return GuidanceOutput(loss, info)
