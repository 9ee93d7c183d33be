"""The comparison reports (not the benchmark numbers): ratios, verdict, tuning pick, recipe tables,
quality curves of a real stage, throughput, the 2D race."""

import math

import pandas as pd
import pytest

from dreamflow.benchmarks.race import RaceSettings
from dreamflow.benchmarks.report import ratio_table, runs_table, verdict, write_report

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
    from dreamflow.benchmarks.report import matched_quality_table

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
    from dreamflow.benchmarks.race import pick, tuning_grid, tuning_table

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
    from dreamflow.benchmarks.race import race_labels

    curves = pd.concat([curve(m, "a red cube", 0, [0.5, 0.9, 0.9], [0.5, 0.2, 0.2]) for m in ("apfo", "sds", "vsd")]
                       + [curve("apfo", "a red cube", 0, [0.5, 0.6, 0.9], [0.5, 0.2, 0.2]).assign(variant="late")])
    curves["variant"] = curves["variant"].fillna("tuned")
    labelled = race_labels(curves, "tuned")
    assert set(labelled["method"]) == {"apfo", "sds", "vsd", "apfo@late"}
    report = write_report(labelled, RaceSettings(), tmp_path / "race" / "benchmarks.md", "snakemake --test")
    text = report.read_text()
    assert "snakemake --test" in text and "Paired ratios" in text and "| apfo@late" in text
    assert (tmp_path / "race" / "convergence_stage1.png").stat().st_size > 1000


def test_curve_recorder_needs_ground_truth_or_clip():
    from dreamflow.config import load_config
    from dreamflow.evaluate.curves import CurveRecorder, CurveSettings

    config = load_config(ROOT / "config" / "toy.yaml")
    with pytest.raises(ValueError, match="not a toy-world prompt.*CLIP"):
        CurveRecorder(CurveSettings(every=5), config, "a photo of a dog", config.stage1)
    with pytest.raises(ValueError, match=">= 1 iteration"):
        CurveRecorder(CurveSettings(every=0), config, "a red cube", config.stage1)


def test_throughput_counts_unet_calls_per_method(monkeypatch):
    from dreamflow.benchmarks.throughput import measure

    monkeypatch.chdir(ROOT)
    overrides = {"extract.target_faces": 300, "stage2.resolution": 32}
    sds = measure("config/toy.yaml", "stage2", "sds", steps=2, warmup=1, overrides=overrides)
    apfo = measure("config/toy.yaml", "stage2", "apfo", steps=2, warmup=1, overrides=overrides)
    # SDS: one batched CFG call. APFO: CFG + the source model + one LoRA training step.
    assert sds["unet_calls_per_iteration"] == 1 and apfo["unet_calls_per_iteration"] == 3
    assert 0 < sds["unet_share"] < 1 and sds["seconds_per_iteration"] > 0 and sds["peak_rss_mb"] > 100
    assert apfo["backend"] == "rasterizer=torch, hash_grid=torch"


def test_throughput_stand_in_mesh_has_the_face_budget_above_and_below_an_icosphere():
    """paper.yaml's 100k-face budget is more than a 5-times subdivided icosphere has (20,480): the
    stand-in mesh must be subdivided up to it, not 'decimated' up (which trimesh refuses)."""
    from dreamflow.benchmarks.throughput import _mesh_model
    from dreamflow.config import load_config

    for faces in (300, 100_000):
        config = load_config(ROOT / "config" / "paper.yaml", {"extract.target_faces": faces, "device": "cpu"})
        assert len(_mesh_model(config).faces) == faces


def test_2d_race_tunes_every_method_on_held_out_seeds_and_reports_paired_runs(tmp_path):
    from dreamflow.benchmarks.race2d import Race2DConfig, race_2d, stays_within, write_race_2d_report

    race = Race2DConfig(methods=("apfo", "vsd"), prompts=("a red cube",), seeds=(0,), tuning_prompts=("a red torus",),
                        tuning_seeds=(100,), learning_rates=(0.01, 1e6), views=1, iterations=4, eval_every=2)
    result = race_2d("config/toy.yaml", race)
    grid = result["grid"]
    assert list(grid.columns) == [0.01, 1e6] and set(grid.index) == {"apfo", "vsd"}
    assert grid[1e6].gt(grid[0.01]).all()  # latents blown up by a huge step decode far from the scene
    assert result["best"] == {m: grid.loc[m].idxmin() for m in ("apfo", "vsd")} == {"apfo": 0.01, "vsd": 0.01}
    runs = result["runs"]
    assert set(runs["method"]) == {"apfo", "vsd"} and (runs["seed"] == 0).all()
    assert set(result["curves"]["step"]) == {0, 2, 4} and result["curves"]["distance"].gt(0).all()
    report = write_race_2d_report(result, race, tmp_path / "race2d.md", "dreamflow benchmark-2d --test").read_text()
    assert "Chosen step sizes: apfo 0.01, vsd 0.01" in report and "| a red cube" in report
    curve = pd.DataFrame({"step": [0, 10, 20, 30], "distance": [0.5, 0.2, 0.4, 0.2]})
    assert stays_within(curve, 0.3) == 30 and math.isnan(stays_within(curve, 0.1))


def test_recipe_tables_compare_each_budget_with_the_bar_stage_by_stage():
    from dreamflow.benchmarks.recipe import recipe_results, recipe_tables, recipe_verdict

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
