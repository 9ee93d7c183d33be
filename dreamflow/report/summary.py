"""`dreamflow summarize`: suite tables (pandas) with their spread over seeds, paired differences
between methods, CLIP R-precision, time and memory per stage, plots and report.html.

summary.csv keeps the machine names of metrics.json, one row per asset; spread.csv, paired.csv and
r_precision.csv hold the aggregated tables in long form. summary.md and report.html show readable
names with units and arrows (`tables`, from `dreamflow.evaluate.metric_names`). The page itself is `page`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dreamflow.evaluate.metric_names import METHOD_NAMES, STAGE_METRICS  # noqa: E402
from dreamflow.io import atomic_write_bytes  # noqa: E402
from dreamflow.report import spread  # noqa: E402
from dreamflow.report.page import write_report  # noqa: E402
from dreamflow.report.r_precision import (  # noqa: E402
    protocol_line,
    retrieval_rows,
    retrieval_summary,
    retrieval_summary_per_group,
)
from dreamflow.report.tables import (  # noqa: E402
    COLUMNS,
    SPREAD_METRICS,
    metric_header,
    metric_of,
    readable_columns,
)
from dreamflow.report.usage import stage_usage, usage_cells  # noqa: E402
from dreamflow.stages import FINAL_STAGE, STAGES  # noqa: E402
from dreamflow.training.status import describe, find_failures  # noqa: E402

KEPT_ENTRIES = ("r_precision",)  # nested entries of metrics.json the tables read (others are flat columns)


def load_metrics(paths: list[str], labels: list[dict] | None = None) -> pd.DataFrame:
    """One row per asset. An asset without metrics.json is kept as a row: `failed: ...` when a stage
    left a failure record, else `missing`; `labels` (method, variant, seed, prompt per path) fill its
    identity. With several variants, `method` reads `method@variant`."""
    rows = []
    for i, path in enumerate(paths):
        path = Path(path)
        failures = find_failures(path.parent)
        if path.exists():  # a failure recorded after these metrics were written makes them stale
            failures = [f for f in failures if Path(f["record"]).stat().st_mtime > path.stat().st_mtime]
        if path.exists() and not failures:
            data = json.loads(path.read_text())
        else:
            first = failures[0] if failures else {}
            data = {key: first.get(key) for key in ("prompt", "method", "seed")}
            data["status"] = describe(first) if failures else "missing (not run, or an earlier stage did not finish)"
        if labels is not None:
            data = {**labels[i], **{k: v for k, v in data.items() if v is not None}}
        data["metrics_file"] = str(path)
        rows.append({k: v for k, v in data.items() if not isinstance(v, (dict, list))}
                    | {key: data.get(key) for key in KEPT_ENTRIES})
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = float("nan")
    if "variant" in frame and frame["variant"].nunique() > 1:  # a suite of variants: each is its own entry
        frame["method"] = frame["method"].astype(str) + "@" + frame["variant"].astype(str)
    return frame


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


@dataclass
class SuiteTables:
    """Every aggregated table of a suite, machine form (long) and the cells people read."""

    per_method: pd.DataFrame  # method, metric, mean, sd, n, assets
    per_prompt: pd.DataFrame  # method, prompt, metric, mean, sd, n
    paired: pd.DataFrame  # method_a, method_b, metric, mean, low, high, n
    retrieval: pd.DataFrame  # per asset, CLIP model and mode
    r_at_1: pd.DataFrame  # method, clip, mode, mean, sd, n, assets, hits
    usage: pd.DataFrame  # method, stage, device, metric, mean, sd, n
    protocol: str
    cells: dict[str, pd.DataFrame]  # section -> table of strings
    per_group: pd.DataFrame = field(default_factory=pd.DataFrame)  # group, method, metric, mean, sd, n, assets
    r_at_1_per_group: pd.DataFrame = field(default_factory=pd.DataFrame)  # group, method, clip, mode, ...


def suite_tables(table: pd.DataFrame, frame: pd.DataFrame) -> SuiteTables:
    metrics = [m for m in SPREAD_METRICS if pd.to_numeric(table[m], errors="coerce").notna().any()]
    ok = table[table["status"] == "ok"]
    per_method, per_prompt = spread.per_method(ok, metrics), spread.per_prompt_method(ok, metrics)
    paired = spread.paired_differences(ok, metrics)
    retrieval = retrieval_rows(frame)
    r_at_1 = retrieval_summary(retrieval)
    per_group, r_at_1_per_group = spread.per_group_method(ok, metrics), retrieval_summary_per_group(retrieval)
    usage = stage_usage(table)
    counts = table.groupby("method", sort=False).agg(assets=("status", "size"),
                                                     failed=("status", lambda s: int((s != "ok").sum())))
    cells = {"per_method": _spread_cells(spread.wide(per_method, ["method"]), metrics, counts),
             "per_prompt": _spread_cells(spread.wide(per_prompt, ["prompt", "method"]), metrics),
             "paired": _paired_cells(paired),
             "r_precision": _r_at_1_cells(r_at_1),
             "usage": usage_cells(usage, method_name),
             "per_group": _spread_cells(spread.wide(per_group, ["group", "method"]), metrics),
             "r_precision_per_group": _r_at_1_cells(r_at_1_per_group)}
    return SuiteTables(per_method, per_prompt, paired, retrieval, r_at_1, usage, protocol_line(frame), cells,
                       per_group, r_at_1_per_group)


def _spread_cells(wide: pd.DataFrame, metrics: list[str], counts: pd.DataFrame | None = None) -> pd.DataFrame:
    rows = []
    for _, row in wide.iterrows():
        cells = {"Prompt": row["prompt"]} if "prompt" in row else {}
        cells |= {"Group": row["group"]} if "group" in row else {}
        cells["Method"] = method_name(row["method"])
        if counts is not None:
            cells["Assets"] = int(counts.loc[row["method"], "assets"])
            cells["Failed or missing"] = int(counts.loc[row["method"], "failed"])
        cells["Seeds (n)"] = int(max((row[f"{m}_n"] for m in metrics if pd.notna(row.get(f"{m}_n"))), default=0))
        for metric in metrics:
            cells[metric_header(metric)] = metric_of(metric).format_spread(row.get(metric), row.get(f"{metric}_sd"))
        rows.append(cells)
    return pd.DataFrame(rows)


def _paired_cells(paired: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (a, b), group in paired.groupby(["method_a", "method_b"], sort=False):
        cells = {"Difference": f"{method_name(a)} − {method_name(b)}", "Pairs (n)": int(group["n"].max())}
        for _, row in group.iterrows():
            cells[metric_header(row["metric"])] = metric_of(row["metric"]).format_interval(row["mean"], row["low"],
                                                                                           row["high"])
        rows.append(cells)
    return pd.DataFrame(rows)


def _r_at_1_cells(r_at_1: pd.DataFrame) -> pd.DataFrame:
    rows = {}
    r_metric = metric_of("r_at_1")
    for _, row in r_at_1.iterrows():
        group = {"Group": row["group"]} if "group" in row else {}
        cells = rows.setdefault((row.get("group"), row["method"]),
                                group | {"Method": method_name(row["method"]), "Seeds (n)": int(row["n"]),
                                         "Assets": int(row["assets"])})
        cells[f"{row['clip']} · {row['mode']}"] = r_metric.format_spread(row["mean"], row["sd"])
    return pd.DataFrame(list(rows.values()))


def _markdown(frame: pd.DataFrame, identity: list[tuple[str, str]], columns: list[tuple[str, str, str]]) -> str:
    data = {label: frame[key].astype(str) if key != "seed" else frame[key] for key, label in identity}
    for key, group, sub in columns:
        data[f"{group} {sub}".strip()] = [metric_of(key).format(v) for v in frame[key]]
    return pd.DataFrame(data).to_markdown(index=False)


def _cells_markdown(cells: pd.DataFrame, empty: str) -> str:
    return cells.to_markdown(index=False) if not cells.empty else empty


SECTION_NOTES = {
    "per_method": "Each seed's mean over the prompts, then mean ± sd over the seeds (n seeds); the final "
                  "stage's value where a metric is per stage.",
    "per_prompt": "Mean ± sd over the seeds of each prompt (n seeds).",
    "paired": (f"Method A − method B on the same prompt and seed: mean difference [95 % percentile cluster "
               f"bootstrap interval, {spread.RESAMPLES} resamples of the prompts, each with all its seeds; numpy "
               f"default_rng seeded per row by a hash of the two methods, the metric and {spread.BOOTSTRAP_SEED}], "
               f"n pairs."),
    "usage": "Per stage and method, mean ± sd over the assets (n): Snakemake's job wall time and peak RSS "
             "(benchmark records), and the stage's own record: its wall time (model, prior, training, "
             "exports), training time per iteration and peak GPU memory (torch.cuda.max_memory_allocated; "
             "– on a CPU), on the device named.",
}


def per_group_markdown(tables: SuiteTables) -> str:
    """summary.md's per-group sections, for a suite of groups (T3Bench's single, surr, multi): the
    spread per method within each group and R@1 within each group; "" for a suite of one prompt file."""
    if tables.per_group.empty and tables.r_at_1_per_group.empty:
        return ""
    return (f"## Per group and method\n\n{SECTION_NOTES['per_method']} Within each group of the suite.\n\n"
            f"{_cells_markdown(tables.cells['per_group'], 'No finished asset.')}\n\n"
            f"## CLIP R-precision per group\n\nR@1 (%) within each group (each retrieves among its own "
            f"prompts), mean ± sd over the seeds:\n\n"
            f"{_cells_markdown(tables.cells['r_precision_per_group'], 'Not measured.')}\n\n")


def summarize_suite(metrics: list[str], out_dir: str | Path, suite: str,
                    labels: list[dict] | None = None) -> dict[str, Path]:
    """summary.csv/.md, spread.csv, paired.csv, r_precision.csv, plots and report.html (+ report_files/);
    failed or missing assets stay as rows."""
    out_dir = Path(out_dir)
    frame = load_metrics(metrics, labels)
    order = frame.sort_values(["prompt", "seed", "method"]).index
    frame = frame.loc[order].reset_index(drop=True)
    table = frame[COLUMNS + [c for c in ("prompt_id", "group") if c in frame] + ["metrics_file"]]
    paths = {"csv": out_dir / "summary.csv", "md": out_dir / "summary.md", "html": out_dir / "report.html",
             "spread": out_dir / "spread.csv", "paired": out_dir / "paired.csv",
             "r_precision": out_dir / "r_precision.csv",
             "plot": out_dir / "quality_vs_time.png", "stages_plot": out_dir / "metrics_by_stage.png",
             "files": out_dir / "report_files"}
    tables = suite_tables(table, frame)
    def write_csv(path: Path, data: pd.DataFrame) -> None:
        atomic_write_bytes(path, lambda stream: stream.write(data.to_csv(index=False).encode()))

    write_csv(paths["csv"], table)
    per_group = tables.per_group.assign(prompt=lambda t: "(all prompts of group " + t["group"].astype(str) + ")")
    write_csv(paths["spread"], pd.concat([tables.per_method.assign(prompt="(all prompts)"), per_group,
                                          tables.per_prompt], ignore_index=True))
    write_csv(paths["paired"], tables.paired)
    write_csv(paths["r_precision"], tables.retrieval)
    asset_identity = [("prompt", "Prompt"), ("method", "Method"), ("seed", "Seed"), ("status", "Status")]
    cells = tables.cells
    markdown = (f"# Suite `{suite}`\n\n↑ higher is better, ↓ lower is better; S1-S3 are the stages, each scored "
                f"at the final resolution against the toy world's truth (– where a prompt has none).\n\n"
                f"## Per method\n\n{SECTION_NOTES['per_method']}\n\n"
                f"{_cells_markdown(cells['per_method'], 'No finished asset.')}\n\n"
                + per_group_markdown(tables) +
                f"## Per prompt and method\n\n{SECTION_NOTES['per_prompt']}\n\n"
                f"{_cells_markdown(cells['per_prompt'], 'No finished asset.')}\n\n"
                f"## Paired differences between methods\n\n{SECTION_NOTES['paired']}\n\n"
                f"{_cells_markdown(cells['paired'], 'One method: nothing to pair.')}\n\n"
                f"## CLIP R-precision\n\n{tables.protocol}\n\nR@1 (%), each seed's share over the prompts, "
                f"mean ± sd over the seeds:\n\n{_cells_markdown(cells['r_precision'], 'Not measured.')}\n\n"
                f"## Time and memory per stage\n\n{SECTION_NOTES['usage']}\n\n"
                f"{_cells_markdown(cells['usage'], 'No stage recorded its time and memory.')}\n\n"
                f"## Per asset\n\n{_markdown(table, asset_identity, readable_columns(headline=True))}\n\n"
                f"## Per asset, all metrics\n\n{_markdown(table, asset_identity, readable_columns(headline=False))}\n")
    atomic_write_bytes(paths["md"], lambda s: s.write(markdown.encode()))
    plot_quality_vs_time(table, paths["plot"])
    plot_metrics_by_stage(table, paths["stages_plot"])
    write_report(suite, table, tables, paths, SECTION_NOTES)
    return paths


def plot_quality_vs_time(table: pd.DataFrame, path: Path) -> None:
    quality = [c for c in ("clip_score", f"{FINAL_STAGE}_iou") if table[c].notna().any()]
    fig, axes = plt.subplots(1, max(1, len(quality)), figsize=(4.5 * max(1, len(quality)), 3.4), squeeze=False)
    for ax, column in zip(axes[0], quality or ["clip_score"]):
        for method, group in table.groupby("method"):
            ax.scatter(group["seconds_total"] / 60, group[column], label=method)
        ax.set_xlabel("wall time per asset (min, Snakemake benchmark)")
        ax.set_ylabel(metric_of(column).header + ("" if column == "clip_score" else f" ({STAGES[FINAL_STAGE].label})"))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_metrics_by_stage(table: pd.DataFrame, path: Path) -> None:
    """One panel per toy metric: each asset across the stages (thin) and the mean per method (bold)."""
    positions = list(range(1, len(STAGES) + 1))
    keys = [key for key in STAGE_METRICS if table[[f"{s}_{key}" for s in STAGES]].notna().any().any()]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(2.9 * max(1, len(keys)), 2.9), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[0], keys):
        metric = STAGE_METRICS[key]
        for i, (method, group) in enumerate(table.groupby("method")):
            values = group[[f"{s}_{key}" for s in STAGES]].to_numpy(dtype=float) * metric.scale
            colour = colours[i % len(colours)]
            for row in values:
                ax.plot(positions, row, color=colour, alpha=0.3, linewidth=0.8)
            ax.plot(positions, pd.DataFrame(values).mean().to_numpy(), color=colour, marker="o", linewidth=2,
                    label=method)
        ax.set_xticks(positions, [stage.label for stage in STAGES.values()])
        ax.set_title(metric.header, fontsize=10)
        ax.grid(alpha=0.3)
    if not keys:
        axes[0][0].text(0.5, 0.5, "no ground truth for these prompts", ha="center", va="center")
        axes[0][0].set_axis_off()
    else:
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
