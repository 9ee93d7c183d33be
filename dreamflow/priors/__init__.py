"""Diffusion priors behind one interface: SD 2.x format (SD 2.1, toy) and SDXL-refiner format."""

from dreamflow.priors.base import DiffusionPrior, ModelNotFoundError, TextEmbeddings
from dreamflow.priors.loading import load_prior

__all__ = ["DiffusionPrior", "ModelNotFoundError", "TextEmbeddings", "load_prior"]
