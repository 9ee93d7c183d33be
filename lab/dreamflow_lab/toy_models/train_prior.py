"""`dreamflow-lab train-toy-prior`: train the embedded default priors on the toy world.

Produces two diffusers folders loaded by the same code as the real models:
* an SD 2.x-format text-to-image latent diffusion pipeline (StableDiffusionPipeline) trained at
  the stage-1 and stage-2 resolutions, and
* an SDXL-refiner-format pipeline (StableDiffusionXLImg2ImgPipeline: second text encoder only,
  `text_time` added conditioning with aesthetic score) at the stage-3 resolution.

Training resumes from its own checkpoints (`<output_dir>/.cache/`, every `checkpoint_every`
steps, bit-for-bit: weights, EMA, optimiser, schedule and random state), so an interrupted run
picks up where it stopped when the same command is run again.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm
from transformers import CLIPTokenizer

from dreamflow.config import CameraConfig
from dreamflow.io import load_checkpoint, save_checkpoint
from dreamflow_lab.toy_models import architectures as arch
from dreamflow_lab.toy_models.dataset import ToyDataset, cached_dataset, world_views
from dreamflow.toyworld.tokenizer import write_tokenizer_files


@dataclass
class ToyPriorTrainingConfig:
    """Everything that determines the trained toy priors (seeded: same config, same weights on CPU)."""

    output_dir: str = "models"
    base_name: str = "toy-sd21"
    refiner_name: str = "toy-sdxl-refiner"
    seed: int = 0
    views_plain: int = 32  # per scene: 30 plain, 450 patterned and 210 stacked scenes
    views_pattern: int = 6
    views_composition: int = 4
    base_resolutions: tuple[int, ...] = (32, 64)  # stage 1 and stage 2
    refiner_resolution: int = 128  # stage 3 (1 : 2 : 4 as the paper's 256 : 512 : 1024)
    vae_steps: int = 3000
    unet_steps: int = 6000
    refiner_vae_steps: int = 2000
    refiner_unet_steps: int = 2000
    batch_size: int = 16
    vae_batch_size: int = 32
    learning_rate: float = 1e-3
    ema_decay: float = 0.999
    text_dropout: float = 0.1  # classifier-free guidance training, as SD
    refiner_max_timestep: int = 600  # the refiner only ever sees the low-noise part of the schedule
    high_resolution_every: int = 4  # every Nth base step trains at the stage-2 resolution
    checkpoint_every: int = 100
    camera: CameraConfig = field(default_factory=CameraConfig)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Resumable:
    """One training phase's checkpoint: `state()` is saved every N steps and restored at start."""

    def __init__(self, path: Path, every: int, objects: dict, generator: torch.Generator):
        self.path, self.every, self.objects, self.generator = path, every, objects, generator
        self.earlier_seconds, self.started = 0.0, time.time()

    @property
    def seconds(self) -> float:
        """Training time of this phase so far, over every run that resumed it."""
        return self.earlier_seconds + time.time() - self.started

    def restore(self) -> int:
        """The step to start from (0 without a checkpoint)."""
        if not self.path.exists():
            return 0
        state = load_checkpoint(self.path)
        self.earlier_seconds = state["seconds"]
        for name, obj in self.objects.items():
            obj.load_state_dict(state[name])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming {self.path.name} at step {state['step']}")
        return state["step"]

    def maybe_save(self, step: int, total: int) -> None:
        """Save after `step` (0-based) when a checkpoint is due or the phase is finished."""
        if (step + 1) % self.every == 0 or step + 1 == total:
            state = {name: obj.state_dict() for name, obj in self.objects.items()}
            save_checkpoint({**state, "step": step + 1, "generator": self.generator.get_state(),
                             "torch_rng": torch.get_rng_state(), "seconds": self.seconds}, self.path)


def _lr_lambda(total: int, warmup: int = 100):
    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))) * 0.95 + 0.05
    return schedule


def train_vae(images: dict[int, torch.Tensor], downsampling: int, steps: int, crop: int, batch_size: int,
              lr: float, generator: torch.Generator, desc: str, checkpoint: Path, checkpoint_every: int = 100):
    """Train an AutoencoderKL on random crops (it is fully convolutional); set its scaling factor."""
    vae = arch.toy_vae(downsampling)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(steps))
    resumable = _Resumable(checkpoint, checkpoint_every, {"vae": vae, "optimizer": optimizer, "scheduler": scheduler},
                           generator)
    resolutions = sorted(images)
    progress = tqdm(range(resumable.restore(), steps), desc=desc, initial=0)
    for step in progress:
        resolution = resolutions[step % len(resolutions)]
        data = images[resolution]
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
        batch = data[index].float() / 127.5 - 1.0
        if resolution > crop:
            top, left = torch.randint(0, resolution - crop + 1, (2,), generator=generator).tolist()
            batch = batch[:, :, top:top + crop, left:left + crop]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        loss = F.mse_loss(recon, batch) + 0.1 * F.l1_loss(recon, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 20 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
        resumable.maybe_save(step, steps)
    vae.eval()
    with torch.no_grad():
        sample = images[resolutions[0]][:256].float() / 127.5 - 1.0
        latents = vae.encode(sample).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return vae, resumable.seconds


@torch.no_grad()
def encode_dataset(vae, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations of every image (sampled per step while training)."""
    means, stds = [], []
    for start in range(0, images.shape[0], batch_size):
        dist = vae.encode(images[start:start + batch_size].float() / 127.5 - 1.0).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(dataset: ToyDataset, latents: dict[int, tuple[torch.Tensor, torch.Tensor]], scaling: float,
               tokenizer: CLIPTokenizer, refiner: bool, steps: int, config: ToyPriorTrainingConfig,
               generator: torch.Generator, checkpoint: Path):
    """Jointly train the UNet and its text encoder with the epsilon-prediction diffusion loss."""
    resolutions = sorted(latents)
    unet = arch.toy_unet(latents[resolutions[0]][0].shape[-1], refiner=refiner)
    text_encoder = (arch.toy_text_encoder_2 if refiner else arch.toy_text_encoder)(len(tokenizer))
    noise_scheduler = arch.toy_scheduler()
    alphas_cumprod = noise_scheduler.alphas_cumprod
    unique_prompts = sorted(set(dataset.prompts)) + [""]
    prompt_index = torch.tensor([unique_prompts.index(p) for p in dataset.prompts])
    tokens = tokenizer(unique_prompts, padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt").input_ids
    empty_index = len(unique_prompts) - 1
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(steps))
    ema_unet = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    ema_text = AveragedModel(text_encoder, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    max_t = config.refiner_max_timestep if refiner else noise_scheduler.config.num_train_timesteps
    resumable = _Resumable(checkpoint, config.checkpoint_every,
                           {"unet": unet, "text_encoder": text_encoder, "ema_unet": ema_unet, "ema_text": ema_text,
                            "optimizer": optimizer, "scheduler": scheduler}, generator)
    progress = tqdm(range(resumable.restore(), steps), desc="train toy refiner" if refiner else "train toy unet")
    for step in progress:
        high = len(resolutions) > 1 and step % config.high_resolution_every == config.high_resolution_every - 1
        resolution = resolutions[-1] if high else resolutions[0]
        mean, std = latents[resolution]
        index = torch.randint(0, mean.shape[0], (config.batch_size,), generator=generator)
        x0 = (mean[index] + std[index] * torch.randn(mean[index].shape, generator=generator)) * scaling
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, max_t, (config.batch_size,), generator=generator)
        a = alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
        dropped = torch.rand(config.batch_size, generator=generator) < config.text_dropout
        ids = tokens[torch.where(dropped, empty_index, prompt_index[index])]
        if refiner:
            out = text_encoder(ids, output_hidden_states=True)
            hidden, pooled = out.hidden_states[-2], out.text_embeds
            size = float(resolution * 4)
            aesthetic = torch.where(dropped, 2.5, 6.0)  # the pipeline's negative / positive aesthetic scores
            time_ids = torch.stack([torch.full_like(aesthetic, size), torch.full_like(aesthetic, size),
                                    torch.zeros_like(aesthetic), torch.zeros_like(aesthetic), aesthetic], dim=-1)
            added = {"text_embeds": pooled, "time_ids": time_ids}
        else:
            hidden, added = text_encoder(ids)[0], None
        pred = unet(a * x0 + s * noise, t, hidden, added_cond_kwargs=added).sample
        loss = F.mse_loss(pred, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        ema_unet.update_parameters(unet)
        ema_text.update_parameters(text_encoder)
        if step % 20 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}", res=resolution)
        resumable.maybe_save(step, steps)
    return ema_unet.module.eval(), ema_text.module.eval(), noise_scheduler, resumable.seconds


def write_model_card(folder: Path, title: str, config: ToyPriorTrainingConfig, stats: dict) -> None:
    card = f"""# {title}

Tiny diffusion prior trained by this project on its procedural toy world
(`dreamflow/toyworld/`, v2): 5 shapes x 6 colours plain ({config.views_plain} random views each), with
stripes, checks or dots in a second colour ({config.views_pattern} views each) and stacked in pairs
({config.views_composition} views each), rendered by the project's own sphere-tracing renderer from the
same camera sampler the 3D stages use, with DreamFusion-style view suffixes ("a red cube with blue
stripes, front view").

* Format: diffusers `{stats['pipeline_class']}`, loaded with `from_pretrained` like the real model.
* Training: {json.dumps(stats['steps'])} steps, batch {config.batch_size}, AdamW lr {config.learning_rate},
  EMA {config.ema_decay}, text dropout {config.text_dropout}, seed {config.seed}.
* Training time on the machine that trained it ({stats['machine']}): {stats['seconds']:.0f} s
  (summed over resumed runs; rendering the dataset not included).
* Resolutions: {stats['resolutions']}.

Retrain (seeded, deterministic on CPU):

    dreamflow-lab train-toy-prior --output-dir models --which {stats['which']}

Interrupted? Run the same command again: it resumes from `models/.cache/`.

Full config:

```json
{json.dumps(asdict(config), indent=2, default=str)}
```
"""
    (folder / "README.md").write_text(card)


def train_toy_priors(config: ToyPriorTrainingConfig, which: tuple[str, ...] = ("base", "refiner")) -> dict[str, Path]:
    """Render (or reuse) the toy dataset and train the requested priors; returns their folders.

    Each prior has its own seeded random stream, so base and refiner can train in separate
    processes at the same time and give the same weights as one after the other.
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    _seed_everything(config.seed)
    output = Path(config.output_dir)
    cache = output / ".cache"
    tokenizer_dir = write_tokenizer_files(output / ".tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    resolutions = tuple(sorted(set(config.base_resolutions) | {config.refiner_resolution}))
    scene_views = world_views(config.views_plain, config.views_pattern, config.views_composition)
    dataset = cached_dataset(cache, config.camera, scene_views, resolutions, config.seed)
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads"
    # Checkpoints are only resumed by the same settings: their names carry a hash of the config.
    settings = {k: v for k, v in asdict(config).items() if k not in ("output_dir", "checkpoint_every")}
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    folders = {}
    if "base" in which:
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        images = {r: dataset.images[r] for r in config.base_resolutions}
        vae, vae_seconds = train_vae(images, 1, config.vae_steps, min(config.base_resolutions), config.vae_batch_size,
                                     config.learning_rate, generator, "train toy vae", cache / f"base-vae-{tag}.pt",
                                     config.checkpoint_every)
        latents = {r // 2: encode_dataset(vae, images[r]) for r in config.base_resolutions}
        unet, text_encoder, scheduler, unet_seconds = train_unet(
            dataset, latents, vae.config.scaling_factor, tokenizer, False, config.unet_steps, config, generator,
            cache / f"base-unet-{tag}.pt")
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        folders["base"] = output / config.base_name
        pipe.save_pretrained(folders["base"])
        write_model_card(folders["base"], "Toy SD 2.1-format prior", config, {
            "pipeline_class": "StableDiffusionPipeline", "steps": {"vae": config.vae_steps, "unet": config.unet_steps},
            "seconds": vae_seconds + unet_seconds, "machine": machine, "resolutions": list(config.base_resolutions),
            "which": "base"})
    if "refiner" in which:
        generator = torch.Generator().manual_seed(config.seed + 1)
        torch.manual_seed(config.seed + 1)
        resolution = config.refiner_resolution
        vae, vae_seconds = train_vae({resolution: dataset.images[resolution]}, 2, config.refiner_vae_steps, 64,
                                     config.vae_batch_size, config.learning_rate, generator, "train toy refiner vae",
                                     cache / f"refiner-vae-{tag}.pt", config.checkpoint_every)
        latents = {resolution // 4: encode_dataset(vae, dataset.images[resolution])}
        unet, text_encoder_2, scheduler, unet_seconds = train_unet(
            dataset, latents, vae.config.scaling_factor, tokenizer, True, config.refiner_unet_steps, config, generator,
            cache / f"refiner-unet-{tag}.pt")
        pipe = StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=text_encoder_2,
                                                tokenizer=None, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
                                                requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
        folders["refiner"] = output / config.refiner_name
        pipe.save_pretrained(folders["refiner"])
        write_model_card(folders["refiner"], "Toy SDXL-refiner-format prior", config, {
            "pipeline_class": "StableDiffusionXLImg2ImgPipeline",
            "steps": {"vae": config.refiner_vae_steps, "unet": config.refiner_unet_steps},
            "seconds": vae_seconds + unet_seconds, "machine": machine, "resolutions": [resolution],
            "which": "refiner"})
    return folders
