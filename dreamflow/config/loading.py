"""Strict loading of the run config from YAML: a misspelt key, a key in the wrong block or a value of
the wrong type is an error naming the key, never silently ignored."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from dreamflow.config.blocks import RunConfig, StageConfig
from dreamflow.config.methods import (
    METHOD_CONFIGS,
    APFOConfig,
    GuidanceConfig,
    LoRAConfig,
    StageGuidanceConfig,
    method_names,
)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


_PER_METHOD = "each method has its own: write guidance.<method>.{key} (apfo, sds, vsd) for every stage, or " \
              "stageN.guidance.<method>.{key} for one stage (`dreamflow recipe --config FILE` shows them)"
# Keys that left a block, and where they live now (an error saying so).
MOVED: dict[type, dict[str, str]] = {
    GuidanceConfig: {
        **{key: _PER_METHOD.format(key=key) for key in ("guidance_scale", "t_max", "t_min", "grad_clip")},
        "weighting": "guidance.sds.weighting and guidance.vsd.weighting (each method's own)",
        "anneal_t": "guidance.sds.anneal and guidance.vsd.anneal (each method's own)",
        "anneal_fraction": "guidance.sds.anneal_fraction and guidance.vsd.anneal_fraction",
        "anneal_t_max": "guidance.sds.anneal_t_max and guidance.vsd.anneal_t_max",
        "lora": "guidance.apfo.lora (APFO's source model) and guidance.vsd.lora (VSD's)",
        **{key: f"APFO's own: guidance.apfo.{key}" for key in ("schedule", "num_timesteps", "steps_per_timestep",
                                                              "step_scale", "apfo_weighting", "source_timesteps")},
    },
    StageConfig: {key: f"a stage's {key} is per method: stageN.guidance.<method>.{key} (apfo, sds, vsd)"
                  for key in ("t_max", "t_min", "guidance_scale")},
    LoRAConfig: {"text_dropout": "the references drop the camera, not the text, in the LoRA's training "
                                 "steps: lora.camera_dropout"},
}


def _table(table: dict[type, dict], cls: type) -> dict:
    cls = getattr(cls, "overridden", cls)  # a stage's overrides block reads as the block it overrides
    return next((entries for owner, entries in table.items() if issubclass(cls, owner)), {})


def _coerce(value: Any, annotation: Any, path: str, default: Any = None) -> Any:
    """`value` as `annotation`; a mapping for a block merges onto `default` when that is such a block."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {value!r}")
        return from_dict(annotation, value, path, default if isinstance(default, annotation) else None)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path, default)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"config key '{path}' has invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"config key '{path}' must have {len(args)} items, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if annotation is float:
        if isinstance(value, str):  # PyYAML reads 1e4 / 1.0e4 (no sign) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}' must be a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}' must be true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}' must be a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict, path: str = "", base: Any = None) -> Any:
    """Build dataclass `cls` from a mapping onto `base` (default: `cls()`), rejecting unknown keys and
    wrong types. A block given in `data` changes only the keys it names."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    data = dict(data)
    moved = {key: where for key, where in _table(MOVED, cls).items() if key in data}
    if moved:
        key, where = next(iter(moved.items()))
        raise ConfigError(f"config key '{_join(path, key)}' is no longer read here: {where}")
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in '{path}'" if path else ""
        raise ConfigError(f"unknown config key(s) {unknown}{where}; valid keys are {sorted(names)}")
    base = cls() if base is None else base
    kwargs = {key: _coerce(value, hints[key], _join(path, key), getattr(base, key)) for key, value in data.items()}
    return dataclasses.replace(base, **kwargs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


LORA_BLOCKS = ("apfo", "vsd")
WEIGHTINGS = ("one_minus_alphabar", "uniform")
# Enumerated values. "{stage}" stands for every stage block; method keys are checked in each stage's
# resolved recipe (a stage may change them).
CHOICES = {
    "{stage}.optimizer": ("adam", "sgd"),
    "nerf.encoding.backend": ("auto", "tcnn", "torch"),
    "nerf.background": ("solid", "mlp"),
    "rasterizer": ("auto", "nvdiffrast", "torch"),
    "prior.vae_encode": ("sample", "mean"),
    "refiner_prior.vae_encode": ("sample", "mean"),
}
METHOD_CHOICES = {
    "apfo.schedule": ("linear", "sigma", "ddim"),
    "apfo.apfo_weighting": ("dsigma", "constant"),
    "apfo.source_timesteps": ("current", "uniform"),
    "sds.weighting": WEIGHTINGS,
    "vsd.weighting": WEIGHTINGS,
    **{f"{block}.lora.{key}": values for block in LORA_BLOCKS for key, values in
       {"model": ("two_model", "single_model"), "init": ("gaussian", "kaiming"),
        "camera_init": ("random", "zero")}.items()},
}
# DreamFusion's w(t) is sigma_t^2 = 1 - alphabar_t (§3.2, and stable-dreamfusion's w = 1 - alphas[t]);
# the removed `sds_dreamfusion` computed sigma_t * alpha_t under that name.
REMOVED_VALUES = {"sds_dreamfusion": "DreamFusion's w(t) = sigma_t^2 is `one_minus_alphabar`"}


def _get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _check_choice(value: Any, key: str, allowed: tuple, where: str = "") -> None:
    if value not in allowed:
        hint = f" ({REMOVED_VALUES[value]})" if value in REMOVED_VALUES else ""
        raise ConfigError(f"config key '{key}' is {value!r}{where}; choose one of {list(allowed)}{hint}")


def validate(config: RunConfig) -> RunConfig:
    """Check enumerated values and ranges that types alone cannot express, in every stage's recipes."""
    if config.guidance.method not in method_names():
        raise ConfigError(f"config key 'guidance.method' is {config.guidance.method!r}; "
                          f"choose one of {list(method_names())}")
    stages = config.stage_blocks()
    for key, allowed in CHOICES.items():
        for name in (stages if "{stage}" in key else [None]):
            dotted = key.format(stage=name)
            _check_choice(_get(config, dotted), dotted, allowed)
    for stage, stage_config in stages.items():
        if stage_config.iterations < 1 or stage_config.resolution < 8:
            raise ConfigError(f"'{stage}.iterations' must be >= 1 and '{stage}.resolution' >= 8, got "
                              f"{stage_config.iterations} and {stage_config.resolution}")
        if not isinstance(stage_config.supersample, int) or stage_config.supersample < 1:
            raise ConfigError(f"'{stage}.supersample' must be a whole number >= 1 (rays per pixel side), got "
                              f"{stage_config.supersample!r}")
        _validate_recipes(config.guidance_for(stage_config), stage, stage_config)
    return config


def _validate_recipes(guidance: GuidanceConfig, stage: str, stage_config: StageConfig) -> None:
    where = f" in {stage}'s recipe"
    for key, allowed in METHOD_CHOICES.items():
        _check_choice(_get(guidance, key), f"guidance.{key}", allowed, where)
    for method in METHOD_CONFIGS:
        recipe = guidance.recipe(method)
        if not 0.0 <= recipe.t_min < recipe.t_max <= 1.0:  # t_min 0: the scheduler's smallest timestep
            raise ConfigError(f"'{stage}' timestep range of '{method}' must satisfy 0 <= t_min < t_max <= 1, "
                              f"got t_min={recipe.t_min}, t_max={recipe.t_max}")
        lora = getattr(recipe, "lora", None)
        if lora is not None and not (0.0 <= lora.camera_dropout <= 1.0 and lora.warmup_steps >= 0
                                     and lora.steps_per_iteration >= 1 and lora.pretrained):
            raise ConfigError(f"guidance.{method}.lora{where}: camera_dropout must be in [0, 1], warmup_steps >= 0, "
                              f"steps_per_iteration >= 1 and pretrained non-empty, got {lora}")
    for method in ("sds", "vsd"):
        recipe = guidance.recipe(method)
        if not 0.0 <= recipe.anneal_fraction <= 1.0:
            raise ConfigError(f"'guidance.{method}.anneal_fraction'{where} must be in [0, 1], got {recipe.anneal_fraction}")
    _validate_apfo_steps(guidance.apfo, stage, stage_config.iterations)


def _validate_apfo_steps(apfo: APFOConfig, stage: str, iterations: int) -> None:
    """K (steps_per_timestep), when set, must spend exactly the stage's iterations on the N blocks."""
    if apfo.num_timesteps < 1:
        raise ConfigError(f"'guidance.apfo.num_timesteps' must be >= 1, got {apfo.num_timesteps}")
    k = apfo.steps_per_timestep
    # The ddim spacing's block count depends on the prior's scheduler: checked when the stage starts.
    if k is not None and apfo.schedule != "ddim" and k * apfo.num_timesteps != iterations:
        raise ConfigError(
            f"'guidance.apfo.steps_per_timestep' is {k} with num_timesteps {apfo.num_timesteps}: that is "
            f"{k * apfo.num_timesteps} iterations, but '{stage}.iterations' is {iterations}. Leave "
            f"steps_per_timestep unset (null) to spread the iterations over the blocks, or set "
            f"{stage}.guidance.apfo.steps_per_timestep to iterations / num_timesteps")


def load_config_data(data: dict, overrides: dict | None = None) -> RunConfig:
    """Build and validate a run config from a mapping, applying dotted-key overrides to a copy."""
    data = copy.deepcopy(data or {})
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return validate(from_dict(RunConfig, data))


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs of the command line (`--set stage1.iterations=100`) as dotted-key overrides,
    each value read as YAML."""
    result = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        result[key] = yaml.safe_load(value)
    return result


def read_config_data(path: str | Path | None) -> dict:
    """The run-config mapping of a YAML file: the file itself or its `pipeline:` block."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file '{path}' does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if "pipeline" in data:
        data = data["pipeline"] or {}
    return data


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Load a run config from YAML (the file itself or its `pipeline:` block), with overrides."""
    return load_config_data(read_config_data(path), overrides)


def to_dict(config: Any) -> dict:
    """The config as plain data; a stage's per-method overrides list only the values they set."""
    return _plain(config)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        items = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(type(value), "overridden") or isinstance(value, StageGuidanceConfig):
            items = {key: item for key, item in items.items() if item not in (None, {})}
        return items
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value] if isinstance(value, list) else tuple(_plain(item) for item in value)
    return copy.deepcopy(value)


def for_method(data: dict) -> dict:
    """Plain run-config data with only the selected method's recipe (in `guidance` and in each stage's
    `guidance`): what a step of that method reads, so another method's recipe never re-runs it."""
    data = copy.deepcopy(data)
    method = data["guidance"]["method"]
    for block in [data["guidance"], *(value["guidance"] for value in data.values()
                                      if isinstance(value, dict) and isinstance(value.get("guidance"), dict))]:
        for other in METHOD_CONFIGS:
            if other != method:
                block.pop(other, None)
    return data
