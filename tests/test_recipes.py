"""Each method's recipe is its own config block: published defaults, per-stage values, strict keys,
and `dreamflow recipe` listing what each method runs with and where each value comes from."""

import json
import subprocess
import sys

import pytest

from dreamflow.cli import main
from dreamflow.config import ConfigError, load_config, method_names
from dreamflow.config.methods import METHOD_CONFIGS, STAGE_DEFAULTS, source_of

from .conftest import ROOT


def test_a_stage_block_changes_only_the_method_it_names():
    base = load_config("config/pipeline/toy.yaml")
    changed = load_config("config/pipeline/toy.yaml", {"stage1.guidance.apfo.t_max": 0.9, "stage1.guidance.apfo.t_min": 0.3})
    before, after = base.guidance_for(base.stage1), changed.guidance_for(changed.stage1)
    assert (after.apfo.t_max, after.apfo.t_min) == (0.9, 0.3)
    assert after.sds == before.sds and after.vsd == before.vsd
    # The stage block was merged onto its defaults: stage 2's published values are still there.
    assert changed.guidance_for(changed.stage2) == base.guidance_for(base.stage2)


@pytest.mark.parametrize("override, fragments", [
    # A key of another method in a method's stage block: the key and that method's valid keys.
    ({"stage1.guidance.apfo.weighting": "uniform"},
     ["unknown config key(s) ['weighting'] in 'stage1.guidance.apfo'", "'apfo_weighting'", "'num_timesteps'"]),
    ({"stage2.guidance.sds.lora": {"rank": 8}}, ["['lora'] in 'stage2.guidance.sds'", "'anneal'"]),
    ({"guidance.vsd.num_timesteps": 10}, ["['num_timesteps'] in 'guidance.vsd'"]),
    ({"stage1.guidance.dds": {"t_max": 0.5}}, ["['dds'] in 'stage1.guidance'", "['apfo', 'sds', 'vsd']"]),
    # Keys that left their block say where they live now.
    ({"guidance.guidance_scale": 7.5}, ["'guidance.guidance_scale' is no longer read here", "guidance.<method>"]),
    ({"guidance.t_min": 0.2}, ["'guidance.t_min'", "stageN.guidance.<method>.t_min"]),
    ({"stage2.t_max": 0.5}, ["'stage2.t_max'", "stageN.guidance.<method>.t_max"]),
    ({"stage3.guidance_scale": 3.0}, ["'stage3.guidance_scale'", "per method"]),
    ({"guidance.lora": {"rank": 4}}, ["'guidance.lora'", "guidance.apfo.lora", "guidance.vsd.lora"]),
    ({"guidance.vsd.lora.text_dropout": 0.1}, ["'guidance.vsd.lora.text_dropout'", "lora.camera_dropout"]),
    ({"guidance.sds.weighting": "sds_dreamfusion"}, ["'guidance.sds.weighting' is 'sds_dreamfusion'",
                                                     "sigma_t^2 is `one_minus_alphabar`"]),
    ({"guidance.apfo.steps_per_timestep": 7}, ["steps_per_timestep' is 7 with num_timesteps 20", "140 iterations",
                                               "'stage1.iterations' is 300", "Leave steps_per_timestep unset"]),
])
def test_misplaced_keys_are_errors_that_say_where_they_belong(override, fragments):
    with pytest.raises(ConfigError) as error:
        load_config("config/pipeline/toy.yaml", override)
    assert all(fragment in str(error.value) for fragment in fragments), str(error.value)


def test_apfo_only_keys_at_the_guidance_level_are_errors_naming_apfos_block():
    with pytest.raises(ConfigError, match="'guidance.num_timesteps' is no longer read here: APFO's own: "
                                          "guidance.apfo.num_timesteps"):
        load_config("config/pipeline/toy.yaml", {"guidance.num_timesteps": 3})


def blocks_of(cls) -> set:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls) if dataclasses.is_dataclass(getattr(cls(), f.name))}


def test_every_default_cites_its_source_and_stage_values_too():
    """Every value of every method block (nested blocks' values included) carries its source."""
    import dataclasses

    for method, cls in METHOD_CONFIGS.items():
        blocks = [cls] + [type(getattr(cls(), f.name)) for f in dataclasses.fields(cls)
                          if dataclasses.is_dataclass(getattr(cls(), f.name))]
        for block in blocks:
            missing = [f.name for f in dataclasses.fields(block)
                       if not source_of(block, f.name) and f.name not in blocks_of(block)]
            assert not missing, (method, block.__name__, missing)
    assert all(source for stage in STAGE_DEFAULTS.values() for values in stage.values()
               for _, source in values.values())
    assert set(METHOD_CONFIGS) <= set(method_names())


def test_loading_a_config_and_the_method_list_need_no_torch():
    code = ("import sys; from dreamflow.config import load_config, method_names; load_config('config/paper.yaml'); "
            "from dreamflow.config.recipes import load_recipes; load_recipes('config/paper.yaml'); "
            "print(method_names(), 'torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('apfo', 'sds', 'vsd') False False"


def paper_recipe(capsys, *args) -> dict:
    assert main(["recipe", "--config", "config/paper.yaml", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_recipe_command_gives_the_published_stage_1_recipes_of_the_paper_config(capsys):
    recipe = paper_recipe(capsys)
    cfg = {method: recipe[method]["stage1"]["guidance_scale"]["value"] for method in recipe}
    assert cfg == {"apfo": 7.5, "sds": 100.0, "vsd": 7.5}
    assert recipe["sds"]["stage1"]["cfg_reference"]["value"] == 99.0  # DreamFusion's / threestudio's form
    assert "stable-dreamfusion" in recipe["sds"]["stage1"]["guidance_scale"]["source"]
    vsd = recipe["vsd"]["stage1"]
    assert (vsd["t_min"]["value"], vsd["t_max"]["value"], vsd["anneal_t_max"]["value"]) == (0.02, 0.98, 0.5)
    assert vsd["lora.model"]["value"] == "two_model" and vsd["lora.pretrained"]["value"].endswith("stable-diffusion-2-1")
    assert recipe["sds"]["stage2"]["t_max"]["source"].startswith("threestudio configs/magic3d-refine-sd.yaml")
    assert recipe["apfo"]["stage3"]["t_min"]["value"] == 0.0
    assert recipe["apfo"]["stage1"]["iterations"]["source"] == "config config/paper.yaml: stage1.iterations"


def test_recipe_command_names_the_config_that_changed_a_value(capsys):
    recipe = paper_recipe(capsys, "--method", "vsd", "--stage", "stage2", "--set", "stage2.guidance.vsd.t_max=0.7")
    assert list(recipe) == ["vsd"] and list(recipe["vsd"]) == ["stage2"]
    assert recipe["vsd"]["stage2"]["t_max"] == {"value": 0.7, "source": "--set stage2.guidance.vsd.t_max"}
