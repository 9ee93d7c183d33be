"""The suite's CLIP R-precision: R@1 per method, CLIP model and render mode, with its spread over
seeds, and the one line that says how it was measured (`dreamflow.evaluate.retrieval`)."""

from __future__ import annotations

import pandas as pd

from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL
from dreamflow.report.spread import per_method

ROW_COLUMNS = ["method", "prompt", "seed", "clip", "mode", "rank", "hit", "clip_score", "retrieved"]


def retrieval_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per asset, CLIP model and render mode (from metrics.json's `r_precision`)."""
    rows = []
    for _, asset in frame.iterrows():
        entry = asset.get("r_precision")
        if not isinstance(entry, dict) or asset.get("status") != "ok":
            continue
        for result in entry.get("results", []):
            rows.append({"method": asset["method"], "prompt": asset["prompt"], "seed": asset["seed"],
                         **{key: result.get(key) for key in ROW_COLUMNS[3:]}})
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def retrieval_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """R@1 per method, CLIP model and mode: each seed's share of hits over the prompts, then mean ± sd
    over seeds (n seeds) and the assets behind it."""
    if rows.empty:
        return pd.DataFrame(columns=["method", "clip", "mode", "mean", "sd", "n", "assets", "hits"])
    parts = []
    for (clip, mode), group in rows.groupby(["clip", "mode"], sort=False):
        spread = per_method(group.rename(columns={"hit": "r_at_1"}), ["r_at_1"])
        hits = group.groupby("method", sort=False)["hit"].sum()
        parts.append(spread.assign(clip=clip, mode=mode, hits=spread["method"].map(hits).astype(int)))
    return pd.concat(parts, ignore_index=True)[["method", "clip", "mode", "mean", "sd", "n", "assets", "hits"]]


def protocol_line(frame: pd.DataFrame) -> str:
    """How R@1 was measured: the view, the caption set, the CLIP model(s) and render mode(s)."""
    entries = [e for e in frame.get("r_precision", pd.Series(dtype=object)) if isinstance(e, dict)]
    if not entries:
        return "CLIP R-precision: no asset has been evaluated with it."
    descriptions = list(dict.fromkeys(e["description"] for e in entries))
    models = list(dict.fromkeys(m for e in entries for m in e["models"]))
    modes = list(dict.fromkeys(m for e in entries for m in e["modes"]))
    views = list(dict.fromkeys((e["view"]["elevation"], e["view"]["azimuth"], e["view"].get("distance_in_radii"),
                                e["view"].get("fovy")) for e in entries))
    counts = sorted({e["captions"]["count"] for e in entries})
    chance = " or ".join(f"{100 / n:.0f} %" for n in counts)
    view = "; ".join(f"elevation {elevation:g}°, azimuth {azimuth:g}°"
                     + (f", {radii:g} scene radii away at fovy {fovy:g}°" if radii is not None else "")
                     for elevation, azimuth, radii, fovy in views)
    toy = (" The toy CLIP knows only the toy world's words, so its captions are toy-world prompts."
           if any(m.startswith(f"{TOY_CLIP_MODEL}:") for m in models) else "")
    return (f"CLIP R-precision (R@1, DreamFusion's protocol): the share of assets whose render, one view "
            f"({view}, as Dream Fields' evaluation), retrieves its own caption; {'; '.join(descriptions)} "
            f"(chance {chance}); CLIP {', '.join(models)}; renders {', '.join(modes)}.{toy}")
