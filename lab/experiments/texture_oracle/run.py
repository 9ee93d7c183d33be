"""Is stage 3's texture limited by its optimisation or by its guidance? Two oracle runs on finished toy assets.

    python lab/experiments/texture_oracle/run.py [--suite-dir results/toy/apfo/base] [--iterations 100] [--out lab/experiments/texture_oracle/README.md]

For each patterned asset (`<suite-dir>/<slug>/seed<N>/stage2/ckpt.pt`):

1. **Oracle fit.** Stage 3's texture field, optimiser (Adam, its encoding and MLP learning rates),
   render resolution, cameras and iteration budget, on stage 2's geometry (frozen), with the gradient
   of an L2 loss to the true albedo painted on that same geometry instead of the prior's guidance:
   the pattern error stage 3's optimisation could reach if its guidance were perfect.
2. **Retention.** The real stage 3 (`run_stage`, the configured method and the refiner prior),
   started from the oracle texture instead of stage 2's: does the guidance keep a true pattern it is
   given, or pull it towards what it draws from stage 2's texture?

Every texture is scored on the held-out views as the suite scores stage 3 (`render_like_truth`):
pattern error against the true scene, and the texture pattern error against the painted truth on
the same geometry (0 = the true pattern, 1 = a flat colour).
"""

from __future__ import annotations

import argparse
import copy
import shutil
from pathlib import Path

import pandas as pd
import torch
import yaml
from tqdm import tqdm

from dreamflow.config import load_config
from dreamflow.evaluate.toy_metrics import held_out_cameras, image_metrics, render_like_truth
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.io import load_checkpoint, save_checkpoint
from dreamflow.render.cameras import sample_cameras
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import parse_toy_prompt
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import STAGES, StageInputs, run_stage
from dreamflow_lab.texture import painted_with_truth, texture_metrics


def score(model: TexturedMesh, scene, cameras, resolution: int, truth: dict) -> dict[str, float]:
    view = render_like_truth(model, cameras, resolution)
    metrics = image_metrics(scene, cameras, view.opacity, view.albedo, resolution, truth)
    return {"pattern": metrics["pattern_error"], "colour": metrics["colour_error"],
            **texture_metrics(model, scene, cameras, resolution, view, truth)}


def oracle_fit(model: TexturedMesh, scene, config, iterations: int, seed: int) -> list[float]:
    """Stage 3's optimisation of the texture with an L2 loss to the painted truth; returns the losses."""
    stage = config.stage3
    groups = [group for group in model.param_groups(stage) if group["name"] != "geometry"]
    model.offsets.requires_grad_(False)
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(iterations), desc="oracle fit", leave=False):
        cameras = sample_cameras(config.camera, stage.batch_size, generator)
        with torch.no_grad(), painted_with_truth(model, scene):
            target = model.render(cameras, stage.resolution, "albedo")
        output = model.render(cameras, stage.resolution, "albedo")
        mask = target.opacity.detach()
        loss = ((output.albedo - target.albedo).square() * mask).sum() / mask.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.offsets.requires_grad_(True)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite-dir", default="results/toy/apfo/base")
    parser.add_argument("--config", default="config/pipeline/toy.yaml")
    parser.add_argument("--iterations", type=int, default=0, help="oracle-fit iterations; 0: stage 3's own")
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--work-dir", default="results/texture_oracle")
    parser.add_argument("--fit-set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the oracle fit only (e.g. stage3.mlp_learning_rate=1e-3)")
    parser.add_argument("--no-retention", action="store_true", help="skip the guided stage 3 from the oracle")
    parser.add_argument("--out", default=None, help="markdown table to write")
    args = parser.parse_args()
    rows = []
    for ckpt in sorted(Path(args.suite_dir).glob("*/seed*/stage2/ckpt.pt")):
        state = load_checkpoint(ckpt)
        prompt, seed = state["prompt"], int(state["seed"])
        scene = parse_toy_prompt(prompt)
        if scene is None or scene.pattern == "plain":
            continue
        config = load_config(args.config, {"device": "cpu", "seed": seed})
        iterations = args.iterations or config.stage3.iterations
        cameras, resolution = held_out_cameras(config.camera, args.views), config.stage3.resolution
        truth = render_scene(scene, cameras, resolution)
        asset = ckpt.parent.parent
        row = {"prompt": prompt, "seed": seed}
        learned = {stage: TexturedMesh.from_stage2(load_checkpoint(asset / stage / "ckpt.pt"), config).eval()
                   for stage in ("stage2", "stage3")}
        for stage, model in learned.items():
            for key, value in score(model, scene, cameras, resolution, truth).items():
                row[f"{stage} {key}"] = value
        fit_config = load_config(args.config, {"device": "cpu", "seed": seed, **{
            key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.fit_set)}})
        oracle = TexturedMesh.from_stage2(state, fit_config)
        losses = oracle_fit(oracle, scene, fit_config, iterations, seed)
        oracle.eval()
        row["oracle loss first/last"] = f"{losses[0]:.4f}/{losses[-1]:.4f}"
        for key, value in score(oracle, scene, cameras, resolution, truth).items():
            row[f"oracle {key}"] = value
        if args.no_retention:
            print(row, flush=True)
            rows.append(row)
            continue
        work = Path(args.work_dir) / asset.parent.name / f"seed{seed}"
        shutil.rmtree(work, ignore_errors=True)
        init = copy.deepcopy(state)
        init["model"] = oracle.state_dict()
        save_checkpoint(init, work / "oracle" / "ckpt.pt")
        run_stage(STAGES["stage3"], config, prompt, work / "stage3", RunLogger(work / "stage3"),
                  StageInputs(init=work / "oracle" / "ckpt.pt"))
        retained = TexturedMesh.from_stage2(load_checkpoint(work / "stage3" / "ckpt.pt"), config).eval()
        for key, value in score(retained, scene, cameras, resolution, truth).items():
            row[f"retained {key}"] = value
        print(row, flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    columns = ["prompt", "seed"] + [f"{run} {key}" for run in ("stage2", "stage3", "oracle", "retained")
                                    for key in ("pattern", "texture_pattern_error", "pattern_ceiling", "colour")
                                    if f"{run} {key}" in table]
    text = table[columns].round(3).to_markdown(index=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
