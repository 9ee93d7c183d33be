"""GPU code paths checked on the CPU: device consistency (simulated CUDA) and half precision."""

import math

import pytest
import torch
from PIL import Image

from dreamflow.config import load_config
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import STAGES, StageInputs, run_stage

from .simulated_cuda import simulated_cuda

TINY = {"device": "cuda", "prior.dtype": "float32", "refiner_prior.dtype": "float32", "rasterizer": "auto",
        "nerf.encoding.backend": "auto", "volume.samples_per_ray": 8, "guidance.num_timesteps": 2,
        "extract.grid_resolution": 32, "extract.target_faces": 300, "export.texture_size": 32, "export.views": 1,
        **{f"stage{i}.{key}": value for i in (1, 2, 3) for key, value in
           {"iterations": 2, "preview_views": 1, "turntable_views": 2, "checkpoint_every": 1}.items()},
        "stage1.resolution": 16, "stage2.resolution": 16, "stage3.resolution": 32}


@pytest.mark.parametrize("method", ["apfo", "sds"])
def test_all_stages_on_a_simulated_cuda_device_never_mix_devices(tmp_path, monkeypatch, method):
    """Every step a GPU user runs: stages 1-3 (training, previews, exports), extraction and evaluation."""
    from dreamflow.evaluate import toy_metrics
    from dreamflow.evaluate.metrics import AssetFiles, evaluate_asset
    from dreamflow.export.extract import extract_mesh

    from .conftest import TOY_CLIP

    config = load_config("config/toy.yaml", {**TINY, "guidance.method": method})
    with simulated_cuda(monkeypatch) as cuda:
        inputs = {"stage1": StageInputs(), "stage2": StageInputs(tmp_path / "stage1" / "ckpt.pt", tmp_path / "coarse.obj"),
                  "stage3": StageInputs(tmp_path / "stage2" / "ckpt.pt")}
        for name, spec in STAGES.items():
            run_stage(spec, config, "a red cube", tmp_path / name, RunLogger(tmp_path / name), inputs[name])
            if name == "stage1":
                extract_mesh(tmp_path / "stage1" / "ckpt.pt", config, tmp_path / "coarse.obj")
        files = AssetFiles(*(tmp_path / s / "ckpt.pt" for s in ("stage1", "stage2", "stage3")), tmp_path / "coarse.obj")
        metrics = evaluate_asset(config, "a red cube", files, tmp_path / "metrics.json", "dreamflow-toy-clip",
                                 str(TOY_CLIP), 1, [])
        # A prompt with no ground truth renders only the two views of its stage strip, not all
        # 16 held-out views, at pixel centres (the paper rehearsal spent minutes rendering them).
        rendered = []
        render_like_truth = toy_metrics.render_like_truth
        monkeypatch.setattr(toy_metrics, "render_like_truth",
                            lambda model, cameras, *a: rendered.append((len(cameras), *a)) or render_like_truth(model, cameras, *a))
        other = evaluate_asset(config, "a DSLR photo of a hamburger", files, tmp_path / "other" / "metrics.json",
                               "dreamflow-toy-clip", str(TOY_CLIP), 1, [])
    assert not cuda.violations, "\n".join(list(dict.fromkeys(map(str, cuda.violations)))[:12])
    assert metrics["stage3_iou"] > 0 and metrics["backend"]["hash_grid"] == "torch"
    assert rendered == [(2, 32, 1)] * 3 and "stage3_iou" not in other  # 2 views, 32 px, 1 ray per pixel
    assert Image.open(tmp_path / "other" / "stages.png").size == (3 * 32, 2 * 32)


def test_the_simulation_catches_mixed_devices(monkeypatch):
    """The checker itself: a CPU tensor added to a CUDA one is recorded; a CPU scalar is not."""
    with simulated_cuda(monkeypatch) as cuda:
        gpu = torch.ones(3).to("cuda")
        assert gpu.device.type == "cuda" and (gpu + torch.tensor(2.0)).device.type == "cuda"
        assert not cuda.violations
        gpu + torch.arange(3)
        torch.zeros(2, device=gpu.device).cpu().numpy()
        assert len(cuda.violations) == 1 and "mixes CUDA and CPU" in str(cuda.violations[0])


def test_half_precision_source_model_keeps_learning(toy_prior_fp16):
    """fp16 UNet (the GPU default): the LoRA source model's loss stays finite and APFO's update is non-zero.

    The camera embedding trained in fp16 made AdamW divide by eps = 0 after its first step, and every
    later source step was NaN (the update silently 0 after `nan_to_num`).
    """
    from dreamflow.guidance import make_guidance
    from dreamflow.render.cameras import sample_cameras

    config = load_config("config/toy.yaml")
    guidance = make_guidance(toy_prior_fp16, config.guidance_for("stage1"), 20, seed=0)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 16, 16, generator=generator, requires_grad=True)
    for step in range(5):
        cameras = sample_cameras(config.camera, 1, generator)
        text = toy_prior_fp16.text_embeddings("a red cube", cameras)
        output = guidance(latents, text, cameras.conditioning(), step)
        assert math.isfinite(output.info["source_loss"]), (step, output.info)
        assert output.info["update_norm"] > 0, (step, output.info)
    assert all(torch.isfinite(p).all() for p in toy_prior_fp16.camera_embedding.parameters())


@pytest.fixture
def toy_prior_fp16():
    from dreamflow.config import PriorConfig
    from dreamflow.priors import load_prior

    from .conftest import TOY_PRIOR

    with pytest.warns(UserWarning, match="float16 on CPU"):
        return load_prior(PriorConfig(pretrained=str(TOY_PRIOR), dtype="float16"), "cpu")
