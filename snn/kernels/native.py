"""The native CPU executor of the LIF family's fused nodes: a small C kernel, built on first use
and cached.

``snn/kernels/csrc/lif.c`` runs the fused node's algorithm (see :mod:`snn.kernels.fused`) for
ranges of neurons, for the LIF (:func:`forward`, :func:`backward`) and for the feed-forward
CubaLIF and ALIF (:func:`family_forward`, :func:`family_backward`: the same step with a current
or a threshold state switched on, see :mod:`snn.kernels.family`). Each neuron's time loop is
independent, so the neuron axis is split over ``torch.get_num_threads()`` threads, and they are
torch's own. The kernel runs its ranges as a
parallel region of the OpenMP runtime that torch loaded (its ``GOMP_parallel`` entry point,
found in this process and handed to the kernel), on the same team of threads as torch's
matmuls; where torch has no OpenMP runtime, each call starts and joins its own threads. It is
plain C with no PyTorch headers, so it builds in a few seconds with the system C compiler
(``$CC``, else ``cc``, ``gcc`` or ``clang``) and needs nothing else. The library is cached in
``$SNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/snn`` or ``~/.cache/snn``, under a name made from the
source, the compiler and the CPU, so a changed kernel or machine rebuilds it. The CubaLIF's and
ALIF's variants are a second library from the same source, built on their first use (it takes
several times as long: each variant is compiled for every surrogate and reset mode).

It covers CPU tensors of float32 and float64 with one of the built-in surrogates; anything else
(bf16, CUDA, a user's own surrogate) runs on the eager executor (the LIF) or the family's
PyTorch node (CubaLIF, ALIF). :func:`unavailable_reason` says
why it cannot run, or ``None`` when it can. Incoming gradients are read where autograd left
them, whatever their strides (a loss on a sum over time or batch hands backward a gradient with
stride 0 there): nothing of the ``[T, ...]`` size is copied.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import math
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from snn import surrogate as sg

__all__ = [
    "unavailable_reason", "forward", "backward", "family_forward", "family_backward",
    "SOURCE_DIR",
]  # fmt: skip

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
_SOURCES = ("lif.c", "lif_kernel.h")
_FLAGS = [
    "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-pthread",
]  # fmt: skip
_ABI = 6
# the family kernel's parameters and states, in the order of lif.c's P_* and S_* indices
PARAMETERS = ("beta", "v_th", "jump", "alpha", "g_cur", "g_in", "rho", "one_minus_rho", "adapt")
STATES = ("v", "i", "a")
# the family kernel's variants: the neuron with a current state, and the one with a threshold state
VARIANTS = {"cuba": 1, "alif": 2}
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
# the smallest neuron range worth a thread of its own
_MIN_NEURONS_PER_THREAD = 2048

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_build_error: str | None = None
# the family's variants (CubaLIF, ALIF) are a second build of the same source with SNN_FAMILY
# defined: several times the LIF's compile time, paid only by a program that runs them
_family_library: ctypes.CDLL | None = None
_family_build_error: str | None = None


def _surrogate_code(s: sg.Surrogate) -> tuple[int, float, float] | None:
    """The kernel's code and two constants for a built-in surrogate, or None for any other."""
    kind = type(s)
    if kind is sg.ATan:
        return 0, s.alpha / 2, math.pi * s.alpha / 2
    if kind is sg.FastSigmoid:
        return 1, 0.0, s.slope
    if kind is sg.Sigmoid:
        return 2, 0.0, s.slope
    if kind is sg.Triangle:
        return 3, 0.0, s.width
    if kind is sg.Rectangular:
        return 4, s.width / 2, s.width
    if kind is sg.StraightThrough:
        return 5, 0.0, 0.0
    return None


def _compiler() -> list[str] | None:
    """The C compiler command: ``$CC`` (which may carry arguments), else cc, gcc or clang.

    A ``$CC`` that cannot be found is an error, not a reason to use another compiler."""
    if os.environ.get("CC", "").strip():
        command = shlex.split(os.environ["CC"])
        if shutil.which(command[0]) is None:
            raise OSError(f"$CC={os.environ['CC']!r} is not an executable on PATH")
        return command
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    return None


def _cache_dir() -> Path:
    if os.environ.get("SNN_CACHE_DIR"):
        return Path(os.environ["SNN_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "snn"
    try:
        return Path.home() / ".cache" / "snn"
    except RuntimeError:  # no home directory (a container running as an arbitrary uid)
        return Path(tempfile.gettempdir()) / f"snn-{os.getuid()}"


def _cpu_features() -> str:
    """What -march=native compiles for: the CPU's model and instruction-set flags."""
    keys = ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part")
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    found = sorted({line for line in lines if line.split(":")[0].strip() in keys})
    return "\n".join(found) or f"{platform.processor()} {platform.platform()}"


def _build(family: bool = False) -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found (set $CC, or install gcc or clang)")
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for name in _SOURCES:
        key.update((SOURCE_DIR / name).read_bytes())
    flags = [*_FLAGS, "-DSNN_FAMILY"] if family else _FLAGS
    for part in (*cc, version, platform.machine(), _cpu_features(), *flags):
        key.update(part.encode() + b"\0")
    target = _cache_dir() / f"{'family' if family else 'lif'}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # build beside the target, then rename: another process never loads a half-written file
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            result = subprocess.run(
                [*cc, *flags, "-o", tmp, str(SOURCE_DIR / "lif.c"), "-lm"],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                first = (result.stderr.strip().splitlines() or ["(no output)"])[0]
                raise OSError(f"{' '.join(cc)} failed to build snn/kernels/csrc/lif.c: {first}")
            # mkstemp made it private; others sharing the cache must be able to load it
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o755 & ~umask)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    if lib.snn_lif_abi() != _ABI:
        raise OSError(f"{target} has ABI {lib.snn_lif_abi()}, expected {_ABI}; delete it")
    ptr, dbl, i32, i64 = ctypes.c_void_p, ctypes.c_double, ctypes.c_int, ctypes.c_int64
    for suffix in _SUFFIX.values():
        fn = getattr(lib, f"lif_forward_{suffix}")
        fn.argtypes = [*[ptr] * 9, i64, dbl, dbl, i32, i64, i64, i64, i32, i64]
        fn.restype = None
        fn = getattr(lib, f"lif_backward_{suffix}")
        grad = [ptr, i64, ptr]  # an incoming gradient: data, step, offsets (see lif_kernel.h)
        fn.argtypes = [*[ptr] * 3, *grad, *grad, *[ptr] * 8, i64, dbl, dbl, *[i32] * 3, dbl, dbl]
        fn.argtypes += [i64, i64, i64, i32, i64]
        fn.restype = ctypes.c_int
        if not family:
            continue
        # the family's: arrays of pointers (states, parameters) are passed by address
        fn = getattr(lib, f"family_forward_{suffix}")
        fn.argtypes = [ptr, i32, *[ptr] * 6, i64, dbl, dbl, i32, i64, i64, i64, i32, i64]
        fn.restype = ctypes.c_int
        fn = getattr(lib, f"family_backward_{suffix}")
        fn.argtypes = [ptr, i32, ptr, ptr, *grad, *grad, *[ptr] * 5, i64, dbl, dbl, *[i32] * 3]
        fn.argtypes += [dbl, dbl, i64, i64, i64, i32, i64]
        fn.restype = ctypes.c_int
    lib.snn_lif_use_openmp.argtypes = [ptr, ptr, ptr]
    entry_points = _openmp_entry_points()
    if entry_points is not None:
        lib.snn_lif_use_openmp(*entry_points)
    return lib


_OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")
_OPENMP_ENTRY_POINTS = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")


def _openmp_entry_points() -> tuple[int, int, int] | None:
    """The addresses of ``GOMP_parallel``, ``omp_get_thread_num`` and ``omp_get_num_threads`` in
    the OpenMP runtime torch runs its intra-op threads on, or ``None`` (torch has none, or it
    cannot be found): then the kernel starts threads of its own."""
    if not torch.backends.openmp.is_available():
        return None
    for library in _openmp_libraries():
        try:
            found = [getattr(library, name) for name in _OPENMP_ENTRY_POINTS]
        except AttributeError:
            continue
        return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in found)
    return None


def _openmp_libraries() -> list[ctypes.CDLL]:
    """Where torch's OpenMP runtime may be found, most certain first: the runtimes this process
    has mapped (one in torch's own folder first), then the process's global symbols. Opening a
    mapped library again hands back the loaded copy; nothing new is loaded."""
    torch_dir = str(Path(torch.__file__).resolve().parent)
    try:
        with open("/proc/self/maps") as maps:
            fields = [line.split(maxsplit=5) for line in maps]  # the 6th is the file's path
        paths = {f[5].strip() for f in fields if len(f) == 6}
    except OSError:  # not Linux
        paths = set()
    runtimes = [p for p in paths if Path(p).name.startswith(_OPENMP_RUNTIMES)]
    runtimes.sort(key=lambda p: (not p.startswith(torch_dir), p))
    libraries = []
    for path in [*runtimes, None]:
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:  # a mapped file since deleted or replaced
            pass
    return libraries


def _load(family: bool = False) -> ctypes.CDLL | None:
    global _library, _build_error, _family_library, _family_build_error
    with _lock:
        if family:
            if _family_library is None and _family_build_error is None:
                try:
                    _family_library = _build(family=True)
                except Exception as err:  # noqa: BLE001 - the family's PyTorch node runs instead
                    _family_build_error = f"{type(err).__name__}: {err}"
            return _family_library
        if _library is None and _build_error is None:
            try:
                _library = _build()
            except Exception as err:  # noqa: BLE001 - any failure means: run the eager executor
                _build_error = f"{type(err).__name__}: {err}"
        return _library


def unavailable_reason(x: Tensor, surrogate: sg.Surrogate, family: bool = False) -> str | None:
    """Why the native kernel cannot run on ``x`` with ``surrogate``; ``None`` if it can.
    ``family``: the CubaLIF's and ALIF's kernel (:func:`family_forward`), built on first use."""
    if not x.is_cpu:
        return f"it runs on CPU only, and the input is on {x.device}"
    if x.dtype not in _SUFFIX:
        return f"it supports float32 and float64, and the input is {x.dtype}"
    if _surrogate_code(surrogate) is None:
        return f"it knows the built-in surrogates only, not {type(surrogate).__name__}"
    if _load(family) is None:
        return f"the C kernel could not be built: {_family_build_error if family else _build_error}"
    return None


def _after_fork_in_child() -> None:
    # a forked child inherits the OpenMP runtime's record of its threads but not the threads:
    # a parallel region there waits for them forever (torch's own parallel operations hang in
    # such a child); the kernel starts threads of its own instead
    global _lock
    _lock = threading.Lock()
    for library in (_library, _family_library):
        if library is not None:
            library.snn_lif_use_openmp(None, None, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def _own_threads() -> Iterator[None]:
    """Within this block the kernel starts and joins threads of its own instead of running on
    torch's OpenMP team (the runner for a torch without OpenMP; here to compare the two)."""
    lib = _load()
    assert lib is not None, "check unavailable_reason() first"
    libraries = [lib] + ([_family_library] if _family_library is not None else [])
    for library in libraries:
        library.snn_lif_use_openmp(None, None, None)
    try:
        yield
    finally:
        for library in libraries:
            library.snn_lif_use_openmp(*(_openmp_entry_points() or (None, None, None)))


def _uses_openmp() -> bool:
    """Whether the kernel runs its ranges on torch's OpenMP threads (else on threads it starts)."""
    lib = _load()
    return lib is not None and bool(lib.snn_lif_uses_openmp())


def _split(n: int) -> tuple[int, int]:
    """Split neurons ``[0, n)`` into ranges, one per thread: ``(ranges, neurons per range)``."""
    threads = max(1, min(torch.get_num_threads(), n // _MIN_NEURONS_PER_THREAD))
    step = -(-n // threads)
    step = -(-step // 64) * 64  # whole cache lines per thread
    return max(1, -(-n // step)) if n else 0, step


def _parameters(
    params: tuple[Tensor | None, ...], shape: torch.Size, dtype: torch.dtype
) -> tuple[list[Tensor | None], int]:
    """The parameters as the kernel reads them (see ``csrc/lif_kernel.h``): one of a single
    value as it is (the kernel repeats it), any other expanded to the neurons' ``shape``, with
    its bit set in the returned mask."""
    values, per_neuron = [], 0
    for k, p in enumerate(params):
        if p is None or p.numel() == 1:
            values.append(p if p is None or p.dtype == dtype else p.to(dtype))
        else:
            values.append(p.to(dtype).expand(shape).contiguous())
            per_neuron |= 1 << k
    return values, per_neuron


# the arguments _call passes as they are (None: a NULL pointer); any other is a tensor or one of
# the two wrappers below
_PLAIN = (int, float, type(None))


def _call(name: str, dtype: torch.dtype, n: int, *args) -> None:
    """Run kernel ``name`` over the neurons on torch's threads; every tensor argument must stay
    alive (the caller holds it) and be contiguous; ``None`` becomes a NULL pointer."""
    lib = _load(family=name.startswith("family_"))
    assert lib is not None, "check unavailable_reason() first"
    fn = getattr(lib, f"{name}_{_SUFFIX[dtype]}")
    c_args = []
    for a in args:
        kind = type(a)
        if kind in _PLAIN:
            c_args.append(a)
        elif kind is _Gradient:
            c_args += [a.data, a.step, a.offsets]
        elif kind is _Pointers:
            a.check(dtype)
            c_args.append(a.address)
        else:
            _check(a, dtype, contiguous=True)
            c_args.append(a.data_ptr())
    if n == 0:
        return
    status = fn(*c_args, *_split(n))
    if status == -2:
        raise ValueError(f"snn's native family kernel runs the variants {tuple(VARIANTS)} only")
    if status:  # -1: malloc failed (the lif_forward kernels return nothing)
        raise MemoryError("snn's native LIF kernel could not allocate its chunk buffers")


def _check(a: Tensor, dtype: torch.dtype, contiguous: bool) -> None:
    # the kernel trusts these; a mismatch would read or write out of bounds
    if a.dtype != dtype or not a.is_cpu or (contiguous and not a.is_contiguous()):
        raise ValueError(
            f"snn's native kernel got a {a.dtype} tensor on {a.device} "
            f"(contiguous: {a.is_contiguous()}); it needs {'contiguous ' * contiguous}CPU {dtype}"
        )


def forward(
    current: Tensor,
    v0: Tensor | None,
    beta: Tensor,
    v_th: Tensor,
    jump: Tensor,
    v_rest: float,
    v_reset: float,
    reset: str,
    spikes: Tensor,
    membrane: Tensor | None,
    starts: Tensor,
    chunk: int,
) -> Tensor:
    """Run the forward time loop from ``v0`` (``None``: rest, ``v_rest``) into ``spikes``,
    ``membrane`` (or ``None``) and ``starts`` (the potential at the start of chunks 1, 2, ...);
    return the last potential."""
    v0, (beta, v_th, jump), per_neuron, n, steps = _prepare(current, v0, (beta, v_th, jump),
                                                            starts, chunk)  # fmt: skip
    _expect_size(steps * n, spikes=spikes, membrane=membrane)
    v_last = current.new_empty(current.shape[1:])
    _call(
        "lif_forward", current.dtype, n, current, v0, spikes, membrane, starts, v_last, beta,
        v_th, jump, per_neuron, float(v_rest), float(v_reset), _RESETS[reset], steps, n, chunk,
    )  # fmt: skip
    return v_last


def backward(
    current: Tensor,
    v0: Tensor | None,
    starts: Tensor,
    grad_spikes: Tensor | None,
    grad_membrane: Tensor | None,
    grad_v_last: Tensor | None,
    beta: Tensor,
    v_th: Tensor,
    jump: Tensor,
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: sg.Surrogate,
    chunk: int,
    need_beta: bool,
    need_v_th: bool,
    need_v0: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Reverse the time loop: ``(dL/dI [T, ...], dL/dv0, dL/dbeta, dL/dv_th)``, the last three
    ``None`` when not needed, the last two per neuron (state-shaped, summed over time)."""
    v0, (beta, v_th, jump), per_neuron, n, steps = _prepare(current, v0, (beta, v_th, jump),
                                                            starts, chunk)  # fmt: skip
    grad_spikes, grad_membrane = (
        _Gradient.of(g, current, name)
        for g, name in ((grad_spikes, "grad_spikes"), (grad_membrane, "grad_membrane"))
    )
    grad_v_last = None if grad_v_last is None else grad_v_last.contiguous()
    _expect_size(n, grad_v_last=grad_v_last)
    grad_current = torch.empty_like(current)
    shape = current.shape[1:]
    grad_v0, grad_beta, grad_v_th = (
        current.new_empty(shape) if need else None for need in (need_v0, need_beta, need_v_th)
    )
    code, c1, c2 = _surrogate_code(surrogate)
    _call(
        "lif_backward", current.dtype, n, current, v0, starts, grad_spikes, grad_membrane,
        grad_v_last, grad_current, grad_v0, grad_beta, grad_v_th, beta, v_th, jump, per_neuron,
        float(v_rest), float(v_reset), _RESETS[reset], int(detach_reset), code, float(c1),
        float(c2), steps, n, chunk,
    )  # fmt: skip
    return grad_current, grad_v0, grad_beta, grad_v_th


def _prepare(
    current: Tensor, v0: Tensor | None, params: tuple[Tensor, ...], starts: Tensor, chunk: int
) -> tuple[Tensor | None, list[Tensor | None], int, int, int]:
    """What forward and backward share: a contiguous ``v0`` (or ``None``), the parameters and
    their mask (:func:`_parameters`), the neuron and step counts, and the size checks on the
    input, ``v0`` and ``starts``."""
    steps = current.shape[0]
    n = current.numel() // steps if steps else 0
    if v0 is not None:
        v0 = v0.contiguous()
        _expect_size(n, v0=v0)
    _expect_size((-(-steps // chunk) - 1) * n, starts=starts)
    values, per_neuron = _parameters(params, current.shape[1:], current.dtype)
    return v0, values, per_neuron, n, steps


def _expect_size(numel: int, **tensors: Tensor | None) -> None:
    """Refuse a tensor whose size the kernel would get wrong (it walks raw memory)."""
    for name, t in tensors.items():
        if t is not None and t.numel() != numel:
            raise ValueError(
                f"snn's native kernel expected {name} of {numel} elements, got shape "
                f"{tuple(t.shape)}"
            )


class _Gradient:
    """An incoming ``[T, ...]`` gradient as the kernel reads it, in place (see ``struct grad`` in
    ``csrc/lif_kernel.h``): a data pointer, the elements from one step to the next, and the
    offsets of one step's elements, or none where a step is laid out contiguously.

    Autograd often hands backward a broadcast gradient: a loss on ``spikes.sum()`` gives one
    with stride 0 in every dimension, ``spikes.sum(1)`` one with stride 0 over the batch. A step
    stride of 0 is passed as one step (contiguous, at most one step's size); any other layout is
    read where it lies through the offsets (one integer per neuron). Nothing of the ``[T, ...]``
    size is copied."""

    def __init__(self, keep: list[Tensor], data: int | None, step: int, offsets: int | None):
        self.keep = keep  # the tensors behind the pointers, alive as long as this is
        self.data, self.step, self.offsets = data, step, offsets

    @classmethod
    def of(cls, grad: Tensor | None, current: Tensor, name: str) -> _Gradient:
        if grad is None:
            return cls([], None, 0, None)
        if grad.shape != current.shape:
            raise ValueError(
                f"snn's native kernel expected {name} of shape {tuple(current.shape)}, got "
                f"{tuple(grad.shape)}"
            )
        _check(grad, current.dtype, contiguous=False)
        if grad.stride(0) == 0 or grad.shape[0] == 1:
            one = grad[0].contiguous()
            return cls([one], one.data_ptr(), 0, None)
        if _steps_are_contiguous(grad):
            return cls([grad], grad.data_ptr(), grad.stride(0), None)
        offsets = torch.zeros(grad.shape[1:], dtype=torch.int64)
        for dim, (size, stride) in enumerate(zip(grad.shape[1:], grad.stride()[1:], strict=True)):
            view = [1] * offsets.dim()
            view[dim] = size
            offsets += (torch.arange(size) * stride).view(view)
        return cls([grad, offsets], grad.data_ptr(), grad.stride(0), offsets.data_ptr())


def _steps_are_contiguous(t: Tensor) -> bool:
    """Whether each step ``t[i]`` is laid out contiguously (``t[0].is_contiguous()``, without
    the indexing op)."""
    expected = 1
    for size, stride in zip(reversed(t.shape[1:]), reversed(t.stride()[1:]), strict=True):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


class _Pointers:
    """An array of pointers to contiguous tensors (``None``: NULL), for the family kernel's
    state and parameter arguments; it keeps the tensors alive as long as it lives."""

    def __init__(self, tensors: list[Tensor | None], numel: int | list[int], name: str) -> None:
        # numel: every tensor's size, or one per tensor
        self.tensors, self.name = tensors, name
        self.numels = numel if isinstance(numel, list) else [numel] * len(tensors)
        self.array = (ctypes.c_void_p * len(tensors))(
            *[None if t is None else t.data_ptr() for t in tensors]
        )
        self.address = ctypes.addressof(self.array)

    def check(self, dtype: torch.dtype) -> None:
        for t, numel in zip(self.tensors, self.numels, strict=True):
            if t is not None:
                _check(t, dtype, contiguous=True)
                _expect_size(numel, **{self.name: t})


def family_forward(
    x: Tensor,
    neuron: str,
    state0: tuple[Tensor | None, ...],
    params: dict[str, Tensor],
    v_rest: float,
    v_reset: float,
    reset: str,
    spikes: Tensor,
    membrane: Tensor | None,
    starts: tuple[Tensor | None, ...],
    chunk: int,
) -> tuple[Tensor | None, ...]:
    """The family neuron's forward time loop (see :mod:`snn.kernels.family`): ``neuron`` is
    ``"cuba"`` (the current state on) or ``"alif"`` (the threshold state on); ``state0`` is
    ``(v0, i0, a0)``, ``None`` for a state at rest (``v_rest``; 0 for the current and the
    adaptation) and for one the neuron lacks; ``params`` maps :data:`PARAMETERS` names to
    tensors of one value or one per neuron, broadcastable to a step of ``x`` (absent: the part
    is off); ``starts`` the states at the start of chunks 1, 2, ... (``None`` where a state is
    off). Writes ``spikes``, ``membrane`` (or ``None``) and ``starts``; returns the last states,
    ``None`` where a state is off."""
    variant, shape = _variant(neuron), x.shape[1:]
    n, steps = shape.numel(), x.shape[0]
    _expect_size(steps * n, x=x, spikes=spikes, membrane=membrane)
    on = (True, variant == 1, variant == 2)
    last = tuple(x.new_empty(shape) if state_on else None for state_on in on)
    starts_numel = (-(-steps // chunk) - 1) * n
    _call(
        "family_forward", x.dtype, n, x, variant, _Pointers(list(state0), n, "state0"), spikes,
        membrane, _Pointers(list(starts), starts_numel, "starts"), _Pointers(list(last), n, "last"),
        *_family_parameters(params, shape, x.dtype), float(v_rest), float(v_reset),
        _RESETS[reset], steps, n, chunk,
    )  # fmt: skip
    return last


def family_backward(
    x: Tensor,
    neuron: str,
    state0: tuple[Tensor | None, ...],
    starts: tuple[Tensor | None, ...],
    grad_spikes: Tensor | None,
    grad_membrane: Tensor | None,
    grad_last: tuple[Tensor | None, ...],
    params: dict[str, Tensor],
    need: set[str],
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: sg.Surrogate,
    chunk: int,
) -> tuple[Tensor, tuple[Tensor | None, ...], dict[str, Tensor]]:
    """Reverse :func:`family_forward`: ``(dL/dx, dL/d(v0, i0, a0), {name: dL/dparameter})``,
    for the :data:`STATES` and :data:`PARAMETERS` named in ``need`` (``None`` for a state not
    named), the parameters' gradients per neuron (summed over time)."""
    variant, shape = _variant(neuron), x.shape[1:]
    n, steps = shape.numel(), x.shape[0]
    _expect_size(steps * n, x=x)
    grad_spikes, grad_membrane = (
        _Gradient.of(g, x, name)
        for g, name in ((grad_spikes, "grad_spikes"), (grad_membrane, "grad_membrane"))
    )
    grad_last = [None if g is None else g.contiguous() for g in grad_last]
    grad_x = torch.empty_like(x)
    grad_state0 = tuple(x.new_empty(shape) if name in need else None for name in STATES)
    grads = {k: x.new_empty(shape) for k in PARAMETERS if k in need}
    code, c1, c2 = _surrogate_code(surrogate)
    starts_numel = (-(-steps // chunk) - 1) * n
    _call(
        "family_backward", x.dtype, n, x, variant, _Pointers(list(state0), n, "state0"),
        _Pointers(list(starts), starts_numel, "starts"), grad_spikes, grad_membrane,
        _Pointers(grad_last, n, "grad_last"), grad_x, _Pointers(list(grad_state0), n, "grads"),
        _Pointers([grads.get(k) for k in PARAMETERS], n, "grads"),
        *_family_parameters(params, shape, x.dtype), float(v_rest), float(v_reset),
        _RESETS[reset], int(detach_reset), code, float(c1), float(c2), steps, n, chunk,
    )  # fmt: skip
    return grad_x, grad_state0, grads


def _variant(neuron: str) -> int:
    if neuron not in VARIANTS:
        raise ValueError(f"the native family kernel runs {tuple(VARIANTS)}, got {neuron!r}")
    return VARIANTS[neuron]


def _family_parameters(
    params: dict[str, Tensor], shape: torch.Size, dtype: torch.dtype
) -> tuple[_Pointers, int]:
    """The family kernel's parameter arguments: the array of them, and the mask."""
    n = shape.numel()
    values, per_neuron = _parameters(tuple(params.get(k) for k in PARAMETERS), shape, dtype)
    sizes = [n if per_neuron >> k & 1 else 1 for k in range(len(values))]
    return _Pointers(values, sizes, "params"), per_neuron
