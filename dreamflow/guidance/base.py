"""The guidance interface shared by APFO, SDS and VSD."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from dreamflow.config import MethodConfig
from dreamflow.device import make_generator
from dreamflow.guidance.source import SourceModel
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
    """Turns renders into a loss whose gradient is the method's update direction.

    A method is a subclass registered by name (`@register`), with its recipe's config class as
    `Config` (dreamflow/config/methods.py, where every default cites its source).
    """

    name = ""  # set by @register
    Config: type[MethodConfig] = MethodConfig
    uses_source_model = False

    def __init__(self, prior: DiffusionPrior, config: MethodConfig, iterations: int, seed: int = 0):
        self.prior = prior
        self.config = config
        self.iterations = iterations
        self.generator = make_generator(prior.device_, seed + 1)  # noise and draws stay on the device
        self.source: SourceModel | None = None
        if self.uses_source_model:
            self.source = SourceModel(prior, config.lora, self.generator)

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

    def state_dict(self) -> dict:
        state: dict = {"generator": self.generator.get_state()}
        if self.source is not None:
            state["source"] = self.source.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if self.source is not None:
            self.source.load_state_dict(state["source"])
