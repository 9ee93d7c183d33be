"""A judge of toy images that does not use any prior: colour, shape and pattern of a sample.

It compares an image with true renders of the toy world, so it can grade what a prior draws
(tests, model cards) without trusting the prior itself:
* colours: the foreground's chromaticity is explained by the best pair of toy colours (see
  `two_colour_fit`); the scene's colours must be that pair, or its major colour when the minor
  one covers under 8 %;
* shape: the silhouette, cropped and rescaled, against templates of every shape seen from
  the views a "front view" prompt covers (best IoU);
* pattern: three features of the two-colour map (share of the minor colour, horizontal vs
  vertical edges, edge density) against the same features of true renders (nearest neighbour).

Images above 64 px are judged at 64 px (area-downsampled), where every pattern is resolved.
On true renders from random front views of `judged_scenes()` at 64 px it scored colour 1.00,
shape 1.00 and pattern 0.98 or 1.00 (two view samples; `lab/experiments/prior_samples/run.py` reports it
beside the priors).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import combinations

import torch

from dreamflow.render.cameras import cameras_from_spherical
from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import COLOURS, PATTERNS, SHAPES, ToyScene

_PALETTE = torch.nn.functional.normalize(torch.tensor(list(COLOURS.values())), dim=-1)
_NAMES = list(COLOURS)


@dataclass(frozen=True)
class Verdict:
    """What the judge sees in one image, and whether it matches the scene."""

    colours: tuple[str, ...]
    shape: str
    pattern: str
    colour_ok: bool
    shape_ok: bool
    pattern_ok: bool


def foreground(image: torch.Tensor) -> torch.Tensor:
    """Non-white pixels of an image [H,W,3] in [0, 1] (every toy colour has a channel below 0.25)."""
    return image.min(-1).values < 0.6


def two_colour_fit(image: torch.Tensor) -> tuple[list[tuple[str, float]], torch.Tensor, torch.Tensor]:
    """Explain the foreground's chromaticity as mixtures of two toy colours.

    Every pair of toy colours is tried; each pixel's direction in RGB (shading changes
    brightness, not direction) is fitted as the nearest point on the segment between the
    pair's directions, so anti-aliased pixels where two colours meet are explained by them
    rather than read as a third hue (orange and green blend to yellow). Returns the pair by
    share, largest first, with their shares; the minor colour's pixels [H,W]; the foreground.
    """
    mask = foreground(image)
    if mask.sum() < 10:
        return [], torch.zeros_like(mask), mask
    direction = torch.nn.functional.normalize(image[mask].float(), dim=-1)
    best = None
    for a, b in combinations(range(len(_NAMES)), 2):
        diff = _PALETTE[a] - _PALETTE[b]
        weight = ((direction - _PALETTE[b]) @ diff / (diff @ diff)).clamp(0, 1)
        residual = (direction - _PALETTE[b] - weight[:, None] * diff).norm(dim=-1).mean().item()
        if best is None or residual < best[0] - 1e-4:
            best = (residual, a, b, weight)
    _, a, b, weight = best
    share_a = float((weight > 0.5).float().mean())
    pair = sorted([(_NAMES[a], share_a), (_NAMES[b], 1 - share_a)], key=lambda item: -item[1])
    minor_is_a = pair[1][0] == _NAMES[a]
    minor = torch.zeros_like(mask)
    minor[mask] = (weight > 0.5) if minor_is_a else (weight <= 0.5)
    return pair, minor, mask


def _normalised_mask(mask: torch.Tensor, size: int = 24) -> torch.Tensor:
    """Crop a silhouette to its bounding box, pad to a centred square and resize it."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return torch.zeros(size, size, dtype=torch.bool)
    crop = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].float()
    side = max(crop.shape)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square = torch.zeros(side, side)
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return torch.nn.functional.interpolate(square[None, None], size=(size, size), mode="area")[0, 0] > 0.5


def _front_cameras():
    elevations = torch.tensor([-10.0, 5.0, 20.0, 35.0, 45.0]).repeat_interleave(7)
    azimuths = torch.linspace(-45, 45, 7).repeat(5)
    n = len(elevations)
    return cameras_from_spherical(elevations, azimuths, torch.full((n,), 2.25), torch.full((n,), 45.0))


@functools.cache
def _shape_templates(resolution: int) -> dict[str, torch.Tensor]:
    cameras = _front_cameras()
    return {name: torch.stack([_normalised_mask(m) for m in
                               render_scene(ToyScene(name, "red"), cameras, resolution)["mask"][..., 0] > 0.5])
            for name in SHAPES}


def judge_shape(image: torch.Tensor) -> str:
    """The shape whose front-view silhouettes best match the image's (IoU)."""
    mask = _normalised_mask(foreground(image))
    best = {name: ((t & mask).sum((1, 2)) / (t | mask).sum((1, 2)).clamp(min=1)).max().item()
            for name, t in _shape_templates(image.shape[0]).items()}
    return max(best, key=best.get)


def pattern_features(image: torch.Tensor, fit: tuple | None = None) -> torch.Tensor:
    """(minor colour share, share of edges that are steps along rows, edges per pixel) of the foreground.

    `fit`: the image's `two_colour_fit` when the caller already has it."""
    pair, is_minor, mask = fit or two_colour_fit(image)
    if not pair:
        return torch.zeros(3)
    across = (is_minor[:, 1:] != is_minor[:, :-1]) & mask[:, 1:] & mask[:, :-1]  # changes along a row
    down = (is_minor[1:] != is_minor[:-1]) & mask[1:] & mask[:-1]  # changes down a column
    edges = across.sum() + down.sum()
    return torch.tensor([pair[1][1], float(across.sum() / edges.clamp(min=1)),
                         float(edges) / float(mask.sum()) * image.shape[0] / 64])


@functools.cache
def _pattern_templates(resolution: int) -> tuple[torch.Tensor, list[str]]:
    cameras = _front_cameras()[::3]
    features, labels = [], []
    colour_pairs = [("red", "blue"), ("yellow", "purple"), ("green", "orange")]
    for shape in SHAPES:
        for pattern in PATTERNS:
            for first, second in colour_pairs:
                scene = ToyScene(shape, first, pattern, None if pattern == "plain" else second)
                for rgb in render_scene(scene, cameras, resolution)["rgb"]:
                    features.append(pattern_features(rgb))
                    labels.append(pattern)
    return torch.stack(features), labels


def judge_pattern(image: torch.Tensor, neighbours: int = 5, fit: tuple | None = None) -> str:
    """Majority pattern among the nearest true renders in feature space."""
    features, labels = _pattern_templates(image.shape[0])
    scale = features.std(0).clamp(min=1e-3)
    distance = ((features - pattern_features(image, fit)) / scale).norm(dim=-1)
    nearest = [labels[i] for i in distance.argsort()[:neighbours].tolist()]
    return max(set(nearest), key=nearest.count)


JUDGE_RESOLUTION = 64  # larger images are area-downsampled first: patterns are resolved at 64 px


def _at_judge_resolution(image: torch.Tensor) -> torch.Tensor:
    if image.shape[0] <= JUDGE_RESOLUTION:
        return image
    scaled = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None], size=JUDGE_RESOLUTION, mode="area")
    return scaled[0].permute(1, 2, 0)


def judge(image: torch.Tensor, scene: ToyScene) -> Verdict:
    """Grade an image [H,W,3] in [0, 1] against the scene its prompt names."""
    image = _at_judge_resolution(image.float())
    fit = two_colour_fit(image)
    seen = tuple(name for name, share in fit[0] if share >= 0.08)
    if scene.below is not None:
        expected = {scene.colour, scene.below.colour}
        colour_ok = set(seen[:2]) == expected and _stacked_in_order(fit, scene.colour, scene.below.colour)
        return Verdict(seen, "", "", colour_ok, True, True)
    if scene.pattern == "plain":
        colour_ok = bool(seen) and seen[0] == scene.colour
    elif scene.pattern == "dots":  # dots cover about a quarter: the base colour leads
        colour_ok = seen[:2] == (scene.colour, scene.pattern_colour)
    else:  # stripes and checks are half and half
        colour_ok = set(seen[:2]) == {scene.colour, scene.pattern_colour}
    shape, pattern = judge_shape(image), judge_pattern(image, fit=fit)
    return Verdict(seen, shape, pattern, colour_ok, shape == scene.shape, pattern == scene.pattern)


def _stacked_in_order(fit: tuple, top: str, bottom: str) -> bool:
    pair, is_minor, mask = fit
    rows = torch.arange(mask.shape[0], dtype=torch.float32)[:, None].expand(mask.shape)
    mean_row = {pair[0][0]: rows[mask & ~is_minor].mean(), pair[1][0]: rows[mask & is_minor].mean()}
    return bool(mean_row[top] < mean_row[bottom])


def judge_many(images: torch.Tensor, scenes: list[ToyScene]) -> dict[str, float]:
    """Shares of images [B,H,W,3] judged right: colour (all), shape and pattern (single objects)."""
    verdicts = [judge(image, scene) for image, scene in zip(images, scenes)]
    singles = [v for v, s in zip(verdicts, scenes) if s.below is None]
    return {"colour": sum(v.colour_ok for v in verdicts) / len(verdicts),
            "shape": sum(v.shape_ok for v in singles) / max(len(singles), 1),
            "pattern": sum(v.pattern_ok for v in singles) / max(len(singles), 1),
            "count": len(verdicts)}


def judged_scenes() -> list[ToyScene]:
    """The fixed prompt set prior samples are graded on: every plain scene, every shape with every
    pattern in two colour pairs (rotating through the palette), and one of each stacked pair."""
    from dreamflow.toyworld.scenes import COMPOSITION_PAIRS, plain_scenes

    names = list(COLOURS)
    scenes = plain_scenes()
    for index, (shape, pattern) in enumerate((s, p) for s in SHAPES for p in PATTERNS[1:]):
        for offset in (0, 3):
            first = names[(index + offset) % len(names)]
            second = names[(index + offset + 2) % len(names)]
            scenes.append(ToyScene(shape, first, pattern, second))
    for index, (top, bottom) in enumerate(COMPOSITION_PAIRS):
        scenes.append(ToyScene(top, names[index % 6], below=ToyScene(bottom, names[(index + 3) % 6])))
    return scenes
