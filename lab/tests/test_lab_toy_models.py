"""The lab's toy-model training and the judge of prior samples."""

import pytest
import torch

from conftest import TOY_REFINER
from dreamflow.config import PriorConfig
from dreamflow.priors import load_prior
from dreamflow.toyworld import ToyScene, parse_toy_prompt


def test_prior_training_resumes_bit_for_bit(tmp_path, monkeypatch):
    """Interrupted after a checkpoint, the same command continues to the very same weights."""
    from dreamflow_lab.toy_models import train_prior

    monkeypatch.setattr(train_prior, "world_views", lambda *views: [(ToyScene("cube", "red"), 3),
                                                                    (parse_toy_prompt("a blue sphere with red dots"), 3)])

    def config(folder):
        return train_prior.ToyPriorTrainingConfig(
            output_dir=str(folder), vae_steps=4, unet_steps=4, refiner_vae_steps=2, refiner_unet_steps=2,
            batch_size=2, vae_batch_size=2, checkpoint_every=2, base_resolutions=(16, 32), refiner_resolution=64)

    straight = train_prior.train_toy_priors(config(tmp_path / "straight"), ("base",))["base"]
    saves = {"count": 0}
    original = train_prior._Resumable.maybe_save

    def interrupt_after_first_unet_checkpoint(self, step, total):
        original(self, step, total)
        if self.path.name.startswith("base-unet-") and self.path.exists():
            raise KeyboardInterrupt
    monkeypatch.setattr(train_prior._Resumable, "maybe_save", interrupt_after_first_unet_checkpoint)
    try:
        train_prior.train_toy_priors(config(tmp_path / "resumed"), ("base",))
    except KeyboardInterrupt:
        saves["count"] += 1
    monkeypatch.setattr(train_prior._Resumable, "maybe_save", original)
    resumed = train_prior.train_toy_priors(config(tmp_path / "resumed"), ("base",))["base"]
    assert saves["count"] == 1
    from safetensors.torch import load_file

    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                 "text_encoder/model.safetensors"):
        a, b = load_file(straight / part), load_file(resumed / part)
        assert all(torch.equal(a[k], b[k]) for k in a), part


def test_samples_match_prompts(toy_prior):
    """Base prior, 32 px (stage 1): plain prompts drawn in their colour and shape (v1 world)."""
    from dreamflow.toyworld import plain_scenes
    from dreamflow_lab.samples import grade, sample_base

    scenes = plain_scenes()
    result = grade(sample_base(toy_prior.pipe, scenes, 32), scenes)
    print(f"32 px plain prompts: {result}")
    assert result["colour"] >= 0.9 and result["shape"] >= 0.8


@pytest.mark.slow
def test_samples_at_64_px_draw_patterns_and_stacks(toy_prior):
    """Base prior, 64 px (stage 2) on the judged prompt set: colour >= 90 %, shape and pattern >= 80 %."""
    from dreamflow_lab.judge import judged_scenes
    from dreamflow_lab.samples import grade, sample_base

    scenes = judged_scenes()
    result = grade(sample_base(toy_prior.pipe, scenes, 64), scenes)
    print(f"64 px judged prompts: {result}")
    assert result["colour"] >= 0.9 and result["shape"] >= 0.8 and result["pattern"] >= 0.8


@pytest.mark.slow  # the shipped refiner's quality (about 1 min); the refiner's code paths run in every stage-3 test
def test_refiner_img2img_keeps_prompt_colour_shape_and_pattern():
    """The toy refiner (SDXL-refiner format) turns 64-px renders of patterned and stacked scenes into
    128-px ones as sharp as true renders, keeping the shape and most colours and patterns.

    Measured (strength 0.3, stage 3's noise range): colour 0.79, shape 1.00, pattern 0.53 on these 19
    prompts. That misses the 0.9 / 0.8 target (docs/results/toyworld.md: its 600-step VAE loses
    low-contrast patterns); the thresholds below guard that level against regressions."""
    import torch.nn.functional as F

    from dreamflow.priors.sdxl_refiner import SDXLRefinerPrior
    from dreamflow_lab.judge import judged_scenes
    from dreamflow_lab.samples import front_renders, grade, refine

    prior = load_prior(PriorConfig(pretrained=str(TOY_REFINER)), "cpu")
    assert isinstance(prior, SDXLRefinerPrior) and prior.unet.config.addition_embed_type == "text_time"
    scenes = judged_scenes()[30::2]  # patterned and stacked prompts
    sharp = front_renders(scenes, 128)
    coarse = F.interpolate(sharp.permute(0, 3, 1, 2), size=64, mode="area").permute(0, 2, 3, 1)
    images = refine(prior.pipe, scenes, coarse, 128, strength=0.3)  # stage 3 runs t 0.3 -> 0.02
    blurry = F.interpolate(coarse.permute(0, 3, 1, 2), size=128, mode="bilinear", align_corners=False)
    result = grade(images, scenes)
    sharpness = lambda x: (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
    print(f"refiner {result}, edge energy {sharpness(blurry):.4f} -> {sharpness(images.permute(0, 3, 1, 2)):.4f} "
          f"(sharp {sharpness(sharp.permute(0, 3, 1, 2)):.4f})")
    assert result["colour"] >= 0.7 and result["shape"] >= 0.9 and result["pattern"] >= 0.45
    assert sharpness(images.permute(0, 3, 1, 2)) > 1.1 * sharpness(blurry)
