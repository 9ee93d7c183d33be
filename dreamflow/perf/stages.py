"""Every stage on a CUDA GPU, end to end: training, mesh extraction and export, one process per stage.

With config/paper.yaml and `--architecture-only`, the full-size SD 2.1 and SDXL-refiner networks
(random weights, so the assets are noise) run at the paper's render sizes, and what is measured is
the code path, the peak GPU memory (training and export together) and seconds per iteration after
the first, from which the time per asset at the paper's iteration counts follows. With
config/pipeline/toy.yaml it runs the toy prior's whole schedule on the GPU, for the CPU-vs-GPU comparison.

    dreamflow perf stages --config config/paper.yaml --architecture-only --iterations 4
    dreamflow perf stages --config config/pipeline/toy.yaml --prompt "a red sphere with blue stripes" --evaluate
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from dreamflow.stages import EXTRACTED_FROM, EXTRACTION, STAGES


def _overrides(args: argparse.Namespace, stage: str) -> dict:
    overrides = {"device": args.device, "guidance.method": args.method, f"{stage}.preview_views": 1,
                 f"{stage}.turntable_views": args.turntable_views}
    if args.iterations:
        overrides |= {f"{stage}.iterations": args.iterations, f"{stage}.checkpoint_every": args.iterations}
    if args.architecture_only:
        overrides |= {"prior.architecture_only": True, "refiner_prior.architecture_only": True}
    return overrides


def run_one(args: argparse.Namespace, stage: str) -> dict:
    """One stage in this process; returns its row."""
    import torch

    from dreamflow.config import load_config
    from dreamflow.export.extract import extract_mesh
    from dreamflow.training.logger import RunLogger
    from dreamflow.training.stages import STAGES as SPECS
    from dreamflow.training.stages import StageInputs, run_stage

    work = Path(args.work)
    spec = SPECS[stage]
    config = load_config(args.config, _overrides(args, stage))
    config_iterations = spec.stage_config(load_config(args.config)).iterations
    inputs = StageInputs(**{name: _input(work, spec, name) for name in spec.inputs})
    stamps: list[float] = []
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    begin = time.perf_counter()
    run_stage(spec, config, args.prompt, work / stage, RunLogger(work / stage), inputs,
              callback=lambda done, model, seconds: stamps.append(time.perf_counter()))
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - begin
    extract_seconds = float("nan")
    if stage == EXTRACTED_FROM:
        start = time.perf_counter()
        extract_mesh(work / stage / "ckpt.pt", config, work / EXTRACTION.path("mesh"))
        extract_seconds = time.perf_counter() - start
    steps = len(stamps) - 1  # stamps[0] is the untrained model's callback
    per_iteration = (stamps[-1] - stamps[1]) / (steps - 1) if steps > 1 else float("nan")
    return {"stage": stage, "resolution": spec.stage_config(config).resolution, "iterations_run": steps,
            "seconds_per_iteration": per_iteration, "first_iteration_seconds": stamps[1] - stamps[0],
            "stage_seconds_with_export": total, "extract_seconds": extract_seconds,
            "config_iterations": config_iterations, "projected_stage_minutes": per_iteration * config_iterations / 60,
            "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "device": torch.cuda.get_device_name() if cuda else args.device, "torch": torch.__version__}


def _input(work: Path, stage, name: str) -> Path:
    """Where the earlier steps of this check left a stage's input ("init": the previous checkpoint)."""
    return work / (f"{stage.previous}/ckpt.pt" if name == "init" else EXTRACTION.path("mesh"))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL, TOY_CLIP_WEIGHTS

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--prompt", default="a DSLR photo of a hamburger")
    parser.add_argument("--method", default="apfo")
    parser.add_argument("--device", default="cuda", help="cpu runs the same path without GPU figures")
    parser.add_argument("--iterations", type=int, default=0, help="per stage; 0 keeps the config's")
    parser.add_argument("--architecture-only", action="store_true", help="full-size networks, random weights")
    parser.add_argument("--turntable-views", type=int, default=8)
    parser.add_argument("--work", default="results/gpu-stage-check")
    parser.add_argument("--out", default=None, help="markdown table to append the rows to")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--evaluate", action="store_true", help="then score the asset as the suite does")
    parser.add_argument("--clip-model", default=TOY_CLIP_MODEL)
    parser.add_argument("--clip-pretrained", default=TOY_CLIP_WEIGHTS)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--one", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args, args.one)))
        return 0
    import pandas as pd

    rows = []
    for stage in args.stages.split(","):
        command = [sys.executable, "-m", "dreamflow.perf.stages", *argv, "--one", stage]
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{stage} failed:\n{result.stderr[-4000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
        table = pd.DataFrame(rows).round(3).to_markdown(index=False)
        if args.out:
            Path(args.out).write_text(f"`{shlex.join(['dreamflow', 'perf', 'stages', *argv])}`\n\n{table}\n")
    print(table)
    if args.evaluate:
        evaluate(args)
    return 0


def evaluate(args: argparse.Namespace) -> None:
    """The suite's evaluation of the finished asset (toy prompts: pattern error, IoU, colour error)."""
    from dreamflow.config import load_config
    from dreamflow.evaluate.metrics import AssetFiles, evaluate_asset

    work = Path(args.work)
    config = load_config(args.config, _overrides(args, next(iter(STAGES))))
    files = AssetFiles({name: work / stage.path("ckpt") for name, stage in STAGES.items()},
                       work / EXTRACTION.path("mesh"))
    metrics = evaluate_asset(config, args.prompt, files, work / "metrics.json", args.clip_model, args.clip_pretrained,
                             args.views, [])
    print(json.dumps({key: value for key, value in metrics.items() if isinstance(value, (int, float))}))


if __name__ == "__main__":
    sys.exit(main())
