"""Toy scenes: one primitive of one colour, with an exact signed distance function.

Every shape fits inside a sphere of radius 0.6 around the origin, well inside the NeRF's
bounding sphere (radius 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.85),
    "yellow": (0.92, 0.82, 0.10),
    "purple": (0.55, 0.18, 0.75),
    "orange": (0.95, 0.50, 0.08),
}


def _sdf_sphere(p: torch.Tensor) -> torch.Tensor:
    return p.norm(dim=-1) - 0.5


def _sdf_cube(p: torch.Tensor) -> torch.Tensor:
    half = 0.36
    q = p.abs() - half
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


def _sdf_cylinder(p: torch.Tensor) -> torch.Tensor:
    radius, half_height = 0.35, 0.45
    d = torch.stack([p[..., :2].norm(dim=-1) - radius, p[..., 2].abs() - half_height], dim=-1)
    return d.max(dim=-1).values.clamp(max=0) + d.clamp(min=0).norm(dim=-1)


def _sdf_cone(p: torch.Tensor) -> torch.Tensor:
    # Exact SDF of a capped cone with apex up (iquilezles.org "Cone - exact"), base radius r, height h.
    radius, height = 0.45, 0.9
    p = p.clone()
    p[..., 2] = p[..., 2] + 0.45  # base at z=-0.45, apex at z=+0.45
    q = torch.stack([p[..., :2].norm(dim=-1), height - p[..., 2]], dim=-1)  # distance from axis, depth below apex
    tip = torch.tensor([radius, height], dtype=p.dtype, device=p.device)
    # distance to slanted side segment from apex (0,0) to (r, h) in (radial, depth) coordinates
    t = ((q * tip).sum(-1) / (tip * tip).sum()).clamp(0, 1)
    side = q - tip * t[..., None]
    base = torch.stack([q[..., 0] - q[..., 0].clamp(max=radius), q[..., 1] - height], dim=-1)
    dist = torch.minimum(side.norm(dim=-1), base.norm(dim=-1))
    inside = (q[..., 1] > 0) & (q[..., 1] < height) & (q[..., 0] * height < radius * q[..., 1])
    return torch.where(inside, -dist, dist)


def _sdf_torus(p: torch.Tensor) -> torch.Tensor:
    major, minor = 0.4, 0.16
    q = torch.stack([p[..., :2].norm(dim=-1) - major, p[..., 2]], dim=-1)
    return q.norm(dim=-1) - minor


SHAPES = {
    "sphere": _sdf_sphere,
    "cube": _sdf_cube,
    "cone": _sdf_cone,
    "torus": _sdf_torus,
    "cylinder": _sdf_cylinder,
}


@dataclass(frozen=True)
class ToyScene:
    """One primitive of one colour: the ground truth for a toy prompt."""

    shape: str
    colour: str

    @property
    def prompt(self) -> str:
        return f"a {self.colour} {self.shape}"

    @property
    def rgb(self) -> torch.Tensor:
        return torch.tensor(COLOURS[self.colour])

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (negative inside) at points [..., 3]."""
        return SHAPES[self.shape](points)


def all_scenes() -> list[ToyScene]:
    """Every shape-colour pair of the toy world."""
    return [ToyScene(shape, colour) for shape in SHAPES for colour in COLOURS]


_PROMPT_RE = re.compile(r"^\s*an?\s+(?P<colour>\w+)\s+(?P<shape>\w+)\s*(,.*)?$", re.IGNORECASE)


def parse_toy_prompt(prompt: str) -> ToyScene | None:
    """The toy scene a prompt names ("a red cube"), or None when it is not a toy prompt."""
    match = _PROMPT_RE.match(prompt)
    if not match:
        return None
    colour, shape = match["colour"].lower(), match["shape"].lower()
    if colour in COLOURS and shape in SHAPES:
        return ToyScene(shape, colour)
    return None
