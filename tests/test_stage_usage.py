"""Time and memory per stage on named hardware: a stage's own record in its run summary (log.jsonl beside
its checkpoint), read back by evaluation beside Snakemake's benchmark record."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from dreamflow.training.logger import RunLogger
from dreamflow.training.usage import StageUsage, cpu_name, device_name, read_stage_usage


def test_a_cpu_stage_records_its_time_the_cpu_model_and_no_gpu_memory(tmp_path):
    usage = StageUsage(torch.device("cpu"))
    time.sleep(0.05)
    record = usage.finish(iterations=40, iterations_run=30, resumed_from=10, train_seconds=8.0)
    assert record["device"] == cpu_name() == device_name(torch.device("cpu")) and record["device_type"] == "cpu"
    assert "model name" not in record["device"] and record["device"]
    if Path("/proc/cpuinfo").exists() and "model name" in Path("/proc/cpuinfo").read_text():
        assert record["device"] in Path("/proc/cpuinfo").read_text()
    assert record["seconds_per_iteration"] == 0.2 and record["peak_gpu_memory_gb"] is None
    assert 0.05 <= record["wall_seconds"] < 5 and record["resumed_from"] == 10


def test_the_last_summary_in_the_log_is_read_back(tmp_path):
    logger = RunLogger(tmp_path)  # W&B disabled: the local log only
    logger.log({"loss": 1.0}, 1)
    logger.summary({"seconds": 3.0, "backend": {"hash_grid": "torch"}, "device": "old", "wall_seconds": 9.0})
    logger.summary({"seconds": 2.0, "device": "AMD EPYC 7B13", "wall_seconds": 4.0, "seconds_per_iteration": 0.5,
                    "peak_gpu_memory_gb": None, "iterations": 4})
    with (tmp_path / "log.jsonl").open("a") as stream:
        stream.write('{"event": "summ')  # a line cut short by a killed job
    record = read_stage_usage(tmp_path)
    assert record == {"device": "AMD EPYC 7B13", "wall_seconds": 4.0, "seconds_per_iteration": 0.5,
                      "peak_gpu_memory_gb": None, "iterations": 4}
    assert read_stage_usage(tmp_path / "absent") == {}


def test_evaluation_puts_each_stages_record_beside_snakemakes_benchmark(tmp_path):
    from dreamflow.evaluate.metrics import AssetFiles, time_and_memory

    checkpoints = {}
    for i, stage in enumerate(("stage1", "stage2", "stage3")):
        (tmp_path / stage).mkdir()
        checkpoints[stage] = tmp_path / stage / "ckpt.pt"
        if stage != "stage3":  # stage 3 left no record (an older run): its columns are NaN
            RunLogger(tmp_path / stage).summary({"device": "NVIDIA H100 80GB HBM3", "wall_seconds": 10.0 * (i + 1),
                                                 "seconds_per_iteration": 0.3, "peak_gpu_memory_gb": 31.5,
                                                 "iterations": 100})
        (tmp_path / f"{stage}.tsv").write_text("s\th:m:s\tmax_rss\tmax_vms\tcpu_time\n"
                                                f"{12.5 * (i + 1)}\t0:00:12\t2048.0\t4000\t11.0\n")
    metrics = time_and_memory(AssetFiles(checkpoints), [str(tmp_path / f"{s}.tsv") for s in checkpoints])
    json.dumps(metrics)  # what metrics.json holds
    assert metrics["stage2_wall_seconds"] == 20.0 and metrics["stage2_peak_gpu_gb"] == 31.5
    assert metrics["seconds_stage2"] == 25.0 and metrics["stage2_max_rss_gb"] == 2.0
    assert metrics["device"] == "NVIDIA H100 80GB HBM3" and metrics["stages"]["stage1"]["iterations"] == 100
    assert math.isnan(metrics["stage3_wall_seconds"]) and metrics["seconds_total"] == 75.0
