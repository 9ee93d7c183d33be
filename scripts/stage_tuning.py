"""Tune the mesh stages (2 and 3) for detail on held-out patterned prompts, not the suite's.

    python scripts/stage_tuning.py --stage stage2 --grid learning_rate=0.01,0.03,0.1 t_max=0.5,0.8 \
        [--fixed stage3.iterations=0 ...] [--prompts ...] [--seeds 100] [--work-dir results/stage_tuning]

Stage 1 (and every stage before `--stage`) runs once per (prompt, seed) and is shared by all grid
points; each grid point then runs `--stage` with its overrides (`--fixed` ones on every point). A
dotted grid key (`--stage stage3 --grid stage2.guidance_scale=7.5,20`) changes an earlier stage:
that stage is re-run for the point (its settings key differs), and the point is scored after `--stage`.
Score per run: the stage's final colour error + pattern error (phase-blind detail, see
`toy_metrics.image_metrics`), at the stage's own resolution on held-out views; lower is better.
Writes `<work-dir>/<stage>_grid.csv` (every run) and prints the mean score per grid point.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
from pathlib import Path

import pandas as pd

from dreamflow.benchmarks.convergence import RaceConfig, RaceEntry, run_entries
from dreamflow.prompts import slugify
from dreamflow.training.stages import STAGES

HELD_OUT = ("an orange cylinder with purple stripes", "a red sphere with blue checks")


def parse_value(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/toy.yaml")
    parser.add_argument("--stage", choices=["stage2", "stage3"], required=True)
    parser.add_argument("--grid", nargs="+", required=True,
                        help="key=v1,v2,... (keys inside the stage's block, or dotted keys such as stage2.guidance_scale)")
    parser.add_argument("--fixed", nargs="*", default=[], help="dotted.key=value applied to every run")
    parser.add_argument("--prompts", nargs="+", default=list(HELD_OUT))
    parser.add_argument("--seeds", nargs="+", type=int, default=[100])
    parser.add_argument("--method", default="apfo")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work-dir", default="results/stage_tuning")
    args = parser.parse_args()
    fixed = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.fixed)}
    axes = {k: [parse_value(v) for v in values.split(",")] for k, values in (g.split("=", 1) for g in args.grid)}
    order = list(STAGES)
    stages = tuple(order[:order.index(args.stage) + 1])
    work = Path(args.work_dir)
    common = {"guidance.method": args.method, **fixed}
    shared = RaceConfig(methods=(), stages=stages[:-1], eval_every=10_000, eval_views=8, clip_model=None,
                        variants={"shared": common}, prompts=tuple(args.prompts), seeds=tuple(args.seeds))
    entries = [RaceEntry("shared", p, s) for p in args.prompts for s in args.seeds]
    run_entries(entries, args.config, shared, work, "earlier stages")

    variants = {}
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values))
        label = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())
        variants[label] = {**common, **{k if "." in k else f"{args.stage}.{k}": v for k, v in point.items()}}
    for label in variants:  # every grid point starts from the shared earlier stages
        for prompt, seed in itertools.product(args.prompts, args.seeds):
            source = work / "shared" / slugify(prompt) / f"seed{seed}"
            target = work / args.stage / label / slugify(prompt) / f"seed{seed}"
            if not target.exists():
                shutil.copytree(source, target)
    race = RaceConfig(methods=(), stages=stages, eval_every=10_000, eval_views=8, clip_model=None,
                      variants=variants, prompts=tuple(args.prompts), seeds=tuple(args.seeds), workers=args.workers)
    entries = [RaceEntry(label, p, s) for label in variants for p in args.prompts for s in args.seeds]
    curves = run_entries(entries, args.config, race, work / args.stage, f"{args.stage} grid")
    rows = []
    for entry, curve in zip(entries, curves):
        final = curve[curve["stage"] == args.stage].iloc[-1]
        rows.append({"point": entry.label, "prompt": entry.prompt, "seed": entry.seed,
                     **{k: final[k] for k in ("iou", "colour_error", "detail_error", "pattern_error",
                                              "detail_amount", "detail_energy") if k in final},
                     "score": final["colour_error"] + final["pattern_error"]})
    table = pd.DataFrame(rows)
    table.to_csv(work / f"{args.stage}_grid.csv", index=False)
    print(table.round(3).to_markdown(index=False))
    print(table.groupby("point")[["colour_error", "pattern_error", "detail_error", "score"]].mean()
          .sort_values("score").round(3).to_markdown())


if __name__ == "__main__":
    main()
