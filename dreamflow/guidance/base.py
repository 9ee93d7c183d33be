"""The guidance interface shared by APFO, SDS and VSD."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from dreamflow.config import GuidanceConfig
from dreamflow.device import make_generator
from dreamflow.priors.base import DiffusionPrior, TextEmbeddings


@dataclass
class GuidanceOutput:
    loss: torch.Tensor  # differentiable w.r.t. the latents (and so the render and the 3D model)
    info: dict[str, float | torch.Tensor] = field(default_factory=dict)  # scalars; tensors are read when logged


def target_loss(latents: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """0.5 ||x - sg(x - update)||^2 per view: its gradient w.r.t. x is exactly `update`."""
    target = (latents - update).detach()
    return 0.5 * F.mse_loss(latents, target, reduction="sum") / latents.shape[0]


class Guidance:
    """Turns renders into a loss whose gradient is the method's update direction."""

    name = ""  # set by @register
    uses_source_model = False
    default_guidance_scale = 7.5  # CFG scale when guidance.guidance_scale is not set

    def __init__(self, prior: DiffusionPrior, config: GuidanceConfig, iterations: int, seed: int = 0):
        self.prior = prior
        self.config = config
        self.iterations = iterations
        self.generator = make_generator(prior.device_, seed + 1)  # noise and draws stay on the device
        self.guidance_scale = config.guidance_scale if config.guidance_scale is not None else self.default_guidance_scale
        self.lora_optimizer: torch.optim.Optimizer | None = None
        if self.uses_source_model:
            params = prior.add_lora(config.lora)
            self.lora_optimizer = torch.optim.AdamW(params, lr=config.lora.learning_rate, weight_decay=0.0)

    def randn(self, shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.prior.device_)

    def rand(self, size: int) -> torch.Tensor:
        return torch.rand(size, generator=self.generator, device=self.prior.device_)

    def __call__(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor, step: int) -> GuidanceOutput:
        raise NotImplementedError

    def clip(self, update: torch.Tensor) -> torch.Tensor:
        update = torch.nan_to_num(update)
        if self.config.grad_clip is not None:
            update = update.clamp(-self.config.grad_clip, self.config.grad_clip)
        return update

    # -- the source model (APFO eps_src, VSD eps_lora) ------------------------------------------
    def train_source_model(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor,
                           index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Diffusion-loss steps of the LoRA model on the current renders, with fresh noise.

        At the given timesteps `index` (APFO: the schedule's current t_i), else at t ~ U(0, 1) (VSD).
        Returns the last step's loss and the mean t it trained at.
        """
        assert self.lora_optimizer is not None
        lora = self.config.lora
        info: dict[str, torch.Tensor] = {}
        for _ in range(lora.steps_per_iteration):
            x0 = latents.detach()
            t_index = index
            if t_index is None:
                t_index = torch.randint(0, self.prior.num_train_timesteps, (x0.shape[0],), generator=self.generator,
                                        device=self.prior.device_)
            t_index = t_index.expand(x0.shape[0])
            noise = self.randn(x0.shape)
            x_t = self.prior.add_noise(x0, noise, t_index)
            # Text dropout on the LoRA model as ProlificDreamer: the unconditional branch stays usable.
            drop = self.rand(x0.shape[0]) < lora.text_dropout
            cond = torch.where(drop.view(-1, *([1] * (text.cond.dim() - 1))), text.uncond, text.cond)
            dropped = TextEmbeddings(cond, text.uncond, text.pooled_cond, text.pooled_uncond)
            with torch.enable_grad():
                # predict_eps converts v-prediction to epsilon, so the target is the noise for both.
                eps = self.prior.predict_eps(x_t, t_index, dropped, use_lora=True, camera=camera)
                loss = F.mse_loss(eps, noise)
            self.lora_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.lora_optimizer.step()
            info = {"source_loss": loss.detach(),
                    "source_t": t_index.float().mean() / (self.prior.num_train_timesteps - 1)}
        return info

    def state_dict(self) -> dict:
        state: dict = {"generator": self.generator.get_state()}
        if self.uses_source_model:
            state["lora"] = self.prior.lora_state_dict()
            state["lora_optimizer"] = self.lora_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if self.uses_source_model:
            self.prior.load_lora_state_dict(state["lora"])
            self.lora_optimizer.load_state_dict(state["lora_optimizer"])
