"""The one description of every step that makes an asset: each optimisation stage and the mesh
extraction between stages 1 and 2. Plain data, no torch: the workflow reads it when it plans (without
importing the models), and so do the command line, the reports, the metric names and the GPU check.

    stage1  NeRF (hash grid) with the base prior         -> ckpt.pt, preview.png, turntable.gif
    extract_mesh  marching cubes on stage 1's density    -> mesh/coarse.obj, mesh/extract.json
    stage2  extracted mesh with the base prior           -> ckpt.pt, mesh.glb, preview.png, turntable.gif
    stage3  mesh refined with the refiner prior (final)  -> ckpt.pt, mesh.glb, mesh.obj (+ .mtl, texture), views/

How a stage is built, trained, loaded and exported attaches to this description in
`dreamflow.training.stages` (`StageSpec`). Paths are relative to an asset's folder
(results/{suite}/{method}/{variant}/{slug}/seed{seed}/); an output ending in "/" is a folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Run-config blocks every stage reads (its own blocks come on top).
SHARED_BLOCKS = ("seed", "device", "deterministic", "camera", "guidance", "nerf", "shading")
# Files a stage keeps in its folder that are not workflow outputs: its log and prompt survive a failed
# job (the workflow deletes a failed job's outputs), and `resume/` holds the checkpoint it resumes from.
RECORDS = ("log.jsonl", "prompt.txt")
# The quality curve a stage writes when a suite asks for curves (`curves.every`).
CURVE = "curve.csv"


@dataclass(frozen=True)
class Step:
    """A step of an asset: its name (also its rule and timing record), the run-config blocks its result
    depends on, its folder and the files it writes there (output key -> file name)."""

    name: str
    label: str  # how a person reads it: "stage 1", "extraction"
    folder: str
    config_blocks: tuple[str, ...]
    outputs: dict[str, str] = field(default_factory=dict)

    def path(self, key: str) -> str:
        """Where output `key` lies in the asset's folder ("stage1/ckpt.pt")."""
        return f"{self.folder}/{self.outputs[key]}"


@dataclass(frozen=True)
class Stage(Step):
    """One optimisation stage: what it starts from, which prior guides it, what it writes."""

    short: str = ""  # column sub-header in tables: "S1"
    model: str = ""  # the 3D model it optimises: "nerf" (hash grid, volume renderer) or "mesh" (rasteriser)
    help: str = ""
    previous: str | None = None  # the stage whose checkpoint is `init`
    inputs: tuple[str, ...] = ()  # what it starts from: "init" (previous checkpoint), "mesh" (the extraction)
    prior_block: str = "prior"  # run-config block of its prior: "prior" or "refiner_prior"

    def stage_config(self, config: Any) -> Any:
        """Its block of a run config (`RunConfig.<name>`)."""
        return getattr(config, self.name)

    def prior_config(self, config: Any) -> Any:
        return getattr(config, self.prior_block)

    def guidance_config(self, config: Any) -> Any:
        """The guidance block with this stage's per-method changes applied to each method's recipe."""
        return config.guidance_for(self.stage_config(config))

    def shading_config(self, config: Any) -> Any:
        return config.shading_for(self.stage_config(config))

    def blocks(self) -> tuple[str, ...]:
        """Every run-config block its result depends on."""
        return (*SHARED_BLOCKS, *self.config_blocks)


def _stage(number: int, **keywords) -> Stage:
    name = f"stage{number}"
    return Stage(name=name, label=f"stage {number}", short=f"S{number}", folder=name, **keywords)


_PREVIEWS = {"ckpt": "ckpt.pt", "preview": "preview.png", "turntable": "turntable.gif"}

STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    _stage(1, help="optimise a hash-grid NeRF (stage 1)", model="nerf", prior_block="prior",
           config_blocks=("prior", "volume", "stage1"), outputs=dict(_PREVIEWS)),
    _stage(2, help="optimise the extracted mesh (stage 2)", model="mesh", previous="stage1", inputs=("init", "mesh"),
           prior_block="prior", config_blocks=("prior", "rasterizer", "stage2", "export"),
           outputs={**_PREVIEWS, "mesh": "mesh.glb"}),
    _stage(3, help="refine the mesh with the refiner prior and export it (stage 3)", model="mesh", previous="stage2",
           inputs=("init",), prior_block="refiner_prior",
           config_blocks=("refiner_prior", "rasterizer", "stage3", "export"),
           outputs={**_PREVIEWS, "mesh": "mesh.glb", "obj": "mesh.obj", "mtl": "mesh.mtl", "texture": "material_0.png",
                    "views": "views/"}),
)}
FINAL_STAGE = list(STAGES)[-1]
# The stage that starts from the extracted mesh; the extraction reads its previous stage's checkpoint.
MESH_STAGE = next(name for name, stage in STAGES.items() if "mesh" in stage.inputs)
EXTRACTION = Step(name="extract_mesh", label="extraction", folder="mesh",
                  config_blocks=("seed", "device", "nerf", "volume", "extract"),
                  outputs={"mesh": "coarse.obj", "report": "extract.json"})
EXTRACTED_FROM = STAGES[MESH_STAGE].previous


def steps() -> list[Step]:
    """Every step in the order it runs: each stage, the extraction just before the stage it feeds."""
    return [step for stage in STAGES.values()
            for step in ([EXTRACTION, stage] if stage.name == MESH_STAGE else [stage])]


def step_position(name: str) -> int:
    """Position of a step in the stage order (the extraction counts with the stage it feeds)."""
    return list(STAGES).index(MESH_STAGE if name == EXTRACTION.name else name)


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose one of {list(STAGES)}")
    return STAGES[name]
