"""Throughput per stage, method and back end: s/iteration against the method's floor, host-device
synchronisations, UNet share of the time, peak memory.

The floor is what the method itself costs: the same iteration with random images in place of the
3D model's renders (VAE encode with gradients, the method's UNet calls and its LoRA step, the
backward to the images). Everything above it is the 3D model, its renderer and their back ends.
On CUDA, synchronisations are counted with torch's sync debug mode (every op that makes the host
wait warns once), per iteration, with the lines that cause them (`sync_sites`).

Each (stage, method) is measured in its own process so that peak memory (RSS, and CUDA's
`max_memory_allocated` on a GPU) belongs to that measurement alone. Stages 2-3 are timed on an
icosphere with the extraction's face budget, so no stage-1 result is needed. With a real or
architecture-only prior (`--set prior.architecture_only=true` on a GPU with config/paper.yaml)
the same command gives the time per asset at the paper's iteration counts.

    dreamflow perf throughput --config config/pipeline/toy.yaml [--stages stage1] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import pandas as pd
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class UNetTimer:
    """Wraps the prior's UNet forward to count its calls and the seconds spent in them."""

    def __init__(self, unet, device: torch.device):
        self.calls, self.seconds = 0, 0.0
        self.forward = unet.forward

        def timed(*args, **kwargs):
            _sync(device)
            begin = time.perf_counter()
            result = self.forward(*args, **kwargs)
            _sync(device)
            self.seconds += time.perf_counter() - begin
            self.calls += 1
            return result

        unet.forward = timed


def _mesh_model(config):
    import trimesh

    from dreamflow.geometry.mesh import TexturedMesh

    # The smallest icosphere with at least the face budget (20 * 4**k faces), decimated down to it.
    subdivisions = next(k for k in range(12) if 20 * 4**k >= config.extract.target_faces)
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.45)
    if len(sphere.faces) > config.extract.target_faces:
        sphere = sphere.simplify_quadric_decimation(face_count=config.extract.target_faces)
    return TexturedMesh(torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces), config)


def floor_step(trainer) -> None:
    """One iteration of the method alone: random images at the stage's render size instead of renders."""
    from dreamflow.render.cameras import sample_cameras

    c = trainer.stage_config
    device = trainer.prior.device_
    size = c.resolution * c.supersample
    images = torch.rand(c.batch_size, 3, size, size, device=device, generator=trainer.device_generator)
    images = torch.nn.functional.avg_pool2d(images, c.supersample).requires_grad_(True)
    latents = trainer.prior.encode_images(images)
    cameras = sample_cameras(trainer.config.camera, c.batch_size, trainer.device_generator, device)
    text = trainer.prior.text_embeddings(trainer.prompt, cameras)
    trainer.guidance(latents, text, cameras.conditioning(), trainer.step).loss.backward()


def count_syncs(step, device: torch.device, repeats: int) -> float:
    """Host-device synchronisations per call of `step` (CUDA: torch's sync debug mode; NaN elsewhere)."""
    return sync_sites(step, device, repeats)[0]


def sync_sites(step, device: torch.device, repeats: int) -> tuple[float, dict[str, float]]:
    """Synchronisations per call of `step` and where they happen ("file:line" of the Python code that
    called the synchronising op, per call), with torch's sync debug mode, which warns at every
    blocking device-to-host copy, stream or device synchronisation. NaN and {} off CUDA."""
    if device.type != "cuda":
        return float("nan"), {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(repeats):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    sites: dict[str, float] = {}
    for w in syncs:
        site = f"{w.filename.split('dreamflow/')[-1]}:{w.lineno}"
        sites[site] = sites.get(site, 0.0) + 1 / repeats
    return len(syncs) / repeats, sites


def _timed(step, steps: int, device: torch.device) -> float:
    _sync(device)
    begin = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - begin) / steps


def measure(config_path: str, stage: str, method: str, steps: int = 20, warmup: int = 3,
            overrides: dict | None = None) -> dict:
    """Time `steps` training iterations of one stage after `warmup` untimed ones (this process), then
    the method's floor over as many iterations, and count synchronisations per iteration."""
    from dreamflow.config import load_config
    from dreamflow.training.logger import RunLogger
    from dreamflow.training.stages import STAGES as SPECS
    from dreamflow.training.stages import StageInputs
    from dreamflow.training.trainer import build_trainer

    config = load_config(config_path, {**(overrides or {}), "guidance.method": method})
    spec = SPECS[stage]
    # Stages that start from an earlier stage's output are timed on a stand-in mesh instead.
    make_model = (lambda: _mesh_model(config)) if spec.inputs else (lambda: spec.build_model(config, StageInputs()))
    with tempfile.TemporaryDirectory() as folder:
        trainer = build_trainer(spec, config, "a red cube", folder, RunLogger(folder), make_model)
        device = trainer.prior.device_
        for trainer.step in range(warmup):
            trainer.train_step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        timer = UNetTimer(trainer.prior.unet, device)

        def step():
            trainer.train_step()
            trainer.step += 1

        trainer.step = warmup
        seconds = _timed(step, steps, device)
        unet_calls, unet_seconds = timer.calls, timer.seconds
        peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
        syncs = count_syncs(step, device, min(steps, 3))
        floor = _timed(lambda: floor_step(trainer), steps, device)
    stage_config = spec.stage_config(config)
    return {"stage": stage, "method": method, "resolution": stage_config.resolution,
            "backend": ", ".join(f"{k}={v}" for k, v in trainer.model.backend().items()),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "iterations_per_second": 1 / seconds, "seconds_per_iteration": seconds,
            "floor_seconds_per_iteration": floor, "over_floor": seconds / floor,
            "syncs_per_iteration": syncs,
            "unet_calls_per_iteration": unet_calls / steps, "unet_share": unet_seconds / (seconds * steps),
            "stage_iterations": stage_config.iterations, "stage_seconds": seconds * stage_config.iterations,
            "unet_floor_seconds": unet_seconds / steps * stage_config.iterations,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_gpu_mb": peak_gpu}


def measure_throughput(config_path: str, stages: tuple[str, ...] | None = None,
                       steps: int = 20, overrides: dict | None = None) -> pd.DataFrame:
    """Every (stage, method) measured in a fresh process; one row each."""
    from dreamflow.guidance import available
    from dreamflow.stages import STAGES

    rows = []
    for stage in stages or tuple(STAGES):
        for method in available():
            command = [sys.executable, "-m", "dreamflow.perf.throughput", "--config", str(config_path),
                       "--worker", stage, method, "--steps", str(steps), "--overrides", json.dumps(overrides or {})]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"throughput of {stage}/{method} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"[throughput] {stage} {method}: {rows[-1]['seconds_per_iteration']:.3f} s/it", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The table of every (stage, method), each measured in its own process (`--worker`: one row, as JSON)."""
    from dreamflow.config import parse_overrides
    from dreamflow.stages import STAGES

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/pipeline/toy.yaml")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), help="default: every stage")
    parser.add_argument("--steps", type=int, default=20, help="timed iterations per row")
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)  # JSON, the workers' overrides
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides) | parse_overrides(args.set)
    if args.worker:
        print(json.dumps(measure(args.config, *args.worker, args.steps, overrides=overrides)))
        return 0
    table = measure_throughput(args.config, tuple(args.stages or STAGES), args.steps, overrides)
    print(table.round(3).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
