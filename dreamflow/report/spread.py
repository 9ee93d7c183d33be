"""Spread over seeds and paired differences between methods, for every suite table.

* **per (prompt, method)**: mean ± sd over the seeds of that prompt, and n (the seeds with a value);
* **per method**: each seed's mean over the prompts (the suite's score for that seed), then the mean
  ± sd of those over the seeds, and n (seeds); a failed asset leaves its seed's mean to the other prompts;
* **paired differences**: method A − method B on the same (prompt, seed), the mean difference with a
  95 % percentile bootstrap interval (`RESAMPLES` resamples of the (prompt, seed) pairs, drawn from
  `numpy.random.default_rng(BOOTSTRAP_SEED)`, so tables are reproducible), and n pairs.

sd is the sample standard deviation (ddof 1): NaN, shown as "–", with a single seed.
"""

from __future__ import annotations

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


def bootstrap_mean_interval(values: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES,
                            level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean of `values`, resampling them with replacement."""
    if len(values) == 0:
        return float("nan"), float("nan")
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[draws].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def paired_differences(table: pd.DataFrame, metrics: list[str], resamples: int = RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Long table: method_a, method_b, metric, mean difference (a − b), its 95 % bootstrap interval, n
    pairs; one row per pair of methods (in the table's order) and metric, over the (prompt, seed)
    where both have a value."""
    rng = np.random.default_rng(seed)
    methods = list(dict.fromkeys(table["method"]))
    keyed = table.set_index(["prompt", "seed"])
    rows = []
    for a, b in itertools.combinations(methods, 2):
        left, right = keyed[keyed["method"] == a], keyed[keyed["method"] == b]
        for metric in metrics:
            joined = pd.concat([pd.to_numeric(left[metric], errors="coerce").rename("a"),
                                pd.to_numeric(right[metric], errors="coerce").rename("b")], axis=1, join="inner")
            difference = (joined["a"] - joined["b"]).dropna().to_numpy(dtype=float)
            low, high = bootstrap_mean_interval(difference, rng, resamples)
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
