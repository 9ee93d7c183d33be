"""Guidance methods behind one interface; the method is a config value (`guidance.method`).

Importing this package registers the built-in methods (apfo, sds, vsd); see `registry.py`.
"""

from dreamflow.guidance import apfo, sds, vsd  # noqa: F401 - registration
from dreamflow.guidance.base import Guidance, GuidanceOutput
from dreamflow.guidance.registry import available, find, make_guidance, register

__all__ = ["Guidance", "GuidanceOutput", "available", "find", "make_guidance", "register"]
