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
    """What R-precision retrieves with: CLIP models, render modes, the caption file and the view."""

    models: tuple[ClipModel, ...]
    modes: tuple[str, ...] = tuple(RENDER_MODES)
    captions: str | None = None  # caption file; None: the suite's own prompts only
    elevation: float = DREAM_FIELDS_ELEVATION
    azimuth: float = DREAM_FIELDS_AZIMUTH

    def __post_init__(self):
        if not self.models:
            raise ValueError("R-precision needs at least one CLIP model (evaluate.clip_models)")
        unknown = [mode for mode in self.modes if mode not in RENDER_MODES]
        if unknown or not self.modes:
            raise ValueError(f"render modes {list(self.modes)}: each must be one of {list(RENDER_MODES)}")
