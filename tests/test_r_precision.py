"""CLIP R-precision by DreamFusion's protocol: the retrieval set, the one view and its render modes, ranks
with the shipped toy CLIP on the toy world's true renders, the suite's R@1 and its protocol line."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from dreamflow.evaluate.retrieval import (
    ClipModel,
    RetrievalProtocol,
    caption_index,
    caption_set,
    is_hit,
    rank_of,
    render_modes,
    retrieval_view,
    score_retrieval,
)
from dreamflow.report.r_precision import protocol_line, retrieval_rows, retrieval_summary

from .conftest import ROOT, TOY_CLIP, TOY_CLIP_MODEL


def test_caption_set_is_the_file_then_the_suite_prompts_it_lacks(tmp_path):
    captions = tmp_path / "captions.txt"
    captions.write_text("# Dream Fields' shape\na red cube.\na bird on a branch.\n")
    suite = ["a bird on a branch.", "an orange cone"]
    chosen = caption_set(suite, str(captions))
    assert chosen.captions == ["a red cube.", "a bird on a branch.", "an orange cone"]
    assert chosen.describe() == f"retrieval among 3 captions: {captions} (2) + 1 suite prompt(s) it lacks"
    own = caption_set(suite, None)
    assert own.captions == suite and own.describe() == "retrieval among the suite's own 2 prompts"
    assert own.as_dict() | {"source": None} == {"source": None, "count": 2, "from_file": 0, "suite_prompts": 2,
                                                "added_suite_prompts": 0}


def test_caption_set_holds_the_own_prompt_once_whatever_its_case_and_spacing(tmp_path):
    """CLIP's tokenizer lower-cases: a caption file's "A red  cube." is the suite's "a red cube.", kept once."""
    captions = tmp_path / "captions.txt"
    captions.write_text("A red  cube.\na bird on a branch.\nA Bird on a branch.\n")
    chosen = caption_set(["a red cube.", "an orange cone"], str(captions))
    assert chosen.captions == ["A red cube.", "a bird on a branch.", "an orange cone"]
    assert chosen.from_file == 2 and chosen.extra == ["an orange cone"]
    assert caption_index(chosen.captions, "a red cube.") == 0
    assert caption_set(["a red cube", "A red cube", "an orange cone"], None).captions == ["a red cube", "an orange cone"]


def test_fewer_than_two_captions_is_an_error_naming_what_to_pass():
    with pytest.raises(ValueError, match="100 % by construction.*--suite-prompts"):
        caption_set(["a red cube", "A  red cube"], None)


def test_a_hit_is_dream_fields_argmax_so_a_tie_with_an_earlier_caption_misses():
    similarities = torch.tensor([0.2, 0.5, 0.5, 0.1])
    assert [rank_of(similarities, i) for i in range(4)] == [3, 1, 1, 4]  # strictly more similar, for information
    assert [is_hit(similarities, i) for i in range(4)] == [False, True, False, False]


def _stub_clip(text_features: dict[str, list[float]], image_feature: list[float]) -> tuple:
    """(model, preprocess, tokenizer) whose image embedding is fixed and each caption's is given."""
    model = SimpleNamespace(encode_image=lambda batch: torch.tensor([image_feature] * len(batch)),
                            encode_text=lambda tokens: torch.tensor([text_features[t] for t in tokens]))
    return model, lambda image: torch.zeros(1), lambda prompts: list(prompts)


def test_score_retrieval_counts_a_tie_as_a_miss_and_names_the_caption_retrieved():
    """Two captions embed alike; the asset's is the later one: Dream Fields' argmax retrieves the first."""
    clip = {ClipModel("stub", "w"): _stub_clip({"a red cube": [1.0, 0.0], "a red box": [1.0, 0.0],
                                                "a blue cone": [0.0, 1.0]}, [1.0, 0.1])}
    render = {"colour": torch.zeros(1, 4, 4, 3)}
    captions = ["a red cube", "a red box", "a blue cone"]
    later = score_retrieval(render, "A red box", captions, clip)[0]
    assert later["rank"] == 1 and later["hit"] == 0 and later["retrieved"] == "a red cube"
    first = score_retrieval(render, "a red cube", captions, clip)[0]
    assert first["hit"] == 1 and first["retrieved"] == "a red cube"


def test_protocol_rejects_unknown_render_modes_and_no_model():
    with pytest.raises(ValueError, match="render modes"):
        RetrievalProtocol((ClipModel("m", "w"),), ("colour", "normals"))
    with pytest.raises(ValueError, match="at least one CLIP model"):
        RetrievalProtocol(())


def test_one_view_at_dream_fields_angles_in_each_render_mode():
    """Dream Fields' validation view (azimuth 30°, 45° up) 4 scene radii away at fovy 39.6°, whatever the
    run config's evaluation camera, rendered once per mode with the renderer's albedo and textureless shading."""
    calls = []

    class Model:
        device = torch.device("cpu")

        def render_views(self, cameras, resolution, shading):
            calls.append((float(cameras.elevation), float(cameras.azimuth), float(cameras.distance),
                          math.degrees(float(cameras.fovy)), resolution, shading))
            return SimpleNamespace(rgb=torch.zeros(len(cameras), resolution, resolution, 3))

    protocol = RetrievalProtocol((ClipModel("m", "w"),))
    renders = render_modes(Model(), 1.0, 24, protocol)
    assert list(renders) == ["colour", "textureless"] and renders["colour"].shape == (1, 24, 24, 3)
    assert [c[:4] for c in calls] == [pytest.approx((45.0, 30.0, 4.0, 39.6))] * 2
    assert [c[5] for c in calls] == ["albedo", "textureless"]
    position = retrieval_view(protocol, 0.5).positions[0]
    assert float(position[2]) == pytest.approx(2.0 * math.sin(math.radians(45)), abs=1e-5)  # up is +Z, 4 x 0.5 away


def _sphere_points(radius: float, count: int = 4000) -> torch.Tensor:
    """Fibonacci points on the sphere of `radius` about the origin, [count, 3]."""
    i = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / count
    angle = math.pi * (3 - math.sqrt(5)) * i
    ring = torch.sqrt(1 - z ** 2)
    return radius * torch.stack([ring * torch.cos(angle), ring * torch.sin(angle), z], dim=-1)


@pytest.mark.parametrize("scene_radius", [1.0, 2.5])
def test_the_protocol_view_holds_the_scene_bounding_sphere_whole(scene_radius):
    """Projected by the view's own matrices, every point of the scene's bounding sphere (`nerf.radius`) lands
    inside the frame, with a margin (Dream Fields' framing: about 3/4 of the frame); the paper configs'
    evaluation camera (1.5 away at 40°) does not hold a radius-1 sphere."""
    from dreamflow.render.cameras import cameras_from_spherical, mvp_matrix

    def extent(cameras, radius):
        points = torch.cat([_sphere_points(radius), torch.ones(4000, 1, dtype=torch.float64)], dim=-1).float()
        clip = points @ mvp_matrix(cameras)[0].T
        assert bool((clip[:, 3] > 0).all())  # every point in front of the camera
        return float((clip[:, :2] / clip[:, 3:]).abs().max())

    view = retrieval_view(RetrievalProtocol((ClipModel("m", "w"),)), scene_radius)
    assert 0.6 < extent(view, scene_radius) < 0.9
    one = lambda value: torch.tensor([float(value)])  # noqa: E731
    paper_eval_camera = cameras_from_spherical(one(45.0), one(30.0), one(1.5 * scene_radius), one(40.0))
    assert extent(paper_eval_camera, scene_radius) > 1.0


def test_protocol_rejects_a_camera_inside_the_scene_or_a_flat_fovy():
    with pytest.raises(ValueError, match="outside the scene"):
        RetrievalProtocol((ClipModel("m", "w"),), distance_in_radii=0.8)
    with pytest.raises(ValueError, match="fovy"):
        RetrievalProtocol((ClipModel("m", "w"),), fovy=180.0)


@pytest.fixture(scope="module")
def toy_clip():
    from dreamflow.evaluate.toy_clip import load_clip

    model = ClipModel(TOY_CLIP_MODEL, str(TOY_CLIP))
    return {model: load_clip(model.model, model.pretrained)}


def test_toy_clip_retrieves_the_true_scene_and_not_a_wrong_one(toy_clip):
    """The toy world's true render of a prompt ranks its own caption first among every toy-world prompt
    and the main suite's; asked for another prompt, the same render does not."""
    from dreamflow.toyworld.render import render_scene
    from dreamflow.toyworld.scenes import parse_toy_prompt

    captions = caption_set(["an orange cone", "a blue sphere with yellow stripes", "a yellow sphere on a purple cube"],
                           str(ROOT / "prompts" / "toy-all.txt")).captions
    view = retrieval_view(RetrievalProtocol(tuple(toy_clip)), 1.0)
    stripes = render_scene(parse_toy_prompt("a blue sphere with yellow stripes"), view, 32)["rgb"]
    right = score_retrieval({"colour": stripes}, "a blue sphere with yellow stripes", captions, toy_clip)[0]
    wrong = score_retrieval({"colour": stripes}, "an orange cone", captions, toy_clip)[0]
    assert right["rank"] == 1 and right["hit"] == 1 and right["retrieved"] == "a blue sphere with yellow stripes"
    assert wrong["rank"] > 1 and wrong["hit"] == 0 and wrong["clip_score"] < right["clip_score"]
    assert right["clip"] == f"{TOY_CLIP_MODEL}:open_clip_model.safetensors" and right["mode"] == "colour"


def _asset(method, prompt, seed, hits, status="ok"):
    results = [{"clip": clip, "mode": mode, "rank": 1 if hit else 4, "hit": hit, "clip_score": 30.0, "retrieved": "x"}
               for (clip, mode), hit in hits.items()]
    entry = {"description": "retrieval among 9 captions: prompts/toy-all.txt (6) + 3 suite prompt(s) it lacks",
             "captions": {"count": 9}, "models": sorted({c for c, _ in hits}), "modes": ["colour", "textureless"],
             "view": {"elevation": 45.0, "azimuth": 30.0, "distance_in_radii": 4.0, "fovy": 39.6}, "results": results}
    return {"method": method, "prompt": prompt, "seed": seed, "status": status, "r_precision": entry}


def test_suite_r_at_1_per_seed_then_over_seeds_and_the_protocol_line():
    toy = f"{TOY_CLIP_MODEL}:open_clip_model.safetensors"
    rows = []
    # Seed 0: 2 of 2 prompts retrieved in colour, 1 of 2 textureless; seed 1: 1 of 2 and 0 of 2.
    for seed, colour, geo in ((0, (1, 1), (1, 0)), (1, (1, 0), (0, 0))):
        for i, prompt in enumerate(("p", "q")):
            rows.append(_asset("apfo", prompt, seed, {(toy, "colour"): colour[i], (toy, "textureless"): geo[i]}))
    rows.append(_asset("apfo", "r", 0, {(toy, "colour"): 1, (toy, "textureless"): 1}, status="failed: stage1"))
    frame = pd.DataFrame(rows)
    summary = retrieval_summary(retrieval_rows(frame)).set_index("mode")
    assert summary.loc["colour", "mean"] == pytest.approx(0.75) and summary.loc["colour", "n"] == 2
    assert summary.loc["colour", "sd"] == pytest.approx(math.sqrt(0.125))  # per-seed shares 1.0 and 0.5
    assert summary.loc["textureless", "mean"] == pytest.approx(0.25) and summary.loc["textureless", "hits"] == 1
    assert summary.loc["colour", "assets"] == 4  # the failed asset is left out
    line = protocol_line(frame)
    for part in ("retrieval among 9 captions: prompts/toy-all.txt (6)", "chance 11 %", f"CLIP {toy}",
                 "renders colour, textureless", "elevation 45°, azimuth 30°, 4 scene radii away at fovy 39.6°", "knows only the toy world's words"):
        assert part in line, (part, line)


def test_evaluate_command_pairs_each_model_with_its_weights(capsys):
    from dreamflow.cli import main

    code = main(["evaluate", "--out", "m.json", "--prompt", "a red cube", "--stage1", "a", "--stage2", "b",
                 "--stage3", "c", "--clip-model", "ViT-B-32", "ViT-B-16", "--clip-pretrained", "openai"])
    assert code == 2 and "give one weights file or tag per model" in capsys.readouterr().err
