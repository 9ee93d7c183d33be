"""`dreamflow evaluate`: one asset's metrics.json (CLIP, toy ground truth, timings, back end)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from dreamflow.config import RunConfig
from dreamflow.evaluate.retrieval import (
    CaptionSet,
    ClipModel,
    RetrievalProtocol,
    caption_set,
    clip_similarities_with,
    render_modes,
    score_retrieval,
)
from dreamflow.io import atomic_write_bytes, load_checkpoint
from dreamflow.prompts import read_prompts
from dreamflow.render.cameras import orbit_cameras
from dreamflow.toyworld.render import TRUTH_SUPERSAMPLE, render_scene
from dreamflow.toyworld.scenes import parse_toy_prompt
from dreamflow.training.stages import FINAL_STAGE, STAGES
from dreamflow.training.usage import read_stage_usage

STRIP_ROWS = (0, 5)  # the held-out views shown in stages.png
# A stage's usage record (dreamflow.training.usage) -> its flat column in metrics.json, `{stage}_{column}`.
USAGE_COLUMNS = {"wall_seconds": "wall_seconds", "seconds_per_iteration": "seconds_per_iteration",
                 "peak_gpu_memory_gb": "peak_gpu_gb", "iterations": "iterations"}


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Snakemake's benchmark TSV: wall seconds and peak memory of one rule's job."""
    with open(path) as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    if not rows:
        return {}
    row = rows[-1]
    as_float = lambda key: float(row[key]) if row.get(key) not in (None, "", "-", "NA") else float("nan")  # noqa: E731
    return {"seconds": as_float("s"), "max_rss_mb": as_float("max_rss"), "cpu_time": as_float("cpu_time")}


@torch.no_grad()
def clip_similarities(images: torch.Tensor, prompts: list[str], model_name: str, pretrained: str) -> torch.Tensor:
    """Cosine similarity [views, prompts] between renders [B,H,W,3] and prompts."""
    from dreamflow.evaluate.toy_clip import load_clip

    return clip_similarities_with(load_clip(model_name, pretrained), images, prompts)


@dataclass(frozen=True)
class AssetFiles:
    """Every file `evaluate` reads (the workflow rule declares each of them)."""

    checkpoints: dict[str, Path]  # stage name -> its checkpoint, every stage of the stage table
    mesh: Path | None = None  # mesh extracted from stage 1 (its Chamfer distance)

    @property
    def folder(self) -> Path:
        """The asset's folder, where its stage folders are."""
        return self.checkpoints[FINAL_STAGE].parent.parent


@torch.no_grad()
def evaluate_asset(config: RunConfig, prompt: str, files: AssetFiles, out: str | Path, clip_model: str,
                   clip_pretrained: str, views: int, benchmarks: list[str], method: str | None = None,
                   variant: str = "base", suite_prompts: str | None = None, detail_views: int = 16,
                   retrieval: RetrievalProtocol | None = None, prompt_id: str | None = None,
                   group: str | None = None) -> dict:
    """One asset's metrics.json: the CLIP score (`clip_model`, mean over `views` orbit views), CLIP
    R-precision by `retrieval`'s protocol (default: that model, colour and textureless renders, among
    the suite's prompts), the toy world's ground-truth metrics per stage, and time and memory (the
    stages' own records and Snakemake's `benchmarks`). `prompt_id` and `group` (the prompt's id in its
    suite file and its suite group) are recorded for the suite's tables."""
    from dreamflow.evaluate.toy_clip import load_clip
    from dreamflow.evaluate.toy_metrics import (
        chamfer_distance,
        held_out_cameras,
        image_metrics,
        render_like_truth,
    )

    metrics: dict = {"prompt": prompt, "prompt_id": prompt_id, "group": group,
                     "method": method or config.guidance.method, "variant": variant, "seed": config.seed,
                     "asset": str(files.folder), "status": "ok"}
    missing = [name for name in STAGES if name not in files.checkpoints]
    if missing:
        raise ValueError(f"evaluation needs every stage's checkpoint; missing {missing}")
    score_model = ClipModel(clip_model, clip_pretrained)
    protocol = retrieval or RetrievalProtocol((score_model,))
    captions = retrieval_captions(prompt, suite_prompts, protocol)  # before the checkpoints: fails fast
    states = {name: load_checkpoint(files.checkpoints[name]) for name in STAGES}
    models = {name: spec.load_trained(states[name], config) for name, spec in STAGES.items()}
    final = models[FINAL_STAGE]
    metrics["backend"] = {key: value for state in states.values() for key, value in state.get("backend", {}).items()}
    resolution = STAGES[FINAL_STAGE].stage_config(config).resolution
    # Each model loaded once: the CLIP score's is usually R-precision's first.
    clips = {model: load_clip(model.model, model.pretrained)
             for model in dict.fromkeys((score_model, *protocol.models))}
    renders = final.render_views(orbit_cameras(config.camera, views), resolution)
    metrics["clip_model"] = score_model.name
    metrics["clip_score"] = 100 * float(clip_similarities_with(clips[score_model], renders.rgb, [prompt]).mean())
    metrics |= r_precision(final, config, resolution, prompt, captions, protocol, clips)
    scene = parse_toy_prompt(prompt)
    cameras, strip_rows, supersample = held_out_cameras(config.camera, detail_views), STRIP_ROWS, TRUTH_SUPERSAMPLE
    if scene is None:  # nothing to score: only the strip's views, at pixel centres (paper sizes: minutes)
        strip_views = strip_indices(STRIP_ROWS, detail_views)
        cameras, strip_rows, supersample = cameras[list(strip_views)], tuple(range(len(strip_views))), 1
    # Every stage is scored at the final resolution: colour error grows with resolution (more
    # edge pixels), so scores at each stage's own resolution would not compare across stages.
    # Sampled as the truth is (2 rays per pixel side): the detail measures compare spectra.
    views = {stage: render_like_truth(model, cameras, resolution, supersample) for stage, model in models.items()}
    truth = render_scene(scene, cameras, resolution) if scene is not None else None
    save_stage_strip(views, truth, Path(out).parent / "stages.png", strip_rows)
    if scene is not None:
        per_stage = {stage: image_metrics(scene, cameras, view.opacity, view.albedo, resolution, truth)
                     for stage, view in views.items()}
        for stage, model in models.items():
            surface = model.to_trimesh()
            if surface is not None:
                per_stage[stage] |= chamfer_distance(surface, scene)
            elif files.mesh is not None:  # a field: the mesh extracted from it
                import trimesh

                per_stage[stage] |= chamfer_distance(trimesh.load(files.mesh, process=False, force="mesh"), scene)
        metrics["toy"] = per_stage
        for stage, values in per_stage.items():
            for key, value in values.items():
                metrics[f"{stage}_{key}"] = value
    metrics |= time_and_memory(files, benchmarks)
    atomic_write_bytes(out, lambda stream: stream.write(json.dumps(metrics, indent=2).encode()))
    return metrics


def retrieval_captions(prompt: str, suite_prompts: str | None, protocol: RetrievalProtocol) -> CaptionSet:
    """The captions R-precision retrieves among: the protocol's caption file and the suite's prompts
    (`suite_prompts`, with `prompt`); a ConfigError when fewer than 2 (R@1 100 % by construction)."""
    suite = read_prompts(suite_prompts) if suite_prompts else [prompt]
    if prompt not in suite:
        suite.append(prompt)
    return caption_set(suite, protocol.captions)


def r_precision(final, config: RunConfig, resolution: int, prompt: str, captions: CaptionSet,
                protocol: RetrievalProtocol, clips: dict[ClipModel, tuple]) -> dict:
    """metrics.json's R-precision entries: per CLIP model and render mode the true caption's rank, the
    hit and its CLIP score (`r_precision`), and the first model's and mode's rank and hit as the
    headline (`clip_rank`, `r_at_1`)."""
    renders = render_modes(final, config.nerf.radius, resolution, protocol)
    results = score_retrieval(renders, prompt, captions.captions, {model: clips[model] for model in protocol.models})
    view = {"elevation": protocol.elevation, "azimuth": protocol.azimuth, "distance": protocol.distance(config.nerf.radius),
            "distance_in_radii": protocol.distance_in_radii, "fovy": protocol.fovy, "resolution": resolution}
    entry = {"captions": captions.as_dict(), "description": captions.describe(), "view": view,
             "models": [model.name for model in protocol.models], "modes": list(protocol.modes), "results": results}
    return {"r_precision": entry, "clip_rank": results[0]["rank"], "r_at_1": results[0]["hit"]}


def time_and_memory(files: AssetFiles, benchmarks: list[str]) -> dict:
    """Each stage's own record (device, wall time, s/iteration, peak GPU memory) and Snakemake's
    benchmark of each step (wall seconds, peak RSS), as `stages`/`timings` and flat columns."""
    metrics: dict = {}
    usage = {name: read_stage_usage(path.parent) for name, path in files.checkpoints.items()}
    metrics["stages"] = usage
    timings = {Path(b).stem: read_benchmark(b) for b in benchmarks if Path(b).exists()}
    metrics["timings"] = timings
    metrics["seconds_total"] = sum(t.get("seconds", 0.0) for t in timings.values())
    for step, values in timings.items():
        metrics[f"seconds_{step}"] = values.get("seconds")
    for stage, record in usage.items():
        for key, column in USAGE_COLUMNS.items():
            value = record.get(key)
            metrics[f"{stage}_{column}"] = float("nan") if value is None else value
        metrics[f"{stage}_device"] = record.get("device")
        rss = timings.get(stage, {}).get("max_rss_mb")
        metrics[f"{stage}_max_rss_gb"] = float("nan") if rss is None else rss / 1024
    devices = list(dict.fromkeys(record["device"] for record in usage.values() if record.get("device")))
    metrics["device"] = " + ".join(devices) if devices else "unknown (the stages left no usage record)"
    return metrics


def strip_indices(rows: tuple[int, ...], n_views: int) -> tuple[int, ...]:
    """The strip's view indices among `n_views` (fewer views than (0, 5): wrap, without repeats)."""
    return tuple(dict.fromkeys(row % n_views for row in rows))


def save_stage_strip(views: dict, truth: dict | None, path: Path, rows: tuple[int, ...] = STRIP_ROWS) -> Path:
    """stages.png: two held-out views (rows) of the truth (toy prompts), stage 1, 2 and 3 (columns),
    all rendered at the final resolution, so detail the first stage cannot hold is visible; a header
    band names each column."""
    import numpy as np

    columns = [] if truth is None else [truth["rgb"]]
    columns += [view.rgb.cpu().float() for view in views.values()]
    labels = ([] if truth is None else ["truth"]) + [STAGES[name].label for name in views]
    rows = strip_indices(rows, len(columns[0]))
    grid = torch.cat([torch.cat([column[row] for column in columns], dim=1) for row in rows], dim=0)
    pixels = (grid.clamp(0, 1) * 255).round().byte().numpy()
    image = label_columns(Image.fromarray(np.ascontiguousarray(pixels)), labels)
    atomic_write_bytes(path, lambda stream: image.save(stream, format="PNG"))
    return path


def label_columns(image: Image.Image, labels: list[str]) -> Image.Image:
    """`image` with a white header band naming its equal-width columns."""
    from PIL import ImageDraw, ImageFont

    width = image.width // len(labels)
    size = max(10, min(18, width // 7))
    band = size + 8
    out = Image.new("RGB", (image.width, image.height + band), "white")
    out.paste(image, (0, band))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=size)
    for i, label in enumerate(labels):
        draw.text((i * width + width / 2, band / 2), label, fill="black", font=font, anchor="mm")
    return out
