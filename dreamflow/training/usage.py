"""Time and memory of a stage, recorded by the stage run itself on the hardware it ran on.

`StageUsage` starts before the stage builds its model and prior and stops after its exports: the
stage's wall time, its iterations and training seconds (carried over a resume, as the trainer keeps
them), seconds per iteration, the peak GPU memory torch allocated (`torch.cuda.max_memory_allocated`;
None on a CPU) and the device's name (the GPU's, or the CPU model). The stage writes the record into
its run summary (`RunLogger.summary`: the W&B run's summary and a `summary` event of `log.jsonl`
beside the checkpoint); `read_stage_usage` reads it back for evaluation. Snakemake's `benchmark:`
record of the same job (wall seconds and peak RSS of the whole process) stays beside it.
"""

from __future__ import annotations

import functools
import json
import platform
import time
from pathlib import Path

import torch

USAGE_KEYS = ("device", "device_type", "threads", "iterations", "iterations_run", "resumed_from", "train_seconds",
              "seconds_per_iteration", "wall_seconds", "peak_gpu_memory_gb")


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model (/proc/cpuinfo's `model name`, else the platform's processor or machine)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """A device as people name it: the GPU's name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


class StageUsage:
    """Measures one stage run: start it before the model and prior are built, `finish` after the exports."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.start = time.perf_counter()

    def finish(self, iterations: int, iterations_run: int, resumed_from: int, train_seconds: float) -> dict:
        """The record: wall time of this run, training time and s/iteration over the whole stage."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)  # the wall time includes the device's queued work
        return {"device": device_name(self.device), "device_type": self.device.type, "threads": torch.get_num_threads(),
                "iterations": iterations, "iterations_run": iterations_run, "resumed_from": resumed_from,
                "train_seconds": train_seconds,
                "seconds_per_iteration": train_seconds / iterations if iterations else None,
                "wall_seconds": time.perf_counter() - self.start,
                "peak_gpu_memory_gb": torch.cuda.max_memory_allocated(self.device) / 2**30 if cuda else None}


def read_stage_usage(stage_folder: str | Path) -> dict:
    """The last usage record a stage wrote in its `log.jsonl` (empty when it wrote none)."""
    path = Path(stage_folder) / "log.jsonl"
    if not path.exists():
        return {}
    record: dict = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut short by a killed job
            continue
        if entry.get("event") == "summary" and "wall_seconds" in entry:
            record = entry
    return {key: record[key] for key in USAGE_KEYS if key in record}
