"""Timestep schedules: APFO's predetermined decreasing schedule and SDS/VSD's random draws."""

from __future__ import annotations

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


def apfo_span(step: int, iterations: int, blocks: int, steps_per_timestep: int | None = None) -> tuple[int, int]:
    """(i, j): optimisation `step` runs at grid point t_i and steps to t_j, for `blocks` = N intervals.

    The stage's iterations are spread over the N blocks (i = floor(step N / iterations)), so the last
    step always ends at t_N = t_min: with iterations >= N every block gets floor or ceil(iterations / N)
    steps and j = i + 1; with fewer iterations than blocks each step spans several blocks (a coarser
    grid on the same points, the same path length). `steps_per_timestep` (K), when set, must spend
    exactly the iterations: K * N == iterations.
    """
    if steps_per_timestep is not None and steps_per_timestep * blocks != iterations:
        raise ValueError(f"APFO's steps_per_timestep K = {steps_per_timestep} with {blocks} schedule blocks is "
                         f"{steps_per_timestep * blocks} iterations, but the stage has {iterations}: leave K unset "
                         "(null) to spread the iterations over the blocks, or make iterations = K * blocks")
    if not 0 <= step < iterations:
        raise ValueError(f"step {step} is outside the stage's {iterations} iterations")
    i = step * blocks // iterations
    return i, max(i + 1, (step + 1) * blocks // iterations)


def random_timesteps(batch: int, t_min: float, t_max: float, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """SDS/VSD: t ~ U(t_min, t_max), independently per view (drawn on `device`, the generator's)."""
    device = device if device is not None else (generator.device if generator is not None else "cpu")
    return t_min + (t_max - t_min) * torch.rand(batch, generator=generator, device=device)
