"""The code's own structure: one guidance registry, one stage table, no config key that nothing reads."""

import ast
import dataclasses
import json
import re
import typing

import pytest
import torch

from dreamflow.config import ConfigError, RunConfig, load_config
from dreamflow.guidance import Guidance, GuidanceOutput, available, register
from dreamflow.guidance.base import target_loss
from dreamflow.training.logger import RunLogger
from dreamflow.training.stages import STAGES, run_stage

from .conftest import ROOT

PACKAGE = ROOT / "dreamflow"


def config_fields(cls=RunConfig, prefix=""):
    """(dotted key, field name) of every leaf field of the run config."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from config_fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f.name


def test_every_config_key_is_read_somewhere():
    """A key is read when some module other than config.py accesses `.name` (or getattr's "name")."""
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "config.py")
    config_py = (PACKAGE / "config.py").read_text()
    unread = [key for key, name in config_fields()
              if not re.search(rf"\.{name}\b|[\"']{name}[\"']", sources)
              and len(re.findall(rf"\.{name}\b", config_py)) == 0]
    assert not unread, f"config keys nothing reads (remove them or use them): {unread}"


def test_no_module_imports_up_the_layers():
    """Lower layers never import higher ones at module level (lazy imports inside functions are allowed)."""
    layers = ["io", "device", "config", "prompts", "render", "toyworld", "geometry", "export", "priors", "guidance",
              "training", "evaluate", "benchmarks", "cli"]
    rank = {name: i for i, name in enumerate(layers)}
    violations = []
    for path in PACKAGE.rglob("*.py"):
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dreamflow."):
                there = node.module.split(".")[1]
                if there in rank and here in rank and rank[there] > rank[here]:
                    violations.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert not violations, violations


def test_unknown_method_is_a_config_error_listing_the_registry():
    with pytest.raises(ConfigError, match=r"guidance.method.*'nope'.*\['apfo', 'sds', 'vsd'"):
        load_config("config/toy.yaml", {"guidance.method": "nope"})


class PullToGrey(Guidance):
    """A test method: pulls the latents towards zero (the prior's grey), logging its own marker."""

    def __call__(self, latents, text, camera, step) -> GuidanceOutput:
        return GuidanceOutput(target_loss(latents, 0.1 * latents.detach()), {"dummy_marker": 1.0})


def test_a_registered_method_runs_a_stage_and_is_offered_everywhere(tmp_path):
    from dreamflow.cli import build_parser

    register("pull-to-grey")(PullToGrey)
    assert "pull-to-grey" in available()
    stage_parser = build_parser()._subparsers._group_actions[0].choices["stage1"]
    method_action = next(a for a in stage_parser._actions if a.dest == "method")
    assert "pull-to-grey" in method_action.choices
    config = load_config("config/toy.yaml", {"guidance.method": "pull-to-grey", "stage1.iterations": 2,
                                             "stage1.log_every": 1, "volume.samples_per_ray": 8,
                                             "stage1.preview_views": 1, "stage1.turntable_views": 1})
    run_stage(STAGES["stage1"], config, "a red cube", tmp_path, RunLogger(tmp_path))
    steps = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [s["dummy_marker"] for s in steps] == [1.0, 1.0]
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["config"]["guidance"]["method"] == "pull-to-grey"


def test_stage_table_drives_the_command_line():
    from dreamflow.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name, spec in STAGES.items():
        options = {a.dest for a in commands[name]._actions}
        assert {"init", "mesh"} & options == set(spec.inputs), name
