"""Toy scenes with exact ground truth: a signed distance function and an albedo function.

Prompt grammar (case-insensitive; v1 prompts such as "a red cube" are the plain case):

    prompt   := object [" on " object] [", " view suffix]
    object   := ("a" | "an") colour shape [" with " colour pattern]
    colour   := red | green | blue | yellow | purple | orange
    shape    := sphere | cube | cone | torus | cylinder
    pattern  := stripes | checks | dots

"a red cube with blue stripes" paints horizontal bands of the second colour on the cube;
"a red cube on a blue sphere" stacks a smaller cube on a sphere. Patterns have a period of
`PATTERN_PERIOD` scene units: about 10 px in a 128-px render (stage 3) and 2.5 px at 32 px
(stage 1), so only the high-resolution stages can resolve them.

Every scene fits inside a sphere of radius 0.65 around the origin, well inside the NeRF's
bounding sphere (radius 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product

import torch

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.85),
    "yellow": (0.92, 0.82, 0.10),
    "purple": (0.55, 0.18, 0.75),
    "orange": (0.95, 0.50, 0.08),
}
PATTERNS = ("plain", "stripes", "checks", "dots")
PATTERN_PERIOD = 0.15  # scene units; the eval camera sees ~69 px per unit at 128 px
DOT_RADIUS = 0.3 * PATTERN_PERIOD


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
HALF_HEIGHT = {"sphere": 0.5, "cube": 0.36, "cone": 0.45, "torus": 0.16, "cylinder": 0.45}
STACK_SCALE = {"below": 0.65, "above": 0.5}  # a composition's two objects, scaled to fit radius 0.65


def _pattern_mask(pattern: str, points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Where the second colour goes: a solid texture in object coordinates.

    Stripes are horizontal bands (the same from every azimuth). Checks and dots are drawn
    triplanarly, in the plane across each point's dominant normal axis, so a cube face shows a
    regular checkerboard or dot grid.
    """
    period = PATTERN_PERIOD
    if pattern == "stripes":
        return torch.remainder(points[..., 2] / period, 1.0) < 0.5
    axis = normals.abs().argmax(dim=-1)
    others = torch.tensor([[1, 2], [0, 2], [0, 1]], device=points.device)[axis]
    uv = torch.gather(points, -1, others)
    if pattern == "checks":
        cells = torch.floor(uv / (period / 2)).long()
        return (cells.sum(-1) % 2) == 1
    if pattern == "dots":
        offset = torch.remainder(uv, period) - period / 2
        return offset.norm(dim=-1) < DOT_RADIUS
    raise ValueError(f"unknown pattern '{pattern}'; expected one of {PATTERNS}")


@dataclass(frozen=True)
class ToyScene:
    """A primitive in one colour, optionally patterned in a second, optionally stacked on another.

    `below` is the object this one stands on ("a red cube on a blue sphere" is
    ToyScene("cube", "red", below=ToyScene("sphere", "blue"))).
    """

    shape: str
    colour: str
    pattern: str = "plain"
    pattern_colour: str | None = None
    below: ToyScene | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.colour not in COLOURS or self.pattern not in PATTERNS:
            raise ValueError(f"not a toy scene: shape={self.shape!r} colour={self.colour!r} pattern={self.pattern!r}; "
                             f"shapes {list(SHAPES)}, colours {list(COLOURS)}, patterns {list(PATTERNS)}")
        if (self.pattern == "plain") != (self.pattern_colour is None) or self.pattern_colour == self.colour:
            raise ValueError(f"pattern {self.pattern!r} needs a second colour other than {self.colour!r}, "
                             f"got {self.pattern_colour!r}")

    @property
    def patterned(self) -> bool:
        """Whether any object of the scene carries a pattern (stripes, checks, dots)."""
        return self.pattern != "plain" or (self.below is not None and self.below.patterned)

    @property
    def object_prompt(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        text = f"{article} {self.colour} {self.shape}"
        return text if self.pattern == "plain" else f"{text} with {self.pattern_colour} {self.pattern}"

    @property
    def prompt(self) -> str:
        return self.object_prompt if self.below is None else f"{self.object_prompt} on {self.below.object_prompt}"

    @property
    def rgb(self) -> torch.Tensor:
        """The main colour of the (top) object."""
        return torch.tensor(COLOURS[self.colour])

    def _placements(self) -> list[tuple[ToyScene, float, float]]:
        """(object, scale, height of its centre) for each object of the scene."""
        single = ToyScene(self.shape, self.colour, self.pattern, self.pattern_colour)
        if self.below is None:
            return [(single, 1.0, 0.0)]
        bottom, top = self.below, single
        sb, st = STACK_SCALE["below"], STACK_SCALE["above"]
        height = 2 * sb * HALF_HEIGHT[bottom.shape] + 2 * st * HALF_HEIGHT[top.shape]
        zb = -height / 2 + sb * HALF_HEIGHT[bottom.shape]
        zt = zb + sb * HALF_HEIGHT[bottom.shape] + st * HALF_HEIGHT[top.shape] - 0.01  # touching
        return [(bottom, sb, zb), (top, st, zt)]

    def _object_distances(self, points: torch.Tensor) -> tuple[torch.Tensor, list]:
        placements = self._placements()
        distances = []
        for obj, scale, height in placements:
            local = points.clone()
            local[..., 2] = local[..., 2] - height
            distances.append(scale * SHAPES[obj.shape](local / scale))
        return torch.stack(distances, dim=-1), placements

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (negative inside) at points [..., 3]."""
        return self._object_distances(points)[0].min(dim=-1).values

    def albedo(self, points: torch.Tensor, normals: torch.Tensor | None = None) -> torch.Tensor:
        """Ground-truth surface colour [..., 3] at (surface) points [..., 3]."""
        distances, placements = self._object_distances(points)
        nearest = distances.argmin(dim=-1)
        out = torch.empty(*points.shape[:-1], 3, dtype=points.dtype, device=points.device)
        if normals is None and any(obj.pattern != "plain" for obj, _, _ in placements):
            normals = self.normals(points)
        for index, (obj, scale, height) in enumerate(placements):
            colour = torch.tensor(COLOURS[obj.colour], dtype=points.dtype, device=points.device).expand_as(points)
            if obj.pattern != "plain":
                local = points.clone()
                local[..., 2] = local[..., 2] - height
                second = torch.tensor(COLOURS[obj.pattern_colour], dtype=points.dtype, device=points.device)
                colour = torch.where(_pattern_mask(obj.pattern, local / scale, normals)[..., None], second, colour)
            out = torch.where((nearest == index)[..., None], colour, out)
        return out

    def normals(self, points: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """Unit SDF gradient (central differences) at points [..., 3]."""
        offsets = torch.eye(3, dtype=points.dtype, device=points.device) * eps
        gradient = torch.stack([self.sdf(points + o) - self.sdf(points - o) for o in offsets], dim=-1)
        return torch.nn.functional.normalize(gradient, dim=-1)


def plain_scenes() -> list[ToyScene]:
    """The v1 world: every shape-colour pair."""
    return [ToyScene(shape, colour) for shape in SHAPES for colour in COLOURS]


def pattern_scenes() -> list[ToyScene]:
    """Every shape and pattern in every ordered pair of distinct colours."""
    return [ToyScene(shape, first, pattern, second) for shape, pattern, first, second
            in product(SHAPES, PATTERNS[1:], COLOURS, COLOURS) if first != second]


COMPOSITION_PAIRS = [(top, bottom) for top, bottom in product(("cube", "sphere", "cone"), ("cube", "cylinder", "sphere"))
                     if top != bottom]


def composition_scenes() -> list[ToyScene]:
    """Two plain objects stacked, in every ordered pair of distinct colours."""
    return [ToyScene(top, first, below=ToyScene(bottom, second)) for (top, bottom), first, second
            in product(COMPOSITION_PAIRS, COLOURS, COLOURS) if first != second]


def all_scenes() -> list[ToyScene]:
    """Every scene of the toy world (v2: plain, patterned, stacked)."""
    return plain_scenes() + pattern_scenes() + composition_scenes()


_OBJECT = r"an?\s+(?P<{p}colour>\w+)\s+(?P<{p}shape>\w+)(\s+with\s+(?P<{p}second>\w+)\s+(?P<{p}pattern>\w+))?"
_PROMPT_RE = re.compile(r"^\s*" + _OBJECT.format(p="") + r"(\s+on\s+" + _OBJECT.format(p="b_") + r")?\s*(,.*)?$",
                        re.IGNORECASE)


def _object_from(match: re.Match, prefix: str) -> ToyScene | None:
    colour, shape = match[f"{prefix}colour"].lower(), match[f"{prefix}shape"].lower()
    pattern, second = (match[f"{prefix}pattern"] or "plain").lower(), match[f"{prefix}second"]
    second = second.lower() if second else None
    try:
        return ToyScene(shape, colour, pattern, second)
    except ValueError:
        return None


def parse_toy_prompt(prompt: str) -> ToyScene | None:
    """The toy scene a prompt names ("a red cube with blue stripes"), or None when it is not one."""
    match = _PROMPT_RE.match(prompt)
    if not match:
        return None
    top = _object_from(match, "")
    if top is None or match["b_colour"] is None:
        return top
    below = _object_from(match, "b_")
    if below is None:
        return None
    return ToyScene(top.shape, top.colour, top.pattern, top.pattern_colour, below=below)
