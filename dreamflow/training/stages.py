"""The stages as they run: each stage's description (`dreamflow.stages`) with how its model is built,
how a finished checkpoint is loaded and what it exports. The trainer, evaluation, the command line and
the GPU check read this table; nothing else branches on a stage's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from dreamflow.config import RunConfig, StageConfig
from dreamflow.export.assets import export_mesh, export_previews
from dreamflow.geometry.base import StageModel
from dreamflow.geometry.mesh import TexturedMesh
from dreamflow.geometry.nerf import NeRFModel, load_nerf
from dreamflow.io import load_checkpoint
from dreamflow.stages import FINAL_STAGE, SHARED_BLOCKS, Stage
from dreamflow.stages import STAGES as DESCRIPTIONS
from dreamflow.training.logger import RunLogger
from dreamflow.training.trainer import StageResult, build_trainer, fault_point
from dreamflow.training.usage import StageUsage

__all__ = ["FINAL_STAGE", "SHARED_BLOCKS", "STAGES", "StageInputs", "StageSpec", "get_stage", "run_stage"]


@dataclass(frozen=True)
class StageInputs:
    """Files a stage starts from: the previous stage's checkpoint and, for stage 2, the extracted mesh."""

    init: Path | None = None
    mesh: Path | None = None


@dataclass(frozen=True, kw_only=True)
class StageSpec(Stage):
    """A stage's description plus its model factory, checkpoint loader and exporter."""

    build_model: Callable[[RunConfig, StageInputs], StageModel]
    load_trained: Callable[[dict, RunConfig], StageModel]  # the model of a finished checkpoint, eval mode
    export: Callable[[StageModel, RunConfig, StageConfig, Path], dict[str, Path]]

    @classmethod
    def attach(cls, stage: Stage, **parts) -> StageSpec:
        return cls(**{f.name: getattr(stage, f.name) for f in dataclasses.fields(Stage)}, **parts)

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


_PARTS = {
    "stage1": {"build_model": _nerf, "load_trained": load_nerf, "export": export_previews},
    "stage2": {"build_model": _mesh_from_stage1, "load_trained": _trained_mesh, "export": export_mesh},
    "stage3": {"build_model": _mesh_from_stage2, "load_trained": _trained_mesh,
               "export": partial(export_mesh, final=True)},
}
STAGES: dict[str, StageSpec] = {name: StageSpec.attach(stage, **_PARTS[name]) for name, stage in DESCRIPTIONS.items()}


def get_stage(name: str) -> StageSpec:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose one of {list(STAGES)}")
    return STAGES[name]


def run_stage(spec: StageSpec, config: RunConfig, prompt: str, out_dir: str | Path, logger: RunLogger,
              inputs: StageInputs = StageInputs(), callback=None) -> StageResult:
    """Optimise the stage's model for `prompt` (resuming from its checkpoint) and export its files."""
    from dreamflow.priors.loading import resolve_device

    spec.check_inputs(inputs)
    out_dir = Path(out_dir)
    stage = spec.stage_config(config)
    usage = StageUsage(resolve_device(config.device))  # before the model and prior are built
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
    summary |= usage.finish(stage.iterations, result.steps, result.resumed_from, trainer.train_seconds)
    logger.summary(summary)
    trainer.finish()
    return result
