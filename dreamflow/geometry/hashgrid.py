"""Multiresolution hash encoding (Instant-NGP) with tinycudann and pure-PyTorch back ends.

Both back ends share one flat parameter vector in tinycudann's layout (per-level offsets,
dense indexing for coarse levels that fit in the table, the coherent prime hash otherwise),
so a checkpoint written on one loads on the other. The pure-PyTorch indexing follows
tinycudann's `grid.h` (`grid_scale`, `grid_resolution`, `grid_index`); unlike nerfstudio's torch
path (nerfstudio #1200) it keeps tcnn's +0.5 offset.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from dreamflow.config import HashGridConfig

PRIMES = (1, 2654435761, 805459861)
_CORNERS = torch.tensor([[(i >> d) & 1 for d in range(3)] for i in range(8)], dtype=torch.long)


def tcnn_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import tinycudann  # noqa: F401
    except ImportError:
        return False
    return True


def level_layout(config: HashGridConfig) -> tuple[list[float], list[int], list[int], list[int]]:
    """Per level: scale, grid resolution, table size (entries), offset (entries), as tinycudann."""
    per_level_scale = per_level_scale_of(config)
    log2_scale = math.log2(per_level_scale)
    max_params = 2 ** config.log2_hashmap_size
    scales, resolutions, sizes, offsets = [], [], [], []
    offset = 0
    for level in range(config.n_levels):
        scale = 2.0 ** (level * log2_scale) * config.base_resolution - 1.0
        resolution = math.ceil(scale) + 1
        size = min(resolution ** 3, max_params)
        size = (size + 7) // 8 * 8  # next multiple of 8
        scales.append(scale)
        resolutions.append(resolution)
        sizes.append(size)
        offsets.append(offset)
        offset += size
    return scales, resolutions, sizes, offsets


def per_level_scale_of(config: HashGridConfig) -> float:
    if config.n_levels == 1:
        return 1.0
    return math.exp(math.log(config.finest_resolution / config.base_resolution) / (config.n_levels - 1))


def grid_index(coords: torch.Tensor, resolution: int, size: int) -> torch.Tensor:
    """tinycudann's grid_index: dense row-major index if the level fits the table, else hashed."""
    if resolution ** 3 <= size:
        index = coords[..., 0] + coords[..., 1] * resolution + coords[..., 2] * resolution * resolution
    else:
        index = (coords[..., 0] * PRIMES[0]) ^ (coords[..., 1] * PRIMES[1]) ^ (coords[..., 2] * PRIMES[2])
        index = index & 0xFFFFFFFF  # uint32 arithmetic
    return index % size


class HashGridEncoding(nn.Module):
    """x in [0,1]^3 -> [N, n_levels * n_features_per_level] features."""

    def __init__(self, config: HashGridConfig):
        super().__init__()
        self.config = config
        self.scales, self.resolutions, self.sizes, self.offsets = level_layout(config)
        total = sum(self.sizes) * config.n_features_per_level
        self.params = nn.Parameter(torch.empty(total).uniform_(-1e-4, 1e-4))  # tinycudann's init
        self.n_output_dims = config.n_levels * config.n_features_per_level
        self.backend = self._choose_backend(config.backend)
        self._tcnn = None

    @staticmethod
    def _choose_backend(requested: str) -> str:
        if requested == "torch":
            return "torch"
        if tcnn_available():
            return "tcnn"
        if requested == "tcnn" or torch.cuda.is_available():
            warnings.warn("tinycudann is not importable; using the pure-PyTorch hash grid (about 7x slower "
                          "on GPU). Install it with: pip install "
                          "git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch", stacklevel=3)
        return "torch"

    def _tcnn_module(self):
        if self._tcnn is None:
            import tinycudann as tcnn

            c = self.config
            module = tcnn.Encoding(3, {"otype": "HashGrid", "n_levels": c.n_levels,
                                       "n_features_per_level": c.n_features_per_level,
                                       "log2_hashmap_size": c.log2_hashmap_size,
                                       "base_resolution": c.base_resolution,
                                       "per_level_scale": per_level_scale_of(c)}, dtype=torch.float32)
            if module.params.numel() != self.params.numel():
                raise RuntimeError(f"tinycudann hash grid has {module.params.numel()} parameters, the torch layout "
                                   f"{self.params.numel()}: versions disagree, set nerf.encoding.backend: torch")
            module.params = self.params  # one parameter, one state-dict key, for both back ends
            self._tcnn = [module]  # a list, so it is not registered as a submodule
        return self._tcnn[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "tcnn" and x.is_cuda:
            return self._tcnn_module()(x.contiguous()).float()
        return self.forward_torch(x)

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        features = self.config.n_features_per_level
        table = self.params.view(-1, features)
        corners = _CORNERS.to(x.device)
        outputs = []
        for scale, resolution, size, offset in zip(self.scales, self.resolutions, self.sizes, self.offsets):
            position = x * scale + 0.5
            floor = position.floor()
            fraction = position - floor
            coords = floor.long()[:, None, :] + corners[None]  # [N, 8, 3]
            index = grid_index(coords, resolution, size) + offset
            weights = torch.where(corners[None].bool(), fraction[:, None, :], 1 - fraction[:, None, :]).prod(-1)
            values = table[index.reshape(-1)].view(*index.shape, features)
            outputs.append((weights[..., None] * values).sum(1))
        return torch.cat(outputs, dim=-1)
