"""Cameras, volume rendering and rasterisation."""
