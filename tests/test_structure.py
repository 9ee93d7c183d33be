"""The code's own structure: layers that import downwards with no circle, one guidance registry, one stage
description, no config key that nothing reads, planning the workflow without torch."""

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
    """A key is read when some module outside the config package accesses `.name` (or getattr's "name")."""
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.parent.name != "config")
    config_py = "\n".join(p.read_text() for p in (PACKAGE / "config").glob("*.py"))
    unread = [key for key, name in config_fields()
              if not re.search(rf"\.{name}\b|[\"']{name}[\"']", sources)
              and len(re.findall(rf"\.{name}\b", config_py)) == 0]
    assert not unread, f"config keys nothing reads (remove them or use them): {unread}"


LAYERS = ["io", "device", "config", "stages", "prompts", "planner", "render", "toyworld", "geometry", "export",
          "priors", "guidance", "training", "evaluate", "report", "study", "compare", "perf", "cli"]
# Imports that go up the layers on purpose, each with its reason. Only type hints under `if TYPE_CHECKING:`
# (never executed) may stand here: the test checks that each entry is one.
ALLOWED_UPWARD = {
    # The renderer draws the NeRF's field.
    ("dreamflow/render/volume.py", "dreamflow.geometry.nerf"),
}


def _type_checking_nodes(tree):
    """Every node inside an `if TYPE_CHECKING:` block."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def imported_modules(path, with_type_checking=True):
    """Every module `path` imports, at module level or inside functions (as written, `from X import Y` as X)."""
    tree = ast.parse(path.read_text())
    hints = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if not with_type_checking and id(node) in hints:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_no_module_imports_up_the_layers():
    """Lower layers never import higher ones, not even lazily inside a function, except type hints under
    TYPE_CHECKING; the library never imports the research wing (lab/, package dreamflow_lab)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    violations, used = [], set()
    for path in PACKAGE.rglob("*.py"):
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        where = str(path.relative_to(ROOT))
        executed = set(imported_modules(path, with_type_checking=False))
        for module in imported_modules(path):
            if module.split(".")[0] == "dreamflow_lab":
                violations.append(f"{where} imports the lab's {module}")
            if not module.startswith("dreamflow."):
                continue
            there = module.split(".")[1]
            if there in rank and here in rank and rank[there] > rank[here]:
                if (where, module) in ALLOWED_UPWARD and module not in executed:
                    used.add((where, module))
                else:
                    violations.append(f"{where} imports {module}")
    assert not violations, violations
    assert used == ALLOWED_UPWARD, f"allow-list entries no longer needed: {ALLOWED_UPWARD - used}"


def test_every_package_is_a_layer():
    packages = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*")
                if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert packages - {"__init__"} == set(LAYERS)


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """module -> the library modules it imports when it runs (functions included, TYPE_CHECKING excluded).
    `from package import name` counts as importing the submodule `package.name` when there is one."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text())
        hints = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in hints:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                targets |= submodules or ({node.module} & modules.keys())
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names} & modules.keys()
        graph[name] = targets - {name}
    return graph


def import_circles(graph):
    """The strongly connected components of more than one module (Tarjan): each is an import circle."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circle_at_run_time():
    """No two library modules import each other, directly or through others, even lazily inside a function."""
    graph = import_graph()
    assert len(graph) > 70 and graph["dreamflow.report.summary"] >= {"dreamflow.report.page", "dreamflow.report.tables"}
    assert import_circles(graph) == []
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # it finds one


def test_planning_the_workflow_imports_neither_torch_nor_the_models():
    """What the workflow's common.smk imports when Snakemake plans (the config package, the stage
    description, the planner, prompts) loads no torch, trimesh or geometry code, in a fresh interpreter."""
    import subprocess
    import sys

    source = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    imports = [line for line in source.splitlines()
               if line.startswith(("import ", "from ")) and "snakemake" not in line]
    assert any("dreamflow.planner" in line for line in imports), imports
    probe = "\n".join([*imports, "import sys",
                       "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trimesh', 'diffusers')"
                       " or m.startswith(('dreamflow.geometry', 'dreamflow.training'))))"])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_command_line_answers_without_torch():
    """`dreamflow --help`, and building every subcommand's parser, load no torch: the workflow's report,
    study and comparison jobs start in a second, not in the seconds torch takes to import."""
    import subprocess
    import sys

    probe = ("import sys\nfrom dreamflow.cli import build_parser\nparser = build_parser()\n"
             "for name, sub in parser._subparsers._group_actions[0].choices.items(): sub.format_help()\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trimesh', 'diffusers')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_unknown_method_is_a_config_error_listing_the_registry():
    with pytest.raises(ConfigError, match=r"guidance.method.*'nope'.*\['apfo', 'sds', 'vsd'"):
        load_config("config/pipeline/toy.yaml", {"guidance.method": "nope"})


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
    config = load_config("config/pipeline/toy.yaml", {"guidance.method": "pull-to-grey", "stage1.iterations": 2,
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
