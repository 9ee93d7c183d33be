"""Quality on the toy world, where the right answer is known (slow: minutes per prompt)."""

import pytest

from dreamflow.config import load_config
from dreamflow.evaluate.toy_metrics import held_out_cameras, image_metrics
from dreamflow.geometry.nerf import load_nerf
from dreamflow.toyworld.scenes import parse_toy_prompt
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import STAGES, run_stage

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("prompt", ["a red cube", "a blue sphere", "a yellow cone"])
def test_apfo_stage1_recovers_the_toy_scene(tmp_path, prompt):
    config = load_config("config/pipeline/toy.yaml")
    run_stage(STAGES["stage1"], config, prompt, tmp_path, RunLogger(tmp_path))
    nerf = load_nerf(tmp_path / "ckpt.pt", config)
    cameras = held_out_cameras(config.camera, 16)
    out = nerf.render_views(cameras, config.stage1.resolution)
    metrics = image_metrics(parse_toy_prompt(prompt), cameras, out.opacity, out.albedo, config.stage1.resolution)
    print(prompt, metrics)
    assert metrics["iou"] >= 0.6 and metrics["colour_error"] <= 0.25
