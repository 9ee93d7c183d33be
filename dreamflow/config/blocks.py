"""The run config's blocks (threestudio/nerfstudio style dataclasses); the guidance recipes are in
`methods.py`, the strict loader in `loading.py`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dreamflow.config.methods import GuidanceConfig, StageGuidanceConfig, apply_overrides, stage_guidance_defaults


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
    architecture_only: bool = False  # build full-size networks with random weights (`dreamflow perf`, rehearsals)
    negative_prompt: str = ""
    view_dependent_prompting: bool = True
    embedding_cache_dir: str | None = None  # default: ~/.cache/dreamflow/text_embeddings
    # Renders are resized (bilinear, differentiable) to this size before VAE encoding; None: as rendered.
    # SD 2.1-base was trained at 512 px: threestudio resizes 64-256 px renders to 512 (64x64 latents).
    encode_resolution: int | None = None
    # Recompute the VAE encoder's activations in backward instead of storing them (diffusers' gradient
    # checkpointing): bounds the memory of encoding 1024-px renders with gradients (stage 3).
    vae_gradient_checkpointing: bool = False
    # sample: a draw from the VAE posterior with the run's seeded generator, as every reference encodes
    # (threestudio stable_diffusion_*guidance.py encode_images and stable-dreamfusion guidance/sd_utils.py
    # encode_imgs: posterior.sample()); mean: the posterior mean.
    vae_encode: str = "sample"


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
    # This stage's changes to each method's recipe (`guidance.<method>`); it changes no method it does
    # not name. Its defaults are the published per-stage values (dreamflow/config/methods.py STAGE_DEFAULTS).
    guidance: StageGuidanceConfig = field(default_factory=StageGuidanceConfig)
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
    """Everything a stage command needs; one YAML file (the `pipeline` block of the workflow config).

    A block written in a config file changes only the keys it names: the rest keep these defaults
    (a stage block keeps e.g. its published per-stage guidance values).
    """

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
    stage1: NeRFStageConfig = field(default_factory=lambda: NeRFStageConfig(guidance=stage_guidance_defaults("stage1")))
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    stage2: MeshStageConfig = field(default_factory=lambda: MeshStageConfig(
        resolution=64, guidance=stage_guidance_defaults("stage2")))
    stage3: MeshStageConfig = field(default_factory=lambda: MeshStageConfig(
        resolution=128, guidance=stage_guidance_defaults("stage3")))
    export: ExportConfig = field(default_factory=ExportConfig)

    def shading_for(self, stage: StageConfig) -> ShadingConfig:
        """The shading mix with the stage's own ratios applied."""
        updates = {key: getattr(stage, key) for key in ("albedo_ratio", "textureless_ratio")
                   if getattr(stage, key) is not None}
        return dataclasses.replace(self.shading, **updates)

    def guidance_for(self, stage: StageConfig) -> GuidanceConfig:
        """The guidance block with the stage's per-method changes applied to each method's recipe."""
        updates = {f.name: apply_overrides(getattr(self.guidance, f.name), getattr(stage.guidance, f.name))
                   for f in dataclasses.fields(stage.guidance)}
        return dataclasses.replace(self.guidance, **updates)

    def stage_blocks(self) -> dict[str, StageConfig]:
        """The optimisation stages' config blocks by name, in order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), StageConfig)}
