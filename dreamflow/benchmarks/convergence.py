"""Convergence race on the toy world: APFO against SDS and VSD through the same stages.

Every entry (method or variant, prompt, seed) runs stage 1, mesh extraction, stage 2 and stage 3
from the same seed and the same initialisation, and scores held-out views against the known scene
every `eval_every` iterations: silhouette IoU and colour error (all stages), Chamfer distance
(mesh stages) and the toy CLIP score. Evaluation time is excluded from the timings. Finished
stages are cached under `work_dir` and reused while their settings are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from dreamflow.config import RunConfig, load_config, to_dict
from dreamflow.evaluate.toy_metrics import chamfer_distance, held_out_cameras, image_metrics, render_like_truth
from dreamflow.guidance import available
from dreamflow.prompts import slugify
from dreamflow.toyworld.scenes import ToyScene, parse_toy_prompt
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import SHARED_BLOCKS, STAGES, StageInputs, run_stage

BASELINES = ("sds", "vsd")  # the published methods APFO is compared with (paired ratios, verdict)


@dataclass
class RaceConfig:
    """What the race runs and what counts as converged."""

    methods: tuple[str, ...] = field(default_factory=available)
    prompts: tuple[str, ...] = ("a red cube", "a blue sphere", "a yellow cone")
    seeds: tuple[int, ...] = (0, 1, 2)
    stages: tuple[str, ...] = tuple(STAGES)
    mesh_seeds: tuple[int, ...] | None = None  # seeds that also run stages 2-3 (default: every seed)
    eval_every: int = 25
    eval_views: int = 8
    overrides: dict = field(default_factory=dict)  # applied to every entry
    # label -> {"guidance.method": ..., other dotted overrides}: e.g. APFO with another schedule
    variants: dict[str, dict] = field(default_factory=dict)
    iou_threshold: float = 0.8
    colour_threshold: float = 0.3
    clip_model: str | None = "dreamflow-toy-clip"
    clip_pretrained: str | None = "models/toy-clip/open_clip_model.safetensors"
    workers: int = 1  # processes running entries side by side (one torch thread each)
    # Fair tuning: every method gets the same grid of learning-rate factors for `tuning_stage`
    # (its encoding and MLP rates scaled together) on held-out prompts and seeds; the race then
    # runs each method at its best factor. An empty grid races every method at the config's rates.
    tuning_factors: tuple[float, ...] = ()
    tuning_prompts: tuple[str, ...] = ("a green torus", "an orange cylinder with purple stripes")
    tuning_seeds: tuple[int, ...] = (100,)
    tuning_stage: str = "stage1"

    def labels(self) -> list[str]:
        return list(self.methods) + [v for v in self.variants if v not in self.methods]

    def overrides_for(self, label: str, seed: int) -> dict:
        extra = self.variants.get(label, {"guidance.method": label})
        return {**self.overrides, **extra, "seed": seed}


@dataclass(frozen=True)
class RaceEntry:
    label: str
    prompt: str
    seed: int


class QualityProbe:
    """Scores a stage's model on fixed held-out views of the known toy scene."""

    def __init__(self, scene: ToyScene, config: RunConfig, stage: str, race: RaceConfig):
        self.scene, self.stage = scene, stage
        self.resolution = getattr(config, stage).resolution
        self.cameras = held_out_cameras(config.camera, race.eval_views)
        self.clip = None
        if race.clip_model and race.clip_pretrained and Path(race.clip_pretrained).exists():
            from dreamflow.evaluate.toy_clip import load_clip

            self.clip = load_clip(race.clip_model, race.clip_pretrained)

    @torch.no_grad()
    def __call__(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        # Sampled as the truth is: the pattern error compares spectra up to the pixel frequency.
        output = render_like_truth(model, self.cameras.to(model.device), self.resolution)
        metrics = image_metrics(self.scene, self.cameras, output.opacity, output.albedo, self.resolution)
        surface = model.to_trimesh()
        if surface is not None:
            metrics |= chamfer_distance(surface, self.scene, count=5000)
        if self.clip is not None:
            metrics["clip_score"] = self._clip_score(output.rgb)
        model.train(was_training)
        return metrics

    def _clip_score(self, images: torch.Tensor) -> float:
        from dreamflow.evaluate.metrics import clip_similarities_with

        return float(100 * clip_similarities_with(self.clip, images, [self.scene.prompt]).mean())


SCORING_VERSION = 2  # 2: renders sampled as the truth is (toy_metrics.render_like_truth)


def stage_blocks(stage: str) -> tuple[str, ...]:
    """Config blocks a stage's result depends on: its own, every earlier stage's, and extraction before a mesh."""
    blocks, spec = list(SHARED_BLOCKS), STAGES[stage]
    while spec is not None:
        blocks += spec.config_blocks + (("extract",) if "mesh" in spec.inputs else ())
        spec = STAGES.get(spec.previous) if spec.previous else None
    return tuple(blocks)


def _settings_key(config: RunConfig, stage: str, race: RaceConfig) -> str:
    wanted = stage_blocks(stage)
    blocks = {key: value for key, value in to_dict(config).items() if key in wanted}
    # SCORING_VERSION: curves cached under an older scoring (pixel-centre renders, v1) are not reused.
    blob = json.dumps([blocks, stage, race.eval_every, race.eval_views, race.clip_pretrained, SCORING_VERSION],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_stage_with_probe(stage: str, config: RunConfig, prompt: str, folder: Path, race: RaceConfig) -> pd.DataFrame:
    """Train one stage (its inputs from `folder`), scoring every `eval_every` steps; returns its curve."""

    scene = parse_toy_prompt(prompt)
    rows: list[dict] = []
    spent_evaluating = [0.0]

    def record(step: int, model, seconds: float) -> None:
        if step % race.eval_every and step != getattr(config, stage).iterations:
            return
        begin = time.time()
        rows.append({"step": step, "seconds": seconds - spent_evaluating[0], **probe(model)})
        spent_evaluating[0] += time.time() - begin

    # Built before the trainer, which seeds: loading CLIP draws from the global torch RNG.
    probe = QualityProbe(scene, config, stage, race)
    spec = STAGES[stage]
    inputs = StageInputs(init=folder / spec.previous / "ckpt.pt" if spec.previous else None,
                         mesh=folder / "mesh" / "coarse.obj" if "mesh" in spec.inputs else None)
    if inputs.mesh is not None:
        from dreamflow.export.extract import extract_mesh

        extract_mesh(inputs.init, config, inputs.mesh)
    run_stage(spec, config, prompt, folder / stage, RunLogger(folder / stage), inputs, record)
    return pd.DataFrame(rows)


def run_entry(entry: RaceEntry, config_path: str | Path, race: RaceConfig, work_dir: Path) -> pd.DataFrame:
    """All of the entry's stages (each reused from `work_dir` when its settings are unchanged)."""
    config = load_config(config_path, race.overrides_for(entry.label, entry.seed))
    folder = work_dir / entry.label / slugify(entry.prompt) / f"seed{entry.seed}"
    curves = []
    with_mesh = race.mesh_seeds is None or entry.seed in race.mesh_seeds
    for stage in [s for s in race.stages if with_mesh or STAGES[s].previous is None]:
        curve_path = folder / f"curve_{stage}.csv"
        key = _settings_key(config, stage, race)
        key_path = folder / f"curve_{stage}.key"
        if not (curve_path.exists() and key_path.exists() and key_path.read_text() == key):
            curve = run_stage_with_probe(stage, config, entry.prompt, folder, race)
            curve.to_csv(curve_path, index=False)
            key_path.write_text(key)
        curve = pd.read_csv(curve_path)
        curves.append(curve.assign(method=entry.label, prompt=entry.prompt, seed=entry.seed, stage=stage))
    return pd.concat(curves, ignore_index=True)


def _check_prompts(prompts) -> None:
    for prompt in prompts:
        if parse_toy_prompt(prompt) is None:
            raise ValueError(f"race prompt {prompt!r} is not a toy-world prompt (grammar: README 'Toy world'): "
                             "the race needs the known scene to score against")


def _entry_in_worker(job: tuple) -> pd.DataFrame:
    entry, config_path, race_config, work_dir = job
    torch.set_num_threads(1)
    return run_entry(entry, config_path, race_config, work_dir)


def run_entries(entries: list[RaceEntry], config_path: str | Path, race_config: RaceConfig, work_dir: Path,
                desc: str) -> list[pd.DataFrame]:
    """Curves of each entry, in order, on `race_config.workers` processes."""
    jobs = [(entry, str(config_path), race_config, work_dir) for entry in entries]
    if race_config.workers <= 1:
        curves = []
        for number, job in enumerate(jobs, start=1):
            print(f"[{desc}] {number}/{len(jobs)}: {job[0].label} {job[0].prompt!r} seed {job[0].seed}", flush=True)
            curves.append(run_entry(*job))
        return curves
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    with ProcessPoolExecutor(race_config.workers) as pool:
        return list(tqdm(pool.map(_entry_in_worker, jobs), total=len(jobs), desc=desc))


def quality_score(curve: pd.DataFrame) -> pd.Series:
    """Per evaluation: (1 - IoU) + colour error + detail error (missing detail counts 0); lower is better."""
    detail = curve["detail_error"].fillna(0) if "detail_error" in curve else 0.0
    return (1 - curve["iou"]) + curve["colour_error"] + detail


def final_score(curve: pd.DataFrame) -> float:
    """What tuning minimises: the quality score at the run's last evaluation."""
    return float(quality_score(curve.sort_values("step")).iloc[-1])


def tune(config_path: str | Path, race_config: RaceConfig, work_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """Every method x learning-rate factor on the held-out prompts and seeds (tuning stage only).

    Returns the grid (mean final score per method and factor, lower is better) and each method's
    best overrides, which the race then uses as that method's variant.
    """
    _check_prompts(race_config.tuning_prompts)
    stage = race_config.tuning_stage
    base = getattr(load_config(config_path, race_config.overrides), stage)
    variants, grid_point = {}, {}
    for method in race_config.methods:
        for factor in race_config.tuning_factors:
            label = f"{method}@lr*{factor:g}"
            variants[label] = {"guidance.method": method, f"{stage}.learning_rate": base.learning_rate * factor,
                               f"{stage}.mlp_learning_rate": base.mlp_learning_rate * factor}
            grid_point[label] = (method, factor)
    order = list(STAGES)
    stages = tuple(order[:order.index(stage) + 1])  # a mesh stage needs the stages before it
    tuning = RaceConfig(**{**race_config.__dict__, "methods": (), "variants": variants, "stages": stages,
                           "prompts": race_config.tuning_prompts, "seeds": race_config.tuning_seeds,
                           "mesh_seeds": None})
    entries = [RaceEntry(label, p, s) for label in grid_point for p in tuning.prompts for s in tuning.seeds]
    curves = run_entries(entries, config_path, tuning, Path(work_dir) / "tuning", "3D tuning")
    rows = [{"method": grid_point[entry.label][0], "factor": grid_point[entry.label][1], "prompt": entry.prompt,
             "seed": entry.seed, "score": final_score(curve[curve["stage"] == stage])}
            for entry, curve in zip(entries, curves)]
    table = pd.DataFrame(rows)
    grid = table.groupby(["method", "factor"])["score"].mean().unstack()
    best = {method: variants[f"{method}@lr*{grid.loc[method].idxmin():g}"] for method in race_config.methods}
    return grid, best


def race(config_path: str | Path, race_config: RaceConfig, work_dir: str | Path,
         shard: tuple[int, int] = (0, 1)) -> pd.DataFrame:
    """Run (or reuse) every entry of shard i/n; returns the curves of all entries run here."""
    _check_prompts(race_config.prompts)
    work_dir = Path(work_dir)
    entries = [RaceEntry(label, prompt, seed) for label in race_config.labels()
               for prompt in race_config.prompts for seed in race_config.seeds]
    index, count = shard
    curves = run_entries(entries[index::count], config_path, race_config, work_dir, f"race {index}/{count}")
    columns = ["method", "prompt", "seed", "stage", "step", "seconds"]
    frame = pd.concat(curves, ignore_index=True)
    return frame[columns + [c for c in frame.columns if c not in columns]]
