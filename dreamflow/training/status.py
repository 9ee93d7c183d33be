"""Failure records: a stage that stops writes `failed.json` in its folder, so a suite report can mark
the asset failed (with the stage, step and reason) instead of dropping it.

The record is not a workflow output, so it survives the deletion of a failed job's outputs; a later
successful run of the same stage removes it.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from dreamflow.io import atomic_write_bytes

FAILURE_FILE = "failed.json"


def record_failure(out_dir: str | Path, stage: str, prompt: str, method: str, seed: int, error: BaseException,
                   step: int | None = None) -> Path:
    """Write `out_dir/failed.json` describing why `stage` stopped."""
    record = {"stage": stage, "prompt": prompt, "method": method, "seed": seed, "step": step,
              "error": f"{type(error).__name__}: {error}", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "traceback": traceback.format_exception(error)[-3:]}
    path = Path(out_dir) / FAILURE_FILE
    atomic_write_bytes(path, lambda stream: stream.write(json.dumps(record, indent=2).encode()))
    return path


def clear_failure(out_dir: str | Path) -> None:
    (Path(out_dir) / FAILURE_FILE).unlink(missing_ok=True)


def find_failures(asset_dir: str | Path) -> list[dict]:
    """Failure records of an asset's stage folders (`asset_dir/*/failed.json`), earliest stage first."""
    records = []
    for path in sorted(Path(asset_dir).glob(f"*/{FAILURE_FILE}")):
        try:
            records.append(json.loads(path.read_text()) | {"record": str(path)})
        except (OSError, ValueError):
            records.append({"stage": path.parent.name, "error": "unreadable failure record", "record": str(path)})
    return records


def describe(record: dict) -> str:
    step = f" at step {record['step']}" if record.get("step") is not None else ""
    return f"failed: {record.get('stage', '?')}{step}: {record.get('error', '?')}"
