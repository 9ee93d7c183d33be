"""The `slurm` profile on a real SLURM cluster: a small race end to end, every stage run its own job,
with its tuning and the race report (default run), and a 2-prompt suite with a running stage-1 job requeued (what preemption does) halfway through its
optimisation (`slow`). Both read the cluster's capacity instead of assuming the test cluster's."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .test_workflow import ROOT, SNAKEMAKE, make_workdir

pytestmark = pytest.mark.slurm

SUITE = """suite: requeue
prompts: prompts2.txt
pipeline_overrides:
  stage1.iterations: 30
  stage1.checkpoint_every: 3
"""


def cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return result.returncode == 0 and bool(re.search(r"idle|mixed|allocated", result.stdout))


def node_capacity() -> dict[str, int]:
    """CPUs, memory (MB) and GPUs of the largest node, as SLURM reports them."""
    rows = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m %G"], capture_output=True, text=True).stdout.split("\n")
    best = {"cpus": 0, "mem_mb": 0, "gpus": 0}
    for row in filter(None, (r.split() for r in rows)):
        gpus = sum(int(m) for m in re.findall(r"gpu(?::[^:(,]+)?:(\d+)", row[2])) if len(row) > 2 else 0
        best = max(best, {"cpus": int(row[0]), "mem_mb": int(row[1].rstrip("+")), "gpus": gpus},
                   key=lambda node: node["cpus"])
    return best


def jobs_that_fit(capacity: dict[str, int], threads: int, mem_mb: int, gpus: int) -> int:
    """How many jobs of one rule's size the node runs at once."""
    fit = min(capacity["cpus"] // threads, capacity["mem_mb"] // mem_mb)
    return min(fit, capacity["gpus"] // gpus) if gpus else fit


def sbatch_calls(output: str) -> dict[str, str]:
    calls = [line for line in output.splitlines() if "sbatch call:" in line]
    return {re.search(r"rule_([a-z0-9_]+?)(?:_wildcards|\W)", c).group(1): c for c in calls}


def slurm_snakemake(workdir: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "all",
            "--profile", "slurm", *args, "--verbose", "--slurm-init-seconds-before-status-checks", "2"]


def slurm_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


@pytest.mark.skipif(not cluster_up(), reason="no local SLURM cluster: run scripts/slurm/start_local_cluster.sh (root)")
def test_small_race_runs_through_the_slurm_profile(tmp_path):
    workdir = make_workdir(tmp_path)
    result = subprocess.run(slurm_snakemake(workdir, "--configfile", "config/tests/smoke-race.yaml"),
                            cwd=workdir, env=slurm_env(), capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    results = workdir / "results" / "smoke-race"
    assert sorted(p.parts[-6] for p in results.glob("*/tuned/*/seed0/stage3/mesh.glb")) == ["apfo", "sds"]
    assert (results / "race" / "race.md").exists() and (results / "tuning" / "pick.yaml").exists()
    # One SLURM job per (method, variant, prompt, seed, stage): 2 methods x (1 raced + 2 grid points) for
    # stage 1, the raced variant only after it; reports and config files stay on the submitting node.
    submitted = re.findall(r"sbatch call:.*?rule_([a-z0-9_]+?)_wildcards", output)
    counts = {rule: submitted.count(rule) for rule in set(submitted)}
    assert counts == {"stage1": 6, "extract_mesh": 2, "stage2": 2, "stage3": 2}, counts
    by_rule = sbatch_calls(output)
    # The toy race runs on CPU: no job asks SLURM for a GPU; stages are requeued on preemption.
    assert not any("--gpus" in call or "--gres" in call for call in by_rule.values()), by_rule
    assert "--requeue" in by_rule["stage1"]


def requeue_when_checkpointed(results, prompt_slug_prefix: str, deadline: float) -> tuple[str, int]:
    """Requeue the stage-1 job of one prompt once its first periodic checkpoint exists.

    Returns its job id and the largest number of stage-1 jobs seen RUNNING at the same time.
    """
    names = (prompt_slug_prefix, prompt_slug_prefix.replace("-", "_"))
    most_running = 0
    while time.time() < deadline:
        jobs = subprocess.run(["squeue", "-h", "-o", "%i %k %T"], capture_output=True, text=True).stdout
        rows = [(line.split() + ["", ""])[:3] for line in jobs.splitlines()]
        running = [(job_id, comment) for job_id, comment, state in rows
                   if comment.startswith("rule_stage1") and state == "RUNNING"]
        most_running = max(most_running, len(running))
        if list(results.glob(f"apfo/base/{prompt_slug_prefix}*/seed0/stage1/resume/ckpt.pt")):
            for job_id, comment in running:
                if any(n in comment for n in names):
                    subprocess.run(["scontrol", "requeue", job_id], check=True)
                    # A requeued job becomes eligible only after a delay (about 2 min); release it now.
                    for _ in range(120):  # accepted once the killed job has left COMPLETING
                        time.sleep(1)
                        update = subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"],
                                                capture_output=True, text=True)
                        if update.returncode == 0:
                            break
                    return job_id, most_running
        time.sleep(0.5)
    raise AssertionError("stage 1 never wrote a periodic checkpoint under SLURM")


@pytest.mark.slow  # about 5 min, most of it waiting for the requeued job
@pytest.mark.skipif(not cluster_up(), reason="no local SLURM cluster: run scripts/slurm/start_local_cluster.sh (root)")
def test_suite_through_the_slurm_profile_survives_a_requeue(tmp_path):
    workdir = make_workdir(tmp_path)
    (workdir / "prompts2.txt").write_text("a red cube\na blue sphere\n")
    (workdir / "requeue.yaml").write_text(SUITE)
    command = slurm_snakemake(workdir, "--configfile", "config/tests/smoke.yaml", "requeue.yaml")
    process = subprocess.Popen(command, cwd=workdir, env=slurm_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    results = workdir / "results" / "requeue"
    try:
        job_id, most_running = requeue_when_checkpointed(results, "a-red-cube", time.time() + 600)
        output, _ = process.communicate(timeout=1500)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-5000:]

    # The requeued job resumed from its checkpoint instead of starting over.
    log_file = next(results.glob("apfo/base/a-red-cube*/seed0/stage1/log.jsonl"))
    log = [json.loads(line) for line in log_file.read_text().splitlines()]
    resumed = [record for record in log if record.get("event") == "resumed"]
    assert resumed and resumed[0]["step"] >= 3, (job_id, log[-5:])
    stopped = [record for record in log if record.get("event") == "stopped"]
    assert stopped and stopped[0]["signal"] == "SIGTERM"  # SIGTERM turned into a checkpoint at that step
    assert resumed[0]["step"] == stopped[0]["step"]
    for asset in results.glob("apfo/base/*/seed0"):
        assert (asset / "metrics.json").exists() and not (asset / "stage1" / "resume").exists()
    assert len(list(results.glob("apfo/base/*/seed0/metrics.json"))) == 2
    assert (results / "summary.csv").exists()

    # The two prompts' stage-1 jobs ran at the same time where the node has room for both (its CPUs,
    # memory and GPUs, as sinfo reports them, against the jobs' requests) and shared one
    # text-embedding cache: every entry complete, no temporary files.
    stage1 = re.search(r"--mem[= ](\d+)", sbatch_calls(output)["stage1"])
    fit = jobs_that_fit(node_capacity(), threads=1, mem_mb=int(stage1.group(1)) if stage1 else 1, gpus=0)
    assert most_running == min(2, fit), (most_running, node_capacity())
    cache = list((tmp_path / "cache" / "text_embeddings").glob("*"))
    assert len(cache) >= 4  # both prompts, several view suffixes each (jobs inherit DREAMFLOW_CACHE)
    for entry in cache:
        assert not entry.name.endswith(".tmp"), entry
        assert torch.load(entry, weights_only=True)["cond"].isfinite().all()

    assert "--requeue" in sbatch_calls(output)["stage1"]
