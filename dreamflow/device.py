"""Keeping a training step on the device, and which CUDA extensions can run here.

On a GPU every read of a device value (`.item()`, `float()`, `if tensor:`, `nonzero`, boolean-mask
indexing) and every copy of host data to the device makes the CPU wait for the whole queue. A
training step therefore draws its random numbers on the device, keeps its metrics as device scalars
(the trainer reads them all at once, `read_scalars`, only when it logs or checkpoints), and compacts
data-dependent selections into buffers whose sizes the host already knows (`compact_indices` with
`LaggedCapacity`).
"""

from __future__ import annotations

import collections
import importlib
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

log = logging.getLogger(__name__)

# "1": the pure-PyTorch hash grid and rasteriser even where tinycudann / nvdiffrast import (the
# simulated CUDA device of the tests sets it: the extensions cannot take its CPU tensors).
TORCH_BACKENDS_ENV = "DREAMFLOW_TORCH_BACKENDS"
_reported: set[tuple[str, str]] = set()


def torch_backends_forced() -> bool:
    """`DREAMFLOW_TORCH_BACKENDS=1`: `auto` back ends take the pure-PyTorch hash grid and rasteriser."""
    return os.environ.get(TORCH_BACKENDS_ENV) == "1"


def cuda_extension_problem(module: str) -> str | None:
    """Why the CUDA extension `module` ("tinycudann", "nvdiffrast.torch") cannot be used here, or None.

    Any exception of the import counts, not only ImportError: tinycudann raises another error when
    none of its built architectures matches the GPU. The reason is logged once.
    """
    if torch_backends_forced():
        return f"{TORCH_BACKENDS_ENV}=1 forces the pure-PyTorch back ends"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - whatever the import raises, the extension is unusable
        reason = f"import {module} failed: {type(error).__name__}: {str(error).strip()[:300]}"
        if (module, reason) not in _reported:
            _reported.add((module, reason))
            log.warning("%s; using the pure-PyTorch back end", reason)
        return reason
    return None


def use_cuda_extension(module: str, requested: str, name: str, fallback: str, stacklevel: int = 2) -> bool:
    """Whether a part runs on its CUDA extension `module`, for the back end `requested` in its config
    ("auto", `name` or "torch"): never for "torch", always when the extension is usable; otherwise it
    falls back to `fallback`, with a warning and the install command where the extension was asked for
    by name or a GPU is there to use it (`stacklevel` as the caller's own `warnings.warn` would take it)."""
    if requested == "torch":
        return False
    problem = cuda_extension_problem(module)
    if problem is None:
        return True
    if requested == name or (torch.cuda.is_available() and not torch_backends_forced()):
        warnings.warn(f"{module.split('.')[0]} is not usable ({problem}); using {fallback}. Install it with: "
                      "bash scripts/install_gpu_extensions.sh (see docs/guides/gpu.md)", stacklevel=stacklevel + 1)
    return False


def cuda_extension_available(module: str) -> bool:
    """True when CUDA is usable and the extension `module` imports (see `cuda_extension_problem`)."""
    return cuda_extension_problem(module) is None


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


def compact_indices(mask: torch.Tensor, size: int) -> torch.Tensor:
    """The flat indices of `mask`'s True entries, in order, in a buffer of `size` entries.

    Slots past the count hold `mask.numel()` (point gathers at a padding row, scatters at a slot that
    is dropped); entries past `size` are left out. Only cumsum and scatter: no host read on CUDA
    (unlike `nonzero`), and with `size` the exact count the result equals `mask.nonzero()`.
    """
    flat = mask.reshape(-1)
    slot = flat.cumsum(0) - 1
    slot = torch.where(flat & (slot < size), slot, size)
    out = torch.full((size + 1,), flat.numel(), dtype=torch.long, device=flat.device)
    return out.scatter_(0, slot, torch.arange(flat.numel(), device=flat.device))[:size]


def spare_to_first(index: torch.Tensor, total: int) -> torch.Tensor:
    """`compact_indices`'s result with its spare slots (value `total`) pointing at its first entry, a
    real one when there is any: spare slots then compute what a real entry computes (finite values
    and gradients), while scatters by the original index send their results to a dropped slot."""
    return torch.where(index < total, index, index[:1].clamp(max=total - 1))


@dataclass
class _Observed:
    recent: collections.deque  # host counts of recent calls (lists)
    pending: collections.deque = field(default_factory=collections.deque)  # (host copy, event, sizes used)


class LaggedCapacity:
    """Buffer sizes for data-dependent counts, chosen on the host without waiting for the GPU.

    `sizes(counts, limits, key)` gets this call's counts (a device integer tensor [k]) and returns
    host ints to compact them into. On the CPU the read costs nothing: the exact counts. On CUDA
    the first call of a `key` (a shape) reads them once; later calls return the largest count of the
    last `window` calls times `headroom`, rounded up to an eighth of a power of two and capped at
    `limits`. Counts come back by non-blocking copies read once their CUDA event has completed (a
    step or so later). A count above the size it was given means entries were dropped in that call:
    that is warned about, counted in `overflows`, and the next sizes cover it.
    """

    def __init__(self, name: str, headroom: float = 1.5, window: int = 32):
        self.name, self.headroom, self.window = name, headroom, window
        self.overflows = 0
        self._observed: dict[object, _Observed] = {}

    def sizes(self, counts: torch.Tensor, limits: list[int], key: object) -> list[int]:
        if counts.device.type != "cuda":
            return counts.tolist()
        observed = self._observed.get(key)
        if observed is None:  # once per shape: read the counts
            exact = counts.tolist()
            self._observed[key] = _Observed(collections.deque([exact], maxlen=self.window))
            return exact
        self._collect(observed)
        sizes = [min(limit, _round_up(max(column) * self.headroom))
                 for column, limit in zip(zip(*observed.recent), limits)]
        event = torch.cuda.Event()
        host = counts.to("cpu", non_blocking=True)
        event.record()
        observed.pending.append((host, event, sizes))
        return sizes

    def _collect(self, observed: _Observed) -> None:
        while observed.pending and observed.pending[0][1].query():
            host, _, used = observed.pending.popleft()
            counts = host.tolist()
            observed.recent.append(counts)
            if any(count > size for count, size in zip(counts, used)):
                self.overflows += 1
                warnings.warn(f"{self.name}: {counts} entries did not fit the buffer of {used} (a camera or "
                              "the scene changed faster than the sizes follow); that step left the rest out. "
                              "The sizes now cover it.", stacklevel=3)


def _round_up(value: float) -> int:
    """`value` rounded up to a multiple of 1/8 of its power of two (few distinct buffer sizes)."""
    if value <= 8:
        return max(1, math.ceil(value))
    step = 2 ** (math.floor(math.log2(value)) - 3)
    return int(math.ceil(value / step) * step)


__all__ = ["make_generator", "read_scalars", "GuardedCompile", "cuda_extension_problem", "cuda_extension_available",
           "use_cuda_extension", "compact_indices", "spare_to_first", "LaggedCapacity", "TORCH_BACKENDS_ENV", "torch_backends_forced"]
