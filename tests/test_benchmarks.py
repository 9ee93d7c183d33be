"""The benchmark harness (not the benchmark numbers): ratios, verdict, a tiny real race, throughput."""

import math

import pandas as pd
import pytest

from dreamflow.benchmarks.convergence import RaceConfig, race
from dreamflow.benchmarks.report import ratio_table, runs_table, verdict, write_report

from .conftest import ROOT

TINY = {"stage1.iterations": 4, "stage1.checkpoint_every": 2, "volume.samples_per_ray": 16,
        "guidance.num_timesteps": 2, "extract.grid_resolution": 40, "extract.target_faces": 300,
        "stage2.iterations": 2}


def curve(method, prompt, seed, ious, colours, seconds_per_step=1.0, every=10):
    return pd.DataFrame({"method": method, "prompt": prompt, "seed": seed, "stage": "stage1",
                         "step": [i * every for i in range(len(ious))],
                         "seconds": [i * every * seconds_per_step for i in range(len(ious))],
                         "iou": ious, "colour_error": colours})


def test_ratios_are_paired_by_prompt_and_seed_and_the_verdict_says_by_how_much():
    race_config = RaceConfig(iou_threshold=0.8, colour_threshold=0.3)
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

    race_config = RaceConfig(iou_threshold=0.8, colour_threshold=0.3)
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


def test_fair_tuning_gives_every_method_the_same_grid_on_held_out_prompts(tmp_path):
    from dreamflow.benchmarks.convergence import tune

    race_config = RaceConfig(methods=("apfo", "sds"), prompts=("a red cube",), seeds=(0,), stages=("stage1",),
                             eval_every=2, eval_views=2, overrides=TINY, clip_pretrained=None,
                             tuning_factors=(0.5, 2.0), tuning_prompts=("a blue sphere with red dots",),
                             tuning_seeds=(7,))
    grid, best = tune(ROOT / "config" / "toy.yaml", race_config, tmp_path / "work")
    assert list(grid.index) == ["apfo", "sds"] and list(grid.columns) == [0.5, 2.0]
    assert grid.notna().all().all()
    for method, overrides in best.items():
        factor = grid.loc[method].idxmin()
        assert overrides["guidance.method"] == method
        assert overrides["stage1.learning_rate"] == pytest.approx(1e-2 * factor)  # config/toy.yaml: 1e-2
    from dreamflow.prompts import slugify

    assert sorted(p.parent.name for p in (tmp_path / "work" / "tuning").rglob("seed7")) == [
        slugify("a blue sphere with red dots")] * 4  # only the held-out prompt and seed


def test_tiny_race_through_two_stages_writes_the_report_and_reuses_finished_runs(tmp_path):
    race_config = RaceConfig(methods=("apfo", "sds"), prompts=("a red cube",), seeds=(0,), stages=("stage1", "stage2"),
                             eval_every=2, eval_views=2, overrides=TINY,
                             clip_pretrained=str(ROOT / "models" / "toy-clip" / "open_clip_model.safetensors"))
    config_path = ROOT / "config" / "toy.yaml"
    curves = race(config_path, race_config, tmp_path / "work")
    assert set(curves["method"]) == {"apfo", "sds"} and set(curves["stage"]) == {"stage1", "stage2"}
    stage1 = curves[(curves["stage"] == "stage1") & (curves["method"] == "apfo")]
    assert list(stage1["step"]) == [0, 2, 4]
    assert stage1["seconds"].is_monotonic_increasing and stage1["iou"].between(0, 1).all()
    assert curves["clip_score"].notna().all()
    assert curves.loc[curves["stage"] == "stage2", "chamfer_relative"].notna().all()
    # Same initialisation for every method: identical quality before the first step.
    first = curves[(curves["stage"] == "stage1") & (curves["step"] == 0)].set_index("method")
    assert first.loc["apfo", "iou"] == first.loc["sds", "iou"]
    assert first.loc["apfo", "colour_error"] == first.loc["sds", "colour_error"]

    cached = sorted((tmp_path / "work").rglob("curve_*.csv"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = race(config_path, race_config, tmp_path / "work")
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # reused, not re-run
    pd.testing.assert_frame_equal(again, curves)

    report = write_report(curves, race_config, tmp_path / "docs" / "benchmarks.md", "dreamflow benchmark --test")
    text = report.read_text()
    assert "dreamflow benchmark --test" in text and "Paired ratios" in text and "| apfo" in text
    assert (tmp_path / "docs" / "convergence_stage1.png").stat().st_size > 1000
    assert (tmp_path / "docs" / "convergence_stage2.png").exists()


def test_race_rejects_a_prompt_without_ground_truth(tmp_path):
    with pytest.raises(ValueError, match="not a toy-world prompt"):
        race(ROOT / "config" / "toy.yaml", RaceConfig(prompts=("a photo of a dog",)), tmp_path)


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


def test_recipe_race_scales_published_budgets_and_halves_dreamflow_until_it_misses_the_bar(tmp_path):
    from dreamflow.benchmarks.recipe import RecipeRaceConfig, recipe_race, recipe_tables, write_recipe_section

    overrides = {k: v for k, v in TINY.items() if not k.endswith(".iterations")}
    recipes = RecipeRaceConfig(prompts=("a red cube",), seeds=(0,), scale=2e-4, halvings=1, overrides=overrides,
                               eval_views=2,                                tuned={"vsd": {"stage1.learning_rate": 0.05}})
    results = recipe_race(ROOT / "config" / "toy.yaml", recipes, tmp_path / "work")
    iterations = results.groupby(["recipe", "budget", "stage"])["iterations"].first()
    assert [iterations["prolificdreamer", 14, s] for s in ("stage1", "stage2", "stage3")] == [5, 3, 6]  # 25k/15k/30k
    assert [iterations["magic3d", 3, s] for s in ("stage1", "stage2", "stage3")] == [1, 1, 1]
    budgets = sorted(results.loc[results["recipe"] == "dreamflow", "budget"].unique())
    assert budgets in ([14], [6, 14])  # the bar's budget, then halved (5/3/6 -> 2/1/3) only while it matched
    assert [iterations["dreamflow", 14, s] for s in ("stage1", "stage2", "stage3")] == [5, 3, 6]
    assert results["score"].notna().all() and (results["seconds"] > 0).all()
    tables = recipe_tables(results, recipes.tolerance)
    bar = tables["recipes"].set_index(["recipe", "budget"]).loc[("prolificdreamer", 14)]
    assert bar["matches_bar"] and bar["time_vs_prolificdreamer"] == pytest.approx(1.0)
    text = write_recipe_section(results, recipes)
    assert "Recipe race" in text and "**Verdict.**" in text and "'stage1.learning_rate': 0.05" in text
