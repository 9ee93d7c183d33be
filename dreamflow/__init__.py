"""DreamFlow: text-to-3D by approximating the probability-flow ODE (APFO), ICLR 2024."""

__version__ = "0.1.0"
