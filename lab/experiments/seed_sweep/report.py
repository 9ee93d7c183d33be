"""Pattern gain per run and per variant from the seed sweep's metrics.json files.

    python lab/experiments/seed_sweep/report.py [--results results/seed-sweep] [--out lab/experiments/seed_sweep]

Pattern gain = 1 - stage-3 / stage-1 pattern error (goal >= 0.30 on every pattern prompt, with
stage 2 in between). Writes sweep.csv (one row per run) and sweep.md (per variant, per prompt, per run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

STAGES = ("stage1", "stage2", "stage3")


def run_rows(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(results.glob("*/*/*/seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("status") != "ok":
            continue
        row = {"variant": metrics["variant"], "prompt": metrics["prompt"], "seed": metrics["seed"],
               "train_seconds": sum(metrics.get(f"seconds_{s}") or 0 for s in STAGES)}
        for stage in STAGES:
            for key, name in (("iou", "iou"), ("colour_error", "colour"), ("pattern_error", "pattern")):
                row[f"{stage}_{name}"] = metrics.get(f"{stage}_{key}")
        row["stage3_chamfer"] = metrics.get("stage3_chamfer_relative")
        row["pattern_gain"] = 1 - row["stage3_pattern"] / row["stage1_pattern"]
        low, high = sorted((row["stage1_pattern"], row["stage3_pattern"]))
        row["stage2_between"] = low <= row["stage2_pattern"] <= high
        rows.append(row)
    if not rows:
        raise SystemExit(f"no finished metrics.json under {results}: run the sweep's workflow first")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default="results/seed-sweep")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args()
    table = run_rows(Path(args.results))
    out = Path(args.out)
    table.to_csv(out / "sweep.csv", index=False)
    gain = table.groupby("variant")["pattern_gain"]
    summary = pd.DataFrame({"runs": gain.size(), "mean_gain": gain.mean(), "min_gain": gain.min(),
                            "max_gain": gain.max(), "reach_30": gain.apply(lambda g: int((g >= 0.30).sum())),
                            "stage2_between": table.groupby("variant")["stage2_between"].sum()}).reset_index()
    per_prompt = table.groupby(["variant", "prompt"])["pattern_gain"].agg(["size", "mean", "min", "max"]).reset_index()
    text = "\n\n".join(["# Seed sweep: pattern gain per variant", summary.round(3).to_markdown(index=False),
                        per_prompt.round(3).to_markdown(index=False), table.round(3).to_markdown(index=False)])
    (out / "sweep.md").write_text(text + "\n")
    print(summary.round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
