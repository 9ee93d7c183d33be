"""Spread over seeds and paired differences between methods, for every suite table.

* **per (prompt, method)**: mean ± sd over the seeds of that prompt, and n (the seeds with a value);
* **per method**: each seed's mean over the prompts (the suite's score for that seed), then the mean
  ± sd of those over the seeds, and n (seeds); a failed asset leaves its seed's mean to the other prompts;
* **paired differences**: method A − method B on the same (prompt, seed), the mean difference with a
  95 % percentile cluster bootstrap interval and n pairs. The resampling unit is the prompt: the seeds
  of one prompt share its difficulty, so they are not independent draws; each of `RESAMPLES` resamples
  draws the prompts with replacement, each with all its pairs, and takes the mean difference over the
  pairs drawn. Each (method A, method B, metric) row draws from its own generator, seeded by a stable
  hash of the three names and `BOOTSTRAP_SEED` (`row_seed`), so tables are reproducible and adding a
  method or a metric leaves the other rows' intervals as they were.

sd is the sample standard deviation (ddof 1): NaN, shown as "–", with a single seed.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pandas as pd

RESAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


def per_prompt_method(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Long table: method, prompt, metric, mean, sd, n (over seeds)."""
    rows = []
    for (method, prompt), group in table.groupby(["method", "prompt"], sort=False):
        for metric in metrics:
            values = pd.to_numeric(group[metric], errors="coerce").dropna()
            rows.append({"method": method, "prompt": prompt, "metric": metric, "mean": values.mean(),
                         "sd": values.std(ddof=1), "n": len(values)})
    return pd.DataFrame(rows, columns=["method", "prompt", "metric", "mean", "sd", "n"])


def per_method(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Long table: method, metric, mean, sd, n over seeds of each seed's mean over the prompts; `assets`
    counts the values behind it."""
    rows = []
    for method, group in table.groupby("method", sort=False):
        for metric in metrics:
            values = pd.to_numeric(group[metric], errors="coerce")
            per_seed = values.groupby(group["seed"]).mean().dropna()
            rows.append({"method": method, "metric": metric, "mean": per_seed.mean(), "sd": per_seed.std(ddof=1),
                         "n": len(per_seed), "assets": int(values.notna().sum())})
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "sd", "n", "assets"])


def cluster_bootstrap_interval(values: np.ndarray, clusters: np.ndarray, rng: np.random.Generator,
                               resamples: int = RESAMPLES, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean of `values`, resampling whole clusters (`clusters[i]` names
    value i's) with replacement: each resample's mean is over every value of the clusters drawn."""
    if len(values) == 0:
        return float("nan"), float("nan")
    _, index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(index, weights=values)
    counts = np.bincount(index).astype(float)
    draws = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def suite_groups(table: pd.DataFrame) -> list[str]:
    """The suite's groups (metrics.json's `group`, e.g. T3Bench's single, surr, multi) in order; [] when
    the suite is one prompt file."""
    if "group" not in table:
        return []
    return [g for g in dict.fromkeys(table["group"]) if isinstance(g, str) and g]


def per_group_method(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """`per_method` within each suite group: group, method, metric, mean, sd, n, assets (empty without groups)."""
    parts = [per_method(table[table["group"] == group], metrics).assign(group=group) for group in suite_groups(table)]
    columns = ["group", "method", "metric", "mean", "sd", "n", "assets"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def row_seed(method_a: str, method_b: str, metric: str, seed: int = BOOTSTRAP_SEED) -> int:
    """The bootstrap seed of one paired-difference row: a stable hash (SHA-256, not Python's salted
    `hash`) of the names and `seed`, so a row's interval does not depend on the other rows."""
    key = "\0".join([str(seed), method_a, method_b, metric]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def paired_differences(table: pd.DataFrame, metrics: list[str], resamples: int = RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Long table: method_a, method_b, metric, mean difference (a − b), its 95 % cluster bootstrap
    interval (prompts resampled, each with its seeds; a generator per row, `row_seed`), n pairs; one row
    per pair of methods (in the table's order) and metric, over the (prompt, seed) where both have a value."""
    methods = list(dict.fromkeys(table["method"]))
    keyed = table.set_index(["prompt", "seed"])
    rows = []
    for a, b in itertools.combinations(methods, 2):
        left, right = keyed[keyed["method"] == a], keyed[keyed["method"] == b]
        for metric in metrics:
            joined = pd.concat([pd.to_numeric(left[metric], errors="coerce").rename("a"),
                                pd.to_numeric(right[metric], errors="coerce").rename("b")], axis=1, join="inner")
            difference = (joined["a"] - joined["b"]).dropna()
            rng = np.random.default_rng(row_seed(a, b, metric, seed))
            low, high = cluster_bootstrap_interval(difference.to_numpy(dtype=float),
                                                   difference.index.get_level_values("prompt").to_numpy(), rng,
                                                   resamples)
            difference = difference.to_numpy(dtype=float)
            rows.append({"method_a": a, "method_b": b, "metric": metric,
                         "mean": float(difference.mean()) if len(difference) else float("nan"),
                         "low": low, "high": high, "n": len(difference)})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "metric", "mean", "low", "high", "n"])


def wide(spread: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """A long spread table as one row per `index`, with `{metric}`, `{metric}_sd` and `{metric}_n` columns."""
    if spread.empty:
        return pd.DataFrame(columns=index)
    out = spread.pivot_table(index=index, columns="metric", values=["mean", "sd", "n"], sort=False, dropna=False)
    frame = pd.DataFrame(index=out.index)
    for metric in dict.fromkeys(spread["metric"]):
        frame[metric] = out[("mean", metric)]
        frame[f"{metric}_sd"] = out[("sd", metric)]
        frame[f"{metric}_n"] = out[("n", metric)]
    return frame.reset_index()
