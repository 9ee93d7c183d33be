"""The source model of APFO (eps_src) and VSD (eps_lora): a LoRA UNet conditioned on the camera,
fine-tuned on the current renders with the diffusion loss (its config: `guidance.<method>.lora`).

* two_model: a separate UNet carries the LoRA (threestudio's `pretrained_model_name_or_path_lora`,
  ProlificDreamer's own `_unet`); the pretrained UNet is never changed.
* single_model: the LoRA sits on the pretrained UNet and is switched off for its predictions.

Its loss is on the model's own target (epsilon, or v for a v-prediction model such as SD 2.1 768),
its predictions are converted to epsilon for the update, its optimiser is AdamW with the
recipe's betas, eps, weight decay and linear warm-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dreamflow.config import LoRAConfig
from dreamflow.priors.base import DiffusionPrior, TextEmbeddings


class SourceModel:
    """A LoRA-carrying diffusion model of the current renders, trained beside the 3D model."""

    def __init__(self, prior: DiffusionPrior, config: LoRAConfig, generator: torch.Generator):
        from dreamflow.priors.loading import load_source_prior

        self.config = config
        self.generator = generator  # the guidance's device generator: its draws stay seeded
        self.model = prior if config.model == "single_model" else load_source_prior(prior, config.pretrained)
        self.trainable = self.model.add_lora(config)
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, betas=tuple(config.betas),
                                           eps=config.eps, weight_decay=config.weight_decay)
        # ProlificDreamer's LambdaLR warm-up: the n-th LoRA step runs at lr * min(1, n / (warm-up + 1)).
        warmup = config.warmup_steps * config.steps_per_iteration
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, step / (warmup + 1)) if warmup else 1.0)

    def text(self, text: TextEmbeddings) -> TextEmbeddings:
        """The embeddings the source model sees: the view-independent prompt unless configured."""
        return text if self.config.view_dependent_prompt else text.plain()

    def predict_eps(self, x_t: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
                    camera: torch.Tensor) -> torch.Tensor:
        """Its epsilon prediction (a v-model's output converted, as threestudio's VSD does)."""
        return self.model.predict_eps(x_t, index, self.text(text), use_lora=True, camera=camera)

    def loss(self, latents: torch.Tensor, noise: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
             camera: torch.Tensor) -> torch.Tensor:
        """The diffusion loss on its own target: ||output - (noise, or v = a noise - s x)||^2."""
        x_t = self.model.add_noise(latents, noise, index)
        output = self.model.predict_output(x_t, index, self.text(text), use_lora=True, camera=camera)
        return F.mse_loss(output, self.model.training_target(latents, noise, index))

    def train(self, latents: torch.Tensor, text: TextEmbeddings, camera: torch.Tensor,
              index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`steps_per_iteration` steps on the renders `latents` with fresh noise, at timesteps `index`
        (APFO: the schedule's t_i), else at t ~ U{0, ..., T-1} (VSD, as both references).

        The camera is zeroed with probability `camera_dropout` per view (threestudio: `lora_cfg_training`),
        so the camera-free branch stays usable. Returns the last step's loss and mean t.
        """
        info: dict[str, torch.Tensor] = {}
        device = self.model.device_
        for _ in range(self.config.steps_per_iteration):
            x0 = latents.detach()
            batch = x0.shape[0]
            t_index = index if index is not None else torch.randint(
                0, self.model.num_train_timesteps, (batch,), generator=self.generator, device=device)
            t_index = t_index.expand(batch)
            noise = torch.randn(x0.shape, generator=self.generator, device=device)
            drop = torch.rand(batch, generator=self.generator, device=device) < self.config.camera_dropout
            dropped = torch.where(drop.view(-1, 1), torch.zeros_like(camera), camera)
            with torch.enable_grad():
                loss = self.loss(x0, noise, t_index, text, dropped)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            info = {"source_loss": loss.detach(),
                    "source_t": t_index.float().mean() / (self.model.num_train_timesteps - 1)}
        return info

    def state_dict(self) -> dict:
        return {"lora": self.model.lora_state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_lora_state_dict(state["lora"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
