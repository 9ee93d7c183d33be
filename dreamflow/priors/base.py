"""The one interface every guidance method uses to talk to a text-to-image diffusion model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from dreamflow.config import LoRAConfig, PriorConfig
from dreamflow.priors.embedding_cache import EmbeddingCache
from dreamflow.render.cameras import VIEW_SUFFIXES, Cameras, view_direction_index


class ModelNotFoundError(FileNotFoundError):
    """A prior's weights are not available locally."""


@dataclass
class TextEmbeddings:
    """Conditional and unconditional embeddings for a batch ([B, L, D]; pooled [B, D] for SDXL)."""

    cond: torch.Tensor
    uncond: torch.Tensor
    pooled_cond: torch.Tensor | None = None
    pooled_uncond: torch.Tensor | None = None
    # The same prompt without DreamFusion's view suffix (None: these embeddings have none). The VSD
    # references give it to the LoRA model (threestudio stable_diffusion_vsd_guidance.py).
    view_independent: "TextEmbeddings | None" = None

    def __getitem__(self, index) -> "TextEmbeddings":
        pick = lambda x: None if x is None else x[index]  # noqa: E731
        return TextEmbeddings(self.cond[index], self.uncond[index], pick(self.pooled_cond), pick(self.pooled_uncond),
                              pick(self.view_independent))

    def plain(self) -> "TextEmbeddings":
        """The embeddings of the prompt without its view suffix."""
        return self.view_independent if self.view_independent is not None else self


class DiffusionPrior(nn.Module):
    """Latent diffusion prior: encode/decode, text embeddings, noise schedule and noise prediction.

    Subclasses implement the format-specific parts (`_encode_text`, `_added_conditions`).
    The UNet can carry a peft LoRA adapter (the source model of APFO / VSD's eps_lora); with
    `use_lora=False` it is switched off, so one UNet serves as both denoisers (the single-model
    source). `with_unet` makes a prior sharing everything but the UNet (the two-model source).
    """

    def __init__(self, pipe, config: PriorConfig, device: torch.device, dtype: torch.dtype, model_key: str,
                 unet: nn.Module | None = None, scheduler=None):
        super().__init__()
        self.config = config
        self.device_ = device
        self.dtype = dtype
        self.model_key = model_key
        self.unet = (unet if unet is not None else pipe.unet).to(device).eval().requires_grad_(False)
        if dtype != torch.float32:
            self.unet.to(dtype)
        # The VAE stays in fp32: SDXL's VAE overflows in fp16 (threestudio #296).
        self.vae = pipe.vae.to(device).eval().requires_grad_(False)
        if config.vae_gradient_checkpointing:
            self.vae.enable_gradient_checkpointing()  # diffusers: active when grad is enabled, in any mode
        # encode_prompt runs the pipeline's text encoders on `device`: they must live there too.
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is not None:
                encoder.to(device, dtype).eval().requires_grad_(False)
        self.pipe = pipe
        self.scheduler = scheduler = scheduler if scheduler is not None else pipe.scheduler
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.prediction_type = scheduler.config.prediction_type
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.to(device, torch.float32), persistent=False)
        self.vae_scale = float(self.vae.config.scaling_factor)
        self.downsample = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.cache = EmbeddingCache(config.embedding_cache_dir, model_key)
        self.camera_embedding: nn.Module | None = None
        self._own_class_embedding = self.unet.class_embedding  # restored after each LoRA call
        self.has_lora = False
        self._tables: dict[tuple[str, ...], dict[str, torch.Tensor]] = {}  # texts -> stacked embeddings on the device
        self._time_ids: dict[tuple, torch.Tensor] = {}  # SDXL time ids per (height, width, branch)

    def with_unet(self, unet: nn.Module, scheduler) -> "DiffusionPrior":
        """A prior sharing this one's VAE, text encoders and embedding cache, with its own UNet and
        noise schedule: the two-model source (its LoRA never touches this prior's UNet)."""
        return type(self)(self.pipe, self.config, self.device_, self.dtype, self.model_key, unet, scheduler)

    # -- images and latents ------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B,3,H,W] in [0,1] -> scaled latents (differentiable): a posterior draw with
        `generator` (the run's seeded device generator), or the mean (`prior.vae_encode`)."""
        size = self.config.encode_resolution
        if size is not None and images.shape[-2:] != (size, size):
            images = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
        posterior = self.vae.encode(images.float() * 2 - 1).latent_dist
        latents = posterior.mean
        if self.config.vae_encode == "sample":  # posterior.sample(), drawn on the latents' device
            latents = latents + posterior.std * torch.randn(latents.shape, generator=generator, device=latents.device,
                                                            dtype=latents.dtype)
        return latents * self.vae_scale

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(latents.float() / self.vae_scale).sample
        return ((images + 1) / 2).clamp(0, 1)

    # -- schedule ----------------------------------------------------------------------------
    def timestep_index(self, t: torch.Tensor | float) -> torch.Tensor:
        """Continuous t in [0,1] -> integer training timestep (on the device; a tensor `t` stays where it is)."""
        t = torch.as_tensor(t, device=self.device_, dtype=torch.float32)
        return (t * (self.num_train_timesteps - 1)).round().long().clamp(0, self.num_train_timesteps - 1)

    def alpha_sigma(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a_t = sqrt(alphabar), s_t = sqrt(1 - alphabar) for integer timesteps."""
        alphabar = self.alphas_cumprod[index]
        return alphabar.sqrt(), (1 - alphabar).sqrt()

    def noise_to_signal(self, index: torch.Tensor) -> torch.Tensor:
        """sigma(t) = s_t / a_t, the DDIM/probability-flow ODE's time variable."""
        a, s = self.alpha_sigma(index)
        return s / a

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        a, s = self.alpha_sigma(index)
        return a.view(-1, 1, 1, 1) * latents + s.view(-1, 1, 1, 1) * noise

    def model_output_to_eps(self, output: torch.Tensor, x_t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Epsilon from the UNet output for epsilon- or v-prediction models (SD 2.1 768 is v)."""
        if self.prediction_type == "epsilon":
            return output
        if self.prediction_type == "v_prediction":
            a, s = (v.view(-1, 1, 1, 1) for v in self.alpha_sigma(index))
            return s * x_t + a * output
        raise ValueError(f"unsupported prediction_type {self.prediction_type!r} (epsilon or v_prediction)")

    def training_target(self, latents: torch.Tensor, noise: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """What the UNet should output for the diffusion loss (noise, or v = a*e - s*x)."""
        if self.prediction_type == "epsilon":
            return noise
        a, s = (v.view(-1, 1, 1, 1) for v in self.alpha_sigma(index))
        return a * noise - s * latents

    # -- text --------------------------------------------------------------------------------
    def _encode_text(self, prompt: str, negative: str) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _added_conditions(self, text: TextEmbeddings, height: int, width: int, uncond: bool) -> dict | None:
        return None

    def _embed(self, prompt: str) -> dict[str, torch.Tensor]:
        negative = self.config.negative_prompt
        with torch.no_grad():
            return self.cache.get_or_compute(f"{prompt}\0{negative}", lambda: self._encode_text(prompt, negative))

    def _embedding_table(self, texts: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Embeddings of `texts` stacked [len(texts), ...] on the device (made and copied there once)."""
        if texts not in self._tables:
            entries = [self._embed(text) for text in texts]
            self._tables[texts] = {key: torch.stack([e[key] for e in entries]).to(self.device_, self.dtype)
                                   for key in entries[0]}
        return self._tables[texts]

    def text_embeddings(self, prompt: str, cameras: Cameras | None = None, batch_size: int = 1) -> TextEmbeddings:
        """Embeddings for `prompt`, with DreamFusion's view suffix per camera when enabled.

        Every suffix's embedding is made once and kept on the device; each camera's is picked there
        (`view_direction_index`), so a training step neither reads its cameras back nor copies text.
        With suffixes, the prompt's own embeddings come along as `view_independent`.
        """
        count = len(cameras) if cameras is not None else batch_size
        plain = self._embedding_table((prompt,))
        pick_plain = lambda key: plain[key].expand(count, *plain[key].shape[1:]) if key in plain else None  # noqa: E731
        without_suffix = TextEmbeddings(*(pick_plain(key) for key in ("cond", "uncond", "pooled_cond", "pooled_uncond")))
        if cameras is None or not self.config.view_dependent_prompting:
            return without_suffix
        table = self._embedding_table(tuple(f"{prompt}, {suffix}" for suffix in VIEW_SUFFIXES))
        index = view_direction_index(cameras).to(self.device_)
        pick = lambda key: table[key].index_select(0, index) if key in table else None  # noqa: E731
        return TextEmbeddings(pick("cond"), pick("uncond"), pick("pooled_cond"), pick("pooled_uncond"), without_suffix)

    # -- noise prediction --------------------------------------------------------------------
    @contextlib.contextmanager
    def _lora(self, enabled: bool, camera: torch.Tensor | None) -> Iterator[dict]:
        kwargs: dict = {}
        if not self.has_lora:
            if enabled:
                raise RuntimeError("use_lora=True but no LoRA adapter was added; call add_lora() first")
            yield kwargs
            return
        if enabled:
            if self.camera_embedding is not None:
                self.unet.class_embedding = self.camera_embedding
                # fp32 in, fp32 module: the UNet casts the class embedding to its own dtype.
                kwargs["class_labels"] = camera.to(self.device_, torch.float32)
        self._switch_lora(enabled)
        try:
            yield kwargs
        finally:
            self.unet.class_embedding = self._own_class_embedding
            self._switch_lora(True)

    def _switch_lora(self, enabled: bool) -> None:
        """Turn the adapter on or off in the LoRA layers found once at `add_lora`.

        diffusers' `enable_adapters`/`disable_adapters` walk every module of the UNet and reset
        requires_grad on each call (measured: 0.04 s of a 0.37 s toy stage-1 step); the flag they end up
        setting is the one peft's LoRA layers read in `forward`, and the LoRA weights must stay
        trainable anyway.
        """
        for layer in self._lora_layers:
            layer._disable_adapters = not enabled

    def predict_output(self, x_t: torch.Tensor, index: torch.Tensor, text: TextEmbeddings, uncond: bool = False,
                       use_lora: bool = False, camera: torch.Tensor | None = None) -> torch.Tensor:
        """The UNet's own output (epsilon or v, its scheduler's prediction_type) for one branch, fp32."""
        height, width = (x_t.shape[-2] * self.downsample, x_t.shape[-1] * self.downsample)
        states = text.uncond if uncond else text.cond
        added = self._added_conditions(text, height, width, uncond)
        with self._lora(use_lora, camera) as extra:
            return self.unet(x_t.to(self.dtype), index, states, added_cond_kwargs=added, **extra).sample.float()

    def predict_eps(self, x_t: torch.Tensor, index: torch.Tensor, text: TextEmbeddings, uncond: bool = False,
                    use_lora: bool = False, camera: torch.Tensor | None = None) -> torch.Tensor:
        """Epsilon prediction of the pretrained (or LoRA) model for one branch (cond or uncond)."""
        output = self.predict_output(x_t, index, text, uncond, use_lora, camera)
        return self.model_output_to_eps(output, x_t.float(), index)

    def predict_eps_cfg(self, x_t: torch.Tensor, index: torch.Tensor, text: TextEmbeddings,
                        guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance: eps_u + w (eps_c - eps_u), one batched UNet call."""
        states = torch.cat([text.cond, text.uncond])
        index2 = torch.cat([index, index])
        height, width = (x_t.shape[-2] * self.downsample, x_t.shape[-1] * self.downsample)
        added = self._added_conditions_cfg(text, height, width)
        with self._lora(False, None):
            output = self.unet(torch.cat([x_t, x_t]).to(self.dtype), index2, states, added_cond_kwargs=added).sample
        eps = self.model_output_to_eps(output.float(), torch.cat([x_t, x_t]).float(), index2)
        eps_cond, eps_uncond = eps.chunk(2)
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)

    def _added_conditions_cfg(self, text: TextEmbeddings, height: int, width: int) -> dict | None:
        cond = self._added_conditions(text, height, width, False)
        if cond is None:
            return None
        uncond = self._added_conditions(text, height, width, True)
        return {key: torch.cat([cond[key], uncond[key]]) for key in cond}

    # -- LoRA source model -------------------------------------------------------------------
    def add_lora(self, config: LoRAConfig) -> list[nn.Parameter]:
        """Attach a trainable peft LoRA adapter (and a camera embedding); returns its parameters.

        Draws its initial weights from the global torch RNG (the trainer seeds it first).
        """
        from peft import LoraConfig  # local import: peft is only needed for APFO / VSD

        # peft's "gaussian" is diffusers' LoRALinearLayer initialisation (A ~ N(0, 1/rank), B = 0); True
        # is its default Kaiming-uniform A.
        init = "gaussian" if config.init == "gaussian" else True
        lora = LoraConfig(r=config.rank, lora_alpha=config.alpha or config.rank, init_lora_weights=init,
                          target_modules=list(config.target_modules))
        from peft.tuners.tuners_utils import BaseTunerLayer

        self.unet.add_adapter(lora, adapter_name="source")
        self.has_lora = True
        self._lora_layers = [m for m in self.unet.modules() if isinstance(m, BaseTunerLayer)]
        params = [p for n, p in self.unet.named_parameters() if "lora_" in n]
        for p in params:
            p.requires_grad_(True)
            p.data = p.data.float()
        if config.camera_conditioning:
            from diffusers.models.embeddings import TimestepEmbedding

            time_embed_dim = self.unet.time_embedding.linear_2.out_features
            # Kept in fp32 on an fp16 UNet (threestudio does the same): AdamW's eps (1e-8) is 0 in fp16,
            # so an fp16 module's first update divides 0 by 0 and every later source step is NaN.
            self.camera_embedding = TimestepEmbedding(16, time_embed_dim).to(self.device_, torch.float32)
            if config.camera_init == "zero":  # the source model starts as the pretrained one
                nn.init.zeros_(self.camera_embedding.linear_2.weight)
                nn.init.zeros_(self.camera_embedding.linear_2.bias)
            params += list(self.camera_embedding.parameters())
        return params

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained parts (LoRA + camera embedding): frozen weights are never checkpointed."""
        state = {f"unet.{n}": p.detach().cpu() for n, p in self.unet.named_parameters() if "lora_" in n}
        if self.camera_embedding is not None:
            state.update({f"camera_embedding.{k}": v.cpu() for k, v in self.camera_embedding.state_dict().items()})
        return state

    def load_lora_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.unet.named_parameters())
        for key, value in state.items():
            if key.startswith("unet."):
                params[key[5:]].data.copy_(value)
            elif key.startswith("camera_embedding.") and self.camera_embedding is not None:
                self.camera_embedding.state_dict()[key[len("camera_embedding."):]].copy_(value)
