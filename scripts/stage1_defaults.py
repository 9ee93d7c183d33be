"""Measure stage 1's optimiser and APFO weighting defaults with the fair-tuning harness.

    python scripts/stage1_defaults.py [--workers 2] [--work-dir results/stage1_defaults]

For each option (Adam with the dsigma weight, Adam with a constant weight, SGD with the dsigma
weight) APFO gets a learning-rate grid on the held-out tuning prompts and seed (the same ones the
3D race tunes on); prints the mean final score (lower is better) per option and factor. SGD's grid
is wider: its step is the guidance's own scale times the rate, so its best rate is unknown a priori.
"""

from __future__ import annotations

import argparse

import pandas as pd

from dreamflow.benchmarks.convergence import RaceConfig, tune

OPTIONS = {
    "adam, dsigma": ({}, (1.0, 3.0)),
    "adam, constant": ({"guidance.apfo_weighting": "constant"}, (1.0, 3.0)),
    "sgd, dsigma": ({"stage1.optimizer": "sgd"}, (1.0, 10.0, 100.0, 1000.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config/toy.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work-dir", default="results/stage1_defaults")
    args = parser.parse_args()
    rows = []
    for name, (overrides, factors) in OPTIONS.items():
        # RaceConfig's own held-out tuning prompts and seed, as the 3D race tunes on
        race = RaceConfig(methods=("apfo",), stages=("stage1",), overrides=overrides, tuning_factors=factors,
                          workers=args.workers)
        grid, _ = tune(args.config, race, f"{args.work_dir}/{name.replace(', ', '-')}")
        rows += [{"option": name, "factor": factor, "score": grid.loc["apfo", factor]} for factor in factors]
    table = pd.DataFrame(rows)
    print(table.round(3).to_markdown(index=False))
    print(table.loc[table.groupby("option")["score"].idxmin()].round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
