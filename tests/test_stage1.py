import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from .conftest import ROOT

FAST = ["--set", "stage1.iterations=6", "--set", "stage1.checkpoint_every=2", "--set", "volume.samples_per_ray=16",
        "--set", "stage1.turntable_views=2", "--set", "stage1.preview_views=2", "--set", "guidance.apfo.num_timesteps=3",
        "--curve-every", "2", "--curve-views", "2"]


def run_stage1(out, method="apfo", fault=None, extra=(), env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("DREAMFLOW_FAULT", None)
    if fault:
        env["DREAMFLOW_FAULT"] = fault
    env.update(env_extra or {})
    command = [sys.executable, "-m", "dreamflow.cli", "stage1", "--config", "config/pipeline/toy.yaml", "--prompt", "a red cube",
               "--method", method, "--out", str(out), *FAST, *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def curve(out):
    import pandas as pd

    return pd.read_csv(out / "curve.csv")


def final_parameters(out):
    return torch.load(out / "ckpt.pt", weights_only=False)["model"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    result = run_stage1(out)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_outputs_written(uninterrupted):
    for name in ("ckpt.pt", "preview.png", "turntable.gif", "prompt.txt", "log.jsonl", "curve.csv"):
        assert (uninterrupted / name).exists(), name
    assert not (uninterrupted / "resume" / "ckpt.pt").exists()
    rows = curve(uninterrupted)
    assert list(rows["step"]) == [0, 2, 4, 6] and rows["seconds"].is_monotonic_increasing
    assert (rows[["method", "variant", "prompt", "seed", "stage"]].iloc[0].tolist()
            == ["apfo", "base", "a red cube", 0, "stage1"])
    assert rows["iou"].between(0, 1).all() and rows["colour_error"].notna().all()


@pytest.mark.parametrize("fault", ["step:3", "checkpoint:4"])
def test_kill_and_resume_gives_identical_parameters(uninterrupted, tmp_path, fault):
    killed = run_stage1(tmp_path, fault=fault)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "ckpt.pt").exists() and (tmp_path / "resume" / "ckpt.pt").exists()
    resumed = run_stage1(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert '"resumed_from": 2' in resumed.stdout
    assert_same(final_parameters(uninterrupted), final_parameters(tmp_path))
    # The quality curve resumes too: rows up to the checkpoint kept, later ones recomputed, none twice.
    straight, again = curve(uninterrupted), curve(tmp_path)
    assert list(again["step"]) == [0, 2, 4, 6]
    pd_columns = ["step", "iou", "colour_error", "detail_error"]
    assert again[pd_columns].equals(straight[pd_columns])


def test_kill_during_export_resumes_without_retraining(uninterrupted, tmp_path):
    killed = run_stage1(tmp_path, fault="export:6")
    assert killed.returncode == -signal.SIGKILL and (tmp_path / "resume" / "ckpt.pt").exists()
    (tmp_path / "ckpt.pt").unlink()  # what Snakemake does with a failed job's outputs
    resumed = run_stage1(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert '"steps": 0' in resumed.stdout and '"resumed_from": 6' in resumed.stdout
    assert (tmp_path / "turntable.gif").exists() and not (tmp_path / "resume" / "ckpt.pt").exists()
    assert_same(final_parameters(uninterrupted), final_parameters(tmp_path))


def test_nan_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    result = run_stage1(tmp_path, env_extra={"DREAMFLOW_INJECT_NAN_AT_STEP": "5"})
    assert result.returncode == 3
    assert "non-finite loss or parameters at step 5" in result.stderr
    state = torch.load(tmp_path / "resume" / "ckpt.pt", weights_only=False)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "ckpt.pt").write_bytes(b"not a checkpoint")
    result = run_stage1(tmp_path)
    assert result.returncode == 2 and "is corrupt or truncated" in result.stderr and "Delete it" in result.stderr


@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_baselines_run_through_the_same_command(tmp_path, method):
    result = run_stage1(tmp_path, method=method, extra=["--set", "stage1.iterations=4", "--set", "stage1.log_every=1"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["config"]["guidance"]["method"] == method
    steps = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(steps) == 4 and all("t" in s for s in steps)
    # APFO logs its schedule's d_sigma and walks t downwards; SDS/VSD draw t at random, and only
    # VSD trains a source model. Each assertion fails if --method were ignored (APFO is the default).
    assert not any("d_sigma" in s for s in steps)
    assert all(("source_loss" in s) == (method == "vsd") for s in steps)
    t = [s["t"] for s in steps]
    assert t != sorted(t, reverse=True)
