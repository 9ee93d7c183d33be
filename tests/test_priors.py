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
    assert not list((tmp_path / "shared").glob(".tmp-*"))


def _hue_matches(image: torch.Tensor, colour: str) -> bool:
    """Foreground (non-white) mean colour is nearest to the prompt's colour among the toy colours."""
    from dreamflow.toyworld.scenes import COLOURS

    foreground = (image < 0.85).any(-1)
    if foreground.sum() < 10:
        return False
    mean = image[foreground].mean(0)
    nearest = min(COLOURS, key=lambda c: (torch.tensor(COLOURS[c]) - mean).norm())
    return nearest == colour


def _shape_matches(image: torch.Tensor, shape: str, camera_config: CameraConfig) -> bool:
    """Silhouette classified by best IoU against the toy renderer's masks of each shape over views."""
    from dreamflow.render.cameras import cameras_from_spherical
    from dreamflow.toyworld.scenes import SHAPES

    mask = (image < 0.85).any(-1)
    elevations = torch.tensor([-5.0, 10.0, 25.0, 40.0]).repeat_interleave(8)
    azimuths = torch.linspace(-180, 180, 9)[:-1].repeat(4)
    cameras = cameras_from_spherical(elevations, azimuths, torch.full((32,), 2.25), torch.full((32,), 45.0))
    best = {}
    for name in SHAPES:
        masks = render_scene(ToyScene(name, "red"), cameras, image.shape[0])["mask"][..., 0] > 0.5
        iou = (masks & mask).sum((1, 2)) / (masks | mask).sum((1, 2)).clamp(min=1)
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
    shape = sum(_shape_matches(img, s.shape, CameraConfig()) for img, s in zip(images, scenes)) / len(scenes)
    print(f"hue match {hue:.2f}, shape match {shape:.2f} over {len(scenes)} shape-colour pairs")
    assert hue >= 0.9 and shape >= 0.7
