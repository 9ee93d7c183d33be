"""`dreamflow summarize`: suite tables (pandas), R-precision, plots and report.html.

summary.csv keeps the machine names of metrics.json; summary.md and report.html show readable
names with units and arrows (`tables`, from `dreamflow.evaluate.metric_names`). The page itself is `page`.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dreamflow.evaluate.metric_names import ASSET_METRICS, STAGE_METRICS  # noqa: E402
from dreamflow.io import atomic_write_bytes  # noqa: E402
from dreamflow.report.page import write_report  # noqa: E402
from dreamflow.report.tables import COLUMNS, IDENTITY, metric_of, readable_columns  # noqa: E402
from dreamflow.stages import FINAL_STAGE, STAGES  # noqa: E402
from dreamflow.training.status import describe, find_failures  # noqa: E402


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
                    | {"clip_similarities": data.get("clip_similarities", {})})
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = float("nan")
    if "variant" in frame and frame["variant"].nunique() > 1:  # a suite of variants: each is its own entry
        frame["method"] = frame["method"].astype(str) + "@" + frame["variant"].astype(str)
    return frame


def r_precision(frame: pd.DataFrame) -> pd.Series:
    """CLIP R-precision@1 per method: share of assets whose own prompt ranks first among the suite's."""
    def hit(row) -> float:
        sims = row["clip_similarities"] or {}
        if not sims or row["prompt"] not in sims:
            return float("nan")
        return float(max(sims, key=sims.get) == row["prompt"])
    return frame.assign(r_precision=frame.apply(hit, axis=1)).groupby("method")["r_precision"].mean()


def method_means(table: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Mean of every numeric metric per method, R-precision, asset and failure counts (integers)."""
    numeric = [c for c in COLUMNS if c not in IDENTITY]
    means = table.groupby("method")[numeric].mean(numeric_only=True)
    means["r_precision"] = r_precision(frame)
    means["assets"] = table.groupby("method").size()
    not_ok = table[table["status"] != "ok"].groupby("method").size()
    means["failed_or_missing"] = not_ok.reindex(means.index).fillna(0).astype(int)
    return means.reset_index()


def _markdown(frame: pd.DataFrame, identity: list[tuple[str, str]], columns: list[tuple[str, str, str]]) -> str:
    data = {label: frame[key].astype(str) if key != "seed" else frame[key] for key, label in identity}
    for key, group, sub in columns:
        data[f"{group} {sub}".strip()] = [metric_of(key).format(v) for v in frame[key]]
    return pd.DataFrame(data).to_markdown(index=False)


def summarize_suite(metrics: list[str], out_dir: str | Path, suite: str,
                    labels: list[dict] | None = None) -> dict[str, Path]:
    """summary.csv/.md, plots and report.html (+ report_files/); failed or missing assets stay as rows."""
    out_dir = Path(out_dir)
    frame = load_metrics(metrics, labels)
    table = frame[COLUMNS + ["metrics_file"]].sort_values(["prompt", "seed", "method"]).reset_index(drop=True)
    paths = {"csv": out_dir / "summary.csv", "md": out_dir / "summary.md", "html": out_dir / "report.html",
             "plot": out_dir / "quality_vs_time.png", "stages_plot": out_dir / "metrics_by_stage.png",
             "files": out_dir / "report_files"}
    atomic_write_bytes(paths["csv"], lambda s: s.write(table.to_csv(index=False).encode()))
    per_method = method_means(table, frame)
    method_identity = [("method", "Method"), ("assets", "Assets"), ("failed_or_missing", "Failed or missing")]
    asset_identity = [("prompt", "Prompt"), ("method", "Method"), ("seed", "Seed"), ("status", "Status")]
    per_method_columns = readable_columns(headline=True)
    per_method_columns.insert(1, ("r_precision", ASSET_METRICS["r_precision"].header, ""))
    markdown = (f"# Suite `{suite}`\n\n↑ higher is better, ↓ lower is better; S1-S3 are the stages, each scored "
                f"at the final resolution against the toy world's truth (– where a prompt has none).\n\n"
                f"## Mean per method\n\n{_markdown(per_method, method_identity, per_method_columns)}\n\n"
                f"## Per asset\n\n{_markdown(table, asset_identity, readable_columns(headline=True))}\n\n"
                f"## Per asset, all metrics\n\n{_markdown(table, asset_identity, readable_columns(headline=False))}\n")
    atomic_write_bytes(paths["md"], lambda s: s.write(markdown.encode()))
    plot_quality_vs_time(table, paths["plot"])
    plot_metrics_by_stage(table, paths["stages_plot"])
    write_report(suite, table, per_method, paths)
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
