"""SDXL-refiner format (stabilityai/stable-diffusion-xl-refiner-1.0, and the toy refiner)."""

from __future__ import annotations

import torch

from dreamflow.priors.base import DiffusionPrior, TextEmbeddings

AESTHETIC_SCORE = 6.0  # the pipeline's defaults for the positive / negative branches
NEGATIVE_AESTHETIC_SCORE = 2.5


class SDXLRefinerPrior(DiffusionPrior):
    """A `StableDiffusionXLImg2ImgPipeline` (refiner: second text encoder, aesthetic-score time ids)."""

    def _encode_text(self, prompt: str, negative: str) -> dict[str, torch.Tensor]:
        cond, uncond, pooled, pooled_uncond = self.pipe.encode_prompt(
            prompt, device=self.device_, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=negative)
        return {"cond": cond[0].float(), "uncond": uncond[0].float(),
                "pooled_cond": pooled[0].float(), "pooled_uncond": pooled_uncond[0].float()}

    def _added_conditions(self, text: TextEmbeddings, height: int, width: int, uncond: bool) -> dict:
        score = NEGATIVE_AESTHETIC_SCORE if uncond else AESTHETIC_SCORE
        batch = text.cond.shape[0]
        key = (height, width, score)
        if key not in self._time_ids:  # made on the device once, not copied there every call
            self._time_ids[key] = torch.tensor([height, width, 0, 0, score], device=self.device_, dtype=self.dtype)
        time_ids = self._time_ids[key]
        pooled = text.pooled_uncond if uncond else text.pooled_cond
        return {"text_embeds": pooled, "time_ids": time_ids.expand(batch, -1)}
