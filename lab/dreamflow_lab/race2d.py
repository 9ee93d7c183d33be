"""2D race: latent images optimised directly by each guidance method, no 3D model in the way
(`dreamflow-lab race-2d`, report: lab/experiments/race2d/README.md).

The experiment a reviewer asked the paper for. V views of one toy prompt start from the latents of
what a fresh NeRF renders (the grey density blob on white, from V fixed cameras) and are moved by
the guidance's update alone, with plain SGD (or Adam) on the latents. Quality is judged by what the
guidance does not use: the distance of the decoded images to the true renders of the prompt's scene
from the same cameras (foreground-weighted mean absolute error) and the toy CLIP score.

Fair tuning: every method gets the same step-size grid on held-out seeds; the race then runs each
method at its own best step size on other seeds. Reported per (prompt, seed): whole curves, the
final quality and the first iteration from which a run *stays* within `tolerance` of VSD's final
distance (not its first crossing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from dreamflow.config import load_config
from dreamflow.evaluate.metrics import clip_similarities_with
from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL, TOY_CLIP_WEIGHTS
from dreamflow.geometry.nerf import NeRFModel
from dreamflow.guidance import available, make_guidance
from dreamflow.render.cameras import sample_cameras
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import parse_toy_prompt
from dreamflow.training.trainer import seed_everything


@dataclass
class Race2DConfig:
    methods: tuple[str, ...] = field(default_factory=available)
    prompts: tuple[str, ...] = ("a red cube", "a blue sphere", "a yellow cone")
    seeds: tuple[int, ...] = (0, 1, 2)  # the race
    tuning_prompts: tuple[str, ...] = ("a green cylinder", "a red torus")  # held out from the race
    tuning_seeds: tuple[int, ...] = (100,)
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # one grid
    optimizer: str = "sgd"
    views: int = 2
    iterations: int = 150
    eval_every: int = 10
    tolerance: float = 0.1  # "reached VSD's final quality": distance <= (1 + tolerance) x VSD's final
    clip_model: str = TOY_CLIP_MODEL
    clip_pretrained: str = TOY_CLIP_WEIGHTS
    workers: int = 1  # processes running runs side by side (one torch thread each)


class Judge:
    """Distance to the true renders and toy CLIP score of decoded latents (nothing the guidance sees)."""

    def __init__(self, race: Race2DConfig):
        from dreamflow.evaluate.toy_clip import load_clip

        self.clip = load_clip(race.clip_model, race.clip_pretrained)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, truth: dict[str, torch.Tensor], prompt: str) -> dict[str, float]:
        weight = 0.25 + truth["mask"]  # foreground counts 5x the background: the object is what matters
        error = ((images - truth["rgb"]).abs() * weight).sum() / (weight.sum() * 3)
        clip = 100 * clip_similarities_with(self.clip, images.permute(0, 2, 3, 1).nan_to_num(1.0), [prompt]).mean()
        return {"distance": float(error) if torch.isfinite(error) else math.inf, "clip_score": float(clip)}


def run_2d(config_path: str | Path, method: str, prompt: str, seed: int, learning_rate: float,
           race: Race2DConfig, judge: Judge) -> pd.DataFrame:
    """One run: its curve (step, seconds, distance, clip_score)."""
    import time

    from dreamflow.priors import load_prior

    config = load_config(config_path, {"guidance.method": method, "seed": seed, "device": "cpu"})
    seed_everything(seed, config.deterministic)
    generator = torch.Generator().manual_seed(seed)
    resolution = config.stage1.resolution
    cameras = sample_cameras(config.camera, race.views, generator)
    blob = NeRFModel(config).eval()
    blob.before_step(0, generator)
    start = blob.render_views(cameras, resolution).rgb.permute(0, 3, 1, 2)
    truth = render_scene(parse_toy_prompt(prompt), cameras, resolution)
    truth = {"rgb": truth["rgb"].permute(0, 3, 1, 2), "mask": truth["mask"].permute(0, 3, 1, 2)}
    prior = load_prior(config.prior, "cpu")
    guidance = make_guidance(prior, config.guidance_for(config.stage1), race.iterations, seed)
    with torch.no_grad():
        latents = torch.nn.Parameter(prior.encode_images(start))
    optimizer = (torch.optim.SGD([latents], lr=learning_rate) if race.optimizer == "sgd"
                 else torch.optim.Adam([latents], lr=learning_rate))
    text = prior.text_embeddings(prompt, cameras)
    rows, elapsed = [], 0.0

    def record(step: int) -> None:
        with torch.no_grad():
            images = prior.decode_latents(latents.detach()) if torch.isfinite(latents).all() else start * math.nan
        rows.append({"step": step, "seconds": elapsed, **judge(images, truth, prompt)})

    record(0)
    for step in range(race.iterations):
        begin = time.perf_counter()
        output = guidance(latents, text, cameras.conditioning(), step)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        elapsed += time.perf_counter() - begin
        if (step + 1) % race.eval_every == 0 or step + 1 == race.iterations:
            record(step + 1)
            if not math.isfinite(rows[-1]["distance"]):
                break  # diverged: the step size is too large for this method
    return pd.DataFrame(rows).assign(method=method, prompt=prompt, seed=seed, learning_rate=learning_rate)


_WORKER_JUDGE: Judge | None = None


def _run_in_worker(job: tuple) -> pd.DataFrame:
    global _WORKER_JUDGE
    config_path, method, prompt, seed, learning_rate, race = job
    torch.set_num_threads(1)
    if _WORKER_JUDGE is None:
        _WORKER_JUDGE = Judge(race)
    return run_2d(config_path, method, prompt, seed, learning_rate, race, _WORKER_JUDGE)


def run_all(config_path: str | Path, runs: list[tuple], race: Race2DConfig, desc: str) -> list[pd.DataFrame]:
    """Curves of (method, prompt, seed, learning rate) runs, in order, on `race.workers` processes."""
    jobs = [(str(config_path), *run, race) for run in runs]
    if race.workers <= 1:
        return [_run_in_worker(job) for job in tqdm(jobs, desc=desc)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(race.workers) as pool:
        return list(tqdm(pool.map(_run_in_worker, jobs), total=len(jobs), desc=desc))


def tune(config_path: str | Path, race: Race2DConfig) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every method x step size on the held-out prompts and seeds; best = lowest mean final distance."""
    runs = [(m, p, s, lr) for m in race.methods for lr in race.learning_rates
            for p in race.tuning_prompts for s in race.tuning_seeds]
    table = pd.DataFrame([curve.iloc[-1] for curve in run_all(config_path, runs, race, "2D tuning")])
    table.loc[table["step"] < race.iterations, "distance"] = math.inf  # diverged runs lose
    grid = table.groupby(["method", "learning_rate"])["distance"].mean().unstack()
    best = {method: float(grid.loc[method].idxmin()) for method in race.methods}
    edge = [m for m, lr in best.items() if lr in (min(race.learning_rates), max(race.learning_rates))]
    if edge:
        import warnings

        warnings.warn(f"best step size at the edge of the grid for {edge}: widen --learning-rates", stacklevel=2)
    return grid, best


def stays_within(curve: pd.DataFrame, limit: float) -> float:
    """First evaluated step from which the distance stays <= limit to the end (NaN: never)."""
    inside = (curve["distance"] <= limit).to_numpy()
    if not inside[-1]:
        return math.nan
    first = len(inside)
    while first > 0 and inside[first - 1]:
        first -= 1
    return float(curve["step"].iloc[first])


def race_2d(config_path: str | Path, race: Race2DConfig) -> dict:
    """Tune, race, and the per-(prompt, seed) table against VSD's final quality."""
    grid, best = tune(config_path, race)
    runs = [(m, p, s, best[m]) for m in race.methods for p in race.prompts for s in race.seeds]
    curves = pd.concat(run_all(config_path, runs, race, "2D race"), ignore_index=True)
    rows = []
    for (prompt, seed), group in curves.groupby(["prompt", "seed"]):
        bar = group[group["method"] == "vsd"]["distance"].iloc[-1] * (1 + race.tolerance) if "vsd" in race.methods \
            else math.inf
        for method, curve in group.groupby("method"):
            rows.append({"prompt": prompt, "seed": seed, "method": method, "final_distance": curve["distance"].iloc[-1],
                         "final_clip_score": curve["clip_score"].iloc[-1], "stays_at_vsd_final_from": stays_within(curve, bar),
                         "seconds_per_iteration": curve["seconds"].iloc[-1] / max(curve["step"].iloc[-1], 1)})
    return {"grid": grid, "best": best, "curves": curves, "runs": pd.DataFrame(rows)}


def write_race_2d_report(result: dict, race: Race2DConfig, out: Path, command: str) -> Path:
    """The report (lab/experiments/race2d/README.md): grid, chosen step sizes, paired table, summary, curves plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    curves, runs = result["curves"], result["runs"]
    figure, axes = plt.subplots(1, len(race.prompts), figsize=(4 * len(race.prompts), 3.2), squeeze=False)
    for axis, prompt in zip(axes[0], race.prompts):
        for method, group in curves[curves["prompt"] == prompt].groupby("method"):
            mean = group.groupby("step")["distance"].mean()
            axis.plot(mean.index, mean.values, label=method)
        axis.set_title(prompt)
        axis.set_xlabel("iteration")
        axis.set_ylabel("distance to true renders")
    axes[0][0].legend()
    figure.tight_layout()
    plot = out.with_name("race2d_curves.png")
    figure.savefig(plot, dpi=100)
    curves.to_csv(out.with_name("race2d_curves.csv"), index=False)
    summary = runs.groupby("method").agg(final_distance=("final_distance", "mean"),
                                         final_clip_score=("final_clip_score", "mean"),
                                         reached=("stays_at_vsd_final_from", lambda s: f"{s.notna().sum()}/{len(s)}"),
                                         median_stays_from=("stays_at_vsd_final_from", "median"),
                                         seconds_per_iteration=("seconds_per_iteration", "mean"))
    text = [f"# 2D race: guidance on latent images (no 3D model)\n\nRegenerate: `{command}`\n",
            (__doc__ or "").split("\n\n", 1)[1].strip() + "\n",
            f"Setup: {race.views} views per run, {race.iterations} iterations, optimiser {race.optimizer} on the "
            f"latents, toy prior `config/pipeline/toy.yaml` (stage-1 guidance settings: t range, CFG per method's default, "
            f"APFO schedule). Tuning: prompts {list(race.tuning_prompts)}, seeds {list(race.tuning_seeds)}; race: "
            f"prompts {list(race.prompts)}, seeds {list(race.seeds)}.\n",
            "## Tuning grid (mean final distance on held-out prompts/seeds; inf = diverged)\n",
            result["grid"].round(4).to_markdown(), "\n\nChosen step sizes: " +
            ", ".join(f"{m} {lr:g}" for m, lr in result["best"].items()) + "\n",
            "## Summary\n", summary.round(4).to_markdown(), "\n",
            f"`stays_at_vsd_final_from`: first iteration from which the run's distance stays within "
            f"{race.tolerance:.0%} of VSD's final distance on the same (prompt, seed).\n",
            "## Paired per (prompt, seed)\n", runs.round(4).to_markdown(index=False), "\n",
            f"![curves]({plot.name})\n"]
    notes = out.with_name("race2d_notes.md")  # hand-written analysis of these numbers, kept beside them
    if notes.exists():
        text.append(notes.read_text())
    out.write_text("\n".join(text))
    return out
