"""GPU code paths checked on the CPU: device consistency (simulated CUDA) and half precision."""

import math

import pytest
import torch
from PIL import Image

from dreamflow.config import load_config
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import STAGES, StageInputs, run_stage

from .simulated_cuda import simulated_cuda

# A training step may wait for the GPU this often (logging and checkpoint steps excluded: those read
# everything at once). Stage 1: the occupied samples' count and the shaded samples' count; the mesh
# stages (torch rasteriser): the large faces' count, with room for the fallback's band compaction.
MAX_SYNCS_PER_STEP = {"stage1": 2, "stage2": 4, "stage3": 4}

TINY = {"device": "cuda", "prior.dtype": "float32", "refiner_prior.dtype": "float32", "rasterizer": "auto",
        "nerf.encoding.backend": "auto", "volume.samples_per_ray": 8, "guidance.num_timesteps": 2,
        "extract.grid_resolution": 32, "extract.target_faces": 300, "export.texture_size": 32, "export.views": 1,
        **{f"stage{i}.{key}": value for i in (1, 2, 3) for key, value in
           {"iterations": 2, "preview_views": 1, "turntable_views": 2, "checkpoint_every": 1}.items()},
        "stage1.resolution": 16, "stage2.resolution": 16, "stage3.resolution": 32}


def count_step_syncs(monkeypatch, cuda) -> dict:
    """Record host-device synchronisations and blocking host-to-device copies per training step (after
    the first, which makes the device-side caches), and per metrics read of a logging step."""
    from dreamflow.training.trainer import StageTrainer

    counts: dict = {}
    train_step, read_checked = StageTrainer.train_step, StageTrainer.read_checked

    def counted(function, kind):
        def wrapper(self, *args):
            if kind == "read" or self.step >= 1:
                cuda.syncs.clear()
                cuda.h2d.clear()
                cuda.counting = True
            try:
                return function(self, *args)
            finally:
                if cuda.counting:
                    counts.setdefault((self.stage, kind), []).append((list(cuda.syncs), list(cuda.h2d)))
                cuda.counting = False
        return wrapper

    monkeypatch.setattr(StageTrainer, "train_step", counted(train_step, "step"))
    monkeypatch.setattr(StageTrainer, "read_checked", counted(read_checked, "read"))
    return counts


@pytest.mark.parametrize("method", ["apfo", "sds"])
def test_all_stages_on_a_simulated_cuda_device_never_mix_devices(tmp_path, monkeypatch, method):
    """Every step a GPU user runs: stages 1-3 (training, previews, exports), extraction and evaluation;
    and a training step that never makes the host wait for the GPU more than MAX_SYNCS_PER_STEP."""
    from dreamflow.evaluate import toy_metrics
    from dreamflow.evaluate.metrics import AssetFiles, evaluate_asset
    from dreamflow.export.extract import extract_mesh

    from .conftest import TOY_CLIP

    # Three steps, shaded from the first (the shading path's compaction is counted too).
    config = load_config("config/toy.yaml", {**TINY, "guidance.method": method, "shading.albedo_ratio": 0.0,
                                             "stage1.shading_start_step": 0,
                                             **{f"stage{i}.iterations": 3 for i in (1, 2, 3)}})
    with simulated_cuda(monkeypatch) as cuda:
        counts = count_step_syncs(monkeypatch, cuda)
        inputs = {"stage1": StageInputs(), "stage2": StageInputs(tmp_path / "stage1" / "ckpt.pt", tmp_path / "coarse.obj"),
                  "stage3": StageInputs(tmp_path / "stage2" / "ckpt.pt")}
        for name, spec in STAGES.items():
            run_stage(spec, config, "a red cube", tmp_path / name, RunLogger(tmp_path / name), inputs[name])
            if name == "stage1":
                extract_mesh(tmp_path / "stage1" / "ckpt.pt", config, tmp_path / "coarse.obj")
        files = AssetFiles({name: tmp_path / name / "ckpt.pt" for name in STAGES}, tmp_path / "coarse.obj")
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
    for stage, limit in MAX_SYNCS_PER_STEP.items():
        steps = counts[(stage, "step")]
        assert len(steps) == 2, (stage, len(steps))
        for syncs, copies in steps:
            assert len(syncs) <= limit and not copies, (stage, list(map(str, syncs)), list(map(str, copies)))
        # A logging or checkpoint step reads the metrics and the NaN guard's flags at once.
        assert all(len(syncs) == 1 and not copies for syncs, copies in counts[(stage, "read")]), stage
    assert metrics["stage3_iou"] > 0 and metrics["backend"]["hash_grid"] == "torch"
    assert rendered == [(2, 32, 1)] * 3 and "stage3_iou" not in other  # 2 views, 32 px, 1 ray per pixel
    width, height = Image.open(tmp_path / "other" / "stages.png").size
    assert width == 3 * 32 and 2 * 32 < height <= 2 * 32 + 30  # 3 stages, 2 views, a header band of labels


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
    guidance = make_guidance(toy_prior_fp16, config.guidance_for(config.stage1), 20, seed=0)
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
