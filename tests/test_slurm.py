"""The smoke suite through `--profile slurm` on a real single-node SLURM cluster."""

import re
import shutil
import subprocess

import pytest

from .test_workflow import make_workdir, planned_jobs, snakemake  # noqa: F401

pytestmark = pytest.mark.slurm


def cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return result.returncode == 0 and bool(re.search(r"idle|mixed|allocated", result.stdout))


@pytest.mark.skipif(not cluster_up(), reason="no local SLURM cluster: run scripts/slurm/start_local_cluster.sh (root)")
def test_smoke_suite_through_the_slurm_profile(tmp_path):
    workdir = make_workdir(tmp_path)
    result, output = snakemake(workdir, "--cores", "all", "--profile", "slurm", "--configfile", "config/smoke.yaml",
                               "--verbose", timeout=1500)
    assert result.returncode == 0, output[-5000:]
    assert list((workdir / "results" / "smoke").glob("apfo/*/seed0/metrics.json"))
    assert (workdir / "results" / "smoke" / "summary.csv").exists()
    calls = [line for line in output.splitlines() if "sbatch call:" in line]
    by_rule = {re.search(r"rule_([a-z0-9_]+?)(?:_wildcards|\W)", c).group(1): c for c in calls}
    for rule in ("stage1", "stage2", "stage3", "evaluate"):
        assert "--gpus=1" in by_rule[rule], by_rule.get(rule)
    assert "--gpus" not in by_rule["extract_mesh"] and "--gres" not in by_rule["extract_mesh"]
