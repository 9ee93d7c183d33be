"""The stage table: every optimisation stage is one `StageSpec`, read by the trainer, the CLI,
the workflow helpers and the benchmarks. Nothing else branches on a stage's name.

    stage1  NeRF (hash grid) with the base prior          -> ckpt.pt, preview.png, turntable.gif
    stage2  extracted mesh with the base prior             -> ckpt.pt, mesh.glb, previews
    stage3  mesh refined with the refiner prior (final)    -> ckpt.pt, mesh.glb/.obj, views/, previews
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from dreamflow.config import GuidanceConfig, PriorConfig, RunConfig, ShadingConfig, StageConfig
from dreamflow.export.assets import export_mesh, export_previews
from dreamflow.geometry.base import StageModel
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.geometry.nerf import NeRFModel, load_nerf
from dreamflow.io import load_checkpoint
from dreamflow.training.logger import RunLogger
from dreamflow.training.trainer import StageResult, build_trainer, fault_point

# Config blocks every stage reads (its own block, prior and inputs come on top).
SHARED_BLOCKS = ("seed", "device", "deterministic", "camera", "guidance", "nerf", "shading")


@dataclass(frozen=True)
class StageInputs:
    """Files a stage starts from: the previous stage's checkpoint and, for stage 2, the extracted mesh."""

    init: Path | None = None
    mesh: Path | None = None


@dataclass(frozen=True)
class StageSpec:
    """One optimisation stage: its config block, prior, inputs, model factory and exporter."""

    name: str  # also its config block (RunConfig.<name>) and its output folder
    help: str
    prior_block: str  # RunConfig field holding the prior: "prior" or "refiner_prior"
    inputs: tuple[str, ...]  # StageInputs fields it needs
    previous: str | None  # the stage whose checkpoint is `init`
    build_model: Callable[[RunConfig, StageInputs], StageModel]
    load_trained: Callable[[dict, RunConfig], StageModel]  # the model of a finished checkpoint, eval mode
    export: Callable[[StageModel, RunConfig, StageConfig, Path], dict[str, Path]]
    config_blocks: tuple[str, ...]  # run-config blocks its result depends on (besides SHARED_BLOCKS)

    def stage_config(self, config: RunConfig) -> StageConfig:
        return getattr(config, self.name)

    def prior_config(self, config: RunConfig) -> PriorConfig:
        return getattr(config, self.prior_block)

    def guidance_config(self, config: RunConfig) -> GuidanceConfig:
        """The guidance block with this stage's per-method changes applied to each method's recipe."""
        return config.guidance_for(self.stage_config(config))

    def shading_config(self, config: RunConfig) -> ShadingConfig:
        return config.shading_for(self.stage_config(config))

    def check_inputs(self, inputs: StageInputs) -> None:
        missing = [name for name in self.inputs if getattr(inputs, name) is None]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join('--' + m for m in missing)} "
                             f"(init: the {self.previous} checkpoint; mesh: the extracted mesh/coarse.obj)")


def _nerf(config: RunConfig, inputs: StageInputs) -> StageModel:
    return NeRFModel(config)


def _mesh_from_stage1(config: RunConfig, inputs: StageInputs) -> StageModel:
    return TexturedMesh.from_stage1(inputs.mesh, load_checkpoint(inputs.init), config)


def _mesh_from_stage2(config: RunConfig, inputs: StageInputs) -> StageModel:
    return TexturedMesh.from_stage2(load_checkpoint(inputs.init), config)


def _trained_mesh(state: dict, config: RunConfig) -> StageModel:
    return TexturedMesh.from_stage2(state, config).eval()


STAGES: dict[str, StageSpec] = {spec.name: spec for spec in (
    StageSpec("stage1", "optimise a hash-grid NeRF (stage 1)", "prior", (), None, _nerf, load_nerf,
              export_previews, ("prior", "volume", "stage1")),
    StageSpec("stage2", "optimise the extracted mesh (stage 2)", "prior", ("init", "mesh"), "stage1",
              _mesh_from_stage1, _trained_mesh, export_mesh, ("prior", "rasterizer", "stage2", "export")),
    StageSpec("stage3", "refine the mesh with the refiner prior and export it (stage 3)", "refiner_prior",
              ("init",), "stage2", _mesh_from_stage2, _trained_mesh, partial(export_mesh, final=True),
              ("refiner_prior", "rasterizer", "stage3", "export")),
)}


FINAL_STAGE = list(STAGES)[-1]


def get_stage(name: str) -> StageSpec:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose one of {list(STAGES)}")
    return STAGES[name]


def run_stage(spec: StageSpec, config: RunConfig, prompt: str, out_dir: str | Path, logger: RunLogger,
              inputs: StageInputs = StageInputs(), callback=None) -> StageResult:
    """Optimise the stage's model for `prompt` (resuming from its checkpoint) and export its files."""
    spec.check_inputs(inputs)
    out_dir = Path(out_dir)
    stage = spec.stage_config(config)
    trainer = build_trainer(spec, config, prompt, out_dir, logger, lambda: spec.build_model(config, inputs), callback)
    model = trainer.model
    result = trainer.run()
    fault_point(f"{spec.name}:export", stage.iterations)
    model.eval()
    files = spec.export(model, config, stage, out_dir)
    media = {"images": {"preview": files["preview"]}, "videos": {"turntable": files["turntable"]}}
    if "mesh" in files:
        media["meshes"] = {"mesh": files["mesh"]}
    logger.log_media(stage.iterations, **media)
    summary = {"seconds": result.seconds, "backend": model.backend()}
    surface = model.to_trimesh()
    if surface is not None:
        summary["faces"] = len(surface.faces)
    logger.summary(summary)
    trainer.finish()
    return result
