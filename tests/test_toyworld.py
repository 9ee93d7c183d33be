import math

import torch

from dreamflow.render.cameras import (
    CameraConfig,
    orbit_cameras,
    sample_cameras,
    view_direction_suffix,
)
from dreamflow.toyworld import (
    COLOURS,
    SHAPES,
    ToyScene,
    all_scenes,
    parse_toy_prompt,
    render_scene,
)


def test_toy_world_has_enough_shapes_and_colours():
    scenes = all_scenes()
    assert len({s.shape for s in scenes}) >= 5 and len({s.colour for s in scenes}) >= 6


def test_sdfs_are_negative_at_centre_and_positive_outside():
    for shape in SHAPES:
        scene = ToyScene(shape, "red")
        inside = torch.tensor([[0.0, 0.0, 0.0]]) if shape != "torus" else torch.tensor([[0.4, 0.0, 0.0]])
        assert scene.sdf(inside).item() < 0, shape
        assert scene.sdf(torch.tensor([[0.9, 0.9, 0.9]])).item() > 0, shape


def test_renders_show_the_shape_in_its_colour_on_white():
    cameras = sample_cameras(CameraConfig(), 4, torch.Generator().manual_seed(0))
    out = render_scene(ToyScene("cube", "blue"), cameras, 32)
    mask = out["mask"][..., 0] > 0.5
    assert 0.1 < mask.float().mean() < 0.6
    assert torch.allclose(out["rgb"][~mask].mean(0), torch.ones(3), atol=0.05)
    assert torch.allclose(out["albedo"][mask].mean(0), ToyScene("cube", "blue").rgb, atol=0.05)


def test_view_suffixes_follow_dreamfusion():
    assert view_direction_suffix(10, 0) == "front view"
    assert view_direction_suffix(10, 90) == "side view"
    assert view_direction_suffix(10, 180) == "back view"
    assert view_direction_suffix(70, 0) == "overhead view"
    cams = orbit_cameras(CameraConfig(), 8)
    assert cams.c2w.shape == (8, 4, 4)


def test_parse_toy_prompt():
    assert parse_toy_prompt("a red cube") == ToyScene("cube", "red")
    assert parse_toy_prompt("an orange torus, front view") == ToyScene("torus", "orange")
    assert parse_toy_prompt("a DSLR photo of a hamburger") is None


def test_toy_tokenizer_keeps_toy_words_whole(tmp_path):
    from transformers import CLIPTokenizer

    from dreamflow.toyworld.tokenizer import TOY_WORDS, write_tokenizer_files

    tokenizer = CLIPTokenizer.from_pretrained(write_tokenizer_files(tmp_path))
    for word in TOY_WORDS:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    assert len(tokenizer("a purple cylinder, overhead view").input_ids) == 2 + 6


def test_v2_world_has_patterns_and_compositions_with_exact_ground_truth():
    from dreamflow.toyworld import composition_scenes, pattern_scenes, plain_scenes

    assert len(plain_scenes()) == 30 and len(pattern_scenes()) == 450 and len(composition_scenes()) == 210
    assert all_scenes() == plain_scenes() + pattern_scenes() + composition_scenes()
    for scene in all_scenes():
        assert parse_toy_prompt(scene.prompt) == scene, scene.prompt
        assert parse_toy_prompt(f"{scene.prompt}, side view") == scene
    # every scene fits the radius-0.65 ball (cube corners reach 0.62; the NeRF bound is radius 1)
    directions = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    for scene in [*plain_scenes()[::6], *composition_scenes()[::30]]:
        assert (scene.sdf(0.65 * directions) > 0).all(), scene.prompt


def test_patterns_alternate_at_the_documented_period_and_vanish_at_32_px():
    from dreamflow.toyworld.scenes import PATTERN_PERIOD

    scene = parse_toy_prompt("a red cylinder with blue stripes")
    z = torch.linspace(-0.3, 0.3, 601)
    points = torch.stack([torch.full_like(z, 0.35), torch.zeros_like(z), z], dim=-1)  # down the side
    albedo = scene.albedo(points)
    is_blue = (albedo - torch.tensor(COLOURS["blue"])).norm(dim=-1) < 1e-6
    changes = (is_blue[1:] != is_blue[:-1]).sum().item()
    assert abs(changes - 2 * 0.6 / PATTERN_PERIOD) <= 1  # two colour changes per period
    cameras = orbit_cameras(CameraConfig(), 2)
    for prompt in ["a red cube with blue checks", "a yellow sphere with purple dots"]:
        fine = render_scene(parse_toy_prompt(prompt), cameras, 128)["albedo"]
        coarse = render_scene(parse_toy_prompt(prompt), cameras, 32)["albedo"]
        coarse = torch.nn.functional.interpolate(coarse.permute(0, 3, 1, 2), size=128, mode="bilinear").permute(0, 2, 3, 1)
        mask = render_scene(parse_toy_prompt(prompt), cameras, 128)["mask"][..., 0] > 0.99
        both = sum((fine[mask] - torch.tensor(COLOURS[c])).norm(dim=-1).lt(0.05).float().mean() > 0.15
                   for c in prompt.split()[1::3])
        assert both == 2, prompt  # both colours cover a good part of the 128-px render
        assert (fine - coarse)[mask].norm(dim=-1).mean() > 0.15, prompt  # and 32 px loses the pattern


def test_stacked_scene_puts_each_colour_on_its_object():
    scene = parse_toy_prompt("a red cube on a blue sphere")
    assert scene.below == ToyScene("sphere", "blue") and torch.allclose(scene.rgb, torch.tensor(COLOURS["red"]))
    out = render_scene(scene, orbit_cameras(CameraConfig(), 1, elevation=0.0), 64)
    mask = out["mask"][0, ..., 0] > 0.99
    rows = mask.any(1).nonzero()[:, 0]
    top, bottom = out["albedo"][0, rows.min() + 2], out["albedo"][0, rows.max() - 2]
    red, blue = torch.tensor(COLOURS["red"]), torch.tensor(COLOURS["blue"])
    assert (top[mask[rows.min() + 2]] - red).norm(dim=-1).max() < 0.05
    assert (bottom[mask[rows.max() - 2]] - blue).norm(dim=-1).max() < 0.05


def test_pattern_error_is_blind_to_phase_but_not_to_kind_colour_or_absence():
    from dreamflow.evaluate.toy_metrics import held_out_cameras, image_metrics

    cameras = held_out_cameras(CameraConfig(), 4)
    scene = parse_toy_prompt("a red cylinder with blue stripes")
    truth = render_scene(scene, cameras, 128)

    def score(prompt: str) -> dict:
        render = render_scene(parse_toy_prompt(prompt), cameras, 128)
        return image_metrics(scene, cameras, render["mask"], render["albedo"], 128, truth)

    assert score("a red cylinder with blue stripes")["pattern_error"] < 1e-3
    flat = score("a purple cylinder")
    assert abs(flat["pattern_error"] - 1) < 1e-3 and abs(flat["detail_error"] - flat["detail_energy"]) < 1e-3
    shifted = score("a blue cylinder with red stripes")  # the same stripes half a period away
    assert shifted["pattern_error"] < 0.05 and shifted["detail_error"] > 1.5 * flat["detail_error"]
    for wrong in ["a red cylinder with blue checks", "a red cylinder with blue dots", "a red cylinder with green stripes"]:
        assert score(wrong)["pattern_error"] > 0.6, wrong
    # Without a true pattern there is nothing to compare spectra with: not a number, not 10^5.
    plain = parse_toy_prompt("a red cylinder")
    plain_truth = render_scene(plain, cameras, 128)
    striped = render_scene(scene, cameras, 128)
    plain_scores = image_metrics(plain, cameras, striped["mask"], striped["albedo"], 128, plain_truth)
    assert math.isnan(plain_scores["pattern_error"]) and plain_scores["detail_error"] > 0
