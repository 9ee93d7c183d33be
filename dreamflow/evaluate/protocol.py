"""What CLIP R-precision retrieves with (DreamFusion's protocol), without torch: the command line and
the workflow read these; `dreamflow.evaluate.retrieval` renders and scores with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Render modes and the renderer's shading for each: colour is the asset's albedo (unlit, as the
# report's other CLIP scores); textureless is DreamFusion's "Geo", the surface lit with a white albedo.
RENDER_MODES = {"colour": "albedo", "textureless": "textureless"}
DREAM_FIELDS_ELEVATION = 45.0  # pose_spherical(theta=30, phi=-45, radius=4): phi < 0 is above the equator
DREAM_FIELDS_AZIMUTH = 30.0
# Dream Fields renders its [-1, 1]^3 scene from radius 4 (pose_spherical's radius) at focal 1111.1 px for
# 800 px, fovy 2 atan(400 / 1111.1) = 39.6 deg: the camera stands 4 scene radii away.
DREAM_FIELDS_DISTANCE_IN_RADII = 4.0
DREAM_FIELDS_FOVY = 39.6


@dataclass(frozen=True)
class ClipModel:
    """An open_clip model and its weights: a pretrained tag (`openai`), a weights file, or `none` (random)."""

    model: str
    pretrained: str

    @property
    def name(self) -> str:
        """How tables name it: `ViT-B-32:openai`, `dreamflow-toy-clip:open_clip_model.safetensors`."""
        return f"{self.model}:{Path(self.pretrained).name}"


@dataclass(frozen=True)
class RetrievalProtocol:
    """What R-precision retrieves with: CLIP models, render modes, the caption file and the view (its
    angles, its distance in the scene's bounding radii and its vertical field of view in degrees)."""

    models: tuple[ClipModel, ...]
    modes: tuple[str, ...] = tuple(RENDER_MODES)
    captions: str | None = None  # caption file; None: the suite's own prompts only
    elevation: float = DREAM_FIELDS_ELEVATION
    azimuth: float = DREAM_FIELDS_AZIMUTH
    distance_in_radii: float = DREAM_FIELDS_DISTANCE_IN_RADII
    fovy: float = DREAM_FIELDS_FOVY

    def __post_init__(self):
        if not self.models:
            raise ValueError("R-precision needs at least one CLIP model (evaluate.clip_models)")
        unknown = [mode for mode in self.modes if mode not in RENDER_MODES]
        if unknown or not self.modes:
            raise ValueError(f"render modes {list(self.modes)}: each must be one of {list(RENDER_MODES)}")
        if self.distance_in_radii <= 1:
            raise ValueError(f"view distance {self.distance_in_radii} scene radii: the camera must stand outside "
                             f"the scene, more than 1 radius away (Dream Fields: {DREAM_FIELDS_DISTANCE_IN_RADII})")
        if not 0 < self.fovy < 180:
            raise ValueError(f"view fovy {self.fovy} degrees: give an angle in (0, 180) (Dream Fields: {DREAM_FIELDS_FOVY})")

    def distance(self, scene_radius: float) -> float:
        """The camera's distance from the origin for a scene of bounding radius `scene_radius`."""
        return self.distance_in_radii * scene_radius
