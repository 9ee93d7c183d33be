"""Guidance methods behind one interface; the method is a config value (`guidance.method`)."""

from dreamflow.guidance.base import Guidance, GuidanceOutput, make_guidance

__all__ = ["Guidance", "GuidanceOutput", "make_guidance"]
