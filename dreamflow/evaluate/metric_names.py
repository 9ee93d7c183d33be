"""How a person reads each metric (label, unit, direction: higher or lower is better, rounding) and
each method's name.

`metrics.json` and `summary.csv` keep the machine names (`stage3_pattern_error`); tables meant for
people (summary.md, report.html) use these.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamflow.stages import STAGES, steps

METHOD_NAMES = {"apfo": "DreamFlow (APFO)", "sds": "SDS (DreamFusion)", "vsd": "VSD (ProlificDreamer)"}
STAGE_LABELS = {name: stage.short for name, stage in STAGES.items()}  # column sub-headers: S1, S2, S3


@dataclass(frozen=True)
class Metric:
    label: str
    better: str  # "higher" | "lower" | "" (a time, a count)
    decimals: int = 3
    unit: str = ""
    scale: float = 1.0  # shown value = stored value * scale

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓"}.get(self.better, "")

    @property
    def header(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit} {self.arrow}".strip()

    def format(self, value, sign: bool = False) -> str:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "–"
        if number != number:  # NaN: not measured
            return "–"
        return f"{number * self.scale:{'+' if sign else ''}.{self.decimals}f}"

    def format_spread(self, mean, sd) -> str:
        """"mean ± sd" (just the mean where sd is not measured, e.g. one seed)."""
        text = self.format(mean)
        spread = self.format(sd)
        return text if text == "–" or spread == "–" else f"{text} ± {spread}"

    def format_interval(self, mean, low, high) -> str:
        """A difference with its interval: "+0.05 [+0.01, +0.09]"."""
        text = self.format(mean, sign=True)
        if text == "–" or self.format(low) == "–":
            return text
        return f"{text} [{self.format(low, sign=True)}, {self.format(high, sign=True)}]"


# Per-stage toy ground-truth metrics (`{stage}_{key}` in metrics.json), in the order shown.
STAGE_METRICS = {
    "iou": Metric("Silhouette IoU", "higher"),
    "colour_error": Metric("Colour error", "lower"),
    "detail_error": Metric("Detail error", "lower"),
    "pattern_error": Metric("Pattern error", "lower"),
    "chamfer_relative": Metric("Chamfer", "lower", 1, "% radius", 100.0),
}

ASSET_METRICS = {
    "clip_score": Metric("CLIP score", "higher", 1),
    "clip_rank": Metric("CLIP rank", "lower", 0),
    "r_at_1": Metric("R@1", "higher", 0, "%", 100.0),  # the asset's render retrieves its own caption (0 or 1)
    "seconds_total": Metric("Time", "", 1, "min", 1 / 60),
}

# A stage's own record of its run (`{stage}_{key}` in metrics.json; dreamflow.training.usage) and
# Snakemake's peak RSS of its job, for the time and memory table.
USAGE_METRICS = {
    "wall_seconds": Metric("Stage wall time", "", 1, "s"),
    "seconds_per_iteration": Metric("Time per iteration", "", 3, "s"),
    "peak_gpu_gb": Metric("Peak GPU memory", "", 2, "GiB"),
    "max_rss_gb": Metric("Peak RSS", "", 2, "GiB"),
    "iterations": Metric("Iterations", "", 0),
}

# Snakemake's `benchmark:` record of each step, in the order the steps run.
TIMING_METRICS = {f"seconds_{step.name}": Metric(f"Time {step.label}", "", 1, "min", 1 / 60) for step in steps()}

# The main table of the report shows these groups (the rest is folded under "all metrics").
HEADLINE_STAGE_METRICS = ("iou", "pattern_error")


def key_metric(row) -> str | None:
    """The per-stage metric shown under each stage of an asset's strip: the pattern error for a
    patterned prompt, the silhouette IoU otherwise; None when the prompt has no ground truth."""
    for key in ("pattern_error", "iou"):
        values = [row.get(f"{stage}_{key}") for stage in STAGES]
        if any(v is not None and v == v for v in values):
            if key == "pattern_error" and " with " not in str(row.get("prompt", "")):
                continue
            return key
    return None
