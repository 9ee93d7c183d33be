import torch

from dreamflow.render.cameras import (
    CameraConfig,
    orbit_cameras,
    sample_cameras,
    view_direction_suffix,
)
from dreamflow.toyworld import (
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
