"""Stable Diffusion 2.x format (SD 2.1, SD 2.1-base, and the toy prior)."""

from __future__ import annotations

import torch

from dreamflow.priors.base import DiffusionPrior


class StableDiffusion2Prior(DiffusionPrior):
    """A `StableDiffusionPipeline` as a prior; the prompt is encoded with the pipeline's own code."""

    def _encode_text(self, prompt: str, negative: str) -> dict[str, torch.Tensor]:
        cond, uncond = self.pipe.encode_prompt(prompt, self.device_, 1, True, negative_prompt=negative)
        return {"cond": cond[0].float(), "uncond": uncond[0].float()}
