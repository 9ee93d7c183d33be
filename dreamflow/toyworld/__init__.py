"""The toy world: procedural scenes whose right answer is known (DESIGN.md section 7)."""

from dreamflow.toyworld.render import render_scene
from dreamflow.toyworld.scenes import COLOURS, SHAPES, ToyScene, all_scenes, parse_toy_prompt

__all__ = ["COLOURS", "SHAPES", "ToyScene", "all_scenes", "parse_toy_prompt", "render_scene"]
