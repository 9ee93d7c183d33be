"""GPU code paths checked on the CPU: device consistency (simulated CUDA) and half precision."""

import logging
import math
import sys
import types
import warnings

import pytest
import torch
from PIL import Image

from dreamflow.config import load_config
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import STAGES, StageInputs, run_stage

from .simulated_cuda import simulated_cuda

# A training step may wait for the GPU this often, by either count (logging and checkpoint steps
# excluded: those read everything at once). Measured 0 in every stage since the renderers compact
# into buffers sized on the host (LaggedCapacity); it was 5 (10 on shaded steps) in stage 1 and 7 in
# stages 2-3 before, counting each CUDA bincount as its 2 reads. The goal had been <= 2 and <= 4.
MAX_SYNCS_PER_STEP = {"stage1": 0, "stage2": 0, "stage3": 0}


@pytest.fixture
def stand_in_extensions(monkeypatch):
    """tinycudann and nvdiffrast modules that import (as on a GPU machine with the extensions built)
    but would fail if used on the simulated device: a tinycudann encoding of 8 parameters (a layout
    that disagrees) and an nvdiffrast whose CUDA context cannot be made."""
    tcnn = types.ModuleType("tinycudann")

    class Encoding(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.params = torch.nn.Parameter(torch.zeros(8))

    tcnn.Encoding = Encoding
    nvdiffrast, nvdiffrast_torch = types.ModuleType("nvdiffrast"), types.ModuleType("nvdiffrast.torch")

    def no_context(*args, **kwargs):
        raise RuntimeError("stand-in nvdiffrast: no CUDA context on this machine")

    nvdiffrast_torch.RasterizeCudaContext = no_context
    nvdiffrast.torch = nvdiffrast_torch
    for name, module in (("tinycudann", tcnn), ("nvdiffrast", nvdiffrast), ("nvdiffrast.torch", nvdiffrast_torch)):
        monkeypatch.setitem(sys.modules, name, module)

TINY = {"device": "cuda", "prior.dtype": "float32", "refiner_prior.dtype": "float32", "rasterizer": "auto",
        "nerf.encoding.backend": "auto", "volume.samples_per_ray": 8, "guidance.apfo.num_timesteps": 2,
        "extract.grid_resolution": 32, "extract.target_faces": 300, "export.texture_size": 32, "export.views": 1,
        **{f"stage{i}.{key}": value for i in (1, 2, 3) for key, value in
           {"iterations": 2, "preview_views": 1, "turntable_views": 2, "checkpoint_every": 1}.items()},
        "stage1.resolution": 16, "stage2.resolution": 16, "stage3.resolution": 32}


def count_step_syncs(monkeypatch, cuda) -> dict:
    """Record host-device synchronisations (both counts) and blocking host-to-device copies per
    training step (after the first, which makes the device-side caches and sizes its buffers), and
    per metrics read of a logging step: {(stage, "step" | "read"): [(syncs, copies, aten_syncs), ...]}."""
    from dreamflow.training.trainer import StageTrainer

    counts: dict = {}
    train_step, read_checked = StageTrainer.train_step, StageTrainer.read_checked

    def counted(function, kind):
        def wrapper(self, *args):
            if kind == "step" and self.step < 1:
                return function(self, *args)
            with cuda.counting_syncs():
                try:
                    return function(self, *args)
                finally:
                    counts.setdefault((self.stage, kind), []).append(
                        (list(cuda.syncs), list(cuda.h2d), list(cuda.aten_syncs)))
        return wrapper

    monkeypatch.setattr(StageTrainer, "train_step", counted(train_step, "step"))
    monkeypatch.setattr(StageTrainer, "read_checked", counted(read_checked, "read"))
    return counts


@pytest.mark.parametrize("method", ["apfo", "sds"])
def test_all_stages_on_a_simulated_cuda_device_never_mix_devices(tmp_path, monkeypatch, stand_in_extensions, method):
    """Every step a GPU user runs: stages 1-3 (training, previews, exports), extraction and evaluation;
    and a training step that never makes the host wait for the GPU more than MAX_SYNCS_PER_STEP.
    The CUDA extensions import (stand-ins): the simulation must still take the torch back ends."""
    from dreamflow.evaluate import toy_metrics
    from dreamflow.evaluate.metrics import AssetFiles, evaluate_asset
    from dreamflow.export.extract import extract_mesh

    from .conftest import TOY_CLIP, TOY_CLIP_MODEL

    # Three steps, shaded from the first (the shading path's compaction is counted too).
    config = load_config("config/pipeline/toy.yaml", {**TINY, "guidance.method": method, "shading.albedo_ratio": 0.0,
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
        suite = tmp_path / "suite.txt"  # R-precision needs 2 captions or more
        suite.write_text("a red cube\na DSLR photo of a hamburger\n")
        metrics = evaluate_asset(config, "a red cube", files, tmp_path / "metrics.json", TOY_CLIP_MODEL,
                                 str(TOY_CLIP), 1, [], suite_prompts=str(suite))
        # A prompt with no ground truth renders only the two views of its stage strip, not all
        # 16 held-out views, at pixel centres (the paper rehearsal spent minutes rendering them).
        rendered = []
        render_like_truth = toy_metrics.render_like_truth
        monkeypatch.setattr(toy_metrics, "render_like_truth",
                            lambda model, cameras, *a: rendered.append((len(cameras), *a)) or render_like_truth(model, cameras, *a))
        other = evaluate_asset(config, "a DSLR photo of a hamburger", files, tmp_path / "other" / "metrics.json",
                               TOY_CLIP_MODEL, str(TOY_CLIP), 1, [], suite_prompts=str(suite))
    assert not cuda.violations, "\n".join(list(dict.fromkeys(map(str, cuda.violations)))[:12])
    for stage, limit in MAX_SYNCS_PER_STEP.items():
        steps = counts[(stage, "step")]
        assert len(steps) == 2, (stage, len(steps))
        for syncs, copies, aten_syncs in steps:
            assert len(syncs) <= limit and len(aten_syncs) <= limit and not copies, (
                stage, list(map(str, syncs)), list(map(str, aten_syncs)), list(map(str, copies)))
        # A logging or checkpoint step reads the metrics and the NaN guard's flags at once.
        assert all(len(syncs) == 1 and len(aten) == 1 and not copies
                   for syncs, copies, aten in counts[(stage, "read")]), (stage, counts[(stage, "read")])
    assert metrics["stage3_iou"] > 0 and metrics["backend"] == {"hash_grid": "torch", "rasterizer": "torch"}
    assert "tinycudann" in sys.modules  # the stand-ins were importable throughout
    assert rendered == [(2, 32, 1)] * 3 and "stage3_iou" not in other  # 2 views, 32 px, 1 ray per pixel
    width, height = Image.open(tmp_path / "other" / "stages.png").size
    assert width == 3 * 32 and 2 * 32 < height <= 2 * 32 + 30  # 3 stages, 2 views, a header band of labels


class _Scatter(torch.autograd.Function):
    """A custom Function whose backward reads a size on the host (CUDA bincount: 2 reads)."""

    @staticmethod
    def forward(ctx, values, index):
        ctx.save_for_backward(index)
        return values * 2

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return torch.bincount(index, grad, minlength=grad.shape[0]).to(grad.dtype) * 0 + grad * 2, None


# (construct, host waits on CUDA): each is counted alone, by both counts.
WAITS = [
    ("float(x.sum())", 1), ("x.sum().item()", 1), ("bool(x.sum() > 0)", 1), ("int(index[0])", 1),
    ("x.tolist()", 1), ("x.nonzero()", 1), ("torch.where(x > 0.5)", 1), ("x[x > 0.5]", 1),
    ("x.masked_select(x > 0.5)", 1), ("torch.unique(index)", 1), ("torch.bincount(index)", 2),
    ("torch.repeat_interleave(x, index)", 1), ("x.cpu()", 1), ("y = x.clone(); y[x > 0.5] = 0", 1),
    ("torch.cuda.synchronize()", 1), ("(p * 1)[p > 0.5].sum().backward()", 2),  # forward index + backward index_put_
    ("_Scatter.apply(p, index).sum().backward()", 2),  # inside a custom Function's backward
    # No wait: fixed sizes, device-side selections, a non-blocking copy read after its event.
    ("torch.nonzero_static(x > 0.5, size=4)", 0), ("x[index]", 0), ("torch.where(x > 0.5, x, 0)", 0),
    ("torch.repeat_interleave(x, index, output_size=7)", 0), ("x.to('cpu', non_blocking=True)", 0),
    ("compact_indices(x > 0.5, 4)", 0), ("(p * 2).index_add(0, index, p).sum().backward()", 0),
]


@pytest.mark.parametrize("construct, waits", WAITS, ids=[c for c, _ in WAITS])
def test_both_sync_counts_see_each_known_wait(monkeypatch, construct, waits):
    """The two counts (Python API, aten dispatcher) check each other: each construct, known to make
    the host wait for a CUDA device `waits` times (or not at all), is counted so by both."""
    from dreamflow.device import compact_indices

    with simulated_cuda(monkeypatch) as cuda:
        x = torch.rand(8, device="cuda")
        index = torch.arange(8, device="cuda") % 3
        p = torch.rand(8, device="cuda").requires_grad_()
        with cuda.counting_syncs():
            exec(construct, {"torch": torch, "compact_indices": compact_indices, "_Scatter": _Scatter,
                             "x": x, "index": index, "p": p})
        api, aten = list(map(str, cuda.syncs)), list(map(str, cuda.aten_syncs))
    if construct.endswith("backward()") and "[" in construct:
        assert (len(api), len(aten)) == (1, 2), (api, aten)  # the API count cannot see autograd's own backward
    else:
        assert len(api) == waits and len(aten) == waits, (api, aten)


def test_sizes_come_from_earlier_counts_without_waiting(monkeypatch):
    """LaggedCapacity: exact on the CPU; on CUDA one read for a new shape, then none; an overflow
    is warned about (the entries past the size are left out) and the next size covers it."""
    from dreamflow.device import LaggedCapacity, compact_indices

    mask = torch.rand(1000, generator=torch.Generator().manual_seed(0)) > 0.7
    sizes = LaggedCapacity("test")
    assert sizes.sizes(mask.sum().reshape(1), [1000], key=1000) == [int(mask.sum())]
    assert torch.equal(compact_indices(mask, int(mask.sum())), mask.nonzero().squeeze(1))
    with simulated_cuda(monkeypatch) as cuda:
        on_device = mask.to("cuda")
        with cuda.counting_syncs():
            first = sizes.sizes(on_device.sum().reshape(1), [1000], key=1000)
        assert first == [int(mask.sum())] and len(cuda.syncs) == 1 and len(cuda.aten_syncs) == 1
        with cuda.counting_syncs():
            second, = sizes.sizes(on_device.sum().reshape(1), [1000], key=1000)
            index = compact_indices(on_device, second)
        assert not cuda.syncs and not cuda.aten_syncs
        assert first[0] < second <= 1.5 * first[0] * 1.125 and torch.equal(index[:first[0]].cpu(), mask.nonzero()[:, 0])
        assert (index[first[0]:] == 1000).all()  # spare slots
        everything = torch.ones(1000, dtype=torch.bool, device="cuda")
        sizes.sizes(everything.sum().reshape(1), [1000], key=1000)  # 1000 entries into a smaller buffer
        with pytest.warns(UserWarning, match="did not fit the buffer"):
            third, = sizes.sizes(everything.sum().reshape(1), [1000], key=1000)
        assert third == 1000 and sizes.overflows == 1


def test_compacted_renders_match_the_cpu_ones(monkeypatch):
    """The renderers' compactions with spare slots (CUDA sizes) give the CPU's exact images and
    gradients: the volume renderer (occupied and shaded samples) and the torch rasteriser (large
    faces, silhouette band, covered pixels) on a 12-face box whose faces span many pixels."""
    import trimesh

    from dreamflow.config import NeRFConfig, ShadingConfig, VolumeRenderConfig
    from dreamflow.geometry.nerf import NeRFField
    from dreamflow.render.cameras import CameraConfig, sample_cameras
    from dreamflow.render.rasterize import TorchRasterizer
    from dreamflow.render.volume import VolumeRenderer

    cameras = sample_cameras(CameraConfig(), 2, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    field = NeRFField(NeRFConfig(radius=1.0))
    box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
    vertices, faces = torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces)

    def render(device: str):
        renderer = VolumeRenderer(field, VolumeRenderConfig(samples_per_ray=16), ShadingConfig()).to(device)
        rasterizer = TorchRasterizer()
        light = torch.tensor([[0.0, 0.0, 1.0]] * 2, device=device)
        outputs = []
        for _ in range(2):  # on CUDA the second call has spare slots (sizes from the first's counts)
            renderer.zero_grad()
            volume = renderer(cameras.to(device), 12, "diffuse", light=light)
            points = vertices.clone().to(device)
            points.requires_grad_()  # (in place: under the simulation the returned tensor is a new view)
            raster = rasterizer(points, faces.to(device), points, cameras.to(device), 24, lambda a, b: a.sigmoid(),
                                torch.ones(3, device=device))
            (volume.rgb.square().sum() + raster.rgb.square().sum() + raster.alpha.sum()).backward()
            grads = [p.grad.clone() for p in renderer.parameters()] + [points.grad.clone()]
            outputs.append([t.detach().cpu().as_subclass(torch.Tensor)
                            for t in (volume.rgb, volume.opacity, raster.rgb, raster.alpha, *grads)])
        buffers = (renderer.occupied_buffer, renderer.shaded_buffer, rasterizer.large_buffer, rasterizer.band_buffer,
                   rasterizer.covered_buffer)
        return outputs, [next(iter(b._observed.values())).recent[0] for b in buffers if b._observed]

    cpu, _ = render("cpu")
    with simulated_cuda(monkeypatch) as cuda:
        simulated, first_counts = render("cuda")
    assert not cuda.violations, list(map(str, cuda.violations))[:5]
    # Every compaction had entries (the large faces too), so the second call's larger sizes left spare slots.
    assert len(first_counts) == 5 and all(count > 0 for counts in first_counts for count in counts), first_counts
    for exact, spared in zip(cpu, simulated):
        for a, b in zip(exact, spared):
            assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert cpu[0][4].abs().sum() > 0 and cpu[0][-1].abs().sum() > 0  # gradients reach the field and the vertices


def test_extension_import_errors_of_any_kind_mean_unavailable(tmp_path, monkeypatch, caplog):
    """tinycudann raises RuntimeError, not ImportError, when none of its built architectures matches
    the GPU: the probe says unavailable, logs why, and `auto` takes the torch hash grid with a warning."""
    from dreamflow.config import HashGridConfig
    from dreamflow.device import TORCH_BACKENDS_ENV, cuda_extension_problem
    from dreamflow.geometry.hashgrid import HashGridEncoding, tcnn_available

    package = tmp_path / "tinycudann"
    package.mkdir()
    (package / "__init__.py").write_text('raise RuntimeError("Could not find compatible tinycudann extension for compute capability 90.")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tinycudann", raising=False)
    monkeypatch.delenv(TORCH_BACKENDS_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="dreamflow.device"):
        assert not tcnn_available()
    assert "RuntimeError: Could not find compatible tinycudann" in cuda_extension_problem("tinycudann")
    assert "compute capability 90" in caplog.text
    with pytest.warns(UserWarning, match="tinycudann is not usable .*compute capability 90"):
        assert HashGridEncoding(HashGridConfig(n_levels=2, log2_hashmap_size=10)).backend == "torch"
    monkeypatch.setenv(TORCH_BACKENDS_ENV, "1")  # forced torch back ends: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert HashGridEncoding(HashGridConfig(n_levels=2, log2_hashmap_size=10)).backend == "torch"


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

    config = load_config("config/pipeline/toy.yaml")
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
