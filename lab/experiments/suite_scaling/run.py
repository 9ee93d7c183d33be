#!/usr/bin/env python
"""Suite scaling: wall time of the workflow against the number of prompts and `--cores`.

Each (prompts, cores) runs the whole chain (stage 1 -> extraction -> stage 2 -> stage 3 ->
evaluation -> report) in a fresh working directory with short stages, and reads Snakemake's own
`benchmark:` records to show per-job times: if prompts run in parallel without interfering, the
wall time drops with `--cores` while each job's own time stays put.

    python lab/experiments/suite_scaling/run.py --prompts 1 2 4 --cores 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
PROMPTS = ["a red cube", "a blue sphere", "a yellow cone", "a green torus", "a purple cylinder", "an orange sphere"]


def run_suite(prompts: int, cores: int, iterations: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="scaling-") as folder:
        work = Path(folder)
        for name in ("config", "prompts", "models", "profiles"):
            (work / name).symlink_to(ROOT / name)
        (work / "suite.txt").write_text("\n".join(PROMPTS[:prompts]) + "\n")
        (work / "scaling.yaml").write_text(f"suite: scaling\nprompts: suite.txt\nwandb: {{mode: disabled}}\n"
                                           f"pipeline_overrides: {{stage1.iterations: {iterations}}}\n")
        env = dict(os.environ, OMP_NUM_THREADS="1", DREAMFLOW_CACHE=str(work / "cache"),
                   PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
                   "--cores", str(cores), "--configfile", "config/tests/smoke.yaml", "scaling.yaml", "--quiet"]
        begin = time.time()
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall = time.time() - begin
        if result.returncode != 0:
            raise RuntimeError(f"suite with {prompts} prompts, {cores} cores failed:\n{result.stderr[-3000:]}")
        jobs = []
        for path in (work / "benchmarks" / "scaling").rglob("*.tsv"):
            if path.parent.name.startswith("seed"):
                jobs.append({"step": path.stem, "seconds": float(pd.read_csv(path, sep="\t")["s"].iloc[-1])})
        jobs = pd.DataFrame(jobs)
    per_step = jobs.groupby("step")["seconds"].mean()
    return {"prompts": prompts, "cores": cores, "wall_seconds": wall, "job_seconds_sum": jobs["seconds"].sum(),
            "parallel_efficiency": jobs["seconds"].sum() / (wall * cores),
            **{f"mean_{step}_seconds": value for step, value in per_step.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--cores", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--stage1-iterations", type=int, default=30)
    parser.add_argument("--out", default=str(Path(__file__).parent / "README.md"))
    args = parser.parse_args()
    rows = []
    for cores in args.cores:
        for prompts in args.prompts:
            rows.append(run_suite(prompts, cores, args.stage1_iterations))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for cores, group in table.groupby("cores"):
        axis.plot(group["prompts"], group["wall_seconds"], marker="o", label=f"--cores {cores}")
    axis.set_xlabel("prompts in the suite")
    axis.set_ylabel("wall seconds (whole workflow)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out.with_name("scaling.png"), dpi=90)
    command = "python lab/experiments/suite_scaling/run.py " + " ".join(sys.argv[1:])
    out.write_text(f"# Suite scaling\n\nRegenerate with `{command}` (smoke stages, stage 1 at "
                   f"{args.stage1_iterations} iterations, 1 torch thread per job).\n\n"
                   f"{table.round(2).to_markdown(index=False)}\n\n![wall time]({out.with_name('scaling.png').name})\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
