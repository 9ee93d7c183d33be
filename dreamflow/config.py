"""Typed run configuration (threestudio/nerfstudio style dataclasses) loaded strictly from YAML.

A misspelt key or a value of the wrong type is an error naming the key, never silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass
class CameraConfig:
    """Ranges of the random-view distribution (threestudio `random-camera` names)."""

    elevation_range: tuple[float, float] = (-10.0, 45.0)  # degrees
    azimuth_range: tuple[float, float] = (-180.0, 180.0)  # degrees
    distance_range: tuple[float, float] = (2.0, 2.5)
    fovy_range: tuple[float, float] = (40.0, 50.0)  # degrees
    eval_elevation: float = 15.0
    eval_distance: float = 2.25
    eval_fovy: float = 45.0


@dataclass
class PriorConfig:
    """A diffusion prior: hub id or local diffusers folder, loaded with `from_pretrained`."""

    pretrained: str = "models/toy-sd21"
    revision: str | None = None
    dtype: str = "auto"  # auto: fp16 on CUDA, fp32 on CPU; or float32 | float16 | bfloat16
    architecture_only: bool = False  # build full-size networks with random weights (benchmarks)
    negative_prompt: str = ""
    view_dependent_prompting: bool = True
    embedding_cache_dir: str | None = None  # default: ~/.cache/dreamflow/text_embeddings
    # Renders are resized (bilinear, differentiable) to this size before VAE encoding; None: as rendered.
    # SD 2.1-base was trained at 512 px: threestudio resizes 64-256 px renders to 512 (64x64 latents).
    encode_resolution: int | None = None
    # Recompute the VAE encoder's activations in backward instead of storing them (diffusers' gradient
    # checkpointing): bounds the memory of encoding 1024-px renders with gradients (stage 3).
    vae_gradient_checkpointing: bool = False


@dataclass
class LoRAConfig:
    """The source model eps_src (APFO) / eps_lora (VSD): peft LoRA on the UNet attention projections."""

    rank: int = 4
    alpha: float | None = None  # default: equal to rank
    learning_rate: float = 1e-3
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    camera_conditioning: bool = True  # ProlificDreamer: c2w matrix through a class embedding
    text_dropout: float = 0.1
    steps_per_iteration: int = 1


@dataclass
class GuidanceConfig:
    """Which update drives the 3D model, and its hyper-parameters (see dreamflow/guidance)."""

    method: str = "apfo"  # a registered method: dreamflow.guidance.available() (apfo | sds | vsd built in)
    guidance_scale: float | None = None  # default: the method's own (apfo 7.5, sds 100, vsd 7.5)
    t_max: float = 0.98
    t_min: float = 0.02
    # APFO
    schedule: str = "linear"  # linear | sigma | ddim : how t_1 > ... > t_N is spaced
    num_timesteps: int = 50  # N
    steps_per_timestep: int | None = None  # K; default: iterations / N
    step_scale: float = 1.0  # lambda
    # dsigma: lambda (sigma(t_i) - sigma(t_{i+1})), the probability-flow step (docs/design.md §2); constant: its
    # mean over the schedule, (sigma(t_max) - sigma(t_min)) / N, the same path length without the decay
    apfo_weighting: str = "dsigma"
    # Noise level of the source model's fine-tuning step. current: the schedule's t_i with fresh noise,
    # as the paper's method figure draws it; uniform: t ~ U(0, 1), as VSD trains its LoRA.
    source_timesteps: str = "current"
    # SDS / VSD
    weighting: str = "one_minus_alphabar"  # one_minus_alphabar | uniform | sds_dreamfusion
    # ProlificDreamer's two-stage random-t schedule (threestudio max_step_percent [5000, 0.98, 0.5, 5001]
    # of 25k steps): after `anneal_fraction` of a stage's iterations, t_max drops to `anneal_t_max`
    # (never raised). null: the method's default (VSD: on; SDS: off).
    anneal_t: bool | None = None
    anneal_fraction: float = 0.2
    anneal_t_max: float = 0.5
    grad_clip: float | None = None
    lora: LoRAConfig = field(default_factory=LoRAConfig)


@dataclass
class HashGridConfig:
    """Instant-NGP multiresolution hash encoding (threestudio ProlificDreamer defaults)."""

    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 2048
    backend: str = "auto"  # auto | tcnn | torch
    # torch.compile the pure-PyTorch path's corner indices and weights (elementwise work it fuses);
    # a compile failure warns and runs eagerly. Off by default: not measured to help on a CPU.
    compile: bool = False


@dataclass
class NeRFConfig:
    encoding: HashGridConfig = field(default_factory=HashGridConfig)
    hidden_dim: int = 64
    n_hidden_layers: int = 1
    radius: float = 1.0
    density_activation: str = "shifted_softplus"
    density_blob_scale: float = 10.0
    density_blob_std: float = 0.5
    background: str = "solid"  # solid | mlp
    background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class VolumeRenderConfig:
    samples_per_ray: int = 64
    occupancy_grid_resolution: int = 32
    occupancy_threshold: float = 0.01
    occupancy_update_every: int = 16


@dataclass
class ShadingConfig:
    """DreamFusion's per-step shading choice: albedo, diffuse with random light, or textureless."""

    albedo_ratio: float = 0.5
    textureless_ratio: float = 0.2
    ambient: float = 0.35


@dataclass
class StageConfig:
    """What every optimisation stage has; each model kind adds its own keys (below)."""

    resolution: int = 32
    supersample: int = 1  # rays per pixel side, box-filtered to `resolution` (the toy priors saw 2)
    iterations: int = 300
    batch_size: int = 1
    optimizer: str = "adam"  # adam | sgd (plain SGD: the step is the guidance's own scale times the rate)
    learning_rate: float = 1e-2  # encodings (hash grids)
    mlp_learning_rate: float = 1e-3
    t_max: float | None = None  # overrides guidance.t_max for this stage
    t_min: float | None = None
    guidance_scale: float | None = None
    checkpoint_every: int = 50
    log_every: int = 10
    shading_start_step: int = 0  # albedo-only renders before this step (DreamFusion: first 10%)
    albedo_ratio: float | None = None  # overrides shading.albedo_ratio for this stage
    textureless_ratio: float | None = None  # overrides shading.textureless_ratio for this stage
    turntable_views: int = 24
    preview_views: int = 4


@dataclass
class NeRFStageConfig(StageConfig):
    """A stage optimising the hash-grid NeRF (stage 1)."""

    opacity_weight: float = 0.0  # sparsity regulariser on accumulated opacity


@dataclass
class MeshStageConfig(StageConfig):
    """A stage optimising a textured mesh (stages 2 and 3): vertex offsets and their regularisers."""

    geometry_learning_rate: float = 1e-3  # mesh vertex offsets
    laplacian_weight: float = 1e3
    normal_consistency_weight: float = 1e3


@dataclass
class ExtractConfig:
    grid_resolution: int = 128
    threshold: float = 2.0  # density iso-level (threestudio: 25 with its exp activation; measured best here, see toy.yaml)
    keep_largest_component: bool = True
    target_faces: int = 3000
    chunk: int = 65536


@dataclass
class ExportConfig:
    texture_size: int = 512
    views: int = 8


@dataclass
class RunConfig:
    """Everything a stage command needs; one YAML file (the `pipeline` block of the workflow config)."""

    seed: int = 0
    device: str = "auto"
    deterministic: bool = True
    camera: CameraConfig = field(default_factory=CameraConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    refiner_prior: PriorConfig = field(default_factory=lambda: PriorConfig(pretrained="models/toy-sdxl-refiner"))
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    nerf: NeRFConfig = field(default_factory=NeRFConfig)
    volume: VolumeRenderConfig = field(default_factory=VolumeRenderConfig)
    shading: ShadingConfig = field(default_factory=ShadingConfig)
    rasterizer: str = "auto"  # auto | nvdiffrast | torch
    stage1: NeRFStageConfig = field(default_factory=NeRFStageConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    stage2: MeshStageConfig = field(default_factory=lambda: MeshStageConfig(resolution=64, t_max=0.5, t_min=0.1))
    stage3: MeshStageConfig = field(default_factory=lambda: MeshStageConfig(resolution=128, t_max=0.3, t_min=0.02))
    export: ExportConfig = field(default_factory=ExportConfig)

    def shading_for(self, stage: StageConfig) -> ShadingConfig:
        """The shading mix with the stage's own ratios applied."""
        updates = {key: getattr(stage, key) for key in ("albedo_ratio", "textureless_ratio")
                   if getattr(stage, key) is not None}
        return dataclasses.replace(self.shading, **updates)

    def guidance_for(self, stage: StageConfig) -> GuidanceConfig:
        """The guidance config with the stage's own timestep range and CFG scale applied."""
        updates = {key: getattr(stage, key) for key in ("t_max", "t_min", "guidance_scale")
                   if getattr(stage, key) is not None}
        return dataclasses.replace(self.guidance, **updates)

    def stage_blocks(self) -> dict[str, StageConfig]:
        """The optimisation stages' config blocks by name, in order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), StageConfig)}


def _coerce(value: Any, annotation: Any, path: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {value!r}")
        return from_dict(annotation, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
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


def from_dict(cls: type, data: dict, path: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in '{path}'" if path else ""
        raise ConfigError(f"unknown config key(s) {unknown}{where}; valid keys are {sorted(names)}")
    kwargs = {key: _coerce(value, hints[key], f"{path}.{key}" if path else key) for key, value in data.items()}
    return cls(**kwargs)


CHOICES = {
    "guidance.schedule": ("linear", "sigma", "ddim"),
    "guidance.weighting": ("one_minus_alphabar", "uniform", "sds_dreamfusion"),
    "guidance.apfo_weighting": ("dsigma", "constant"),
    "guidance.source_timesteps": ("current", "uniform"),
    "{stage}.optimizer": ("adam", "sgd"),  # for every stage block
    "nerf.encoding.backend": ("auto", "tcnn", "torch"),
    "nerf.background": ("solid", "mlp"),
    "rasterizer": ("auto", "nvdiffrast", "torch"),
}


def validate(config: RunConfig) -> RunConfig:
    """Check enumerated values and ranges that types alone cannot express."""
    from dreamflow.guidance.registry import available  # the registry owns the list of methods

    if config.guidance.method not in available():
        raise ConfigError(f"config key 'guidance.method' is {config.guidance.method!r}; "
                          f"choose one of {list(available())}")
    stages = config.stage_blocks()
    keys = [(key.format(stage=stage), allowed) for key, allowed in CHOICES.items()
            for stage in (stages if "{stage}" in key else [None])]
    for key, allowed in keys:
        value: Any = config
        for part in key.split("."):
            value = getattr(value, part)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; choose one of {list(allowed)}")
    for stage, stage_config in stages.items():
        guidance = config.guidance_for(stage_config)
        if not 0.0 <= guidance.t_min < guidance.t_max <= 1.0:  # t_min 0: the scheduler's smallest timestep
            raise ConfigError(f"'{stage}' timestep range must satisfy 0 <= t_min < t_max <= 1, "
                              f"got t_min={guidance.t_min}, t_max={guidance.t_max}")
        if stage_config.iterations < 1 or stage_config.resolution < 8:
            raise ConfigError(f"'{stage}.iterations' must be >= 1 and '{stage}.resolution' >= 8, got "
                              f"{stage_config.iterations} and {stage_config.resolution}")
        if not isinstance(stage_config.supersample, int) or stage_config.supersample < 1:
            raise ConfigError(f"'{stage}.supersample' must be a whole number >= 1 (rays per pixel side), got "
                              f"{stage_config.supersample!r}")
    return config


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


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Load a run config from YAML (the file itself or its `pipeline:` block), with overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if "pipeline" in data:
            data = data["pipeline"] or {}
    return load_config_data(data, overrides)


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)
