"""The GPU check's measurements and report: every stage and method at a config's settings, with the
CUDA back ends (tinycudann, nvdiffrast) and with the pure-PyTorch fallbacks, against the method's
floor; and the projected wall time per asset for each published recipe.

    python -m dreamflow.benchmarks.gpu_report --config config/paper.yaml --architecture-only --out docs/results/gpu_check.md
    python -m dreamflow.benchmarks.gpu_report --config config/toy.yaml --steps 1 --out results/gpu_check_dry_run.md

Each (stage, method) runs in its own process and measures both back-end sets there, reusing the
loaded prior and the method (its LoRA) for the second; the floor does not depend on the back ends
and is measured once. `scripts/gpu_check.sh` runs this after the parity and device tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from dreamflow.benchmarks.recipe import MAGIC3D, PROLIFICDREAMER, Recipe

BACKEND_SETS = {"cuda": {"nerf.encoding.backend": "auto", "rasterizer": "auto"},
                "torch": {"nerf.encoding.backend": "torch", "rasterizer": "torch"}}
# DreamFusion (Poole et al. 2023): 15,000 iterations of one NeRF with SDS. ProlificDreamer (Wang et
# al. 2023): 25k NeRF + 15k mesh geometry + 30k texture, VSD. Magic3D (Lin et al. 2023): 5k coarse +
# 3k fine, SDS (its fine budget split between our two mesh stages, as in the recipe race).
DREAMFUSION = Recipe("dreamfusion", "sds", (15000, 0, 0))
STAGE_NAMES = ("stage1", "stage2", "stage3")


def measure_stage(config_path: str, stage: str, method: str, steps: int, warmup: int, overrides: dict,
                  backend_sets: tuple[str, ...]) -> list[dict]:
    """One row per back-end set: s/iteration, floor, syncs/iteration, peak GPU memory (this process)."""
    from dreamflow.benchmarks.throughput import _mesh_model, _timed, count_syncs, floor_step
    from dreamflow.config import load_config
    from dreamflow.training.logger import RunLogger
    from dreamflow.training.stages import STAGES, StageInputs
    from dreamflow.training.trainer import StageTrainer, build_trainer

    spec, rows, floor = STAGES[stage], [], None
    shared = None  # (prior, guidance) of the first back-end set, reused by the others
    with tempfile.TemporaryDirectory() as folder:
        for name in backend_sets:
            config = load_config(config_path, {**overrides, **BACKEND_SETS[name], "guidance.method": method})

            def make_model():
                return _mesh_model(config) if spec.inputs else spec.build_model(config, StageInputs())

            if shared is None:
                trainer = build_trainer(spec, config, "a red cube", folder, RunLogger(folder), make_model)
                shared = (trainer.prior, trainer.guidance)
            else:
                model = make_model().to(shared[0].device_)
                trainer = StageTrainer(spec.name, model, *shared, config, "a red cube", folder, RunLogger(folder),
                                       config.seed)
            device = trainer.prior.device_

            def step():
                trainer.train_step()
                trainer.step += 1

            for _ in range(warmup):
                step()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            seconds = _timed(step, steps, device)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            syncs = count_syncs(step, device, min(2, steps))
            if floor is None:
                floor = _timed(lambda: floor_step(trainer), steps, device)
            rows.append({"stage": stage, "method": method, "backends": name,
                         "backend": ", ".join(f"{k}={v}" for k, v in trainer.model.backend().items()),
                         "resolution": spec.stage_config(config).resolution, "s_per_it": seconds,
                         "floor_s_per_it": floor, "over_floor": seconds / floor, "syncs_per_it": syncs,
                         "peak_gpu_gb": peak, "iterations": spec.stage_config(config).iterations,
                         "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"})
            del trainer.model, trainer.optimizer
    return rows


def measure_all(config_path: str, stages, methods, steps: int, warmup: int, overrides: dict,
                backend_sets: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for stage in stages:
        for method in methods:
            begin = time.time()
            command = [sys.executable, "-m", "dreamflow.benchmarks.gpu_report", "--worker", stage, method,
                       "--config", config_path, "--steps", str(steps), "--warmup", str(warmup),
                       "--overrides", json.dumps(overrides), "--backend-sets", *backend_sets]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"[gpu report] {stage} {method} failed:\n{result.stderr[-3000:]}", flush=True)
                rows.append({"stage": stage, "method": method, "backends": "failed",
                             "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "?"})
                continue
            found = json.loads(result.stdout.strip().splitlines()[-1])
            rows += found
            summary = ", ".join(f"{r['backends']} {r['s_per_it']:.3f} s/it" for r in found)
            print(f"[gpu report] {stage} {method}: {summary} (floor {found[0]['floor_s_per_it']:.3f}; "
                  f"{time.time() - begin:.0f} s)", flush=True)
    return pd.DataFrame(rows)


def recipe_times(table: pd.DataFrame, dreamflow_iterations: tuple[int, int, int]) -> pd.DataFrame:
    """Projected hours per asset: each recipe's published iterations x the measured s/iteration."""
    recipes = [Recipe("dreamflow", "apfo", dreamflow_iterations), PROLIFICDREAMER, MAGIC3D, DREAMFUSION]
    rows = []
    for backends in sorted(set(table["backends"]) - {"failed"}):
        measured = table[table["backends"] == backends].set_index(["stage", "method"])["s_per_it"]
        for recipe in recipes:
            parts = {stage: iterations * measured.get((stage, recipe.method), float("nan"))
                     for stage, iterations in zip(STAGE_NAMES, recipe.iterations) if iterations}
            rows.append({"recipe": recipe.name, "method": recipe.method, "backends": backends,
                         "iterations": " + ".join(str(i) for i in recipe.iterations if i),
                         **{f"{stage}_min": seconds / 60 for stage, seconds in parts.items()},
                         "total_min": sum(parts.values()) / 60})
    return pd.DataFrame(rows)


def write_report(table: pd.DataFrame, recipes: pd.DataFrame, out: Path, config_path: str, command: str) -> None:
    device = next((d for d in table.get("device", pd.Series(dtype=str)).dropna()), "?")
    shown = table.copy()
    for column in ("s_per_it", "floor_s_per_it"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: f"{v:.3f}")
    for column, fmt in (("over_floor", "{:.2f}x"), ("syncs_per_it", "{:.1f}"), ("peak_gpu_gb", "{:.1f}")):
        if column in shown:
            shown[column] = shown[column].map(lambda v, fmt=fmt: "–" if v != v else fmt.format(v))
    columns = [c for c in ("stage", "method", "backends", "backend", "resolution", "s_per_it", "floor_s_per_it",
                           "over_floor", "syncs_per_it", "peak_gpu_gb", "error") if c in shown]
    text = [f"# GPU check: {device}", "",
            f"`{command}` ({time.strftime('%Y-%m-%d')}), settings of `{config_path}`.", "",
            "Per stage and method, with the CUDA back ends (`cuda`: tinycudann and nvdiffrast where importable) "
            "and the pure-PyTorch fallbacks (`torch`): seconds per training iteration, the method's floor (the "
            "same iteration on random images: VAE encode with gradients, the method's UNet calls and LoRA step), "
            "their ratio, host-device synchronisations per iteration (torch's sync debug mode; – on a CPU) and "
            "peak GPU memory.", "", shown[columns].to_markdown(index=False), "",
            "## Projected time per asset", "",
            "Published iteration budgets x the s/iteration above (minutes): DreamFlow with this config's "
            "iterations; ProlificDreamer 25k + 15k + 30k (VSD); Magic3D 5k + 3k (SDS; its fine budget split "
            "between the two mesh stages); DreamFusion 15k (SDS, one NeRF stage).", "",
            recipes.round(1).to_markdown(index=False), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(text))


def main(argv: list[str] | None = None) -> int:
    from dreamflow.guidance import available
    from dreamflow.training.stages import STAGES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--architecture-only", action="store_true", help="random-weight full-size priors")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--methods", nargs="+", default=list(available()), choices=list(available()))
    parser.add_argument("--backend-sets", nargs="+", default=list(BACKEND_SETS), choices=list(BACKEND_SETS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run-config override")
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("docs/results/gpu_check.md"))
    args = parser.parse_args(argv)
    import yaml

    overrides = json.loads(args.overrides) | {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.architecture_only:
        overrides |= {"prior.architecture_only": True, "refiner_prior.architecture_only": True}
    if args.worker:
        rows = measure_stage(args.config, *args.worker, args.steps, args.warmup, overrides, tuple(args.backend_sets))
        print(json.dumps(rows))
        return 0
    table = measure_all(args.config, args.stages, args.methods, args.steps, args.warmup, overrides,
                        tuple(args.backend_sets))
    from dreamflow.config import load_config

    config = load_config(args.config, overrides)
    recipes = recipe_times(table, tuple(spec.stage_config(config).iterations for spec in STAGES.values()))
    write_report(table, recipes, args.out, args.config, "python -m dreamflow.benchmarks.gpu_report " + " ".join(argv or sys.argv[1:]))
    print(args.out.read_text())
    return int((table["backends"] == "failed").any())


if __name__ == "__main__":
    sys.exit(main())
