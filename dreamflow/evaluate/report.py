"""`dreamflow summarize`: suite tables (pandas), R-precision, plots and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dreamflow.io import atomic_write_bytes  # noqa: E402
from dreamflow.training.status import describe, find_failures  # noqa: E402

COLUMNS = ["method", "seed", "prompt", "status", "clip_score", "clip_rank", "stage1_iou", "stage1_colour_error",
           "stage2_iou", "stage3_iou", "stage3_colour_error", "stage1_detail_error", "stage2_detail_error",
           "stage3_detail_error", "stage1_pattern_error", "stage2_pattern_error", "stage3_pattern_error",
           "stage3_chamfer", "stage3_chamfer_relative",
           "seconds_stage1", "seconds_extract_mesh", "seconds_stage2", "seconds_stage3", "seconds_total"]


def load_metrics(paths: list[str], labels: list[dict] | None = None) -> pd.DataFrame:
    """One row per asset. An asset without metrics.json is kept as a row: `failed: ...` when a stage
    left a failure record, else `missing`; `labels` (method, seed, prompt per path) fill its identity."""
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
    return frame


def r_precision(frame: pd.DataFrame) -> pd.Series:
    """CLIP R-precision@1 per method: share of assets whose own prompt ranks first among the suite's."""
    def hit(row) -> float:
        sims = row["clip_similarities"] or {}
        if not sims or row["prompt"] not in sims:
            return float("nan")
        return float(max(sims, key=sims.get) == row["prompt"])
    return frame.assign(r_precision=frame.apply(hit, axis=1)).groupby("method")["r_precision"].mean()


def summarize_suite(metrics: list[str], out_dir: str | Path, suite: str,
                    labels: list[dict] | None = None) -> dict[str, Path]:
    """summary.csv/.md, quality_vs_time.png and report.html; failed or missing assets stay as rows."""
    out_dir = Path(out_dir)
    frame = load_metrics(metrics, labels)
    table = frame[COLUMNS + ["metrics_file"]].sort_values(["method", "prompt", "seed"])
    paths = {"csv": out_dir / "summary.csv", "md": out_dir / "summary.md", "html": out_dir / "report.html",
             "plot": out_dir / "quality_vs_time.png"}
    atomic_write_bytes(paths["csv"], lambda s: s.write(table.to_csv(index=False).encode()))
    numeric = [c for c in COLUMNS if c not in ("method", "seed", "prompt", "status")]
    per_method = table.groupby("method")[numeric].mean(numeric_only=True)
    per_method["r_precision"] = r_precision(frame)
    per_method["assets"] = table.groupby("method").size()
    not_ok = table[table["status"] != "ok"].groupby("method").size()
    per_method["failed_or_missing"] = not_ok.reindex(per_method.index).fillna(0)
    markdown = (f"# Suite `{suite}`\n\n## Mean per method\n\n{per_method.round(4).to_markdown()}\n\n"
                f"## Per asset\n\n{table.drop(columns=['metrics_file']).round(4).to_markdown(index=False)}\n")
    atomic_write_bytes(paths["md"], lambda s: s.write(markdown.encode()))
    _plot(table, paths["plot"])
    _html(suite, table, per_method, paths)
    return paths


def _plot(table: pd.DataFrame, path: Path) -> None:
    quality = [c for c in ("clip_score", "stage3_iou") if table[c].notna().any()]
    fig, axes = plt.subplots(1, max(1, len(quality)), figsize=(5 * max(1, len(quality)), 4), squeeze=False)
    for ax, column in zip(axes[0], quality or ["clip_score"]):
        for method, group in table.groupby("method"):
            ax.scatter(group["seconds_total"], group[column], label=method)
        ax.set_xlabel("wall time per asset (s, Snakemake benchmark)")
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _html(suite: str, table: pd.DataFrame, per_method: pd.DataFrame, paths: dict[str, Path]) -> None:
    plot = base64.b64encode(paths["plot"].read_bytes()).decode()
    cards = []
    for _, row in table.iterrows():
        asset = Path(row["metrics_file"]).parent
        turntable = asset / "stage3" / "turntable.gif"
        source = os.path.relpath(turntable, paths["html"].parent)
        status = html.escape(str(row["status"]))
        picture = (f"<img src='{html.escape(source)}' width='192'>" if turntable.exists()
                   else "<div style='width:192px;height:96px;background:#fdd'>no turntable</div>")
        strip = asset / "stages.png"  # truth | stage 1 | 2 | 3 at the final resolution
        if strip.exists():
            picture += f"<br><img src='{html.escape(os.path.relpath(strip, paths['html'].parent))}' height='192'>"
        cards.append(f"<figure>{picture}<figcaption>{html.escape(str(row['prompt']))}"
                     f"<br>{html.escape(str(row['method']))} seed {row['seed']} - {status}, CLIP "
                     f"{row['clip_score']:.1f}</figcaption></figure>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>DreamFlow suite {html.escape(suite)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px}}
figure{{display:inline-block;margin:8px;text-align:center}}</style></head><body>
<h1>DreamFlow suite <code>{html.escape(suite)}</code></h1>
<h2>Mean per method</h2>{per_method.round(4).to_html()}
<h2>Quality against time</h2><img src="data:image/png;base64,{plot}">
<h2>Turntables (stage 3)</h2>{''.join(cards)}
<h2>Per asset</h2>{table.drop(columns=['metrics_file']).round(4).to_html(index=False)}
</body></html>"""
    atomic_write_bytes(paths["html"], lambda s: s.write(page.encode()))
