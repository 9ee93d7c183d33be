"""The toy world: procedural scenes whose right answer is known (docs/design.md §7)."""

from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import (
    COLOURS,
    PATTERNS,
    SHAPES,
    ToyScene,
    all_scenes,
    composition_scenes,
    parse_toy_prompt,
    pattern_scenes,
    plain_scenes,
)

__all__ = ["COLOURS", "PATTERNS", "SHAPES", "ToyScene", "all_scenes", "composition_scenes", "parse_toy_prompt",
           "pattern_scenes", "plain_scenes", "render_scene"]
