"""Bad files handed to a stage: a clear error naming the file and what to do, never a traceback."""

import json
import os
import subprocess
import sys

import pytest
import torch

from dreamflow.config import load_config
from dreamflow.geometry.nerf import NeRFModel

from .conftest import ROOT


@pytest.fixture(scope="module")
def stage1_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("init") / "ckpt.pt"
    torch.save({"model": NeRFModel(load_config(ROOT / "config" / "pipeline" / "toy.yaml")).state_dict()}, path)
    return path


@pytest.mark.parametrize("content, message", [
    (b"", "has no faces"),
    (b"this is not an obj file\n", "has no faces"),
    (None, "does not exist: run `dreamflow extract`"),
])
def test_stage2_rejects_a_bad_mesh_with_a_clear_error(tmp_path, stage1_checkpoint, content, message):
    mesh = tmp_path / "coarse.obj"
    if content is not None:
        mesh.write_bytes(content)
    command = [sys.executable, "-m", "dreamflow.cli", "stage2", "--config", "config/pipeline/toy.yaml", "--prompt", "a red cube",
               "--init", str(stage1_checkpoint), "--mesh", str(mesh), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and str(mesh) in result.stderr and "Traceback" not in result.stderr
    record = json.loads((tmp_path / "out" / "failed.json").read_text())
    assert record["stage"] == "stage2" and "EmptyMeshError" in record["error"]


def test_summary_rows_for_failed_stale_and_missing_assets(tmp_path):
    """Every expected asset is a row: ok, failed (also over older metrics), or missing."""
    import time

    from dreamflow.report.summary import load_metrics
    from dreamflow.training.status import record_failure

    ok, stale, missing = (tmp_path / name for name in ("ok", "stale", "missing"))
    for asset in (ok, stale):
        (asset / "stage1").mkdir(parents=True)
        (asset / "metrics.json").write_text(json.dumps({"prompt": asset.name, "method": "apfo", "seed": 0,
                                                        "status": "ok"}))
    time.sleep(0.05)
    record_failure(stale / "stage1", "stage1", "stale", "apfo", 0, RuntimeError("boom"), 7)
    labels = [{"prompt": name, "method": "apfo", "seed": 0} for name in ("ok", "stale", "missing")]
    frame = load_metrics([str(a / "metrics.json") for a in (ok, stale, missing)], labels).set_index("prompt")
    assert frame.loc["ok", "status"] == "ok"
    assert frame.loc["stale", "status"] == "failed: stage1 at step 7: RuntimeError: boom"
    assert frame.loc["missing", "status"].startswith("missing")
