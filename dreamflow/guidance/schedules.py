"""Timestep schedules: APFO's predetermined decreasing schedule and SDS/VSD's random draws."""

from __future__ import annotations

import math

import torch


def apfo_timesteps(t_max: float, t_min: float, num_timesteps: int, shape: str,
                   alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The N+1 grid points t_0 = t_max > t_1 > ... > t_N = t_min of APFO's probability-flow path.

    * ``linear``: evenly spaced in t (the working form in docs/design.md §2);
    * ``sigma``: evenly spaced in log sigma, sigma = sqrt(1 - alphabar) / sqrt(alphabar), i.e. equal
      ratios of noise-to-signal, which spends more steps at low noise than ``linear``;
    * ``ddim``: DDIM's "trailing" spacing of integer timesteps (every 1000/N-th training step),
      restricted to [t_min, t_max].
    Returned as continuous t in [0, 1], strictly decreasing.
    """
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    steps = alphas_cumprod.shape[0]
    if shape == "linear":
        return torch.linspace(t_max, t_min, num_timesteps + 1)
    if shape == "sigma":
        sigma = ((1 - alphas_cumprod) / alphas_cumprod).sqrt().log().cpu()
        lo, hi = (sigma[int(round(t * (steps - 1)))].item() for t in (t_min, t_max))
        targets = torch.linspace(hi, lo, num_timesteps + 1)
        index = torch.searchsorted(sigma.contiguous(), targets).clamp(0, steps - 1).float()
        grid = index / (steps - 1)
        grid[0], grid[-1] = t_max, t_min
        return torch.cummin(grid, dim=0).values
    if shape == "ddim":
        stride = steps / num_timesteps
        integer = torch.arange(steps - 1, -1, -stride).round() / (steps - 1)
        inside = integer[(integer <= t_max) & (integer >= t_min)]
        return torch.cat([torch.tensor([t_max]), inside[(inside < t_max) & (inside > t_min)], torch.tensor([t_min])])
    raise ValueError(f"unknown APFO schedule {shape!r}; choose linear, sigma or ddim")


def apfo_position(step: int, iterations: int, grid: torch.Tensor, steps_per_timestep: int | None) -> tuple[int, int]:
    """(i, K): the schedule block of optimisation `step` and the steps spent at each t_i."""
    blocks = grid.shape[0] - 1
    per = steps_per_timestep or max(1, math.ceil(iterations / blocks))
    return min(step // per, blocks - 1), per


def random_timesteps(batch: int, t_min: float, t_max: float, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """SDS/VSD: t ~ U(t_min, t_max), independently per view (drawn on `device`, the generator's)."""
    device = device if device is not None else (generator.device if generator is not None else "cpu")
    return t_min + (t_max - t_min) * torch.rand(batch, generator=generator, device=device)
