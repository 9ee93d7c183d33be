import pytest

from dreamflow.config import ConfigError, load_config
from dreamflow.prompts import PromptFileError, read_prompts, slugify


def test_toy_config_loads_and_resolves_stage_guidance():
    config = load_config("config/pipeline/toy.yaml")
    assert config.stage1.resolution == 32
    stage2 = config.guidance_for(config.stage2)
    assert (stage2.apfo.t_max, stage2.apfo.t_min) == (0.5, 0.1)
    assert (stage2.sds.t_min, stage2.sds.t_max) == (0.02, 0.5)  # Magic3D's mesh stage, not APFO's range


def test_paper_config_pipeline_block_loads():
    config = load_config("config/paper.yaml")
    assert config.stage1.resolution == 256 and config.stage3.resolution == 1024
    stage1 = config.guidance_for(config.stage1)
    assert (stage1.apfo.t_max, stage1.apfo.t_min) == (1.0, 0.2)
    assert config.stage2.laplacian_weight == 1.0e4  # written 1.0e4, which PyYAML reads as a string


@pytest.mark.parametrize("override, fragment", [
    ({"stage1.iteratons": 3}, "unknown config key(s) ['iteratons'] in 'stage1'"),
    # Blocks are per model kind: mesh regularisers do not exist for the NeRF stage, nor opacity for a mesh.
    ({"stage1.laplacian_weight": 10.0}, "unknown config key(s) ['laplacian_weight'] in 'stage1'"),
    ({"stage3.opacity_weight": 0.1}, "unknown config key(s) ['opacity_weight'] in 'stage3'"),
    ({"stage1.iterations": "many"}, "'stage1.iterations' must be an integer"),
    ({"guidance.method": "dds"}, "'guidance.method' is 'dds'"),
    ({"stage2.guidance.apfo.t_min": 0.9}, "'stage2' timestep range of 'apfo'"),
    ({"camera.fovy_range": [40]}, "'camera.fovy_range' must have 2 items"),
    ({"stage3.supersample": 0}, "'stage3.supersample' must be a whole number >= 1"),
])
def test_bad_config_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as error:
        load_config("config/pipeline/toy.yaml", override)
    assert fragment in str(error.value)


def test_prompt_file_tolerates_bom_crlf_comments_and_blank_lines(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeff# comment\r\na red cube\r\n\r\n  a  blue   sphere \r\n".encode("utf-8"))
    assert read_prompts(path) == ["a red cube", "a blue sphere"]


@pytest.mark.parametrize("content, fragment", [
    ("", "has no prompts"),
    ("# only a comment\n\n   \n", "has no prompts"),
    ("a red cube\na blue sphere\na red  cube\n", "duplicate prompt 'a red cube' (first on line 1)"),
    ("x" * 2001 + "\n", "the limit is 2000"),
])
def test_prompt_file_errors_are_clear(tmp_path, content, fragment):
    path = tmp_path / "p.txt"
    path.write_text(content)
    with pytest.raises(PromptFileError) as error:
        read_prompts(path)
    assert fragment in str(error.value)


def test_slugs_are_safe_unique_and_bounded():
    hostile = ["a red cube", "A red cube", "a/red/../cube", "../../etc/passwd", "a 'quoted' \"cube\"; rm -rf $HOME `x`",
               "一个红色的立方体", "a 🐿️ squirrel", "x" * 500, "x" * 499 + "y", "   ", "a\tb"]
    slugs = [slugify(p) for p in hostile]
    assert len(set(slugs)) == len(hostile)
    for slug in slugs:
        assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        assert 0 < len(slug) <= 69 and not slug.startswith("-") and ".." not in slug


def test_the_toy_clip_is_one_default_everywhere():
    """The evaluation's CLIP default: one constant in the library, the schema's default in the workflow."""
    import yaml

    from dreamflow.cli import build_parser
    from dreamflow.evaluate.toy_clip import TOY_CLIP_MODEL, TOY_CLIP_WEIGHTS

    from .conftest import ROOT

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    evaluate = schema["properties"]["evaluate"]["properties"]
    assert evaluate["clip_models"]["default"] == [{"model": TOY_CLIP_MODEL, "pretrained": TOY_CLIP_WEIGHTS}]
    args = build_parser().parse_args(["evaluate", "--prompt", "a red cube", "--out", "m.json", "--stage1", "a",
                                      "--stage2", "b", "--stage3", "c"])
    assert (args.clip_model, args.clip_pretrained) == ([TOY_CLIP_MODEL], [TOY_CLIP_WEIGHTS])
    assert (ROOT / TOY_CLIP_WEIGHTS).exists()
