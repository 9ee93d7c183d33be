"""VSD: variational score distillation (ProlificDreamer, Wang et al., NeurIPS 2023, Eq. 9).

    t ~ U(t_min, t_max)
    grad = w(t) (eps_pre^cfg(x_t; y, t) - eps_lora(x_t; y, t, c)),   w(t) = 1 - alphabar_t
t_max drops from 0.98 to 0.5 after 5000 steps of each stage (25k, 15k, 30k: 20 %, 1/3, 1/6).
eps_lora (`source.py`): by default a separate UNet (SD 2.1 768, v-prediction) with a LoRA and a
randomly initialised camera embedding, fed the view-independent prompt, trained on its own target
at t ~ U{0..999} with the camera zeroed in 10 % of steps; its v output is converted to epsilon
here, as threestudio's `compute_grad_vsd` does. The recipe and each default's source: `VSDConfig`
in dreamflow/config/methods.py.
"""

from __future__ import annotations

import torch

from dreamflow.config import VSDConfig
from dreamflow.guidance.registry import register
from dreamflow.guidance.sds import SDSGuidance
from dreamflow.priors.base import TextEmbeddings


@register("vsd")
class VSDGuidance(SDSGuidance):
    Config = VSDConfig
    config: VSDConfig
    uses_source_model = True

    def residual(self, x_t: torch.Tensor, noise: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
                 camera: torch.Tensor) -> torch.Tensor:
        return self.source.predict_eps(x_t, index, text, camera)
