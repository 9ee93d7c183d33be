"""The source model (APFO's eps_src, VSD's eps_lora) on the toy prior: two-model and single-model,
camera dropout, the loss on a v-model's own target, the optimiser's warm-up, the VAE's posterior draw."""

import dataclasses
import json
import shutil

import pytest
import torch

from dreamflow.config import GuidanceConfig, PriorConfig, VSDConfig
from dreamflow.config.methods import LoRAConfig
from dreamflow.guidance import make_guidance
from dreamflow.guidance.source import SourceModel
from dreamflow.priors import load_prior
from dreamflow.render.cameras import CameraConfig, sample_cameras

from .conftest import TOY_PRIOR

TOY_LORA = {"pretrained": "prior", "learning_rate": 1e-3, "warmup_steps": 0}


@pytest.fixture
def prior(toy_prior):
    """The session's toy prior, which these tests leave as they found it (two-model sources copy its UNet)."""
    assert not toy_prior.has_lora
    yield toy_prior
    assert not toy_prior.has_lora


@pytest.fixture
def fresh_prior():
    """A toy prior of its own: a single-model source attaches its LoRA to the prior itself."""
    return load_prior(PriorConfig(pretrained=str(TOY_PRIOR)), "cpu")


def inputs(prior, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cameras = sample_cameras(CameraConfig(), batch, generator)
    latents = torch.randn(batch, 4, 16, 16, generator=generator, requires_grad=True)
    return latents, prior.text_embeddings("a red cube", cameras), cameras.conditioning()


def test_two_model_source_trains_its_own_unet_and_leaves_the_pretrained_one_unchanged(prior):
    before = {name: value.clone() for name, value in prior.unet.state_dict().items()}
    guidance = make_guidance(prior, GuidanceConfig(method="vsd", vsd=VSDConfig(lora=LoRAConfig(**TOY_LORA))), 10)
    source = guidance.source.model
    assert source is not prior and source.unet is not prior.unet and not prior.has_lora
    lora_before = {name: value.clone() for name, value in source.lora_state_dict().items()}
    latents, text, camera = inputs(prior)
    for step in range(3):
        guidance(latents, text, camera, step).loss.backward()
    after = prior.unet.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[name], after[name]) for name in before)
    lora_after = source.lora_state_dict()
    changed = [name for name in lora_before if not torch.equal(lora_before[name], lora_after[name])]
    assert any(name.startswith("unet.") for name in changed) and any("camera_embedding" in n for n in changed)
    # The camera embedding starts random (threestudio's TimestepEmbedding(16, 1280) default init).
    assert lora_before["camera_embedding.linear_2.weight"].abs().sum() > 0


def test_single_model_source_sits_on_the_pretrained_unet_and_is_switched_off_for_it(fresh_prior):
    prior = fresh_prior
    guidance = make_guidance(prior, GuidanceConfig(method="apfo"), 10)
    assert guidance.source.model is prior and prior.has_lora
    assert prior.camera_embedding.linear_2.weight.abs().sum() == 0  # APFO (assumed): starts as the pretrained UNet
    x_t, index = torch.randn(1, 4, 16, 16), torch.tensor([500])
    text = prior.text_embeddings("a red cube")
    with torch.no_grad():
        for p in prior.camera_embedding.parameters():
            p.add_(0.1)
        pretrained = prior.predict_eps(x_t, index, text)
        source = guidance.source.predict_eps(x_t, index, text, torch.ones(1, 16))
    assert (pretrained - source).abs().max() > 1e-4  # the LoRA model sees the camera, the pretrained one does not


class CameraSpy(torch.nn.Module):
    """Wraps the camera embedding and records the camera it is fed."""

    def __init__(self, module):
        super().__init__()
        self.module, self.seen = module, []

    def forward(self, camera, *args, **kwargs):
        self.seen.append(camera.detach().clone())
        return self.module(camera, *args, **kwargs)


@pytest.mark.parametrize("dropout, zeroed", [(1.0, True), (0.0, False)])
def test_camera_dropout_zeroes_the_camera_in_the_source_models_training_steps(prior, dropout, zeroed):
    config = LoRAConfig(**TOY_LORA, camera_dropout=dropout)
    source = SourceModel(prior, config, torch.Generator().manual_seed(0))
    spy = CameraSpy(source.model.camera_embedding)
    source.model.camera_embedding = spy
    latents, text, camera = inputs(prior)
    source.train(latents, text, camera)
    assert len(spy.seen) == 1 and spy.seen[0].shape == camera.shape
    assert torch.equal(spy.seen[0], torch.zeros_like(camera)) == zeroed
    assert zeroed or torch.equal(spy.seen[0], camera)


def test_source_model_sees_the_view_independent_prompt(prior):
    source = SourceModel(prior, LoRAConfig(**TOY_LORA), torch.Generator().manual_seed(0))
    _, text, _ = inputs(prior)
    plain = prior.text_embeddings("a red cube", batch_size=2)
    assert not torch.equal(text.cond, plain.cond)  # the pretrained model's prompt has the view suffix
    assert torch.equal(source.text(text).cond, plain.cond)


@pytest.fixture
def v_model(tmp_path):
    """The toy prior's files with a scheduler that says v_prediction (the weights are the toy's)."""
    folder = tmp_path / "toy-v"
    shutil.copytree(TOY_PRIOR, folder, ignore=shutil.ignore_patterns("*.md"))
    scheduler = folder / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({**json.loads(scheduler.read_text()), "prediction_type": "v_prediction"}))
    return folder


def test_a_v_model_source_trains_on_v_and_predicts_epsilon(prior, v_model):
    source = SourceModel(prior, LoRAConfig(**{**TOY_LORA, "pretrained": str(v_model)}), torch.Generator())
    assert source.model.prediction_type == "v_prediction" and prior.prediction_type == "epsilon"
    generator = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 4, 16, 16, generator=generator)
    index, camera = torch.tensor([100, 900]), torch.zeros(2, 16)
    text = prior.text_embeddings("a red cube", batch_size=2)
    a, s = (value.view(-1, 1, 1, 1) for value in prior.alpha_sigma(index))
    x_t = a * x0 + s * noise
    with torch.no_grad():
        output = source.model.predict_output(x_t, index, text, use_lora=True, camera=camera)
        loss = source.loss(x0, noise, index, text, camera)
        eps = source.predict_eps(x_t, index, text, camera)
    v = a * noise - s * x0
    assert loss == pytest.approx(float(((output - v) ** 2).mean()), rel=1e-5)
    assert abs(loss - float(((output - noise) ** 2).mean())) > 1e-3  # not the epsilon loss
    assert torch.allclose(eps, s * x_t + a * output, atol=1e-5)  # threestudio's v -> epsilon


def test_lora_learning_rate_warms_up_linearly_from_zero(prior):
    source = SourceModel(prior, LoRAConfig(**{**TOY_LORA, "warmup_steps": 4}), torch.Generator().manual_seed(0))
    latents, text, camera = inputs(prior, batch=1)
    rates = []
    for _ in range(7):
        rates.append(source.optimizer.param_groups[0]["lr"])
        source.train(latents, text, camera)
    assert rates == pytest.approx([1e-3 * min(1.0, n / 5) for n in range(7)])  # ProlificDreamer: n / (W K + 1)
    group = source.optimizer.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"]) == ((0.9, 0.99), 1e-15, 0.01)


def test_vae_encode_draws_from_the_posterior_with_the_given_generator(prior):
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = prior.encode_images(images, torch.Generator().manual_seed(3))
        again = prior.encode_images(images, torch.Generator().manual_seed(3))
        other = prior.encode_images(images, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    sampling, prior.config = prior.config, dataclasses.replace(prior.config, vae_encode="mean")
    try:
        with torch.no_grad():
            mean = prior.encode_images(images)
    finally:
        prior.config = sampling
    assert 0 < (first - mean).abs().mean() < 0.5 * mean.abs().mean()  # a draw around the mean
