"""Run CUDA code paths on the CPU and record every operation that would mix devices on a real GPU.

Tensors sent to "cuda" (`.to`, `.cuda`, factories with `device="cuda"`, modules moved with `.to`)
stay on the CPU but become `SimulatedCudaTensor`s, which report `device == cuda`, so code that
derives devices from tensors behaves as on a GPU. Every torch function that receives both a
simulated-CUDA tensor and a CPU tensor with one or more dimensions (what CUDA rejects; 0-dim CPU
tensors are allowed there), and every `.numpy()` of a CUDA tensor, is recorded with the
dreamflow frames that called it.

It also records what would make the host wait for the GPU (`syncs`): reading a CUDA tensor's
value (`.item()`, `float()`, `bool()`, `.tolist()`, a copy to the CPU), and operations whose output
size depends on the data (`nonzero`, boolean-mask indexing, `masked_select`, `unique`, `bincount`,
`repeat_interleave` with tensor repeats) or that check their result on the host (`linalg.inv`);
and every blocking host-to-device copy (`h2d`): a CPU tensor moved to CUDA, or a CUDA tensor made
from Python data. `counting` switches both records on (the tests count a training step's).

Limits: code inside autograd backward passes is not checked (the engine hands it plain tensors);
CUDA-only numerics (fp16 kernels, tcnn, nvdiffrast) are not simulated.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
MOVES = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu}
# Functions that look at tensors of several devices without computing with them.
NOT_COMPUTING = {torch._has_compatible_shallow_copy_type, torch.Tensor.copy_}


def _is_cuda(device) -> bool:
    return isinstance(device, (str, torch.device)) and torch.device(device).type == "cuda"


# Reading a CUDA tensor's value on the host waits for every queued kernel.
SYNC_READS = {torch.Tensor.item, torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__bool__,
              torch.Tensor.__index__, torch.Tensor.tolist, torch.Tensor.numpy}
# Output size depends on the data (the host must read it), or the result is checked on the host.
SYNC_OPS = {torch.nonzero, torch.Tensor.nonzero, torch.argwhere, torch.masked_select, torch.Tensor.masked_select,
            torch.unique, torch.Tensor.unique, torch.unique_consecutive, torch.bincount, torch.Tensor.bincount,
            torch.linalg.inv, torch.inverse, torch.Tensor.inverse, torch.nonzero_static}
HOST_DATA_FACTORIES = {torch.tensor, torch.as_tensor, torch.asarray}


class SimulatedCudaGenerator(torch.Generator):
    """`torch.Generator(device="cuda")` in the simulation: a CPU generator standing for a CUDA one."""

    def __new__(cls, device=None):
        return super().__new__(cls, "cpu")

    def __init__(self, device=None):
        super().__init__()
        self.simulated_device = torch.device(device) if device is not None else torch.device("cpu")


def _on_simulated_cuda(generator) -> bool:
    return getattr(generator, "simulated_device", torch.device("cpu")).type == "cuda"


def _is_mask(index) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


DEVICE_QUERIES = {torch.Tensor.device.__get__: CUDA, torch.Tensor.is_cuda.__get__: True, torch.Tensor.get_device: 0}


class SimulatedCudaTensor(torch.Tensor):
    """A CPU tensor that says it lives on the GPU."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in DEVICE_QUERIES:
            return DEVICE_QUERIES[func]
        return super().__torch_function__(func, types, args, kwargs or {})


def to_simulated(value):
    if isinstance(value, torch.Tensor) and not isinstance(value, SimulatedCudaTensor):
        return value.as_subclass(SimulatedCudaTensor)
    return value


def to_plain(value):
    if isinstance(value, SimulatedCudaTensor):
        return value.as_subclass(torch.Tensor)
    return value


@dataclass
class Violation:
    operation: str
    where: list[str]

    def __str__(self) -> str:
        return f"{self.operation} at " + " <- ".join(self.where)


class SimulatedCuda(TorchFunctionMode):
    """The mode; use `simulated_cuda()` to enter it with `torch.cuda` patched."""

    def __init__(self):
        super().__init__()
        self.violations: list[Violation] = []
        self.syncs: list[Violation] = []  # host waits for the GPU (recorded while `counting`)
        self.h2d: list[Violation] = []  # blocking host-to-device copies (recorded while `counting`)
        self.counting = False
        self.paused = False  # inside a custom autograd Function (see `_function_apply`)

    def record(self, operation: str, into: list | None = None) -> None:
        frames = [f"{f.filename.split('dreamflow/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_stack()
                  if "/dreamflow/" in f.filename and "simulated_cuda" not in f.filename]
        (self.violations if into is None else into).append(Violation(operation, frames[-4:][::-1]))

    def _count(self, func, args, kwargs) -> None:
        """Record a synchronisation or a blocking host-to-device copy, while counting."""
        name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
        first = args[0] if args else None
        on_cuda = isinstance(first, SimulatedCudaTensor)
        if func in SYNC_READS and on_cuda:
            self.record(f"{name} reads a CUDA value", self.syncs)
        elif func in SYNC_OPS and any(isinstance(t, SimulatedCudaTensor) for t in tree_flatten((args, kwargs))[0]):
            self.record(f"{name} (data-dependent size or host check)", self.syncs)
        elif func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and on_cuda:
            indices, _ = tree_flatten(args[1] if len(args) > 1 else ())
            if any(_is_mask(i) for i in indices):
                self.record(f"{name} with a boolean mask", self.syncs)
        elif func in (torch.repeat_interleave, torch.Tensor.repeat_interleave) and on_cuda:
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            if isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None:
                self.record(f"{name} with tensor repeats", self.syncs)
        elif func in HOST_DATA_FACTORIES and _is_cuda(kwargs.get("device")) and not isinstance(first, torch.Tensor):
            self.record(f"{name} of host data on CUDA (blocking copy)", self.h2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in DEVICE_QUERIES and isinstance(args[0], SimulatedCudaTensor):
            return DEVICE_QUERIES[func]
        if self.counting and not self.paused and torch._C._current_autograd_node() is None:
            self._count(func, args, kwargs)
        if func == torch.Tensor.grad.__get__ and isinstance(args[0], SimulatedCudaTensor):  # (a new wrapper each access)
            return to_simulated(func(*args))  # the autograd engine's gradients of a CUDA tensor are on CUDA
        if func in MOVES:
            return self._move(func, args, kwargs)
        generator = kwargs.get("generator")
        if _is_cuda(kwargs.get("device")):  # a factory: torch.zeros(..., device="cuda")
            if generator is not None and not _on_simulated_cuda(generator):
                self.record(f"{getattr(func, '__name__', func)} with a CPU generator for a CUDA tensor")
            kwargs = {**kwargs, "device": "cpu"}
            return tree_map(to_simulated, func(*args, **kwargs))
        if generator is not None and _on_simulated_cuda(generator):  # CUDA would refuse a CPU tensor from it
            self.record(f"{getattr(func, '__name__', func)} draws from a CUDA generator onto the CPU")
        if func is torch.Tensor.numpy and isinstance(args[0], SimulatedCudaTensor):
            self.record("Tensor.numpy of a CUDA tensor")
        elif not self.paused and torch._C._current_autograd_node() is None:
            self._check_mixing(func, args, kwargs)
        return func(*args, **kwargs)

    def check_function_apply(self, function: type, args) -> bool:
        """Before a custom autograd Function: record mixed inputs; True when it runs on (simulated) CUDA."""
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        on_cuda = [isinstance(t, SimulatedCudaTensor) for t in tensors]
        if any(on_cuda) and any(not c and t.dim() > 0 for t, c in zip(tensors, on_cuda)):
            self.record(f"{function.__name__}.apply mixes CUDA and CPU tensors")
        return any(on_cuda)

    def _check_mixing(self, func, args, kwargs) -> None:
        if func in NOT_COMPUTING:  # copy_ crosses devices legally
            return
        if func is torch.Tensor.__getitem__:  # a CUDA tensor may be indexed with CPU indices, not vice versa
            indices, _ = tree_flatten(args[1:])
            if not isinstance(args[0], SimulatedCudaTensor) and any(isinstance(i, SimulatedCudaTensor) for i in indices):
                self.record("indexing a CPU tensor with CUDA indices")
            return
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        simulated = [isinstance(t, SimulatedCudaTensor) for t in tensors]
        if func is torch.Tensor.__setitem__:
            tensors, simulated = [tensors[0], tensors[-1]], [simulated[0], simulated[-1]]  # target and value
        if any(simulated) and any(not s and t.dim() > 0 for t, s in zip(tensors, simulated)):
            self.record(f"{getattr(func, '__qualname__', func)} mixes CUDA and CPU tensors")

    def _move(self, func, args, kwargs):
        """`.to` / `.cuda` / `.cpu`: copy across the simulated boundary, or return the tensor as torch does."""
        tensor, positional, options = args[0], list(args[1:]), {}
        if func is torch.Tensor.cuda:
            target = CUDA
        elif func is torch.Tensor.cpu:
            target = torch.device("cpu")
        else:  # to(device=None, dtype=None, non_blocking=False, copy=False) | to(dtype, ...) | to(other, ...)
            target = kwargs.get("device")
            if positional and (positional[0] is None or isinstance(positional[0], (str, torch.device, int))):
                target = positional.pop(0) if target is None else target
            elif positional and isinstance(positional[0], torch.Tensor):
                other = positional.pop(0)
                target, options["dtype"] = other.device, other.dtype
            options.update(zip(("dtype", "non_blocking", "copy"), positional))
            options.update({k: v for k, v in kwargs.items() if k != "device"})
            options = {k: v for k, v in options.items() if v is not None}
            target = torch.device(target) if target is not None else None
        if target is None:  # a dtype change only: the device stays
            return func(*args, **kwargs)
        plain = to_plain(tensor)
        result = plain.to(**options) if options else plain
        to_cuda = target.type == "cuda"
        if isinstance(tensor, SimulatedCudaTensor) == to_cuda:  # already there
            return to_simulated(result) if to_cuda else result
        if result.data_ptr() == plain.data_ptr():
            result = result.clone()  # a real move copies; the source keeps its device
        if self.counting and not self.paused and plain.numel() > 0:
            if to_cuda:
                self.record(f"{plain.numel()}-element {plain.dtype} tensor copied to CUDA", self.h2d)
            else:
                self.record("CUDA tensor copied to the CPU", self.syncs)
        return to_simulated(result) if to_cuda else result


class _NoStream:
    """What optimizers ask of the current CUDA stream (not capturing a CUDA graph)."""

    def is_capturing(self) -> bool:
        return False

    def synchronize(self) -> None:
        return None


@contextlib.contextmanager
def simulated_cuda(monkeypatch):
    """Enter the simulation: `torch.cuda` says one device is there; yields the mode (its `violations`)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name in ("synchronize", "empty_cache", "reset_peak_memory_stats", "manual_seed", "manual_seed_all"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "simulated CUDA device")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(torch.accelerator, "current_stream", lambda *a, **k: _NoStream())
    monkeypatch.setattr(torch, "Generator", SimulatedCudaGenerator)
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # Module.to keeps the tensor subclass
    mode = SimulatedCuda()
    original_apply = vars(torch.autograd.Function)["apply"]  # a C-level classmethod

    def function_apply(cls, *args, **kwargs):
        # Inside a custom Function, torch hands the subclass's ops back as plain tensors: run it on
        # plain inputs (all on the simulated device, as CUDA requires) and put its outputs back there.
        if not mode.check_function_apply(cls, args):
            return original_apply.__get__(None, cls)(*args, **kwargs)
        mode.paused = True
        try:
            outputs = original_apply.__get__(None, cls)(*(to_plain(a) for a in args), **kwargs)
        finally:
            mode.paused = False
        return tree_map(to_simulated, outputs)

    monkeypatch.setattr(torch.autograd.Function, "apply", classmethod(function_apply))
    original_load = torch.load

    def load(*args, **kwargs):  # checkpoints of CUDA tensors loaded with map_location="cpu" are on the CPU
        result = original_load(*args, **kwargs)
        cpu = kwargs.get("map_location") in ("cpu", torch.device("cpu"))
        return tree_map(to_plain, result) if cpu else result

    monkeypatch.setattr(torch, "load", load)
    try:
        with mode:
            yield mode
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
