"""The suite's CLIP R-precision: R@1 per method, CLIP model and render mode, with its spread over
seeds, and the one line that says how it was measured (`dreamflow.evaluate.retrieval`)."""

from __future__ import annotations

import pandas as pd

from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL
from dreamflow.report.spread import per_method

ROW_COLUMNS = ["method", "prompt", "group", "seed", "clip", "mode", "rank", "hit", "clip_score", "retrieved"]
RESULT_COLUMNS = ROW_COLUMNS[4:]


def retrieval_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per asset, CLIP model and render mode (from metrics.json's `r_precision`)."""
    rows = []
    for _, asset in frame.iterrows():
        entry = asset.get("r_precision")
        if not isinstance(entry, dict) or asset.get("status") != "ok":
            continue
        for result in entry.get("results", []):
            group = asset.get("group")
            rows.append({"method": asset["method"], "prompt": asset["prompt"],
                         "group": group if isinstance(group, str) else "", "seed": asset["seed"],
                         **{key: result.get(key) for key in RESULT_COLUMNS}})
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


def retrieval_summary_per_group(rows: pd.DataFrame) -> pd.DataFrame:
    """`retrieval_summary` within each suite group (group, method, clip, mode, ...); empty without groups."""
    groups = [g for g in dict.fromkeys(rows["group"]) if g] if "group" in rows else []
    parts = [retrieval_summary(rows[rows["group"] == group]).assign(group=group) for group in groups]
    columns = ["group", "method", "clip", "mode", "mean", "sd", "n", "assets", "hits"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _caption_sets(frame: pd.DataFrame, entries: list[dict]) -> str:
    """The caption sets retrieved among; for a suite of groups, each group's (retrieval stays within a group)."""
    groups = frame["group"] if "group" in frame else pd.Series(index=frame.index, dtype=object)
    by_group = {}
    for group, entry in zip(groups, frame.get("r_precision", pd.Series(dtype=object))):
        if isinstance(entry, dict):
            by_group.setdefault(group if isinstance(group, str) and group else None, entry)
    if None in by_group or not by_group:
        return "; ".join(dict.fromkeys(e["description"] for e in entries))
    if all(e["captions"]["source"] is None for e in by_group.values()):
        counts = {group: e["captions"]["count"] for group, e in by_group.items()}
        if len(set(counts.values())) == 1:
            return (f"retrieval among each group's own {next(iter(counts.values()))} prompts "
                    f"(groups {', '.join(counts)})")
        return "retrieval among each group's own prompts (" + ", ".join(f"{g}: {n}" for g, n in counts.items()) + ")"
    return "; ".join(f"group {group}: {e['description']}" for group, e in by_group.items())


def protocol_line(frame: pd.DataFrame) -> str:
    """How R@1 was measured: the view, the caption set, the CLIP model(s) and render mode(s)."""
    entries = [e for e in frame.get("r_precision", pd.Series(dtype=object)) if isinstance(e, dict)]
    if not entries:
        return "CLIP R-precision: no asset has been evaluated with it."
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
            f"({view}, as Dream Fields' evaluation), retrieves its own caption; {_caption_sets(frame, entries)} "
            f"(chance {chance}); CLIP {', '.join(models)}; renders {', '.join(modes)}.{toy}")
