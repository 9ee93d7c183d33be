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

    def format(self, value) -> str:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "–"
        if number != number:  # NaN: not measured
            return "–"
        return f"{number * self.scale:.{self.decimals}f}"


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
    "r_precision": Metric("R-precision", "higher", 0, "%", 100.0),
    "seconds_total": Metric("Time", "", 1, "min", 1 / 60),
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
