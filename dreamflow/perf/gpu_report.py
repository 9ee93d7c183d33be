"""The GPU check's measurements and report: every stage and method at a config's settings, with the
CUDA back ends (tinycudann, nvdiffrast) and with the pure-PyTorch fallbacks, against the method's
floor; and the projected wall time per asset for each published recipe.

One row is one (stage, method, back-end set), measured in its own process (so a crash, a hang or
an out-of-memory costs that row only, and peak memory is the row's own). Rows run in priority
order, APFO's three stages with every back-end set first, within a time budget and a per-row
timeout. Each finished row is appended to `OUT/rows.jsonl` at once and `OUT/gpu_check.md` is
rewritten, so a check killed part-way keeps what it measured; worker output goes to `OUT/rows.log`.
Rows of earlier runs (`--merge`, and `OUT/rows.jsonl` itself) are merged into the report, and rows
already measured on the same GPU are not run again unless `--remeasure`.

    dreamflow perf gpu-report --config config/paper.yaml --architecture-only --out-dir OUT --budget-s 420
    dreamflow perf gpu-report --config config/pipeline/toy.yaml --steps 1 --warmup 1 --out-dir OUT   # CPU rehearsal
    dreamflow perf gpu-report --report-only --out-dir OUT --merge docs/results/gpu_check_rows.jsonl

`scripts/gpu_check.sh` runs this after its preflight, the installs and the parity and device tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from dreamflow.compare.recipe import MAGIC3D, PROLIFICDREAMER, Recipe
from dreamflow.stages import STAGES

BACKEND_SETS = {"cuda": {"nerf.encoding.backend": "auto", "rasterizer": "auto"},
                "torch": {"nerf.encoding.backend": "torch", "rasterizer": "torch"}}
# DreamFusion (Poole et al. 2023): 15,000 iterations of one NeRF with SDS. ProlificDreamer (Wang et
# al. 2023): 25k NeRF + 15k mesh geometry + 30k texture, VSD. Magic3D (Lin et al. 2023): 5k coarse +
# 3k fine, SDS (its fine budget split between our two mesh stages, as in the recipe race).
DREAMFUSION = Recipe("dreamfusion", "sds", (15000, 0, 0))
KEY = ("stage", "method", "backends")
# Goals of the first GPU window: each stage with the CUDA back ends within this factor of the method's
# floor, and DreamFlow's paper recipe under this many minutes per asset.
FLOOR_GOAL, RECIPE_GOAL_MIN = 1.5, 45.0


def planned_rows(stages, methods, backend_sets) -> list[tuple[str, str, str]]:
    """(stage, method, back-end set) in priority order: APFO's stages with every back-end set first."""
    ordered = sorted(methods, key=lambda method: method != "apfo")
    return [(stage, method, backends) for method in ordered for stage in stages for backends in backend_sets]


def measure_row(config_path: str, stage: str, method: str, backends: str, steps: int, warmup: int,
                overrides: dict) -> dict:
    """One row in this process: s/iteration, the method's floor, syncs/iteration (and where), peak GPU memory.

    Steps count from the stage's `shading_start_step`, so stage 1 is timed with its later mix of
    shaded and albedo renders; the warm-up steps also size the renderers' buffers.
    """
    from dreamflow.config import load_config
    from dreamflow.perf.throughput import _mesh_model, _timed, floor_step, sync_sites
    from dreamflow.training.logger import RunLogger
    from dreamflow.training.stages import STAGES as SPECS
    from dreamflow.training.stages import StageInputs
    from dreamflow.training.trainer import build_trainer

    spec = SPECS[stage]
    config = load_config(config_path, {**overrides, **BACKEND_SETS[backends], "guidance.method": method})
    stage_config = spec.stage_config(config)

    def make_model():  # stages that start from an earlier stage's output are timed on a stand-in mesh
        return _mesh_model(config) if spec.inputs else spec.build_model(config, StageInputs())

    with tempfile.TemporaryDirectory() as folder:
        trainer = build_trainer(spec, config, "a red cube", folder, RunLogger(folder), make_model)
        device = torch.device(trainer.prior.device_)
        trainer.step = getattr(stage_config, "shading_start_step", 0)

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
        syncs, sites = sync_sites(step, device, max(1, min(2, steps)))
        floor = _timed(lambda: floor_step(trainer), steps, device)
        backend = ", ".join(f"{k}={v}" for k, v in trainer.model.backend().items())
    return {"stage": stage, "method": method, "backends": backends, "backend": backend,
            "resolution": stage_config.resolution, "s_per_it": seconds, "floor_s_per_it": floor,
            "over_floor": seconds / floor, "syncs_per_it": syncs,
            "sync_sites": "; ".join(f"{site} x{count:g}" for site, count in sites.items()),
            "peak_gpu_gb": peak, "iterations": stage_config.iterations,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__}


@dataclass
class RowRunner:
    """Runs rows in worker processes into `out_dir`, keeping every finished row on disk at once."""

    out_dir: Path
    worker_args: list[str]  # passed to every worker after --worker STAGE METHOD BACKENDS
    budget_s: float | None = None  # the whole run's; rows that no longer fit are skipped
    row_timeout_s: float = 600.0
    min_row_s: float = 0.0  # a row is started only with at least this long (or the longest row so far) left
    window: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    on_row: object = None  # called after every row (the report is rewritten there)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "dreamflow.perf.gpu_report"])
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)  # the running worker

    def run(self, rows: list[tuple[str, str, str]]) -> list[dict]:
        """Measure `rows` in order; return the skipped ones as rows with status "skipped".

        SIGTERM or SIGINT ends the worker of the row in progress too (it has its own process group)
        and then this process; the rows finished before are on disk already.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)

        def stop(signum, frame):
            if self._process is not None and self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGKILL)
            raise SystemExit(128 + signum)

        previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run(rows)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(self, rows: list[tuple[str, str, str]]) -> list[dict]:
        start, longest, skipped = time.monotonic(), self.min_row_s, []
        for stage, method, backends in rows:
            left = math.inf if self.budget_s is None else self.budget_s - (time.monotonic() - start)
            if left < max(longest, 1.0):
                skipped.append({"stage": stage, "method": method, "backends": backends, "status": "skipped",
                                "error": f"not started: {left:.0f} s of the budget left, a row takes {longest:.0f} s"})
                continue
            row = self.run_one(stage, method, backends, min(self.row_timeout_s, left))
            longest = max(longest, row["seconds"])
            self.append(row)
            if self.on_row is not None:
                self.on_row(skipped)
        return skipped

    def run_one(self, stage: str, method: str, backends: str, timeout: float) -> dict:
        command = [*self.command, "--worker", stage, method, backends, *self.worker_args]
        begin = time.monotonic()
        label = f"{stage} {method} {backends}"
        print(f"[gpu check] {label}: started (timeout {timeout:.0f} s)", flush=True)
        with open(self.out_dir / "rows.log", "a") as log:
            log.write(f"\n===== {label} ({time.strftime('%H:%M:%S')}): {' '.join(command)}\n")
            log.flush()
            # Its own process group (not setsid): a timeout kills the worker and its children;
            # and it dies with this process, however this one ends.
            process = self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                                                       process_group=0, preexec_fn=_die_with_parent)
            try:
                out, _ = process.communicate(timeout=timeout)
                status = "ok" if process.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                out, _ = process.communicate()
                status = "timeout"
            log.write(out)
        seconds = time.monotonic() - begin
        base = {"stage": stage, "method": method, "backends": backends, "window": self.window,
                "seconds": seconds}
        lines = out.strip().splitlines()
        if status == "ok":
            try:
                row = {**json.loads(lines[-1]), **base, "status": "ok"}
            except (IndexError, json.JSONDecodeError):
                status = "failed"
        if status != "ok":
            error = (f"killed after {timeout:.0f} s (row timeout)" if status == "timeout"
                     else _last_error(self.out_dir / "rows.log"))
            row = {**base, "status": status, "error": error}
        print(f"[gpu check] {label}: {status} in {seconds:.0f} s"
              + (f", {row['s_per_it']:.3f} s/it, floor {row['floor_s_per_it']:.3f}" if status == "ok" else
                 f": {row['error']}"), flush=True)
        return row

    def append(self, row: dict) -> None:
        with open(self.out_dir / "rows.jsonl", "a") as rows:
            rows.write(json.dumps(row) + "\n")
            rows.flush()
            os.fsync(rows.fileno())


def _die_with_parent() -> None:
    """In the worker, before it runs: SIGKILL when the process that started it ends (Linux)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _last_error(log: Path) -> str:
    """The last line of the last worker's output that names an error (its traceback's last line)."""
    text = log.read_text(errors="replace").rsplit("\n===== ", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error:" in line or "Killed" in line]
    return (errors or lines or ["no output"])[-1][:300]


def load_rows(paths) -> list[dict]:
    """Rows of every existing rows.jsonl in `paths`, in order (a torn last line is skipped)."""
    rows = []
    for path in paths:
        if Path(path).exists():
            for line in Path(path).read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def merged(rows: list[dict]) -> pd.DataFrame:
    """One row per (stage, method, back-end set): its latest successful measurement, else its latest failure."""
    kept: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in KEY)
        if row.get("status") == "ok" or kept.get(key, {}).get("status") != "ok":
            kept[key] = row
    order = {stage: i for i, stage in enumerate(STAGES)}
    ordered = sorted(kept.values(), key=lambda r: (r["method"] != "apfo", r["method"], order.get(r["stage"], 9),
                                                    r["backends"]))
    return pd.DataFrame(ordered)


def recipe_times(table: pd.DataFrame, dreamflow_iterations: tuple[int, int, int]) -> pd.DataFrame:
    """Projected minutes per asset: each recipe's published iterations x the measured s/iteration."""
    recipes = [Recipe("dreamflow", "apfo", dreamflow_iterations), PROLIFICDREAMER, MAGIC3D, DREAMFUSION]
    ok = table[table["status"] == "ok"] if "status" in table else table.iloc[0:0]
    rows = []
    for backends in sorted(set(ok.get("backends", []))):
        measured = ok[ok["backends"] == backends].set_index(["stage", "method"])["s_per_it"]
        for recipe in recipes:
            parts = {stage: iterations * measured.get((stage, recipe.method), float("nan"))
                     for stage, iterations in zip(STAGES, recipe.iterations) if iterations}
            rows.append({"recipe": recipe.name, "method": recipe.method, "backends": backends,
                         "iterations": " + ".join(str(i) for i in recipe.iterations if i),
                         **{f"{stage}_min": seconds / 60 for stage, seconds in parts.items()},
                         "total_min": sum(parts.values()) / 60})
    return pd.DataFrame(rows)


def _fmt(value, pattern: str) -> str:
    return "–" if value is None or (isinstance(value, float) and value != value) else pattern.format(value)


def write_report(rows: list[dict], skipped: list[dict], out: Path, config_path: str, command: str,
                 dreamflow_iterations: tuple[int, int, int], preflight: dict | None = None) -> None:
    """Rewrite the markdown report from all rows so far (merged) and the rows not run."""
    table = merged(rows)
    shown = table.copy()
    formats = {"s_per_it": "{:.3f}", "floor_s_per_it": "{:.3f}", "over_floor": "{:.2f}x", "syncs_per_it": "{:.1f}",
               "peak_gpu_gb": "{:.1f}", "seconds": "{:.0f}"}
    for column, pattern in formats.items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, p=pattern: _fmt(v, p))
    columns = [c for c in ("stage", "method", "backends", "status", "backend", "resolution", "s_per_it",
                           "floor_s_per_it", "over_floor", "syncs_per_it", "peak_gpu_gb", "seconds", "window",
                           "error") if c in shown]
    devices = sorted({str(d) for d in table.get("device", pd.Series(dtype=str)).dropna()})
    facts = preflight or {}
    text = [f"# GPU check: {', '.join(devices) or facts.get('gpu', '?')}", "",
            f"`{command}` (settings of `{config_path}`), last written {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    if facts:
        text += ["Machine: " + "; ".join(f"{k} {v}" for k, v in facts.items()), ""]
    text += ["One row per stage, method and back-end set, each measured in its own process: `cuda` is "
             "tinycudann and nvdiffrast where they import (the `backend` column says what ran), `torch` the "
             "pure-PyTorch fallbacks. Seconds per training iteration, the method's floor (the same iteration "
             "on random images: VAE encode with gradients, the method's UNet calls and LoRA step), their ratio, "
             "host-device synchronisations per iteration (torch's sync debug mode; – off CUDA; where they "
             "happen in `rows.jsonl`), peak GPU memory, the row's wall time and the run (window) that "
             "measured it.", "", shown[columns].to_markdown(index=False) if len(shown) else "(no rows yet)", ""]
    if skipped:
        text += ["Not run: " + "; ".join(f"{r['stage']} {r['method']} {r['backends']} ({r['error']})"
                                         for r in skipped), ""]
    recipes = recipe_times(table, dreamflow_iterations)
    if len(recipes):
        text += ["## Projected time per asset", "",
                 "Published iteration budgets x the s/iteration above (minutes): DreamFlow with this config's "
                 "iterations; ProlificDreamer 25k + 15k + 30k (VSD); Magic3D 5k + 3k (SDS; its fine budget split "
                 "between the two mesh stages); DreamFusion 15k (SDS, one NeRF stage).", "",
                 recipes.round(1).to_markdown(index=False), ""]
    text += _goals(table, recipes)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text("\n".join(text))
    temporary.replace(out)


def _goals(table: pd.DataFrame, recipes: pd.DataFrame) -> list[str]:
    """Each stage with the CUDA back ends within FLOOR_GOAL of its floor; DreamFlow under RECIPE_GOAL_MIN."""
    lines = ["## Goals", ""]
    ok = table[(table.get("status") == "ok") & (table.get("backends") == "cuda")] if len(table) else table
    for stage in STAGES:
        rows = ok[ok["stage"] == stage] if len(ok) else ok
        # Only rows where the extensions ran count (a failed build leaves the torch back ends in the cuda set).
        extension = "hash_grid=tcnn" if STAGES[stage].model == "nerf" else "rasterizer=nvdiffrast"
        ratios = [r for r, b in zip(rows.get("over_floor", []), rows.get("backend", [])) if extension in str(b)]
        worst = max(ratios) if ratios else None
        lines.append(f"* {stage}, CUDA back ends, within {FLOOR_GOAL}x of the floor: "
                     + (f"not measured with {extension.split('=')[1]}" if worst is None else
                        f"{'met' if worst <= FLOOR_GOAL else 'missed'} (worst method {worst:.2f}x)"))
    dreamflow = recipes[(recipes["recipe"] == "dreamflow") & (recipes["backends"] == "cuda")] if len(recipes) else []
    total = float(dreamflow["total_min"].iloc[0]) if len(dreamflow) else float("nan")
    lines.append(f"* DreamFlow's recipe under {RECIPE_GOAL_MIN:.0f} min per asset (the cuda back-end set): "
                 + ("not measured" if total != total else f"{'met' if total < RECIPE_GOAL_MIN else 'missed'} "
                    f"({total:.1f} min)"))
    return lines + [""]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from dreamflow.config import parse_overrides
    from dreamflow.guidance import available

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--architecture-only", action="store_true", help="random-weight full-size priors")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--methods", nargs="+", default=list(available()), choices=list(available()))
    parser.add_argument("--backend-sets", nargs="+", default=list(BACKEND_SETS), choices=list(BACKEND_SETS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run-config override")
    parser.add_argument("--out-dir", type=Path, default=Path("results/gpu-check"),
                        help="rows.jsonl, rows.log and gpu_check.md go here")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds for all rows; later ones are skipped")
    parser.add_argument("--row-timeout-s", type=float, default=600.0)
    parser.add_argument("--min-row-s", type=float, default=0.0, help="start no row with less than this left")
    parser.add_argument("--merge", nargs="*", default=[], type=Path, help="rows.jsonl files of earlier runs")
    parser.add_argument("--remeasure", action="store_true", help="also rows already measured on this GPU")
    parser.add_argument("--copy-to", type=Path, default=None, help="also write the report here")
    parser.add_argument("--preflight", type=Path, default=None, help="preflight.json to head the report")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the rows, run nothing")
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=3, metavar=("STAGE", "METHOD", "BACKENDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides) | parse_overrides(args.set)
    if args.architecture_only:
        overrides |= {"prior.architecture_only": True, "refiner_prior.architecture_only": True}
    if args.worker:
        print(json.dumps(measure_row(args.config, *args.worker, args.steps, args.warmup, overrides)))
        return 0

    from dreamflow.config import load_config

    config = load_config(args.config, overrides)
    iterations = tuple(stage.stage_config(config).iterations for stage in STAGES.values())
    rows_file = args.out_dir / "rows.jsonl"
    preflight = json.loads(args.preflight.read_text()) if args.preflight and args.preflight.exists() else None
    shown_command = "dreamflow perf gpu-report " + " ".join(argv)

    def report(skipped: list[dict]) -> None:
        rows = load_rows([*args.merge, rows_file])
        for out in [args.out_dir / "gpu_check.md", *([args.copy_to] if args.copy_to else [])]:
            write_report(rows, skipped, out, args.config, shown_command, iterations, preflight)

    if args.report_only:
        report([])
        print((args.out_dir / "gpu_check.md").read_text())
        return 0
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    done = {tuple(r[k] for k in KEY) for r in load_rows([*args.merge, rows_file])
            if r.get("status") == "ok" and r.get("device") == device}
    rows = [row for row in planned_rows(args.stages, args.methods, args.backend_sets)
            if args.remeasure or row not in done]
    print(f"[gpu check] {len(rows)} rows to run ({len(done)} already measured on {device})", flush=True)
    worker_args = ["--config", args.config, "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--overrides", json.dumps(overrides)]
    runner = RowRunner(args.out_dir, worker_args, args.budget_s, args.row_timeout_s, args.min_row_s, on_row=report)
    skipped = runner.run(rows)
    report(skipped)
    finished = [r for r in load_rows([rows_file]) if r.get("window") == runner.window]
    print(f"[gpu check] {sum(r['status'] == 'ok' for r in finished)} of {len(finished)} rows ok, {len(skipped)} not "
          f"started; report: {args.out_dir / 'gpu_check.md'}", flush=True)
    return int(any(r["status"] != "ok" for r in finished))


if __name__ == "__main__":
    sys.exit(main())
