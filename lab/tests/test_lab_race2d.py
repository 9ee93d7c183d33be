"""The 2D race (`dreamflow-lab race-2d`): tuning on held-out seeds, paired runs, its report."""

import math

import pandas as pd

from dreamflow_lab.race2d import Race2DConfig, race_2d, stays_within, write_race_2d_report


def test_2d_race_tunes_every_method_on_held_out_seeds_and_reports_paired_runs(tmp_path):
    race = Race2DConfig(methods=("apfo", "vsd"), prompts=("a red cube",), seeds=(0,), tuning_prompts=("a red torus",),
                        tuning_seeds=(100,), learning_rates=(0.01, 1e6), views=1, iterations=4, eval_every=2)
    result = race_2d("config/pipeline/toy.yaml", race)
    grid = result["grid"]
    assert list(grid.columns) == [0.01, 1e6] and set(grid.index) == {"apfo", "vsd"}
    assert grid[1e6].gt(grid[0.01]).all()  # latents blown up by a huge step decode far from the scene
    assert result["best"] == {m: grid.loc[m].idxmin() for m in ("apfo", "vsd")} == {"apfo": 0.01, "vsd": 0.01}
    runs = result["runs"]
    assert set(runs["method"]) == {"apfo", "vsd"} and (runs["seed"] == 0).all()
    assert set(result["curves"]["step"]) == {0, 2, 4} and result["curves"]["distance"].gt(0).all()
    report = write_race_2d_report(result, race, tmp_path / "race2d.md", "dreamflow-lab race-2d --test").read_text()
    assert "Chosen step sizes: apfo 0.01, vsd 0.01" in report and "| a red cube" in report
    curve = pd.DataFrame({"step": [0, 10, 20, 30], "distance": [0.5, 0.2, 0.4, 0.2]})
    assert stays_within(curve, 0.3) == 30 and math.isnan(stays_within(curve, 0.1))
