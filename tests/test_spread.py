"""Seeds and spread in every suite table: mean ± sd and n over seeds per (prompt, method) and per method,
paired differences with reproducible bootstrap intervals; the time and memory table from the stages'
own records; all of them in summary.md, on synthetic metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dreamflow.report import spread

# CLIP score of (method, prompt, seed): apfo is 2 points above sds on every (prompt, seed) but one (+4).
SCORES = {("apfo", "p", 0): 22.0, ("apfo", "p", 1): 24.0, ("apfo", "q", 0): 30.0, ("apfo", "q", 1): 34.0,
          ("sds", "p", 0): 20.0, ("sds", "p", 1): 22.0, ("sds", "q", 0): 28.0, ("sds", "q", 1): 30.0}


def table(extra=()):
    rows = [{"method": m, "prompt": p, "seed": s, "status": "ok", "clip_score": v} for (m, p, s), v in SCORES.items()]
    return pd.DataFrame(rows + list(extra))


def test_per_prompt_and_method_over_seeds():
    frame = spread.per_prompt_method(table(), ["clip_score"]).set_index(["method", "prompt"])
    assert frame.loc[("apfo", "q"), "mean"] == 32.0 and frame.loc[("apfo", "q"), "n"] == 2
    assert frame.loc[("apfo", "q"), "sd"] == pytest.approx(math.sqrt(8.0))  # 30, 34: sample sd
    assert frame.loc[("sds", "p"), "sd"] == pytest.approx(math.sqrt(2.0))


def test_per_method_is_over_seeds_of_each_seeds_suite_mean():
    """apfo's seed 0 scores (22 + 30) / 2 = 26, seed 1 (24 + 34) / 2 = 29: 27.5 ± sd(26, 29), n = 2 seeds.
    A failed asset (NaN) leaves its seed's mean to the other prompts."""
    failed = [{"method": "sds", "prompt": "r", "seed": 1, "status": "ok", "clip_score": float("nan")}]
    frame = spread.per_method(table(failed), ["clip_score"]).set_index("method")
    assert frame.loc["apfo", "mean"] == pytest.approx(27.5) and frame.loc["apfo", "n"] == 2
    assert frame.loc["apfo", "sd"] == pytest.approx(np.std([26.0, 29.0], ddof=1))
    assert frame.loc["sds", "mean"] == pytest.approx(25.0) and frame.loc["sds", "assets"] == 4
    one_seed = spread.per_method(table()[table()["seed"] == 0], ["clip_score"]).set_index("method")
    assert one_seed.loc["apfo", "n"] == 1 and math.isnan(one_seed.loc["apfo", "sd"])


def test_paired_differences_match_prompt_and_seed_and_are_reproducible():
    # An unmatched asset (vsd has only one) pairs with nothing of apfo's but its own (prompt, seed).
    extra = [{"method": "vsd", "prompt": "p", "seed": 0, "status": "ok", "clip_score": 21.0}]
    first = spread.paired_differences(table(extra), ["clip_score"], resamples=500)
    again = spread.paired_differences(table(extra), ["clip_score"], resamples=500)
    pd.testing.assert_frame_equal(first, again)
    row = first.set_index(["method_a", "method_b"]).loc[("apfo", "sds")]
    assert row["mean"] == pytest.approx(2.5) and row["n"] == 4  # differences 2, 2, 2, 4
    assert 2.0 <= row["low"] <= row["mean"] <= row["high"] <= 4.0 and row["low"] < row["high"]
    assert first.set_index(["method_a", "method_b"]).loc[("apfo", "vsd"), "n"] == 1
    assert list(zip(first["method_a"], first["method_b"])) == [("apfo", "sds"), ("apfo", "vsd"), ("sds", "vsd")]


def _correlated(seeds: int) -> pd.DataFrame:
    """8 prompts whose a − b difference is the prompt's own (its seeds agree to within 0.01): the seeds
    add no independent information."""
    shift = np.random.default_rng(3).normal(1.0, 1.0, size=8)
    return pd.DataFrame([{"method": method, "prompt": f"p{i}", "seed": seed, "status": "ok",
                          "clip_score": (shift[i] + 0.01 * seed if method == "a" else 0.0)}
                         for i in range(8) for seed in range(seeds) for method in ("a", "b")])


def test_paired_intervals_resample_prompts_so_correlated_seeds_do_not_narrow_them():
    """Ten seeds that repeat each prompt's difference leave the interval as wide as one seed (resampling
    (prompt, seed) pairs as independent would narrow it by about √10); with a single prompt the only
    resample is that prompt, so the interval is its mean."""
    width = {seeds: float(row["high"] - row["low"])
             for seeds in (1, 10) for _, row in spread.paired_differences(_correlated(seeds), ["clip_score"]).iterrows()}
    assert width[1] > 0.5 and width[10] / width[1] == pytest.approx(1.0, abs=0.2), width
    one_prompt = _correlated(10)[lambda frame: frame["prompt"] == "p0"]
    row = spread.paired_differences(one_prompt, ["clip_score"]).iloc[0]
    assert row["low"] == pytest.approx(row["mean"]) and row["high"] == pytest.approx(row["mean"]) and row["n"] == 10


def test_each_paired_row_draws_its_own_generator():
    """A row's interval does not move when a method or a metric is added before it (a stable hash of
    the names seeds each row, not one generator shared in order)."""
    noise = np.random.default_rng(4).normal(size=(3, 48))
    frame = pd.DataFrame([{"method": method, "prompt": f"p{k // 3}", "seed": k % 3, "status": "ok",
                           "clip_score": noise[m, k], "iou": noise[m, k] ** 2}
                          for m, method in enumerate(("apfo", "sds", "vsd")) for k in range(48)])
    two = frame[frame["method"] != "vsd"]
    alone = spread.paired_differences(two, ["clip_score"]).set_index(["method_a", "method_b", "metric"])
    more = spread.paired_differences(pd.concat([frame[frame["method"] == "vsd"], two]), ["iou", "clip_score"])
    more = more.set_index(["method_a", "method_b", "metric"])
    assert len(more) == 6
    assert more.loc[("apfo", "sds", "clip_score"), ["low", "high"]].tolist() == \
        alone.loc[("apfo", "sds", "clip_score"), ["low", "high"]].tolist()
    assert spread.row_seed("apfo", "sds", "clip_score") == spread.row_seed("apfo", "sds", "clip_score")
    assert spread.row_seed("apfo", "sds", "clip_score") != spread.row_seed("apfo", "sds", "iou")


def test_bootstrap_interval_covers_a_known_mean():
    rng = np.random.default_rng(0)
    values = np.random.default_rng(1).normal(1.0, 1.0, size=400)
    low, high = spread.cluster_bootstrap_interval(values, np.arange(len(values)), rng, 2000)  # each value its own cluster
    half = 1.96 / math.sqrt(400)  # the normal approximation of the 95 % interval's half-width
    assert low < values.mean() < high and (high - low) / 2 == pytest.approx(half, rel=0.15)


def _metrics_file(folder, method, prompt, seed, clip, hit, stage_seconds):
    from dreamflow.prompts import slugify

    path = folder / method / slugify(prompt) / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    data = {"prompt": prompt, "method": method, "seed": seed, "status": "ok", "clip_score": clip, "r_at_1": hit,
            "seconds_total": 60.0, "device": "AMD EPYC 7B13"}
    for i, stage in enumerate(("stage1", "stage2", "stage3")):
        data |= {f"{stage}_wall_seconds": stage_seconds * (i + 1), f"{stage}_seconds_per_iteration": 0.1 * (i + 1),
                 f"{stage}_peak_gpu_gb": float("nan"), f"{stage}_max_rss_gb": 1.5, f"{stage}_iterations": 10,
                 f"{stage}_device": "AMD EPYC 7B13", f"seconds_{stage}": stage_seconds * (i + 1) + 5}
    data["r_precision"] = {"description": "retrieval among the suite's own 2 prompts", "captions": {"count": 2},
                           "models": ["m:w"], "modes": ["colour"], "view": {"elevation": 45.0, "azimuth": 30.0},
                           "results": [{"clip": "m:w", "mode": "colour", "rank": 2 - hit, "hit": hit,
                                        "clip_score": clip, "retrieved": "x"}]}
    path.write_text(json.dumps(data))
    return str(path)


def test_summary_tables_give_spread_pairs_r_precision_and_time_per_stage(tmp_path):
    from dreamflow.report.summary import summarize_suite

    files = [_metrics_file(tmp_path, m, p, s, v, int(m == "apfo" or s == 0), 10.0 + s)
             for (m, p, s), v in SCORES.items()]
    paths = summarize_suite(files, tmp_path / "out", "toy")
    markdown = paths["md"].read_text()
    per_method = section_rows(markdown, "Per method")
    assert per_method[0]["Method"] == "DreamFlow (APFO)" and per_method[0]["Seeds (n)"] == "2"
    assert per_method[0]["CLIP score ↑"] == "27.5 ± 2.1" and per_method[1]["R@1 (%) ↑"] == "50 ± 71"
    paired = section_rows(markdown, "Paired differences between methods")[0]
    assert paired["Difference"] == "DreamFlow (APFO) − SDS (DreamFusion)" and paired["Pairs (n)"] == "4"
    assert paired["CLIP score ↑"].startswith("+2.5 [+2.0, ")  # differences 2, 2, 2, 4
    assert "retrieval among the suite's own 2 prompts (chance 50 %); CLIP m:w; renders colour." in markdown
    assert [row["m:w · colour"] for row in section_rows(markdown, "CLIP R-precision")] == ["100 ± 0", "50 ± 71"]
    # Time and memory: stage 2 took 20 s (seed 0) and 22 s (seed 1) of wall time on the named CPU.
    stage2 = next(row for row in section_rows(markdown, "Time and memory per stage")
                  if row["Method"] == "DreamFlow (APFO)" and row["Stage"] == "stage 2")
    assert stage2["Device"] == "AMD EPYC 7B13" and stage2["n"] == "4" and stage2["Stage wall time (s)"] == "21.0 ± 1.2"
    assert stage2["Time per iteration (s)"] == "0.200 ± 0.000" and stage2["Peak GPU memory (GiB)"] == "–"
    long = pd.read_csv(paths["spread"])
    assert set(long["prompt"]) == {"(all prompts)", "p", "q"} and {"mean", "sd", "n"} <= set(long.columns)
    assert len(pd.read_csv(paths["r_precision"])) == 8 and len(pd.read_csv(paths["paired"])) == 3
    assert "Per group" not in markdown and "per group" not in markdown  # one prompt file: no groups


def test_a_suite_of_groups_gets_spread_and_r_at_1_per_group_and_retrieval_within_each_group(tmp_path):
    """T3Bench-like groups: p is in `single`, q in `multi`; each group's rows are over its own prompts, and the
    protocol line says each group retrieves among its own prompts instead of listing one merged description."""
    from dreamflow.report.summary import summarize_suite

    files = []
    for (m, p, s), v in SCORES.items():
        path = _metrics_file(tmp_path, m, p, s, v, int(m == "apfo" or p == "p"), 10.0)
        data = json.loads(Path(path).read_text())
        data |= {"group": {"p": "single", "q": "multi"}[p], "prompt_id": {"p": "0", "q": "7"}[p]}
        data["r_precision"] |= {"description": "retrieval among the suite's own 3 prompts",
                                "captions": {"count": 3, "source": None}}
        Path(path).write_text(json.dumps(data))
        files.append(path)
    paths = summarize_suite(files, tmp_path / "out", "t3")
    markdown = paths["md"].read_text()
    rows = {(r["Group"], r["Method"]): r for r in section_rows(markdown, "Per group and method")}
    assert rows[("single", "DreamFlow (APFO)")]["CLIP score ↑"] == "23.0 ± 1.4"  # p's seeds: 22, 24
    assert rows[("multi", "SDS (DreamFusion)")]["CLIP score ↑"] == "29.0 ± 1.4"  # q's seeds: 28, 30
    r_at_1 = {(r["Group"], r["Method"]): r["m:w · colour"] for r in section_rows(markdown, "CLIP R-precision per group")}
    assert r_at_1 == {("single", "DreamFlow (APFO)"): "100 ± 0", ("single", "SDS (DreamFusion)"): "100 ± 0",
                      ("multi", "DreamFlow (APFO)"): "100 ± 0", ("multi", "SDS (DreamFusion)"): "0 ± 0"}
    assert "retrieval among each group's own 3 prompts (groups single, multi) (chance 33 %)" in markdown
    summary = pd.read_csv(paths["csv"])
    assert set(zip(summary["prompt"], summary["group"], summary["prompt_id"])) == {("p", "single", 0), ("q", "multi", 7)}
    assert "(all prompts of group multi)" in set(pd.read_csv(paths["spread"])["prompt"])


def section_rows(markdown: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table under `## heading`, as rows of header -> cell text."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]
