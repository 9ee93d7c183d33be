"""The suite planner (dreamflow/planner.py) on plain dicts: variants, reuse of earlier stages, tuning
grids, validation and the targets, without Snakemake (each test runs in milliseconds)."""

import pytest

from dreamflow.planner import RACE_REPORT, SuitePlan

PROMPTS = {"a-red-cube-1": "a red cube", "a-blue-sphere-2": "a blue sphere"}


def workflow_config(**changes):
    """A workflow config as the schema leaves it (defaults filled)."""
    config = {"suite": "s", "prompts": "p.txt", "methods": ["apfo", "sds"], "seeds": [0], "results_dir": "results",
              "pipeline_overrides": {}, "variants": {"base": {}}, "curves": {"every": 0, "views": 8},
              "reports": ["summary"], "race": {}, "recipe": {}, "preference": {"reference": "apfo"}}
    return config | changes


def plan(config=None, tuning_prompts=None, pipeline=None):
    return SuitePlan(config or workflow_config(), pipeline or {}, PROMPTS, tuning_prompts)


def test_every_method_prompt_seed_and_variant_is_an_asset():
    config = workflow_config(seeds=[0, 1], variants={"base": {}, "long": {"methods": ["apfo"],
                                                                          "set": {"stage3.iterations": 9}}})
    suite = plan(config)
    assert suite.variants["long"] == {"set": {"stage3.iterations": 9}, "methods": ["apfo"], "starts_at": "stage1",
                                      "from": "base"}
    entries = suite.suite_entries()
    assert len(entries) == 2 * 2 * 2 + 1 * 2 * 2  # base: 2 methods; long: apfo only
    assert ("apfo", "long", "a-red-cube-1", 1) in entries and not any(e[:2] == ("sds", "long") for e in entries)
    assert suite.entry_path(entries[0], "metrics.json") == "results/s/apfo/base/a-red-cube-1/seed0/metrics.json"


def test_a_variant_starting_at_the_mesh_stage_extracts_its_own_mesh():
    config = workflow_config(variants={"base": {}, "iso": {"starts_at": "stage2", "set": {"extract.threshold": 5.0}}})
    suite = plan(config)
    assert suite.source_variant("iso", "stage1") == "base" and suite.source_variant("iso", "extract_mesh") == "iso"


def test_a_late_variant_reads_the_earlier_steps_of_the_one_it_starts_from():
    config = workflow_config(variants={"base": {}, "s3x2": {"starts_at": "stage3", "set": {"stage3.iterations": 6}}})
    suite = plan(config)
    assert suite.source_variant("s3x2", "stage1") == suite.source_variant("s3x2", "extract_mesh") == "base"
    assert suite.source_variant("s3x2", "stage2") == "base" and suite.source_variant("s3x2", "stage3") == "s3x2"
    entry = ("apfo", "s3x2", "a-red-cube-1", 0)
    assert suite.entry_path(entry, "stage2/ckpt.pt", "stage2") == (
        "results/s/apfo/base/a-red-cube-1/seed0/stage2/ckpt.pt")
    assert suite.entry_path(entry, "stage3/ckpt.pt", "stage3") == (
        "results/s/apfo/s3x2/a-red-cube-1/seed0/stage3/ckpt.pt")
    template = suite.asset("mesh/coarse.obj")
    values = {"suite": "s", "method": "sds", "variant": "s3x2", "slug": "x", "seed": 0}
    assert suite.made_by(template, values, "extract_mesh") == "results/s/sds/base/x/seed0/mesh/coarse.obj"


@pytest.mark.parametrize("variants, message", [
    ({"base": {}, "late": {"starts_at": "stage3", "set": {"stage1.iterations": 5}}},
     "variant 'late' starts at stage3 but its overrides change stage1"),
    ({"base": {}, "late": {"starts_at": "stage3", "set": {"extract.threshold": 5.0}}},
     "variant 'late' starts at stage3 but its overrides change extract_mesh"),
    ({"base": {}, "late": {"starts_at": "stage4"}}, "variant 'late' starts_at 'stage4'"),
    ({"base": {}, "late": {"starts_at": "stage2", "from": "late"}}, "reuses earlier stages from 'late'"),
    ({"base": {"methods": ["vsd"]}}, r"variant 'base' lists method\(s\) \['vsd'\]"),
    ({"base": {"set": {"seed": 3}}}, "variant 'base' sets 'seed' or 'guidance.method'"),
    ({"base": {"set": {"stage1.nope": 3}}}, r"variant 'base': unknown config key\(s\) \['nope'\] in 'stage1'"),
])
def test_a_variant_that_cannot_run_is_refused_naming_it(variants, message):
    with pytest.raises(ValueError, match=message):
        plan(workflow_config(variants=variants))


def test_tuning_grid_points_are_variants_on_held_out_prompts_and_the_pick_is_a_target():
    tuning = {"prompts": "t.txt", "seeds": [100], "stage": "stage1", "picks_for": "tuned",
              "grid": {"lr-x1": {}, "lr-x3": {"set": {"stage1.learning_rate": 0.03}}}}
    config = workflow_config(variants={"tuned": {}}, tuning=tuning, curves={"every": 5, "views": 2},
                             reports=["race"])
    suite = plan(config, tuning_prompts={"a-green-torus-3": "a green torus"})
    assert suite.suite_variants == ["tuned"] and suite.grid_points == ["lr-x1", "lr-x3"] and suite.tuned == "tuned"
    assert len(suite.grid_entries()) == 2 * 2 * 1 * 1  # points x methods x held-out prompts x seeds
    assert {e[2] for e in suite.grid_entries()} == {"a-green-torus-3"}
    targets = suite.targets()
    assert "results/s/race/race.md" in targets and "results/s/tuning/pick.yaml" in targets
    assert RACE_REPORT == "race/race.md"
    with pytest.raises(ValueError, match="tuning prompts must be held out"):
        plan(config, tuning_prompts={"a-red-cube-1": "a red cube"})
    with pytest.raises(ValueError, match="set curves.every"):
        plan(workflow_config(variants={"tuned": {}}, tuning=tuning), tuning_prompts={"t": "a green torus"})
    with pytest.raises(ValueError, match="have the name of a suite variant"):
        plan(workflow_config(variants={"lr-x1": {}}, tuning=tuning | {"picks_for": "lr-x1"},
                             curves={"every": 5, "views": 2}), tuning_prompts={"t": "a green torus"})


def test_unknown_methods_are_refused_listing_the_registry():
    with pytest.raises(ValueError, match=r"unknown guidance method\(s\) \['dds'\].*'apfo', 'sds', 'vsd'"):
        plan(workflow_config(methods=["apfo", "dds"]))


def test_targets_follow_the_reports_asked_for():
    suite = plan()
    targets = suite.targets()
    assert "results/s/apfo/base/a-red-cube-1/seed0/stage3/mesh.glb" in targets
    assert {"results/s/summary.csv", "results/s/report.html", "results/s/study/index.html"} <= set(targets)
    alone = plan(workflow_config(methods=["sds"], reports=["recipe"], curves={"every": 5, "views": 2}))
    assert not alone.has_preference_study()
    assert "results/s/recipe/recipe_race.md" in alone.targets() and "results/s/summary.csv" not in alone.targets()
    assert "results/s/sds/base/a-blue-sphere-2/seed0/stage2/curve.csv" in alone.targets()


def test_each_step_reads_only_its_config_blocks():
    suite = plan(pipeline={"stage3": {"iterations": 7}})
    assert suite.run_config["stage3"]["iterations"] == 7
    assert "stage3" not in suite.step_blocks["stage1"] and "extract" in suite.step_blocks["extract_mesh"]
    shared = ["seed", "device", "deterministic", "camera", "guidance", "nerf", "shading"]
    assert suite.step_blocks["stage2"][:7] == shared
    assert set(suite.step_blocks["evaluate"]) == set(suite.run_config)
