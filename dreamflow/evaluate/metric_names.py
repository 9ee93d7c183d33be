"""How a person reads each metric: label, unit, direction (higher or lower is better), rounding.

`metrics.json` and `summary.csv` keep the machine names (`stage3_pattern_error`); tables meant for
people (summary.md, report.html) use these.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("stage1", "stage2", "stage3")
STAGE_LABELS = {"stage1": "S1", "stage2": "S2", "stage3": "S3"}


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

TIMING_METRICS = {f"seconds_{step}": Metric(f"Time {name}", "", 1, "min", 1 / 60)
                  for step, name in (("stage1", "stage 1"), ("extract_mesh", "extraction"),
                                     ("stage2", "stage 2"), ("stage3", "stage 3"))}

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
