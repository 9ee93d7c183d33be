"""The Snakemake workflow end to end on the smoke suite (local executor), and its planning."""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def make_workdir(path: Path) -> Path:
    """A scratch working directory that sees the repository's configs, prompts, models and profiles."""
    for name in ("config", "prompts", "models", "profiles", "slurm"):
        (path / name).symlink_to(ROOT / name)
    return path


def snakemake(workdir: Path, *args, timeout=1200, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("DREAMFLOW_FAULT", None)
    env.update(env_extra or {})
    command = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    return result, result.stdout + result.stderr


def planned_jobs(output: str) -> dict[str, int]:
    jobs, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats:"):
            inside = True
            continue
        parts = line.split()
        if inside and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
        elif inside and parts and parts[0] == "total":
            break
    return jobs


def test_bare_dry_run_plans_the_toy_suite(tmp_path):
    result, output = snakemake(make_workdir(tmp_path), "-n")
    assert result.returncode == 0, output[-3000:]
    assert planned_jobs(output) == {"prompt_text": 3, "step_config": 5, "stage1": 3, "extract_mesh": 3, "stage2": 3,
                                    "stage3": 3, "evaluate": 3, "summarize": 1, "all": 1}


def test_paper_dry_run_plans_every_prompt_and_method(tmp_path):
    result, output = snakemake(make_workdir(tmp_path), "-n", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, output[-3000:]
    jobs = planned_jobs(output)
    assert jobs["stage1"] == jobs["stage2"] == jobs["stage3"] == jobs["evaluate"] == 90  # 10 prompts x 3 methods x 3 seeds


def gpu_requests(output: str) -> dict[str, set[int]]:
    """rule -> the `gpu` resource values its planned jobs carry (dry-run output)."""
    requests, rule = {}, None
    for line in output.splitlines():
        if line.startswith("rule "):
            rule = line.split()[1].rstrip(":")
        elif "resources:" in line and rule:
            match = re.search(r"\bgpu=(\d+)", line)
            requests.setdefault(rule, set()).add(int(match.group(1)) if match else 0)
    return requests


@pytest.mark.parametrize("configfile, stage_gpus", [(None, 0), ("config/paper.yaml", 1)])
def test_slurm_gpu_requests_follow_the_run_config(tmp_path, configfile, stage_gpus):
    """The toy suite (CPU) asks SLURM for no GPU; paper.yaml's stages ask for one each."""
    args = ["-n", "--profile", "slurm"] + (["--configfile", configfile] if configfile else [])
    result, output = snakemake(make_workdir(tmp_path), *args)
    assert result.returncode == 0, output[-3000:]
    requests = gpu_requests(output)
    assert requests["stage1"] == requests["stage2"] == requests["stage3"] == {stage_gpus}, requests
    assert requests["extract_mesh"] == requests["evaluate"] == {0}, requests


def test_paper_rehearsal_plans_one_asset_with_no_gpu(tmp_path):
    result, output = snakemake(make_workdir(tmp_path), "-n", "--configfile", "config/paper.yaml",
                               "config/tests/paper-rehearsal.yaml")
    assert result.returncode == 0, output[-3000:]
    assert planned_jobs(output)["stage1"] == 1 and gpu_requests(output)["stage1"] == {0}


def test_lint_is_clean(tmp_path):
    result, output = snakemake(make_workdir(tmp_path), "--lint")
    assert result.returncode == 0, output[-3000:]


def test_invalid_workflow_config_names_the_key(tmp_path):
    workdir = make_workdir(tmp_path)
    (workdir / "bad.yaml").write_text("methods: [apfo, dds]\n")
    result, output = snakemake(workdir, "-n", "--configfile", "bad.yaml")
    assert result.returncode != 0 and "dds" in output and "methods" in output


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("smoke"))
    result, output = snakemake(workdir, "--cores", "2", "--configfile", "config/tests/smoke.yaml")
    assert result.returncode == 0, output[-5000:]
    return workdir


def test_smoke_suite_produces_every_output(smoke_run):
    results = smoke_run / "results" / "smoke"
    assets = list((results / "apfo" / "base").glob("*/seed0"))
    assert len(assets) == 1
    asset = assets[0]
    for name in ("stage1/ckpt.pt", "stage1/preview.png", "stage1/turntable.gif", "mesh/coarse.obj",
                 "stage2/ckpt.pt", "stage2/mesh.glb", "stage3/mesh.glb", "stage3/mesh.obj", "stage3/turntable.gif",
                 "stage3/views/view_00.png", "metrics.json"):
        assert (asset / name).exists(), name
    metrics = json.loads((asset / "metrics.json").read_text())
    assert metrics["prompt"] == "a red cube" and metrics["status"] == "ok"
    assert {"clip_score", "clip_rank", "stage1_iou", "stage3_chamfer", "seconds_stage1"} <= metrics.keys()
    assert metrics["backend"]["hash_grid"] == "torch" and metrics["backend"]["rasterizer"] == "torch"
    assert metrics["seconds_stage1"] > 0
    for name in ("summary.csv", "summary.md", "report.html", "quality_vs_time.png"):
        assert (results / name).exists(), name
    for step in ("stage1", "extract_mesh", "stage2", "stage3", "evaluate"):
        assert list((smoke_run / "benchmarks" / "smoke").rglob(f"{step}.tsv")), step


def test_every_file_a_step_writes_is_declared(smoke_run):
    """Each stage's and the extraction's folder holds exactly the outputs the stage description declares
    (the workflow's rules are built from it), plus the stage's log and prompt; nothing else in the asset."""
    from dreamflow.stages import EXTRACTION, RECORDS, STAGES

    asset = next((smoke_run / "results" / "smoke" / "apfo" / "base").glob("*/seed0"))
    for step in [*STAGES.values(), EXTRACTION]:
        folder = asset / step.folder
        written = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        files = {name for name in step.outputs.values() if not name.endswith("/")}
        folders = tuple(name for name in step.outputs.values() if name.endswith("/"))
        records = set(RECORDS) if step.name in STAGES else set()
        assert written - files - records == {name for name in written if name.startswith(folders)}, step.name
        assert files | records <= written, (step.name, (files | records) - written)
        assert all(any(name.startswith(f) for name in written) for f in folders), step.name
    assert {p.name for p in asset.iterdir()} == {*STAGES, EXTRACTION.folder, "metrics.json", "stages.png"}


def test_wandb_offline_has_one_run_per_prompt_method_stage(smoke_run):
    runs = sorted((smoke_run / "results" / "smoke" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # stage1, stage2, stage3 of the single (prompt, method)
    # Each run carries its own name `{stage}-{method}-{prompt}` (and that stage's tags and config).
    expected = {f"{stage}-apfo-a red cube" for stage in ("stage1", "stage2", "stage3")}
    names = []
    for run in runs:
        data = b"".join(p.read_bytes() for p in run.rglob("*.wandb"))
        names.append({name for name in expected if name.encode() in data})
    assert sorted(n for found in names for n in found) == sorted(expected) and all(len(f) == 1 for f in names)


def test_rerun_does_nothing_and_deleting_stage3_reruns_only_its_chain(smoke_run):
    result, output = snakemake(smoke_run, "-n", "--configfile", "config/tests/smoke.yaml")
    assert result.returncode == 0 and "Nothing to be done" in output, output[-3000:]
    glb = next((smoke_run / "results" / "smoke").rglob("stage3/mesh.glb"))
    glb.unlink()
    result, output = snakemake(smoke_run, "-n", "--configfile", "config/tests/smoke.yaml")
    assert planned_jobs(output) == {"stage3": 1, "evaluate": 1, "summarize": 1, "all": 1}, output[-3000:]


def test_exported_glb_round_trips_with_uvs_and_texture(smoke_run):
    from dreamflow.export.texture import load_textured

    glb = next((smoke_run / "results" / "smoke").rglob("stage2/mesh.glb"))
    mesh = load_textured(glb)
    assert mesh.visual.uv is not None and len(mesh.visual.uv) == len(mesh.vertices)
    image = mesh.visual.material.baseColorTexture
    assert image is not None and image.size == (64, 64)
    assert 0.0 <= mesh.visual.uv.min() and mesh.visual.uv.max() <= 1.0


@pytest.mark.slow  # four Snakemake runs of the smoke suite (about 3.5 min); stage-level kills stay in the default run
def test_kill_at_random_points_then_rerun_matches_the_uninterrupted_run(smoke_run, tmp_path):
    """SIGKILL a stage during optimisation, export and a checkpoint write; rerun after each kill.

    Snakemake deletes each killed job's outputs; the stage resumes from its last complete
    checkpoint (resume/ckpt.pt), and the final asset is bit-identical to the uninterrupted run's.
    """
    seed = int(os.environ.get("DREAMFLOW_FAULT_SEED", "2026"))
    rng = random.Random(seed)
    faults = [f"stage1:step:{rng.randint(4, 5)}", "stage2:export:3", f"stage3:checkpoint:{rng.randint(1, 3)}"]
    workdir = make_workdir(tmp_path)
    for fault in faults:
        result, output = snakemake(workdir, "--cores", "2", "--configfile", "config/tests/smoke.yaml",
                                   env_extra={"DREAMFLOW_FAULT": fault})
        assert result.returncode != 0, (seed, fault, output[-3000:])  # the kill happened and was seen
        stage = fault.split(":")[0]
        asset = next((workdir / "results" / "smoke" / "apfo" / "base").glob("*/seed0"))
        assert not (asset / stage / "ckpt.pt").exists(), (seed, fault)  # failed job's outputs removed
    result, output = snakemake(workdir, "--cores", "2", "--configfile", "config/tests/smoke.yaml")
    assert result.returncode == 0, (seed, faults, output[-3000:])

    asset = next((workdir / "results" / "smoke" / "apfo" / "base").glob("*/seed0"))
    reference = next((smoke_run / "results" / "smoke" / "apfo" / "base").glob("*/seed0"))
    for stage in ("stage1", "stage2", "stage3"):
        ours = torch.load(asset / stage / "ckpt.pt", weights_only=False)["model"]
        theirs = torch.load(reference / stage / "ckpt.pt", weights_only=False)["model"]
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), (seed, faults, stage, key)
        assert not (asset / stage / "resume").exists()
    events = [json.loads(line) for line in (asset / "stage1" / "log.jsonl").read_text().splitlines()]
    killed_at = int(faults[0].split(":")[-1])
    expected = [{"step": killed_at - killed_at % 3}] if killed_at >= 3 else []
    assert [{"step": e["step"]} for e in events if e.get("event") == "resumed"] == expected, (seed, faults)
    assert json.loads((asset / "metrics.json").read_text())["status"] == "ok"


def test_nan_in_one_asset_is_marked_failed_in_the_suite_summary(smoke_run):
    """Runs last in this module: it adds a second prompt to the smoke suite's results."""
    (smoke_run / "two.txt").write_text("a red cube\na blue sphere\n")
    (smoke_run / "two.yaml").write_text("prompts: two.txt\n")
    result, output = snakemake(smoke_run, "--cores", "2", "--keep-going", "--configfile", "config/tests/smoke.yaml",
                               "two.yaml", env_extra={"DREAMFLOW_INJECT_NAN_AT_STEP": "4@a blue sphere"})
    assert result.returncode != 0
    assert "lists every asset" in output, output[-3000:]
    sphere_log = next((smoke_run / "logs" / "smoke" / "apfo" / "base").glob("a-blue-sphere-*/seed0/stage1.log"))
    assert "non-finite loss or parameters at step 4" in sphere_log.read_text()
    results = smoke_run / "results" / "smoke"
    import pandas as pd

    summary = pd.read_csv(results / "summary.csv").set_index("prompt")
    assert summary.loc["a red cube", "status"] == "ok"
    status = summary.loc["a blue sphere", "status"]
    assert status.startswith("failed: stage1 at step 4: NonFiniteError"), status
    assert "a blue sphere" in (results / "report.html").read_text()
    sphere = next((results / "apfo" / "base").glob("a-blue-sphere-*/seed0"))
    state = torch.load(sphere / "stage1" / "resume" / "ckpt.pt", weights_only=False)
    assert state["step"] == 3  # the last good checkpoint (every 3 steps in the smoke config) is kept
