"""Which density iso-level gives the mesh the stage-1 NeRF shows? Silhouette IoU per extraction threshold.

    python lab/experiments/extract_thresholds/run.py results/toy/apfo/base/*/seed0/stage1/ckpt.pt [--thresholds 0.5 1 2 5 10]

For each stage-1 checkpoint of a toy prompt: the NeRF's own silhouette (alpha > 0.5, rendered like
the truth on held-out views) against the true one, then for each threshold the extracted mesh
(marching cubes + the same cleaning and decimation as `dreamflow extract`) against the truth and
against the NeRF's silhouette. Only the second can choose a threshold without ground truth.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from dreamflow.config import load_config
from dreamflow.evaluate.toy_metrics import held_out_cameras, render_like_truth
from dreamflow.export.extract import clean_mesh, density_grid, surface_at
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.geometry.nerf import load_nerf
from dreamflow.io import load_checkpoint
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import parse_toy_prompt


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum().clamp(min=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--config", default="config/pipeline/toy.yaml")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.5, 1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    config = load_config(args.config, {"device": "cpu"})
    settings, radius = config.extract, config.nerf.radius
    cameras = held_out_cameras(config.camera, args.views)
    rows = []
    for checkpoint in args.checkpoints:
        state = load_checkpoint(checkpoint)
        scene = parse_toy_prompt(state["prompt"])
        if scene is None:
            continue
        truth = render_scene(scene, cameras, args.resolution)["mask"][..., 0] > 0.5
        nerf = load_nerf(state, config)
        silhouette = render_like_truth(nerf, cameras, args.resolution).opacity[..., 0] > 0.5
        grid = density_grid(nerf.field, settings.grid_resolution, radius, settings.chunk)
        row = {"prompt": state["prompt"], "seed": state["seed"], "density max": float(grid.max()),
               "NeRF vs truth": iou(silhouette, truth)}
        for threshold in args.thresholds:
            if grid.max() <= threshold:
                row[f"{threshold:g}: truth"] = row[f"{threshold:g}: NeRF"] = float("nan")
                continue
            mesh = clean_mesh(surface_at(grid, threshold, radius), settings.keep_largest_component,
                              settings.target_faces)
            model = TexturedMesh(torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32),
                                 torch.tensor(np.asarray(mesh.faces), dtype=torch.long), config)
            mask = render_like_truth(model, cameras, args.resolution).opacity[..., 0] > 0.5
            row[f"{threshold:g}: truth"], row[f"{threshold:g}: NeRF"] = iou(mask, truth), iou(mask, silhouette)
        print(row, flush=True)
        rows.append(row)
    print(pd.DataFrame(rows).round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
