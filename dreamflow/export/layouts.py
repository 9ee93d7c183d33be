"""The render layouts external evaluators read (`dreamflow export-views --layout`), without torch: the
command line and the workflow read these; `dreamflow.export.views` renders into them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewLayout:
    """Cameras, scene scale and file names an external evaluator expects."""

    name: str
    views: int
    elevation: float  # degrees
    distance: float
    fovy: float  # degrees, vertical
    scene_radius: float  # the bounding radius of the scene these cameras frame
    resolution: int  # the evaluator's default


GPTEVAL3D = ViewLayout("gpteval3d", views=120, elevation=15.0, distance=1.5, fovy=70.0, scene_radius=1.0,
                       resolution=512)
LAYOUTS = {GPTEVAL3D.name: GPTEVAL3D}


class ViewExportError(ValueError):
    """The checkpoint is not a finished asset, or the asset cannot be filed under the id given."""
