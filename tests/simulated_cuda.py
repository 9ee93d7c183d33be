"""Run CUDA code paths on the CPU and record every operation that would mix devices on a real GPU.

Tensors sent to "cuda" (`.to`, `.cuda`, factories with `device="cuda"`, modules moved with `.to`)
stay on the CPU but become `SimulatedCudaTensor`s, which report `device == cuda`, so code that
derives devices from tensors behaves as on a GPU. Every torch function that receives both a
simulated-CUDA tensor and a CPU tensor with one or more dimensions (what CUDA rejects; 0-dim CPU
tensors are allowed there), and every `.numpy()` of a CUDA tensor, is recorded with the
dreamflow frames that called it. The CUDA extensions are never chosen (`DREAMFLOW_TORCH_BACKENDS=1`):
they could not take these CPU tensors.

Within `counting_syncs()`, it records what would make the host wait for the GPU, twice, independently:
* `syncs`, at the Python API (a TorchFunctionMode): reading a CUDA tensor's value (`.item()`,
  `float()`, `int()`, `bool()`, `.tolist()`, `.numpy()`, a blocking copy to the CPU), functions whose
  output size depends on the data (`nonzero`, boolean-mask indexing and assignment,
  `masked_select`, `unique`, `bincount`, `repeat_interleave` without `output_size`, one-argument
  `where`) or that check their result on the host (`linalg.inv`, `equal`, ...), a CUDA tensor as
  `masked_fill`'s value, and `torch.cuda.synchronize`;
* `aten_syncs`, at the dispatcher (a TorchDispatchMode): the aten ops whose CUDA kernels read a
  value back (`_local_scalar_dense`, `nonzero`, `index`/`index_put_` with boolean indices,
  `bincount`, ...), so also those of autograd's own backward formulas, which the first count never
  sees (the backward of `x[mask]` is an `index_put_` with the mask); `.tolist()` and `.numpy()` of
  a CPU-backed tensor never reach the dispatcher and are caught by wrapping those two methods.
Both also look inside custom autograd Functions run on the simulated device, forward and backward
(torch hands those plain CPU tensors). `h2d` records blocking host-to-device copies: a CPU tensor
moved to CUDA, or a CUDA tensor made from Python data. A non-blocking copy to the CPU (read once
its CUDA event has completed, `torch.cuda.Event` is simulated) is not a wait.

Limits: CUDA-only numerics (fp16 kernels, tcnn, nvdiffrast) are not simulated; the op lists are
what torch's CUDA kernels did when written (2.11): a kernel that starts reading back is missed.
"""

from __future__ import annotations

import contextlib
import traceback
import weakref
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from dreamflow.device import TORCH_BACKENDS_ENV

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
# (`nonzero_static` is not here: its CUDA kernel reads the count on the device.)
SYNC_OPS = {torch.nonzero, torch.Tensor.nonzero, torch.argwhere, torch.Tensor.argwhere, torch.masked_select,
            torch.Tensor.masked_select, torch.unique, torch.Tensor.unique, torch.unique_consecutive,
            torch.Tensor.unique_consecutive, torch.bincount, torch.Tensor.bincount, torch.linalg.inv, torch.inverse,
            torch.Tensor.inverse, torch.linalg.cholesky, torch.cholesky, torch.linalg.solve, torch.linalg.eigh,
            torch.linalg.eig, torch.equal, torch.Tensor.equal, torch.allclose, torch.Tensor.allclose}
BOOL_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.index_put, torch.Tensor.index_put_,
                 torch.index_put}
HOST_DATA_FACTORIES = {torch.tensor, torch.as_tensor, torch.asarray}

# The second count's list, by aten op: kernels that read a value or a count back to the host on CUDA.
ATEN_SYNCS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::_unique", "aten::_unique2",
              "aten::unique_dim", "aten::unique_consecutive", "aten::unique_dim_consecutive", "aten::bincount",
              "aten::equal", "aten::_linalg_check_errors", "aten::linalg_eig"}
# Waits per call where a kernel reads back twice: CUDA bincount copies its input's min and max.
WAITS = {"bincount": 2}
ATEN_BOOL_INDEXING = {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}


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


class CudaStorages:
    """Which storages hold simulated-CUDA data, for the dispatcher-level count (there a tensor's class
    may be plain: inside custom Functions, and for what autograd's engine makes). A storage counts
    while a tensor registered with it is alive."""

    def __init__(self):
        self._refs: dict[int, list[weakref.ref]] = {}

    @staticmethod
    def _key(tensor: torch.Tensor) -> int | None:
        try:
            return tensor.untyped_storage()._cdata
        except (RuntimeError, NotImplementedError, TypeError):
            return None

    def add(self, tensor: torch.Tensor) -> None:
        key = self._key(tensor)
        if key is not None:
            refs = [r for r in self._refs.get(key, []) if r() is not None]
            self._refs[key] = refs + [weakref.ref(tensor)]

    def holds(self, tensor: torch.Tensor) -> bool:
        if isinstance(tensor, SimulatedCudaTensor):
            return True
        refs = self._refs.get(self._key(tensor), ())
        return any(r() is not None for r in refs)


STORAGES = CudaStorages()


def to_simulated(value):
    if isinstance(value, torch.Tensor) and not isinstance(value, SimulatedCudaTensor):
        return value.as_subclass(SimulatedCudaTensor)
    return value


def to_plain(value, on_device: bool = True):
    """The plain tensor of a simulated-CUDA one (registered as device data unless `on_device` is False)."""
    if isinstance(value, SimulatedCudaTensor):
        plain = value.as_subclass(torch.Tensor)
        if on_device:
            STORAGES.add(plain)
        return plain
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
        self.paused = False  # inside a custom autograd Function: no mixing checks (see `function_apply`)
        self.function_on_cuda = 0  # depth of custom Functions run on the simulated device (their tensors are plain)
        self.aten = AtenSyncCount(self)

    @property
    def aten_syncs(self) -> list[Violation]:
        return self.aten.syncs

    @contextlib.contextmanager
    def counting_syncs(self):
        """Record host waits and blocking copies, by both counts, until the block ends (then cleared first)."""
        self.syncs.clear()
        self.h2d.clear()
        self.aten.syncs.clear()
        self.counting = True
        try:
            with self.aten, self.aten.host_reads():
                yield self
        finally:
            self.counting = False

    def record(self, operation: str, into: list | None = None) -> None:
        (self.violations if into is None else into).append(Violation(operation, _dreamflow_frames()))

    def record_wait(self, operation: str) -> None:
        """An explicit wait for the device (torch.cuda.synchronize, an event's or a stream's)."""
        if self.counting:
            self.record(operation, self.syncs)
            self.aten.syncs.append(Violation(operation, _dreamflow_frames()))

    def _on_cuda(self, value) -> bool:
        return isinstance(value, SimulatedCudaTensor) or (self.function_on_cuda > 0 and isinstance(value, torch.Tensor))

    def _count(self, func, args, kwargs) -> None:
        """Record a synchronisation or a blocking host-to-device copy, while counting."""
        func = getattr(func, "__wrapped__", func)  # Tensor.tolist / .numpy while `host_reads` wraps them
        name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
        first = args[0] if args else None
        on_cuda = self._on_cuda(first)
        if func in SYNC_READS and on_cuda:
            self.record(f"{name} reads a CUDA value", self.syncs)
        elif func in SYNC_OPS and any(self._on_cuda(t) for t in tree_flatten((args, kwargs))[0]):
            for _ in range(WAITS.get(name.rsplit(".", 1)[-1], 1)):
                self.record(f"{name} (data-dependent size or host check)", self.syncs)
        elif func in BOOL_INDEXING and on_cuda:
            indices, _ = tree_flatten(args[1] if len(args) > 1 else kwargs.get("indices", ()))
            if any(_is_mask(i) for i in indices):
                self.record(f"{name} with a boolean mask", self.syncs)
        elif func in (torch.repeat_interleave, torch.Tensor.repeat_interleave) and on_cuda:
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            if isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None:
                self.record(f"{name} with tensor repeats", self.syncs)
            elif len(args) == 1 and not kwargs.get("repeats") and kwargs.get("output_size") is None:
                self.record(f"{name} of counts", self.syncs)  # repeat_interleave(counts): sums them on the host
        elif func is torch.where and len(args) == 1 and on_cuda:
            self.record("where(condition) (nonzero)", self.syncs)
        elif func in (torch.Tensor.masked_fill, torch.Tensor.masked_fill_, torch.masked_fill) and on_cuda:
            value = args[2] if len(args) > 2 else kwargs.get("value")
            if self._on_cuda(value):
                self.record(f"{name} with a CUDA value (read on the host)", self.syncs)
        elif func in HOST_DATA_FACTORIES and _is_cuda(kwargs.get("device")) and not isinstance(first, torch.Tensor):
            self.record(f"{name} of host data on CUDA (blocking copy)", self.h2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in DEVICE_QUERIES and isinstance(args[0], SimulatedCudaTensor):
            return DEVICE_QUERIES[func]
        if self.counting and (self.function_on_cuda or (not self.paused and torch._C._current_autograd_node() is None)):
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
        to_cuda = target.type == "cuda"
        crossing = isinstance(tensor, SimulatedCudaTensor) != to_cuda
        non_blocking = bool(options.get("non_blocking"))
        plain = to_plain(tensor)
        with self.aten.crossing(crossing and not to_cuda, non_blocking):
            result = plain.to(**options) if options else plain
            if crossing and result.data_ptr() == plain.data_ptr():
                result = result.clone()  # a real move copies; the source keeps its device
        if crossing and self.counting and not self.paused and plain.numel() > 0:
            if to_cuda:
                self.record(f"{plain.numel()}-element {plain.dtype} tensor copied to CUDA", self.h2d)
            elif not non_blocking:  # non-blocking: read after its event has completed (not a wait)
                self.record("CUDA tensor copied to the CPU", self.syncs)
        return to_simulated(result) if to_cuda else result


def _dreamflow_frames() -> list[str]:
    frames = [f"{f.filename.split('dreamflow/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_stack()
              if "/dreamflow/" in f.filename and "simulated_cuda" not in f.filename]
    return frames[-4:][::-1]


class AtenSyncCount(TorchDispatchMode):
    """The second count: aten ops that wait for a CUDA device, seen at the dispatcher.

    A tensor is on the device when it is a `SimulatedCudaTensor`, a plain view of one handed to a
    custom Function, or the output of an op with such an input (registered in `STORAGES` here: this
    is how gradients made by autograd's engine are known). `crossing` marks the simulation's copies
    to the CPU: one wait unless non-blocking, and their outputs are host data.
    """

    def __init__(self, simulation: SimulatedCuda):
        super().__init__()
        self.simulation = simulation
        self.syncs: list[Violation] = []
        self._to_host = False

    @contextlib.contextmanager
    def crossing(self, to_host: bool, non_blocking: bool):
        if not to_host:
            yield
            return
        if self.simulation.counting and not non_blocking:
            self.syncs.append(Violation("copy to the CPU", _dreamflow_frames()))
        self._to_host = True
        try:
            yield
        finally:
            self._to_host = False

    @contextlib.contextmanager
    def host_reads(self):
        """`.tolist()` / `.numpy()` of a CUDA tensor: reads the dispatcher never sees here (the data is
        on the CPU), caught by wrapping the two methods of `torch.Tensor` (the API count sees them
        through the torch-function mode instead; the wrapped method is found before that mode runs)."""
        originals = {name: vars(torch.Tensor).get(name) for name in ("tolist", "numpy")}

        depth = [0]  # torch's own handling calls the wrapped method again: count the outermost call

        def wrap(name):
            method = getattr(torch._C.TensorBase, name)

            def read(tensor, *args, **kwargs):
                if depth[0] == 0 and STORAGES.holds(tensor):
                    self.syncs.append(Violation(f"Tensor.{name} reads a CUDA value", _dreamflow_frames()))
                depth[0] += 1
                try:
                    return method(tensor, *args, **kwargs)
                finally:
                    depth[0] -= 1

            read.__wrapped__ = method  # what the torch-function mode then receives, unwrapped in `_count`
            return read

        for name in originals:
            setattr(torch.Tensor, name, wrap(name))
        try:
            yield
        finally:
            for name, original in originals.items():
                if original is None:
                    delattr(torch.Tensor, name)
                else:
                    setattr(torch.Tensor, name, original)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_device = [STORAGES.holds(t) for t in inputs]
        name = func._schema.name
        if any(on_device) and not self._to_host:
            reason = self._waits(name, args, kwargs, inputs, on_device)
            if reason:
                for _ in range(WAITS.get(name.split("::")[-1], 1)):
                    self.syncs.append(Violation(f"{func} {reason}", _dreamflow_frames()))
        out = func(*args, **kwargs)
        if any(on_device) and not self._to_host and name != "aten::copy_":  # copy_ returns its destination
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor):
                    STORAGES.add(tensor)
        return out

    @staticmethod
    def _waits(name: str, args, kwargs, inputs, on_device) -> str | None:
        if name in ATEN_SYNCS:
            return "reads back from the device"
        if name in ATEN_BOOL_INDEXING:
            indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
            if any(_is_mask(i) for i in indices if i is not None):
                return "with a boolean index (nonzero)"
        if name == "aten::repeat_interleave" and kwargs.get("output_size") is None:
            if len(args) < 2 or isinstance(args[1], torch.Tensor):
                return "without output_size (sums the repeats on the host)"
        if name in ("aten::masked_fill", "aten::masked_fill_") and len(args) > 2 and isinstance(args[2], torch.Tensor):
            return "with a device value (read on the host)"
        if name == "aten::copy_" and on_device[1:] and on_device[1] and not on_device[0] and not kwargs.get("non_blocking"):
            return "into host memory"
        return None


class _NoStream:
    """What optimizers ask of the current CUDA stream (not capturing a CUDA graph)."""

    def is_capturing(self) -> bool:
        return False

    def __init__(self, mode: SimulatedCuda | None = None):
        self.mode = mode

    def synchronize(self) -> None:
        if self.mode is not None:
            self.mode.record_wait("stream.synchronize()")


class _SimulatedEvent:
    """`torch.cuda.Event`: recorded work is always complete (the simulation runs synchronously)."""

    def __init__(self, mode: SimulatedCuda, *args, **kwargs):
        self.mode = mode

    def record(self, stream=None) -> None:
        return None

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        self.mode.record_wait("event.synchronize()")

    def wait(self, stream=None) -> None:
        return None  # a device-side wait between streams, not a host one


@contextlib.contextmanager
def simulated_cuda(monkeypatch):
    """Enter the simulation: `torch.cuda` says one device is there; yields the mode (its `violations`)."""
    mode = SimulatedCuda()
    monkeypatch.setenv(TORCH_BACKENDS_ENV, "1")  # tinycudann / nvdiffrast could not take these CPU tensors
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name in ("empty_cache", "reset_peak_memory_stats", "manual_seed", "manual_seed_all"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: mode.record_wait("torch.cuda.synchronize()"))
    monkeypatch.setattr(torch.cuda, "Event", lambda *a, **k: _SimulatedEvent(mode, *a, **k))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "simulated CUDA device")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(torch.accelerator, "current_stream", lambda *a, **k: _NoStream(mode))
    monkeypatch.setattr(torch, "Generator", SimulatedCudaGenerator)
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # Module.to keeps the tensor subclass
    original_apply = vars(torch.autograd.Function)["apply"]  # a C-level classmethod
    on_device: set[type] = set()

    def run_on_device(cls: type) -> None:
        """Make `cls`'s forward mark its ctx, and its backward count as device code for such a ctx."""
        if cls in on_device:
            return
        on_device.add(cls)
        forward, backward = cls.forward, cls.backward

        def marked_forward(ctx, *args, **kwargs):
            ctx.simulated_cuda = mode.function_on_cuda > 0  # (a Function may also run on CPU tensors)
            return forward(ctx, *args, **kwargs)

        def device_backward(ctx, *grads):
            if not getattr(ctx, "simulated_cuda", False):
                return backward(ctx, *grads)
            # Autograd's engine runs backward with no torch-function mode: enter it again, as device code.
            mode.function_on_cuda += 1
            paused, mode.paused = mode.paused, True
            try:
                with mode:
                    return backward(ctx, *grads)
            finally:
                mode.function_on_cuda -= 1
                mode.paused = paused

        if "setup_context" not in vars(cls):  # forward(ctx, ...) style (all of dreamflow's Functions)
            monkeypatch.setattr(cls, "forward", staticmethod(marked_forward))
        monkeypatch.setattr(cls, "backward", staticmethod(device_backward))

    def function_apply(cls, *args, **kwargs):
        # Inside a custom Function, torch hands the subclass's ops back as plain tensors: run it on
        # plain inputs (all on the simulated device, as CUDA requires) and put its outputs back there.
        if not mode.check_function_apply(cls, args):
            return original_apply.__get__(None, cls)(*args, **kwargs)
        run_on_device(cls)
        mode.paused = True
        mode.function_on_cuda += 1
        try:
            outputs = original_apply.__get__(None, cls)(*(to_plain(a) for a in args), **kwargs)
        finally:
            mode.paused = False
            mode.function_on_cuda -= 1
        return tree_map(to_simulated, outputs)

    monkeypatch.setattr(torch.autograd.Function, "apply", classmethod(function_apply))
    original_load = torch.load

    def load(*args, **kwargs):  # checkpoints of CUDA tensors loaded with map_location="cpu" are on the CPU
        result = original_load(*args, **kwargs)
        cpu = kwargs.get("map_location") in ("cpu", torch.device("cpu"))
        return tree_map(lambda value: to_plain(value, on_device=False), result) if cpu else result

    monkeypatch.setattr(torch, "load", load)
    try:
        with mode:
            yield mode
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
