"""The suite tables' columns: the machine names of metrics.json (summary.csv) and the readable ones
people see (summary.md, report.html), with units and arrows, per-stage columns grouped under one header."""

from __future__ import annotations

from dreamflow.evaluate.metric_names import (
    ASSET_METRICS,
    HEADLINE_STAGE_METRICS,
    STAGE_LABELS,
    STAGE_METRICS,
    TIMING_METRICS,
    Metric,
)
from dreamflow.stages import FINAL_STAGE, STAGES

IDENTITY = ["method", "seed", "prompt", "status"]
STAGE_COLUMNS = [f"{stage}_{key}" for key in STAGE_METRICS for stage in STAGES] + [f"{FINAL_STAGE}_chamfer"]
COLUMNS = IDENTITY + ["clip_score", "clip_rank", *STAGE_COLUMNS, *TIMING_METRICS, "seconds_total"]


def readable_columns(headline: bool) -> list[tuple[str, str, str]]:
    """(machine column, group header, sub-header) of the people-facing tables, in order."""
    columns = [("clip_score", ASSET_METRICS["clip_score"].header, "")]
    keys = HEADLINE_STAGE_METRICS if headline else tuple(STAGE_METRICS)
    for key in keys:
        columns += [(f"{stage}_{key}", STAGE_METRICS[key].header, STAGE_LABELS[stage]) for stage in STAGES]
    if headline:
        columns.append((f"{FINAL_STAGE}_chamfer_relative", STAGE_METRICS["chamfer_relative"].header,
                        STAGE_LABELS[FINAL_STAGE]))
    else:
        columns.insert(1, ("clip_rank", ASSET_METRICS["clip_rank"].header, ""))
        columns += [(key, metric.header, "") for key, metric in TIMING_METRICS.items()]
    columns.append(("seconds_total", ASSET_METRICS["seconds_total"].header, ""))
    return columns


def metric_of(column: str) -> Metric:
    """The `Metric` that formats a machine column."""
    if column in ASSET_METRICS:
        return ASSET_METRICS[column]
    if column in TIMING_METRICS:
        return TIMING_METRICS[column]
    return STAGE_METRICS[column.split("_", 1)[1]]
