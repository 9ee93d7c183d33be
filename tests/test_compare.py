"""The comparison reports (not their numbers): ratios, verdict, tuning pick, recipe tables, the
quality-curve recorder's checks."""

import math

import pandas as pd
import pytest

from dreamflow.compare.race import RaceSettings
from dreamflow.compare.report import ratio_table, runs_table, verdict, write_report

from .conftest import ROOT


def curve(method, prompt, seed, ious, colours, seconds_per_step=1.0, every=10):
    return pd.DataFrame({"method": method, "prompt": prompt, "seed": seed, "stage": "stage1",
                         "step": [i * every for i in range(len(ious))],
                         "seconds": [i * every * seconds_per_step for i in range(len(ious))],
                         "iou": ious, "colour_error": colours})


def test_ratios_are_paired_by_prompt_and_seed_and_the_verdict_says_by_how_much():
    race_config = RaceSettings(iou_threshold=0.8, colour_threshold=0.3)
    curves = pd.concat([
        curve("apfo", "a red cube", 0, [0.5, 0.9, 0.9, 0.9], [0.5, 0.2, 0.2, 0.2]),  # reaches at step 10
        curve("sds", "a red cube", 0, [0.5, 0.6, 0.9, 0.9], [0.5, 0.5, 0.2, 0.2]),  # step 20
        curve("vsd", "a red cube", 0, [0.5, 0.6, 0.7, 0.9], [0.5, 0.5, 0.2, 0.2]),  # step 30
        curve("apfo", "a red cube", 1, [0.5, 0.6, 0.6, 0.6], [0.5, 0.5, 0.5, 0.5]),  # never
        curve("sds", "a red cube", 1, [0.5, 0.9, 0.9, 0.9], [0.5, 0.2, 0.2, 0.2]),
        curve("vsd", "a red cube", 1, [0.5, 0.9, 0.9, 0.9], [0.5, 0.2, 0.2, 0.2]),
    ])
    runs = runs_table(curves, race_config)
    by_run = runs.set_index(["method", "seed"])
    assert by_run.loc[("apfo", 0), "steps_to_threshold"] == 10 and by_run.loc[("vsd", 0), "steps_to_threshold"] == 30
    assert math.isnan(by_run.loc[("apfo", 1), "steps_to_threshold"])
    ratios = ratio_table(runs).set_index(["baseline", "quantity"])
    assert ratios.loc[("sds", "steps"), "ratio_mean"] == pytest.approx(0.5)
    assert ratios.loc[("vsd", "steps"), "ratio_mean"] == pytest.approx(1 / 3)
    assert ratios.loc[("vsd", "steps"), "paired_runs"] == 1
    assert ratios.loc[("vsd", "steps"), "only_baseline_reached"] == 1
    text = verdict(ratio_table(runs))
    assert "vs SDS: 0.50" in text and "**met**" in text  # 0.5 <= 1/2
    assert "vs VSD: 0.33" in text and "missed by 1.7x" in text  # 0.33 > 1/5


def test_threshold_counts_from_where_a_run_stays_not_its_first_crossing():
    from dreamflow.compare.report import matched_quality_table

    race_config = RaceSettings(iou_threshold=0.8, colour_threshold=0.3)
    curves = pd.concat([
        curve("apfo", "a red cube", 0, [0.5, 0.9, 0.6, 0.9, 0.9], [0.5, 0.2, 0.2, 0.2, 0.2]),  # dips at 20
        curve("vsd", "a red cube", 0, [0.5, 0.6, 0.7, 0.8, 0.9], [0.5, 0.5, 0.4, 0.3, 0.2]),
        curve("sds", "a red cube", 0, [0.5, 0.9, 0.9, 0.9, 0.7], [0.5, 0.2, 0.2, 0.2, 0.2]),  # falls off
    ]).assign(detail_error=0.0)
    runs = runs_table(curves, race_config).set_index("method")
    assert runs.loc["apfo", "first_crossing_step"] == 10 and runs.loc["apfo", "steps_to_threshold"] == 30
    assert runs.loc["sds", "first_crossing_step"] == 10 and math.isnan(runs.loc["sds", "steps_to_threshold"])
    matched = matched_quality_table(curves).set_index("method")
    # VSD's final score: (1 - 0.9) + 0.2 = 0.3; the bar is 10 % above it, 0.33.
    assert matched.loc["vsd", "bar"] == pytest.approx(0.33)
    assert matched.loc["vsd", "steps_to_stay"] == 40 and matched.loc["apfo", "steps_to_stay"] == 30
    assert matched.loc["apfo", "ratio"] == pytest.approx(30 / 40)
    assert math.isnan(matched.loc["sds", "steps_to_stay"])


def test_tuning_picks_each_methods_best_grid_point_by_mean_final_score():
    from dreamflow.compare.tuning import pick, tuning_grid, tuning_table

    rows = []
    for method, point, prompt, final_iou in [("apfo", "lr-x1", "a", 0.9), ("apfo", "lr-x1", "b", 0.5),
                                              ("apfo", "lr-x3", "a", 0.8), ("apfo", "lr-x3", "b", 0.8),
                                              ("sds", "lr-x1", "a", 0.9), ("sds", "lr-x1", "b", 0.9),
                                              ("sds", "lr-x3", "a", 0.2), ("sds", "lr-x3", "b", 0.2)]:
        rows.append(curve(method, prompt, 100, [0.1, final_iou], [0.2, 0.2]).assign(variant=point))
    runs = tuning_table(pd.concat(rows), "stage1")
    grid = tuning_grid(runs)
    # Only the last evaluation counts: apfo lr-x1 averages (0.3 + 0.7) / 2 = 0.5 against lr-x3's 0.4.
    assert grid.loc["apfo", "lr-x1"] == pytest.approx(0.5) and grid.loc["apfo", "lr-x3"] == pytest.approx(0.4)
    points = {"lr-x1": {}, "lr-x3": {"stage1.learning_rate": 0.03}}
    picks = pick(grid, points)
    assert picks["apfo"]["point"] == "lr-x3" and picks["apfo"]["set"] == {"stage1.learning_rate": 0.03}
    assert picks["sds"]["point"] == "lr-x1" and picks["sds"]["set"] == {}


def test_race_report_from_curves_has_tables_plots_and_the_command(tmp_path):
    from dreamflow.compare.race import race_labels

    curves = pd.concat([curve(m, "a red cube", 0, [0.5, 0.9, 0.9], [0.5, 0.2, 0.2]) for m in ("apfo", "sds", "vsd")]
                       + [curve("apfo", "a red cube", 0, [0.5, 0.6, 0.9], [0.5, 0.2, 0.2]).assign(variant="late")])
    curves["variant"] = curves["variant"].fillna("tuned")
    labelled = race_labels(curves, "tuned")
    assert set(labelled["method"]) == {"apfo", "sds", "vsd", "apfo@late"}
    report = write_report(labelled, RaceSettings(), tmp_path / "race" / "race.md", "snakemake --test")
    text = report.read_text()
    assert "snakemake --test" in text and "Paired ratios" in text and "| apfo@late" in text
    assert (tmp_path / "race" / "convergence_stage1.png").stat().st_size > 1000


def test_curve_recorder_needs_ground_truth_or_clip():
    from dreamflow.config import load_config
    from dreamflow.evaluate.curves import CurveRecorder, CurveSettings

    config = load_config(ROOT / "config" / "pipeline" / "toy.yaml")
    with pytest.raises(ValueError, match="not a toy-world prompt.*CLIP"):
        CurveRecorder(CurveSettings(every=5), config, "a photo of a dog", config.stage1)
    with pytest.raises(ValueError, match=">= 1 iteration"):
        CurveRecorder(CurveSettings(every=0), config, "a red cube", config.stage1)


def test_recipe_tables_compare_each_budget_with_the_bar_stage_by_stage():
    from dreamflow.compare.recipe import recipe_results, recipe_tables, recipe_verdict

    def run(variant, method, iterations, final_iou, seconds_per_step):
        return pd.concat([curve(method, "a red cube", 0, [0.2, final_iou], [0.2, 0.2], seconds_per_step, every=n)
                          .assign(stage=stage, variant=variant)
                          for stage, n in zip(("stage1", "stage2", "stage3"), iterations)])

    curves = pd.concat([run("prolificdreamer", "vsd", (25, 15, 30), 0.9, 1.0),
                        run("dreamflow-x1_2", "apfo", (12, 7, 15), 0.89, 1.0),  # within 10 % of the bar
                        run("dreamflow-x1_4", "apfo", (6, 3, 7), 0.5, 1.0)])   # misses it
    results = recipe_results(curves)
    assert results.groupby("recipe")["budget"].first().to_dict() == {
        "prolificdreamer": 70, "dreamflow-x1_2": 34, "dreamflow-x1_4": 16}
    recipes = recipe_tables(results, "prolificdreamer", 0.1)["recipes"].set_index("recipe")
    assert recipes.loc["dreamflow-x1_2", "matches_bar"] and not recipes.loc["dreamflow-x1_4", "matches_bar"]
    assert recipes.loc["dreamflow-x1_2", "time_vs_bar"] == pytest.approx(34 / 70)
    verdict_text = recipe_verdict(recipes.reset_index(), ["dreamflow-x1_2", "dreamflow-x1_4"], "prolificdreamer")
    assert "dreamflow-x1_2, 34 iterations" in verdict_text and "misses the paper's claim" in verdict_text
