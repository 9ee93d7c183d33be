"""Time and memory per stage and method, on the hardware that ran it: each stage's own record (wall
time, time per iteration, peak GPU memory, device; `dreamflow.training.usage`) beside Snakemake's
benchmark of the same job (wall seconds, peak RSS)."""

from __future__ import annotations

import pandas as pd

from dreamflow.evaluate.metric_names import USAGE_METRICS
from dreamflow.stages import STAGES

# (the column's key after `{stage}_` or as `seconds_{stage}`, its header); the job's wall time is Snakemake's.
USAGE_TABLE = [("job_seconds", "Job wall time (s, Snakemake)"), ("wall_seconds", "Stage wall time (s)"),
               ("seconds_per_iteration", "Time per iteration (s)"), ("peak_gpu_gb", "Peak GPU memory (GiB)"),
               ("max_rss_gb", "Peak RSS (GiB)")]


def stage_usage(table: pd.DataFrame) -> pd.DataFrame:
    """Long table: method, stage, device, metric, mean, sd, n over the assets that recorded it."""
    rows = []
    for method, group in table[table["status"] == "ok"].groupby("method", sort=False):
        for stage in STAGES:
            devices = group.get(f"{stage}_device", group.get("device", pd.Series(dtype=str))).dropna().unique()
            for key, _ in USAGE_TABLE:
                column = f"seconds_{stage}" if key == "job_seconds" else f"{stage}_{key}"
                values = pd.to_numeric(group.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
                rows.append({"method": method, "stage": stage, "device": ", ".join(map(str, devices)) or "–",
                             "metric": key, "mean": values.mean(), "sd": values.std(ddof=1), "n": len(values)})
    return pd.DataFrame(rows, columns=["method", "stage", "device", "metric", "mean", "sd", "n"])


def usage_cells(usage: pd.DataFrame, method_name) -> pd.DataFrame:
    """The table people read: one row per method and stage, "mean ± sd" per column, n assets."""
    if usage.empty:
        return pd.DataFrame()
    rows = []
    for (method, stage), group in usage.groupby(["method", "stage"], sort=False):
        values = group.set_index("metric")
        if values["n"].max() == 0:  # no asset has a record of this stage
            continue
        row = {"Method": method_name(method), "Stage": STAGES[stage].label, "Device": group["device"].iloc[0],
               "n": int(values["n"].max())}
        for key, header in USAGE_TABLE:
            metric = USAGE_METRICS.get(key, USAGE_METRICS["wall_seconds"])
            row[header] = metric.format_spread(values.loc[key, "mean"], values.loc[key, "sd"])
        rows.append(row)
    return pd.DataFrame(rows)
