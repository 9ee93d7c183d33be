"""Comparisons read from the stages' own quality curves (`curve.csv`, written when a suite asks for
curves): the curve files, the quality score every comparison ranks by, and the race's entries (the
fair-tuning pick is `tuning.py`, the race report `report.py`).

Every curve row carries its identity (method, variant, prompt, seed, stage), so a report is a pure
function of the curve files the workflow lists; nothing here runs a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BASELINES = ("sds", "vsd")  # the published methods APFO is compared with (paired ratios, verdict)
IDENTITY = ["method", "variant", "prompt", "seed", "stage"]


@dataclass
class RaceSettings:
    """What counts as converged, and how the curves were taken (for the report's text)."""

    iou_threshold: float = 0.8
    colour_threshold: float = 0.3
    clip_threshold: float = 30.0  # CLIP score to reach, for prompts without ground truth
    eval_every: int = 25
    eval_views: int = 8


def load_curves(paths: list[str | Path]) -> pd.DataFrame:
    """Every curve file, stacked; a missing or empty file is an error naming it."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.exists() or path.stat().st_size == 0:
            raise FileNotFoundError(f"curve file '{path}' is missing or empty; re-run its stage with curves on")
        frames.append(pd.read_csv(path))
    if not frames:
        raise ValueError("no curve files given")
    curves = pd.concat(frames, ignore_index=True)
    missing = [column for column in IDENTITY + ["step", "seconds"] if column not in curves]
    if missing:
        raise ValueError(f"curve files lack column(s) {missing}; they were written by an older stage")
    return curves


def race_labels(curves: pd.DataFrame, primary_variant: str | None = None) -> pd.DataFrame:
    """`method` becomes the race entry's label: the method for `primary_variant` (default: the only
    variant), `method@variant` for any other variant raced beside it."""
    variants = list(dict.fromkeys(curves["variant"]))
    primary = primary_variant or variants[0]
    label = curves["method"].where(curves["variant"] == primary, curves["method"] + "@" + curves["variant"])
    return curves.assign(method=label)


def quality_score(curve: pd.DataFrame) -> pd.Series:
    """Per evaluation, lower is better. Toy prompts: (1 - IoU) + colour error + detail error (missing
    detail counts 0); prompts without ground truth: 1 - CLIP score / 100."""
    if "iou" in curve and curve["iou"].notna().all():
        detail = curve["detail_error"].fillna(0) if "detail_error" in curve else 0.0
        return (1 - curve["iou"]) + curve["colour_error"] + detail
    if "clip_score" in curve:
        return 1 - curve["clip_score"] / 100
    raise ValueError("curves have neither toy-world metrics nor a CLIP score to rank by")
