"""The GPU check's report (dreamflow/perf/gpu_report.py) on the CPU: its worker for every stage
with both back-end sets at toy size, and the row runner's keep-what-you-measured behaviour."""

import json
import sys
import time

import pytest

from dreamflow.perf.gpu_report import RowRunner, load_rows, measure_row, merged, planned_rows, write_report

# Toy sizes: one timed iteration of each stage in about a second on the CPU.
TOY = {"device": "cpu", "volume.samples_per_ray": 8, "stage1.resolution": 16, "stage2.resolution": 16,
       "stage3.resolution": 16, "extract.target_faces": 200, "guidance.apfo.num_timesteps": 2}


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_worker_measures_every_stage_with_both_backend_sets(stage):
    """Each back-end set of a stage is measured on its own (a fresh trainer, as in its own process)."""
    rows = [measure_row("config/pipeline/toy.yaml", stage, "apfo", backends, 1, 1, TOY) for backends in ("cuda", "torch")]
    for row, backends in zip(rows, ("cuda", "torch")):
        assert row["stage"] == stage and row["backends"] == backends and row["device"] == "cpu"
        assert row["s_per_it"] > 0 and row["floor_s_per_it"] > 0 and row["over_floor"] > 0
        assert "hash_grid=torch" in row["backend"]  # no CUDA here: `auto` takes the torch back ends
        assert row["syncs_per_it"] != row["syncs_per_it"]  # NaN: counted on CUDA only
    json.dumps(rows)  # a row travels as one JSON line


WORKER = """
import json, sys, time
stage, method, backends = sys.argv[sys.argv.index("--worker") + 1:][:3]
if stage == "stage2":
    raise RuntimeError("CUDA out of memory (stand-in)")
if stage == "stage3":
    time.sleep(30)
print("noise on stdout")
print(json.dumps({"stage": stage, "method": method, "backends": backends, "s_per_it": 0.5,
                  "floor_s_per_it": 0.4, "over_floor": 1.25, "device": "stand-in GPU"}))
"""


def test_rows_are_kept_as_they_finish_and_failures_do_not_stop_the_run(tmp_path):
    """Rows in priority order (APFO first); each appended to rows.jsonl when it ends; a failing and a
    hanging worker are recorded (error line, timeout) and the next row runs; the report is rewritten
    after every row; rows that no longer fit the budget are skipped, not started."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    reports = []
    out = tmp_path / "out"

    def report(skipped):
        reports.append(len(load_rows([out / "rows.jsonl"])))

    runner = RowRunner(out, [], budget_s=None, row_timeout_s=2, on_row=report, command=[sys.executable, str(worker)])
    rows = planned_rows(["stage1", "stage2", "stage3"], ["sds", "apfo"], ["cuda", "torch"])
    assert rows[:6] == [(s, "apfo", b) for s in ("stage1", "stage2", "stage3") for b in ("cuda", "torch")]
    begin = time.monotonic()
    runner.run(rows[:6])
    assert time.monotonic() - begin < 20  # the two hanging rows were killed at their timeout
    kept = load_rows([out / "rows.jsonl"])
    assert [(r["stage"], r["backends"], r["status"]) for r in kept] == [
        ("stage1", "cuda", "ok"), ("stage1", "torch", "ok"), ("stage2", "cuda", "failed"),
        ("stage2", "torch", "failed"), ("stage3", "cuda", "timeout"), ("stage3", "torch", "timeout")]
    assert "CUDA out of memory (stand-in)" in kept[2]["error"] and "row timeout" in kept[4]["error"]
    assert reports == [1, 2, 3, 4, 5, 6]
    assert "Traceback" in (out / "rows.log").read_text()  # the whole worker output is kept

    # A second run (another window) with a budget that fits no row: nothing starts, all are listed.
    skipped = RowRunner(out, [], budget_s=0.5, command=[sys.executable, str(worker)]).run(rows[6:])
    assert [r["status"] for r in skipped] == ["skipped"] * 6 and len(load_rows([out / "rows.jsonl"])) == 6


def test_report_merges_windows_keeping_the_latest_success(tmp_path):
    first = [{"stage": "stage1", "method": "apfo", "backends": "cuda", "status": "ok", "s_per_it": 0.30,
              "floor_s_per_it": 0.25, "over_floor": 1.2, "window": "w1", "device": "GPU", "backend": "hash_grid=tcnn"},
             {"stage": "stage2", "method": "apfo", "backends": "cuda", "status": "timeout", "error": "killed",
              "window": "w1"}]
    second = [{"stage": "stage2", "method": "apfo", "backends": "cuda", "status": "ok", "s_per_it": 0.70,
               "floor_s_per_it": 0.35, "over_floor": 2.0, "window": "w2", "device": "GPU",
               "backend": "rasterizer=nvdiffrast, hash_grid=tcnn"},
              {"stage": "stage3", "method": "apfo", "backends": "cuda", "status": "ok", "s_per_it": 0.9,
               "floor_s_per_it": 0.8, "over_floor": 1.1, "window": "w2", "device": "GPU",
               "backend": "rasterizer=torch, hash_grid=torch"},  # the extensions did not build
              {"stage": "stage1", "method": "apfo", "backends": "cuda", "status": "failed", "error": "x",
               "window": "w2"}]
    for name, rows in (("a.jsonl", first), ("b.jsonl", second)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn line')
    rows = load_rows([tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "missing.jsonl"])
    table = merged(rows)
    assert list(zip(table["stage"], table["status"], table["window"])) == [
        ("stage1", "ok", "w1"), ("stage2", "ok", "w2"), ("stage3", "ok", "w2")]
    out = tmp_path / "gpu_check.md"
    write_report(rows, [], out, "config/paper.yaml", "bash scripts/gpu_check.sh", (5000, 3000, 2000), {"gpu": "GPU"})
    text = out.read_text()
    assert "| stage2  | apfo     | cuda       | ok" in text and "2.00x" in text
    assert "stage1, CUDA back ends, within 1.5x of the floor: met (worst method 1.20x)" in text
    assert "stage2, CUDA back ends, within 1.5x of the floor: missed (worst method 2.00x)" in text
    assert "stage3, CUDA back ends, within 1.5x of the floor: not measured with nvdiffrast" in text


def test_preflight_reports_what_the_builds_need_within_ten_seconds(tmp_path):
    """`gpu_check.sh --preflight` (also the first step of a run): printed and saved as preflight.json."""
    import subprocess

    from .conftest import ROOT

    begin = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--preflight", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - begin
    assert done.returncode == 0, done.stdout[-2000:]
    facts = json.loads((tmp_path / "preflight.json").read_text())
    for key in ("gpu", "torch", "torch_cuda", "setuptools", "ninja", "nvcc", "nvrtc.h", "libnvrtc", "libcuda",
                "tinycudann", "nvdiffrast.torch", "packages"):
        assert key in facts and f"{key}: " in done.stdout, key
    assert facts["tinycudann"] == "torch sees no CUDA device"  # this CPU machine
    assert seconds < 10 and "preflight" in (tmp_path / "gpu_check.log").read_text()
