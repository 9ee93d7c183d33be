"""Keeping a training step on the device: generators that draw there, and one host read per log.

On a GPU every read of a device value (`.item()`, `float()`, `if tensor:`) and every copy of host
data to the device makes the CPU wait for the whole queue. A training step therefore draws its
random numbers on the device, keeps its metrics as device scalars, and the trainer reads them all
at once (`read_scalars`) only when it logs or checkpoints.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch


def make_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A seeded generator that draws on `device` (on the CPU, the same stream as torch.Generator())."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def read_scalars(values: dict[str, float | int | torch.Tensor]) -> dict[str, float]:
    """`values` as Python floats, with a single host read for all of its tensors (scalars each)."""
    out: dict[str, float] = {}
    by_device: dict[torch.device, dict[str, torch.Tensor]] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            by_device.setdefault(value.device, {})[key] = value
        else:
            out[key] = float(value)
    for tensors in by_device.values():  # one read per device (CPU reads cost nothing)
        stacked = torch.stack([value.detach().reshape(()).float() for value in tensors.values()])
        out |= dict(zip(tensors, stacked.tolist()))
    return {key: out[key] for key in values}


class GuardedCompile:
    """`torch.compile(function)` that falls back to `function` with a warning if compiling or running
    the compiled graph fails (a missing C++ compiler, an unsupported op), instead of stopping a run."""

    def __init__(self, function: Callable, name: str):
        self.function, self.name = function, name
        self.compiled: Callable | None = torch.compile(function, dynamic=True)

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - any compile failure: run eagerly, say so once
                warnings.warn(f"torch.compile of {self.name} failed ({type(error).__name__}: {str(error)[:200]}); "
                              "running it without compiling", stacklevel=2)
                self.compiled = None
        return self.function(*args, **kwargs)


__all__ = ["make_generator", "read_scalars", "GuardedCompile"]
