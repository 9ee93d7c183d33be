"""VSD: variational score distillation (ProlificDreamer, Wang et al., NeurIPS 2023, Eq. 9).

    t ~ U(t_min, t_max)
    grad = w(t) (eps_pre^cfg(x_t; y, t) - eps_lora(x_t; y, t, c)),   w(t) = 1 - alphabar_t
t_max drops from 0.98 to 0.5 after 20 % of a stage's iterations (threestudio's recipe, 5k of 25k).
eps_lora: LoRA on the pretrained UNet, camera c (4x4 c2w) through a class embedding, trained with
the diffusion loss on the renders (lr 1e-4, text dropped 10%); CFG 7.5 (threestudio recipe).
"""

from __future__ import annotations

import torch

from dreamflow.guidance.registry import register
from dreamflow.guidance.sds import SDSGuidance
from dreamflow.priors.base import TextEmbeddings


@register("vsd")
class VSDGuidance(SDSGuidance):
    default_guidance_scale = 7.5  # ProlificDreamer
    default_anneal_t = True  # ProlificDreamer's two-stage t schedule (U(0.02, 0.98), then U(0.02, 0.5))
    uses_source_model = True

    def residual(self, x_t: torch.Tensor, noise: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
                 camera: torch.Tensor) -> torch.Tensor:
        return self.prior.predict_eps(x_t, index, text, use_lora=True, camera=camera)
