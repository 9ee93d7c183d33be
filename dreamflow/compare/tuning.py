"""Fair tuning: every method runs every point of one grid on held-out prompts and seeds; each method's
best point (lowest mean final score) is what its raced variant runs with (`dreamflow compare pick`)."""

from __future__ import annotations

import pandas as pd

from dreamflow.compare.race import quality_score


def final_score(curve: pd.DataFrame) -> float:
    """What tuning minimises: the quality score at the run's last evaluation."""
    return float(quality_score(curve.sort_values("step")).iloc[-1])


def tuning_table(curves: pd.DataFrame, stage: str) -> pd.DataFrame:
    """Final score of every tuning run (method, grid point = variant, prompt, seed) at `stage`."""
    rows = [{"method": method, "point": variant, "prompt": prompt, "seed": seed, "score": final_score(curve)}
            for (method, variant, prompt, seed), curve in
            curves[curves["stage"] == stage].groupby(["method", "variant", "prompt", "seed"])]
    if not rows:
        raise ValueError(f"no tuning curves at stage {stage!r}")
    return pd.DataFrame(rows)


def tuning_grid(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean final score per method (rows) and grid point (columns), lower is better."""
    return runs.groupby(["method", "point"])["score"].mean().unstack()


def pick(grid: pd.DataFrame, points: dict[str, dict]) -> dict[str, dict]:
    """Each method's best grid point: {method: {"point": name, "score": mean, "set": its overrides}}."""
    return {method: {"point": str(row.idxmin()), "score": float(row.min()), "set": dict(points[row.idxmin()])}
            for method, row in grid.iterrows()}
