"""The project's world frame and glTF's.

The world is Z-up (threestudio's convention): +z up, the object's front faces +x (azimuth 0).
glTF 2.0 is Y-up, metres, front facing +z. One scene unit is written as one metre.
`WORLD_TO_GLTF` is a proper rotation (a cyclic permutation of the axes), so winding and normals
stay valid: glTF (x, y, z) = world (y, z, x).
"""

from __future__ import annotations

import numpy as np

WORLD_TO_GLTF = np.array([[0.0, 1.0, 0.0],
                          [0.0, 0.0, 1.0],
                          [1.0, 0.0, 0.0]])


def world_to_gltf(points: np.ndarray) -> np.ndarray:
    """[N,3] points or directions in the world frame -> glTF's frame (+Y up, front +Z)."""
    return np.asarray(points) @ WORLD_TO_GLTF.T


def gltf_to_world(points: np.ndarray) -> np.ndarray:
    """Inverse of `world_to_gltf`."""
    return np.asarray(points) @ WORLD_TO_GLTF


__all__ = ["WORLD_TO_GLTF", "world_to_gltf", "gltf_to_world"]
