"""Stage 1 -> 3 on many (prompt, seed) pairs in parallel, with variants of the mesh stages: the spread
of the stage-3 detail gain over seeds, and what a change to a later stage does to the same assets.

    python scripts/seed_sweep.py --seeds 0 1 2 3 4 --workers 16 \
        --variant s3x3:stage3.iterations=300 [--variant NAME[@STAGE]:key=value,...] [--out-dir DIR]

Every step is the `dreamflow` command the Snakemake rules run (one thread each, no Snakemake, so it
also runs on a machine that has only the library). The baseline runs every stage; a variant
`NAME@stage3:...` (the default start is stage3; `@stage2` re-runs stages 2 and 3) reuses the
baseline's earlier stages of the same (prompt, seed), so the pairs differ only in what the variant
changes. Writes `<out-dir>/sweep.csv` (one row per run, rewritten as runs finish, so a sweep cut
short keeps what it finished) and `<out-dir>/sweep.md` (per run, then per variant: mean gain and how
many runs reach the issue's 30 %). Stage folders live in `--work-dir` (checkpoints are large).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dreamflow.prompts import slugify

PATTERN_PROMPTS = ("a blue sphere with yellow stripes", "a green cube with purple checks",
                   "a yellow cylinder with blue dots")
STAGES = ("stage1", "stage2", "stage3")


@dataclass(frozen=True)
class Variant:
    name: str
    start: str = "stage1"
    overrides: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> Variant:
        head, _, body = text.partition(":")
        name, _, start = head.partition("@")
        start = start or "stage3"
        if start not in ("stage2", "stage3") or not body:
            raise SystemExit(f"--variant {text!r}: expected NAME[@stage2|@stage3]:key=value[,key=value]")
        return cls(name, start, tuple(body.split(",")))


def run(command: list[str], log: Path) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1", "DREAMFLOW_NO_PROGRESS": "1"}
    with log.open("a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command[1]} failed ({result.returncode}); see {log}")


def run_asset(args: argparse.Namespace, prompt: str, seed: int, variant: Variant, baseline: Path | None) -> dict:
    """Every stage of `variant` for (prompt, seed); earlier stages copied from `baseline`."""
    work = Path(args.work_dir) / variant.name / slugify(prompt) / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "sweep.log"
    common = ["--config", args.config, "--prompt", prompt, "--method", args.method, "--seed", str(seed),
              "--set", f"device={args.device}"]
    common += [item for key in (*args.set, *variant.overrides) for item in ("--set", key)]
    first = STAGES.index(variant.start)
    for stage in STAGES[:first]:
        shutil.copytree(baseline / stage, work / stage, dirs_exist_ok=True)
    if first > 0:
        shutil.copytree(baseline / "mesh", work / "mesh", dirs_exist_ok=True)
    dreamflow = [sys.executable, "-m", "dreamflow.cli"]
    begin = time.perf_counter()
    for stage in STAGES[first:]:
        inputs = {"stage1": [], "stage2": ["--init", str(work / "stage1/ckpt.pt"), "--mesh", str(work / "mesh/coarse.obj")],
                  "stage3": ["--init", str(work / "stage2/ckpt.pt")]}[stage]
        run([*dreamflow, stage, *common, *inputs, "--out", str(work / stage)], log)
        if stage == "stage1":
            (work / "mesh").mkdir(exist_ok=True)
            run([*dreamflow, "extract", "--config", args.config, "--ckpt", str(work / "stage1/ckpt.pt"),
                 "--out", str(work / "mesh/coarse.obj")], log)
    seconds = time.perf_counter() - begin
    run([*dreamflow, "evaluate", *common, "--stage1", str(work / "stage1/ckpt.pt"), "--mesh",
         str(work / "mesh/coarse.obj"), "--stage2", str(work / "stage2/ckpt.pt"), "--stage3",
         str(work / "stage3/ckpt.pt"), "--detail-views", str(args.detail_views), "--views", "2",
         "--out", str(work / "metrics.json")], log)
    metrics = json.loads((work / "metrics.json").read_text())
    row = {"variant": variant.name, "prompt": prompt, "seed": seed, "train_seconds": round(seconds, 1)}
    for stage in STAGES:
        row[f"{stage}_iou"] = metrics.get(f"{stage}_iou")
        row[f"{stage}_colour"] = metrics.get(f"{stage}_colour_error")
        row[f"{stage}_pattern"] = metrics.get(f"{stage}_pattern_error")
    row["stage3_chamfer"] = metrics.get("stage3_chamfer_relative")
    row["pattern_gain"] = 1 - row["stage3_pattern"] / row["stage1_pattern"]
    row["stage2_between"] = row["stage3_pattern"] <= row["stage2_pattern"] <= row["stage1_pattern"]
    if args.out_dir:
        images = Path(args.out_dir) / "stages"
        images.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "stages.png", images / f"{variant.name}_{slugify(prompt)}_seed{seed}.png")
    return row


def write_tables(rows: list[dict], out_dir: Path, command: str) -> None:
    table = pd.DataFrame(rows).sort_values(["variant", "prompt", "seed"])
    table.to_csv(out_dir / "sweep.csv", index=False)
    summary = table.groupby("variant").agg(runs=("seed", "size"), mean_gain=("pattern_gain", "mean"),
                                            min_gain=("pattern_gain", "min"), max_gain=("pattern_gain", "max"),
                                            reach_30=("pattern_gain", lambda gain: int((gain >= 0.30).sum())),
                                            stage2_between=("stage2_between", "sum"),
                                            stage1_iou=("stage1_iou", "mean"), stage3_iou=("stage3_iou", "mean"),
                                            stage3_pattern=("stage3_pattern", "mean"))
    per_prompt = table.groupby(["variant", "prompt"]).agg(runs=("seed", "size"), mean_gain=("pattern_gain", "mean"),
                                                         min_gain=("pattern_gain", "min"),
                                                         max_gain=("pattern_gain", "max"))
    (out_dir / "sweep.md").write_text(
        f"`{command}`\n\nPattern gain = 1 - stage-3 / stage-1 pattern error (goal >= 0.30, stage 2 in between).\n\n"
        + summary.round(3).to_markdown() + "\n\n" + per_prompt.round(3).reset_index().to_markdown(index=False) + "\n\n"
        + table.round(3).to_markdown(index=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/toy.yaml")
    parser.add_argument("--prompts", nargs="+", default=list(PATTERN_PROMPTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--method", default="apfo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variant", action="append", default=[], type=Variant.parse)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detail-views", type=int, default=16)
    parser.add_argument("--work-dir", default="results/seed_sweep")
    parser.add_argument("--out-dir", default=None, help="tables and stage strips (default: --work-dir)")
    args = parser.parse_args()
    args.out_dir = args.out_dir or args.work_dir
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "scripts/seed_sweep.py", *sys.argv[1:]])
    rows: list[dict] = []
    lock = threading.Lock()
    pool = ThreadPoolExecutor(args.workers)
    pending = []

    def record(row: dict) -> None:
        with lock:
            rows.append(row)
            write_tables(rows, Path(args.out_dir), command)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    def chain(prompt: str, seed: int) -> None:
        baseline = Variant("baseline")
        try:
            record(run_asset(args, prompt, seed, baseline, None))
        except RuntimeError as error:
            print(f"baseline {prompt!r} seed {seed}: {error}", flush=True)
            return
        base_dir = Path(args.work_dir) / "baseline" / slugify(prompt) / f"seed{seed}"
        for variant in args.variant:
            pending.append(pool.submit(variant_job, prompt, seed, variant, base_dir))

    def variant_job(prompt: str, seed: int, variant: Variant, base_dir: Path) -> None:
        try:
            record(run_asset(args, prompt, seed, variant, base_dir))
        except RuntimeError as error:
            print(f"{variant.name} {prompt!r} seed {seed}: {error}", flush=True)

    # Seeds outermost: a sweep cut short has every prompt on its first seeds.
    pending += [pool.submit(chain, prompt, seed) for seed in args.seeds for prompt in args.prompts]
    while any(not job.done() for job in list(pending)):
        time.sleep(1)
    pool.shutdown()


if __name__ == "__main__":
    main()
