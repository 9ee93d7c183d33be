"""The race report (race.md) from the stages' quality curves: tables, paired ratios, plots."""

from __future__ import annotations

import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from dreamflow.compare.race import BASELINES, RaceSettings, quality_score  # noqa: E402
from dreamflow.stages import STAGES  # noqa: E402

FIRST_STAGE = next(iter(STAGES))

RUN_KEYS = ["stage", "method", "prompt", "seed"]
# The paper's speed claim as a target: APFO's iterations to threshold over each baseline's.
TARGET_RATIO = {"vsd": 1 / 5, "sds": 1 / 2}


def reached(frame: pd.DataFrame, race: RaceSettings) -> pd.Series:
    if "iou" in frame and frame["iou"].notna().all():
        return (frame["iou"] >= race.iou_threshold) & (frame["colour_error"] <= race.colour_threshold)
    return frame["clip_score"] >= race.clip_threshold  # prompts without ground truth


def first_of_last_run(ok: pd.Series) -> int | None:
    """Position of the first True of the final unbroken run of Trues (None if the last is False)."""
    flags = ok.to_numpy()
    if not len(flags) or not flags[-1]:
        return None
    first = len(flags) - 1
    while first > 0 and flags[first - 1]:
        first -= 1
    return first


def stays_from(curve: pd.DataFrame, race: RaceSettings) -> pd.Series | None:
    """The first evaluation from which every later one meets the threshold (None if the last does not)."""
    first = first_of_last_run(reached(curve, race))
    return None if first is None else curve.iloc[first]


def runs_table(curves: pd.DataFrame, race: RaceSettings) -> pd.DataFrame:
    """One row per (stage, method, prompt, seed): the step/seconds from which the run *stays* at the
    threshold (`*_to_threshold`), its first crossing, and final quality."""
    rows = []
    for key, curve in curves.groupby(RUN_KEYS, sort=True):
        curve = curve.sort_values("step")
        hit = curve[reached(curve, race)]
        stays = stays_from(curve, race)
        last = curve.iloc[-1]
        row = dict(zip(RUN_KEYS, key))
        row |= {"steps_to_threshold": stays["step"] if stays is not None else float("nan"),
                "seconds_to_threshold": stays["seconds"] if stays is not None else float("nan"),
                "first_crossing_step": hit["step"].iloc[0] if len(hit) else float("nan"),
                "final_iou": last.get("iou"), "final_colour_error": last.get("colour_error"),
                "iterations": int(last["step"]), "seconds_total": last["seconds"],
                "seconds_per_iteration": last["seconds"] / max(int(last["step"]), 1)}
        for column in ("detail_error", "chamfer_relative", "clip_score"):
            if column in curve and pd.notna(last.get(column)):
                row[f"final_{column}"] = last[column]
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    finals = [c for c in runs.columns if c.startswith("final_")] + ["seconds_per_iteration"]
    grouped = runs.groupby(["stage", "method"])
    table = grouped[finals].mean()
    table.insert(0, "runs", grouped.size())
    table.insert(1, "reached", grouped["steps_to_threshold"].count())
    for column in ("steps_to_threshold", "seconds_to_threshold"):
        table[f"{column}_mean"] = grouped[column].mean()
        table[f"{column}_std"] = grouped[column].std()
    return table.reset_index()


def started_above_threshold(runs: pd.DataFrame) -> list[str]:
    """Stages where no run crossed the threshold during the stage: each met it at step 0 (a mesh stage
    inherits stage 1's quality) or never did."""
    return [stage for stage, frame in runs.groupby("stage") if frame["steps_to_threshold"].fillna(0).eq(0).all()]


def ratio_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Each non-baseline method's steps/seconds to threshold over each baseline's, paired by (prompt, seed)."""
    rows = []
    methods = [m for m in runs["method"].unique() if m not in BASELINES]
    skip = started_above_threshold(runs)
    for stage, frame in runs.groupby("stage"):
        if stage in skip:
            continue
        by_method = {m: f.set_index(["prompt", "seed"]) for m, f in frame.groupby("method")}
        for method in methods:
            for baseline in BASELINES:
                if method not in by_method or baseline not in by_method:
                    continue
                a, b = by_method[method], by_method[baseline].reindex(by_method[method].index)
                only_method = int((a["steps_to_threshold"].notna() & b["steps_to_threshold"].isna()).sum())
                only_baseline = int((a["steps_to_threshold"].isna() & b["steps_to_threshold"].notna()).sum())
                for quantity in ("steps", "seconds"):
                    ratio = (a[f"{quantity}_to_threshold"] / b[f"{quantity}_to_threshold"]).dropna()
                    rows.append({"stage": stage, "method": method, "baseline": baseline, "quantity": quantity,
                                 "paired_runs": len(ratio), "ratio_mean": ratio.mean(), "ratio_std": ratio.std(),
                                 "ratio_median": ratio.median(), "only_method_reached": only_method,
                                 "only_baseline_reached": only_baseline})
    return pd.DataFrame(rows)


def _stays_at_or_below(steps: pd.Series, scores: pd.Series, bar: float) -> float:
    """First step from which every later score is <= bar (NaN if the last one is not)."""
    first = first_of_last_run(scores <= bar)
    return float("nan") if first is None else float(steps.iloc[first])


def matched_quality_table(curves: pd.DataFrame, baseline: str = "vsd", tolerance: float = 0.1) -> pd.DataFrame:
    """Iterations each method needs to *stay* within `tolerance` of the baseline's final score
    (score = (1 - IoU) + colour error + detail error, lower is better), paired per (stage, prompt,
    seed), and the ratio to the baseline's own iterations to stay there."""
    rows = []
    for (stage, prompt, seed), frame in curves.groupby(["stage", "prompt", "seed"]):
        by_method = {m: f.sort_values("step") for m, f in frame.groupby("method")}
        if baseline not in by_method:
            continue
        reference = by_method[baseline]
        bar = float(quality_score(reference).iloc[-1]) * (1 + tolerance)
        own = _stays_at_or_below(reference["step"], quality_score(reference), bar)
        for method, curve in by_method.items():
            steps = _stays_at_or_below(curve["step"], quality_score(curve), bar)
            rows.append({"stage": stage, "prompt": prompt, "seed": seed, "method": method, "bar": bar,
                         "final_score": float(quality_score(curve).iloc[-1]), "steps_to_stay": steps,
                         f"{baseline}_steps_to_stay": own, "ratio": steps / own if own else float("nan")})
    return pd.DataFrame(rows)


def verdict(ratios: pd.DataFrame, method: str = "apfo", stage: str = FIRST_STAGE) -> str:
    """Met or missed, and by how much, for the paper's speed target (TARGET_RATIO)."""
    lines = []
    for baseline, target in TARGET_RATIO.items():
        if ratios.empty:
            lines.append(f"* vs {baseline.upper()}: no run crossed the threshold during {stage}: not measurable.")
            continue
        row = ratios[(ratios["stage"] == stage) & (ratios["method"] == method) & (ratios["baseline"] == baseline)
                     & (ratios["quantity"] == "steps")]
        if row.empty or row["paired_runs"].iloc[0] == 0:
            lines.append(f"* vs {baseline.upper()}: no pair where both reached the threshold: not measurable.")
            continue
        value = row["ratio_mean"].iloc[0]
        status = "met" if value <= target else f"missed by {value / target:.1f}x"
        lines.append(f"* vs {baseline.upper()}: {value:.2f} of its iterations over {row['paired_runs'].iloc[0]} "
                     f"paired runs (target <= {target:.2f}): **{status}**.")
    return "\n".join(lines)


def plot_stage(curves: pd.DataFrame, stage: str, path: Path) -> Path:
    """Mean (band: +- std over prompts and seeds) IoU and colour error against iterations and seconds."""
    frame = curves[curves["stage"] == stage]
    candidates = ("iou", "colour_error", "detail_error", "chamfer_relative", "clip_score")
    metrics = [m for m in candidates if m in frame and frame[m].notna().any()]
    fig, axes = plt.subplots(2, len(metrics), figsize=(4.2 * len(metrics), 7), squeeze=False)
    for method, group in frame.groupby("method"):
        stats = group.groupby("step")[["seconds", *metrics]].agg(["mean", "std"])
        for column, metric in enumerate(metrics):
            mean, std = stats[metric]["mean"], stats[metric]["std"].fillna(0)
            for row, x in enumerate((stats.index, stats["seconds"]["mean"])):
                ax = axes[row][column]
                ax.plot(x, mean, label=method)
                ax.fill_between(x, mean - std, mean + std, alpha=0.15)
                ax.set_xlabel("iteration" if row == 0 else "seconds (evaluation excluded)")
                ax.set_ylabel(metric)
                ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(f"{stage}: held-out quality (mean +- std over prompts and seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    # The stage jobs' own threads and concurrency are the workflow's (`resources`, `--cores`).
    return f"{cpu}, {device}, torch {torch.__version__}"


def _markdown(frame: pd.DataFrame) -> str:
    return frame.round(3).to_markdown(index=False)


def write_report(curves: pd.DataFrame, race: RaceSettings, out: Path, command: str,
                 tuning: pd.DataFrame | None = None, picks: dict | None = None, tuning_text: str = "",
                 notes: str = "") -> Path:
    """Write `out` (markdown), the curves CSV and one plot per stage beside it. `curves` hold one
    entry per race label (`race_labels`); `tuning`/`picks` the fair-tuning grid and its choice."""
    out.parent.mkdir(parents=True, exist_ok=True)
    curves.to_csv(out.with_name("convergence_curves.csv"), index=False)
    runs = runs_table(curves, race)
    ratios = ratio_table(runs)
    stages = list(dict.fromkeys(curves["stage"]))
    labels, prompts = list(dict.fromkeys(curves["method"])), list(dict.fromkeys(curves["prompt"]))
    seeds = sorted(curves["seed"].unique())
    parts = [f"# Convergence race\n\nMeasured on {machine_line()} (each stage run a workflow job with the threads "
             f"of its rule). Regenerate with:\n\n    {command}\n",
             "## Setup\n",
             f"Methods {', '.join(labels)}; prompts {', '.join(prompts)}; seeds "
             f"{', '.join(map(str, seeds))}. Same seed, same initialisation and same camera/noise generators "
             f"for every method; stages {', '.join(stages)} in sequence (each method's stage 2 starts from its "
             f"own stage-1 mesh). Quality on {race.eval_views} held-out views every {race.eval_every} iterations; "
             f"threshold: silhouette IoU >= {race.iou_threshold} and colour error <= {race.colour_threshold} "
             "(mean RGB distance of albedo on the true foreground). Seconds exclude evaluation.\n"]
    if tuning is not None and not tuning.empty:
        parts += [f"### Fair tuning ({tuning_text})\n",
                  "Every method gets the same grid on held-out prompts and seeds; mean final score "
                  "((1 - IoU) + colour error + detail error, lower is better) per grid point:\n",
                  tuning.round(3).reset_index().to_markdown(index=False) + "\n"]
    if picks:
        parts.append("Settings raced: " + "; ".join(f"`{method}` = {pick['point']} {pick['set']}"
                                                    for method, pick in picks.items()) + "\n")
    summary = summary_table(runs)
    inherited = started_above_threshold(runs)
    to_threshold = [c for c in summary.columns if "_to_threshold_" in c]
    summary.loc[summary["stage"].isin(inherited), to_threshold + ["reached"]] = float("nan")
    parts += ["### Per stage and method\n", _markdown(summary) + "\n"]
    if inherited:
        parts.append(f"{', '.join(inherited)}: no run crosses the threshold during the stage (each starts above "
                     "it, inheriting stage 1's quality, or never reaches it), so these stages are compared by final "
                     "quality and the curves, not by iterations to threshold.\n")
    parts += [
              "### Paired ratios (method / baseline, same prompt and seed, both reached)\n",
              _markdown(ratios) + "\n" if not ratios.empty else "No pairs.\n",
              "### Target: APFO <= 1/5 of VSD's and <= 1/2 of SDS's stage-1 iterations to threshold\n",
              verdict(ratios) + "\n"]
    matched = matched_quality_table(curves)
    if not matched.empty:
        medians = matched.groupby(["stage", "method"])["ratio"].median().rename("median ratio").reset_index()
        parts += ["### Iterations to stay within 10 % of VSD's final score (paired per prompt and seed)\n",
                  "Score = (1 - IoU) + colour error + detail error. Ratio = method's iterations / VSD's own "
                  "iterations to stay at that bar (goal for APFO: <= 1/3).\n",
                  _markdown(medians) + "\n", _markdown(matched) + "\n"]
    for stage in stages:
        plot = plot_stage(curves, stage, out.with_name(f"convergence_{stage}.png"))
        parts.append(f"![{stage} convergence]({plot.name})\n")
    parts += ["### Per run\n", _markdown(runs) + "\n"]
    if notes:
        parts.append(notes.strip() + "\n")
    out.write_text("\n".join(parts))
    return out
