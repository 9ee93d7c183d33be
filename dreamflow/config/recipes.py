"""The values each guidance method runs with in each stage, and where each comes from
(`dreamflow recipe --config FILE`): the default's citation (dreamflow/config/methods.py), the
published per-stage value's, or the config file (or `--set`) that changed it."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from dreamflow.config.blocks import RunConfig
from dreamflow.config.loading import load_config_data, read_config_data
from dreamflow.config.methods import (
    ASSUMED,
    METHOD_CONFIGS,
    STAGE_DEFAULTS,
    APFOLoRAConfig,
    MethodConfig,
    source_of,
)

# What `dreamflow recipe` lists per method (dotted keys of its block), after cfg and the t range.
COMMON = ("guidance_scale", "t_min", "t_max")
SHOWN = {
    "apfo": ("schedule", "num_timesteps", "steps_per_timestep", "step_scale", "apfo_weighting", "source_timesteps"),
    "sds": ("anneal", "anneal_fraction", "anneal_t_max", "weighting"),
    "vsd": ("anneal", "anneal_fraction", "anneal_t_max", "weighting"),
}
LORA_SHOWN = ("model", "pretrained", "rank", "alpha", "init", "learning_rate", "betas", "eps", "weight_decay",
              "warmup_steps", "steps_per_iteration", "camera_conditioning", "camera_init", "camera_dropout",
              "view_dependent_prompt")


def _has(data: dict, dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _field_source(cls: type, dotted: str, method: str) -> str:
    """The citation of a default: the field's metadata, through nested blocks."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        cls = typing.get_type_hints(cls)[part]
    source = source_of(cls, leaf)
    if method == "apfo" and cls is APFOLoRAConfig and leaf not in APFOLoRAConfig.__annotations__:
        return f"{ASSUMED} as VSD's source model: {source}"
    return source


class Provenance:
    """Tells where a value of a loaded run config came from."""

    def __init__(self, data: dict, overrides: dict, label: str):
        self.data, self.overrides, self.label = data, overrides, label

    def set_by_user(self, dotted: str) -> str | None:
        """'config FILE: key' or '--set key' when the user's config or overrides name `dotted`."""
        if dotted in self.overrides:
            return f"--set {dotted}"
        if _has(self.data, dotted):
            return f"{self.label}: {dotted}"
        return None

    def source(self, method: str, stage: str, dotted: str, value: Any, default: Any) -> str:
        stage_key, block_key = f"{stage}.guidance.{method}.{dotted}", f"guidance.{method}.{dotted}"
        published = STAGE_DEFAULTS.get(stage, {}).get(method, {}).get(dotted)
        cited = published[1] if published else _field_source(METHOD_CONFIGS[method], dotted, method)
        # A published per-stage value is the stage block's default: the method block does not reach it.
        user = self.set_by_user(stage_key) or (None if published else self.set_by_user(block_key))
        if user is None:
            return cited
        return f"{user} (as the default: {cited})" if value == default else user


def _get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def recipe_rows(config: RunConfig, provenance: Provenance, methods: list[str] | None = None,
                stages: list[str] | None = None, prior_blocks: dict[str, str] | None = None) -> list[dict]:
    """One row per (method, stage, key): value and source; `cfg_reference` is the scale as the
    reference writes CFG, `iterations` the stage's. `prior_blocks`: each stage's prior block (the
    stage table's; default `prior`), to name the model a source-model copy comes from."""
    defaults = RunConfig()
    rows = []
    for stage, stage_config in config.stage_blocks().items():
        if stages and stage not in stages:
            continue
        resolved = config.guidance_for(stage_config)
        default = defaults.guidance_for(getattr(defaults, stage))
        for method in methods or list(METHOD_CONFIGS):
            recipe: MethodConfig = resolved.recipe(method)
            keys = [*COMMON, *SHOWN[method], *(f"lora.{key}" for key in LORA_SHOWN if hasattr(recipe, "lora"))]
            for key in keys:
                value = _get(recipe, key)
                prior = _get(config, (prior_blocks or {}).get(stage, "prior")).pretrained
                if key == "lora.pretrained" and recipe.lora.model == "single_model":
                    value = f"(unused: single_model, the LoRA on {prior})"
                elif key == "lora.pretrained" and value == "prior":
                    value = f"prior (a copy of {prior})"
                rows.append({"method": method, "stage": stage, "key": key, "value": value,
                             "source": provenance.source(method, stage, key, _get(recipe, key),
                                                         _get(default.recipe(method), key))})
                if key == "guidance_scale":
                    rows.append({"method": method, "stage": stage, "key": "cfg_reference",
                                 "value": value - type(recipe).reference_cfg_offset,
                                 "source": type(recipe).reference_cfg_form})
            iterations = stage_config.iterations
            rows.append({"method": method, "stage": stage, "key": "iterations", "value": iterations,
                         "source": provenance.set_by_user(f"{stage}.iterations") or "default (dreamflow/config/blocks.py)"})
            if method == "apfo" and recipe.steps_per_timestep is None:
                rows.append({"method": method, "stage": stage, "key": "steps_per_timestep (spread)",
                             "value": round(iterations / recipe.num_timesteps, 3),
                             "source": "iterations / num_timesteps, spread over the blocks (floor or ceil each)"})
    return rows


def load_recipes(path: str | Path | None, overrides: dict | None = None, methods: list[str] | None = None,
                 stages: list[str] | None = None, prior_blocks: dict[str, str] | None = None) -> list[dict]:
    """The recipe rows of the run config at `path` (with `--set` overrides)."""
    data = read_config_data(path)
    config = load_config_data(data, overrides)
    label = f"config {path}" if path else "config (none)"
    return recipe_rows(config, Provenance(data, overrides or {}, label), methods, stages, prior_blocks)


def as_json(rows: list[dict]) -> dict:
    """{method: {stage: {key: {value, source}}}}."""
    out: dict = {}
    for row in rows:
        value = list(row["value"]) if isinstance(row["value"], tuple) else row["value"]
        out.setdefault(row["method"], {}).setdefault(row["stage"], {})[row["key"]] = {"value": value,
                                                                                       "source": row["source"]}
    return out


def as_markdown(rows: list[dict]) -> str:
    """Per method: a table of key x stage values, and each value's source below it."""
    lines: list[str] = []
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = [row for row in rows if row["method"] == method]
        stages = list(dict.fromkeys(row["stage"] for row in mine))
        keys = list(dict.fromkeys(row["key"] for row in mine))
        cell = {(row["key"], row["stage"]): row for row in mine}
        lines += [f"## {method}", "", "| key | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
        lines += [f"| {key} | " + " | ".join(_show(cell[key, stage]["value"]) for stage in stages) + " |" for key in keys]
        lines += ["", "Sources:", ""]
        for key in keys:
            sources = {stage: cell[key, stage]["source"] for stage in stages}
            if len(set(sources.values())) == 1:
                lines.append(f"* {key}: {sources[stages[0]]}")
            else:
                lines.append(f"* {key}: " + "; ".join(f"{stage}: {source}" for stage, source in sources.items()))
        lines.append("")
    return "\n".join(lines)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
