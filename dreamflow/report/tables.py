"""The suite tables' columns: the machine names of metrics.json (summary.csv) and the readable ones
people see (summary.md, report.html), with units and arrows, per-stage columns grouped under one header."""

from __future__ import annotations

from dreamflow.evaluate.metric_names import (
    ASSET_METRICS,
    HEADLINE_STAGE_METRICS,
    STAGE_LABELS,
    STAGE_METRICS,
    TIMING_METRICS,
    USAGE_METRICS,
    Metric,
)
from dreamflow.stages import FINAL_STAGE, STAGES

IDENTITY = ["method", "seed", "prompt", "status"]
STAGE_COLUMNS = [f"{stage}_{key}" for key in STAGE_METRICS for stage in STAGES] + [f"{FINAL_STAGE}_chamfer"]
USAGE_COLUMNS = [f"{stage}_{key}" for stage in STAGES for key in (*USAGE_METRICS, "device")]
COLUMNS = IDENTITY + ["clip_score", "clip_rank", "r_at_1", *STAGE_COLUMNS, *TIMING_METRICS, "seconds_total",
                      *USAGE_COLUMNS, "device"]
# The metrics every suite table gives with its spread over seeds: the final stage's where a metric is per stage.
SPREAD_METRICS = ["clip_score", "r_at_1", f"{FINAL_STAGE}_iou", f"{FINAL_STAGE}_pattern_error",
                  f"{FINAL_STAGE}_chamfer_relative", "seconds_total"]


def readable_columns(headline: bool) -> list[tuple[str, str, str]]:
    """(machine column, group header, sub-header) of the people-facing tables, in order."""
    columns = [("clip_score", ASSET_METRICS["clip_score"].header, ""), ("r_at_1", ASSET_METRICS["r_at_1"].header, "")]
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
    key = column.split("_", 1)[1]
    return USAGE_METRICS[key] if key in USAGE_METRICS else STAGE_METRICS[key]


def metric_header(column: str) -> str:
    """A column's header for people, with its stage where it is one stage's ("Silhouette IoU ↑ (S3)")."""
    stage = column.split("_", 1)[0]
    suffix = f" ({STAGE_LABELS[stage]})" if stage in STAGE_LABELS and column not in TIMING_METRICS else ""
    return metric_of(column).header + suffix
