"""The fused LIF's native CPU executor: a small C kernel, built on first use and cached.

``snn/kernels/csrc/lif.c`` runs the fused node's algorithm (see :mod:`snn.kernels.fused`) for a
range of neurons: each neuron's time loop is independent, so the neuron axis is split over
``torch.get_num_threads()`` Python threads (``ctypes`` releases the GIL during the call). It is
plain C with no PyTorch headers, so it builds in about a second with the system C compiler
(``$CC``, else ``cc`` or ``gcc``) and needs nothing else. The library is cached in
``$SNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/snn`` or ``~/.cache/snn``, under a name made from the
source, the compiler and the CPU, so a changed kernel or machine rebuilds it.

It covers CPU tensors of float32 and float64 with one of the built-in surrogates; anything else
(bf16, CUDA, a user's own surrogate) runs on the eager executor. :func:`unavailable_reason` says
why it cannot run, or ``None`` when it can.
"""

from __future__ import annotations

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
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import torch
from torch import Tensor

from snn import surrogate as sg

__all__ = ["unavailable_reason", "forward", "backward", "SOURCE_DIR"]

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
_SOURCES = ("lif.c", "lif_kernel.h")
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared"]
_ABI = 2
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
# the smallest neuron range worth a thread of its own
_MIN_NEURONS_PER_THREAD = 2048

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_build_error: str | None = None
_pool: ThreadPoolExecutor | None = None  # the threads that run neuron ranges side by side
_pool_size = 0


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


def _build() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found (set $CC, or install gcc or clang)")
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for name in _SOURCES:
        key.update((SOURCE_DIR / name).read_bytes())
    for part in (*cc, version, platform.machine(), _cpu_features(), *_FLAGS):
        key.update(part.encode() + b"\0")
    target = _cache_dir() / f"lif-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # build beside the target, then rename: another process never loads a half-written file
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            result = subprocess.run(
                [*cc, *_FLAGS, "-o", tmp, str(SOURCE_DIR / "lif.c"), "-lm"],
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
        fn.argtypes = [*[ptr] * 9, dbl, dbl, i32, *[i64] * 5]
        fn.restype = None
        fn = getattr(lib, f"lif_backward_{suffix}")
        fn.argtypes = [*[ptr] * 13, dbl, dbl, i32, i32, i32, dbl, dbl, *[i64] * 7]
        fn.restype = ctypes.c_int
    return lib


def _load() -> ctypes.CDLL | None:
    global _library, _build_error
    with _lock:
        if _library is None and _build_error is None:
            try:
                _library = _build()
            except Exception as err:  # noqa: BLE001 - any failure means: run the eager executor
                _build_error = f"{type(err).__name__}: {err}"
        return _library


def unavailable_reason(x: Tensor, surrogate: sg.Surrogate) -> str | None:
    """Why the native kernel cannot run on ``x`` with ``surrogate``; ``None`` if it can."""
    if x.device.type != "cpu":
        return f"it runs on CPU only, and the input is on {x.device}"
    if x.dtype not in _SUFFIX:
        return f"it supports float32 and float64, and the input is {x.dtype}"
    if _surrogate_code(surrogate) is None:
        return f"it knows the built-in surrogates only, not {type(surrogate).__name__}"
    if _load() is None:
        return f"the C kernel could not be built: {_build_error}"
    return None


def _ranges(n: int) -> list[tuple[int, int]]:
    """Split neurons ``[0, n)`` into one range per thread (none for an empty batch)."""
    if n == 0:
        return []
    threads = max(1, min(torch.get_num_threads(), n // _MIN_NEURONS_PER_THREAD))
    step = -(-n // threads)
    step = -(-step // 64) * 64  # whole cache lines per thread
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _run(fn, n: int) -> list:
    """``fn(i0, i1)`` over the neuron ranges: the first on this thread, the others on the pool."""
    global _pool, _pool_size
    ranges = _ranges(n)
    if len(ranges) <= 1:
        return [fn(*r) for r in ranges]
    with _lock:
        if _pool is None or _pool_size < len(ranges) - 1:
            _pool = ThreadPoolExecutor(max_workers=len(ranges) - 1, thread_name_prefix="snn-lif")
            _pool_size = len(ranges) - 1
        pool = _pool
    futures = [pool.submit(fn, *r) for r in ranges[1:]]
    try:
        first = fn(*ranges[0])
    finally:
        # the workers write into tensors the caller owns: never unwind (on Ctrl-C, say) before
        # they are done, or the memory is freed under them
        interrupted: BaseException | None = None
        while True:
            try:
                wait(futures)
                break
            except BaseException as err:  # noqa: BLE001 - re-raised below
                interrupted = interrupted or err
        if interrupted is not None:
            raise interrupted
    return [first, *(f.result() for f in futures)]


def _forget_pool_after_fork() -> None:
    # a forked child has the pool object but not its threads: waiting on it would hang
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _per_neuron(p: Tensor, like: Tensor) -> Tensor:
    return p.to(like.dtype).expand(like.shape).contiguous()


def _call(name: str, dtype: torch.dtype, n: int, *args) -> None:
    """Run kernel ``name`` over the neuron ranges; every tensor argument must stay alive (the
    caller holds it) and be contiguous; ``None`` becomes a NULL pointer."""
    lib = _load()
    assert lib is not None, "check unavailable_reason() first"
    fn = getattr(lib, f"{name}_{_SUFFIX[dtype]}")
    c_args = []
    for a in args:
        if isinstance(a, Tensor):
            # the kernel trusts these; a mismatch would read or write out of bounds
            if a.dtype != dtype or a.device.type != "cpu" or not a.is_contiguous():
                raise ValueError(
                    f"snn's native kernel got a {a.dtype} tensor on {a.device} "
                    f"(contiguous: {a.is_contiguous()}); it needs contiguous CPU {dtype}"
                )
            a = a.data_ptr()
        c_args.append(a)
    results = _run(lambda i0, i1: fn(*c_args, i0, i1), n)
    if any(results):  # only the backward returns a status: -1 when malloc failed
        raise MemoryError("snn's native LIF kernel could not allocate its chunk buffers")


def forward(
    current: Tensor,
    v0: Tensor,
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
    """Run the forward time loop into ``spikes``, ``membrane`` (or ``None``) and ``starts`` (the
    potential at the start of chunks 1, 2, ...); return the last potential."""
    v0, (beta, v_th, jump), n, steps = _prepare(current, v0, (beta, v_th, jump), starts, chunk)
    _expect_size(steps * n, spikes=spikes, membrane=membrane)
    v_last = torch.empty_like(v0)
    _call(
        "lif_forward", current.dtype, n, current, v0, spikes, membrane, starts, v_last, beta,
        v_th, jump, float(v_rest), float(v_reset), _RESETS[reset], steps, n, chunk,
    )  # fmt: skip
    return v_last


def backward(
    current: Tensor,
    v0: Tensor,
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
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Reverse the time loop: ``(dL/dI [T, ...], dL/dv0, dL/dbeta, dL/dv_th)``, the last two per
    neuron (state-shaped, summed over time) or ``None`` when not needed."""
    v0, (beta, v_th, jump), n, steps = _prepare(current, v0, (beta, v_th, jump), starts, chunk)
    (grad_spikes, gs_step), (grad_membrane, gm_step) = map(_per_step, (grad_spikes, grad_membrane))
    grad_v_last = None if grad_v_last is None else grad_v_last.contiguous()
    _expect_size(n, grad_v_last=grad_v_last)
    _expect_size(steps * n if gs_step else n, grad_spikes=grad_spikes)
    _expect_size(steps * n if gm_step else n, grad_membrane=grad_membrane)
    grad_current = torch.empty_like(current)
    grad_v0 = torch.empty_like(v0)
    grad_beta = torch.empty_like(v0) if need_beta else None
    grad_v_th = torch.empty_like(v0) if need_v_th else None
    code, c1, c2 = _surrogate_code(surrogate)
    _call(
        "lif_backward", current.dtype, n, current, v0, starts, grad_spikes, grad_membrane,
        grad_v_last, grad_current, grad_v0, grad_beta, grad_v_th, beta, v_th, jump,
        float(v_rest), float(v_reset), _RESETS[reset], int(detach_reset), code, float(c1),
        float(c2), gs_step, gm_step, steps, n, chunk,
    )  # fmt: skip
    return grad_current, grad_v0, grad_beta, grad_v_th


def _prepare(
    current: Tensor, v0: Tensor, params: tuple[Tensor, ...], starts: Tensor, chunk: int
) -> tuple[Tensor, tuple[Tensor, ...], int, int]:
    """What forward and backward share: a contiguous ``v0``, the per-neuron parameters expanded
    to its shape, the neuron and step counts, and the size checks on the input and ``starts``."""
    v0 = v0.contiguous()
    n, steps = v0.numel(), current.shape[0]
    _expect_size(steps * n, current=current)
    _expect_size((-(-steps // chunk) - 1) * n, starts=starts)
    return v0, tuple(_per_neuron(p, v0) for p in params), n, steps


def _expect_size(numel: int, **tensors: Tensor | None) -> None:
    """Refuse a tensor whose size the kernel would get wrong (it walks raw memory)."""
    for name, t in tensors.items():
        if t is not None and t.numel() != numel:
            raise ValueError(
                f"snn's native kernel expected {name} of {numel} elements, got shape "
                f"{tuple(t.shape)}"
            )


def _per_step(grad: Tensor | None) -> tuple[Tensor | None, int]:
    """An incoming ``[T, ...]`` gradient as the kernel reads it, and its elements per time step.

    A gradient that is the same at every step (a loss on the sum over time makes one, expanded
    with stride 0) is passed as its first step with a step of 0, not copied T times."""
    if grad is None:
        return None, 0
    if grad.stride(0) == 0:
        return grad[0].contiguous(), 0
    return grad.contiguous(), grad[0].numel()
