"""Comparisons as workflows: the race configs plan one job per (method, variant, prompt, seed, stage),
and a small race runs end to end on the local executor with a stage killed mid-race and resumed."""

import json

import pandas as pd
import pytest

from .test_workflow import make_workdir, planned_jobs, snakemake


@pytest.mark.parametrize("configfile, stage_jobs", [
    # 3 methods x 2 prompts x 2 seeds x 1 variant, plus stage 1 of 2 held-out prompts x 1 seed x (3 methods x 3
    # learning-rate points + 2 source-model methods x 1 LoRA point)
    ("config/toy-race.yaml", {"stage1": 12 + 22, "extract_mesh": 12, "stage2": 12, "stage3": 12, "tuning_pick": 1,
                              "race_report": 1}),
    # recipes restrict their methods: vsd x 1 + sds x 1 + apfo x 4 budgets, 2 prompts, 1 seed
    ("config/toy-recipe-race.yaml", {"stage1": 12, "stage2": 12, "stage3": 12, "recipe_report": 1}),
    # 3 methods x 10 prompts x 3 seeds, plus stage 1 of 3 methods x 3 held-out prompts x 1 seed x 3 grid points
    ("config/paper-race.yaml", {"stage1": 90 + 27, "stage2": 90, "stage3": 90, "evaluate": 90, "race_report": 1}),
])
def test_race_configs_plan_methods_times_prompts_seeds_and_variants(tmp_path, configfile, stage_jobs):
    result, output = snakemake(make_workdir(tmp_path), "-n", "--configfile", configfile)
    assert result.returncode == 0, output[-3000:]
    jobs = planned_jobs(output)
    assert {rule: jobs.get(rule) for rule in stage_jobs} == stage_jobs


def test_a_variant_that_changes_an_earlier_stage_than_it_starts_at_is_refused(tmp_path):
    workdir = make_workdir(tmp_path)
    (workdir / "bad.yaml").write_text("variants:\n  base: {}\n  late: {starts_at: stage3, set: {stage1.iterations: 5}}\n")
    result, output = snakemake(workdir, "-n", "--configfile", "config/tests/smoke.yaml", "bad.yaml")
    assert result.returncode != 0 and "variant 'late' starts at stage3 but its overrides change stage1" in output


def test_a_late_variant_reuses_the_earlier_stages_of_the_one_it_starts_from(tmp_path):
    workdir = make_workdir(tmp_path)
    (workdir / "sweep.yaml").write_text("variants:\n  base: {}\n  s3x2: {starts_at: stage3, set: {stage3.iterations: 6}}\n")
    result, output = snakemake(workdir, "-n", "--configfile", "config/tests/smoke.yaml", "sweep.yaml")
    assert result.returncode == 0, output[-3000:]
    jobs = planned_jobs(output)
    assert (jobs["stage1"], jobs["extract_mesh"], jobs["stage2"], jobs["stage3"], jobs["evaluate"]) == (1, 1, 1, 2, 2)


@pytest.fixture(scope="module")
def killed_then_resumed_race(tmp_path_factory):
    """The smoke race with every stage-2 job SIGKILLed at step 2, then run again to the end."""
    workdir = make_workdir(tmp_path_factory.mktemp("race"))
    result, output = snakemake(workdir, "--cores", "2", "--configfile", "config/tests/smoke-race.yaml",
                               env_extra={"DREAMFLOW_FAULT": "stage2:step:2"})
    assert result.returncode != 0, output[-3000:]  # the kills happened and were seen
    results = workdir / "results" / "smoke-race"
    assert list(results.glob("*/tuned/*/seed0/stage2/resume/ckpt.pt")), "no stage-2 checkpoint survived the kill"
    assert (results / "tuning" / "pick.yaml").exists()  # the tuning finished before the race's stage 2
    result, output = snakemake(workdir, "--cores", "2", "--configfile", "config/tests/smoke-race.yaml")
    assert result.returncode == 0, output[-5000:]
    return results


def test_killed_stages_resume_and_the_race_report_reads_their_curves(killed_then_resumed_race):
    results = killed_then_resumed_race
    for method in ("apfo", "sds"):
        asset = next(results.glob(f"{method}/tuned/*/seed0"))
        events = [json.loads(line) for line in (asset / "stage2" / "log.jsonl").read_text().splitlines()]
        assert [e["step"] for e in events if e.get("event") == "resumed"] == [2], method
        curve = pd.read_csv(asset / "stage2" / "curve.csv")
        assert list(curve["step"]) == [0, 2, 3] and set(curve["variant"]) == {"tuned"}  # none lost, none twice
        assert not (asset / "stage2" / "resume").exists()
    report = (results / "race" / "race.md").read_text()
    assert "Fair tuning (stage1, held-out prompts a green torus; seeds 100)" in report
    assert "| apfo" in report and "| sds" in report and "Paired ratios" in report
    curves = pd.read_csv(results / "race" / "convergence_curves.csv")
    assert set(curves["stage"]) == {"stage1", "stage2", "stage3"} and set(curves["method"]) == {"apfo", "sds"}


def test_the_raced_variant_runs_each_methods_pick_and_names_its_method(killed_then_resumed_race):
    import yaml

    results = killed_then_resumed_race
    picks = yaml.safe_load((results / "tuning" / "pick.yaml").read_text())
    grid = pd.read_csv(results / "tuning" / "tuning_grid.csv", index_col="method")
    for method in ("apfo", "sds"):
        assert picks[method]["point"] == grid.loc[method].idxmin()
        resolved = yaml.safe_load((results / "config" / "tuned" / method / "stage1.yaml").read_text())
        assert resolved["guidance"]["method"] == method
        expected = picks[method]["set"].get("stage1.learning_rate", 1.0e-2)  # config/pipeline/toy.yaml: 1e-2
        assert resolved["stage1"]["learning_rate"] == pytest.approx(expected)
    # Tuning ran on the held-out prompt only, stage 1 only.
    tuning_assets = list(results.glob("*/lr-x*/*/seed100"))
    assert len(tuning_assets) == 4 and all(not (a / "stage2").exists() for a in tuning_assets)
    assert all("green-torus" in a.parent.name for a in tuning_assets)


def test_suite_tables_tell_variants_apart(tmp_path):
    from dreamflow.report.summary import load_metrics

    paths = []
    for variant in ("base", "s3x3"):
        path = tmp_path / "apfo" / variant / "a-red-cube" / "seed0" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"prompt": "a red cube", "method": "apfo", "variant": variant, "seed": 0,
                                    "status": "ok"}))
        paths.append(str(path))
    assert list(load_metrics(paths)["method"]) == ["apfo@base", "apfo@s3x3"]
    assert list(load_metrics(paths[:1])["method"]) == ["apfo"]  # one variant: the method alone
