"""The native kernel's threads: it splits the neurons over torch's thread count and runs the
ranges on torch's own OpenMP threads (or threads it starts and joins, where torch has no OpenMP
runtime), and no split changes a bit.
"""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _backends import needs_cc

import snn
from snn.functional import LIFParameters, lif_sequence
from snn.kernels import native

pytestmark = needs_cc

# 6600 neurons: 3 ranges at 3 threads (2240 + 2240 + 2120), 2 at 2 (3328 + 3272), each several
# 256-neuron tiles plus a partial one; 100 steps: three 32-step chunks plus a partial one
T, B, N = 100, 2, 3300
REPEATS = 4  # threads that trample each other's buffers do not always overlap: run it again
RUNNERS = ["openmp", "own threads"]


def _use_runner(runner: str) -> None:
    """Point the kernel at torch's OpenMP runtime, or at threads of its own."""
    lib = native._load()
    found = native._openmp_entry_points() if runner == "openmp" else None
    if runner == "openmp" and found is None:
        pytest.skip("torch has no OpenMP runtime here")
    lib.snn_lif_use_openmp(*(found or (None, None, None)))
    assert lib.snn_lif_uses_openmp() == (runner == "openmp")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    _use_runner("openmp" if native._openmp_entry_points() else "own threads")


def _case(dtype):
    g = torch.Generator().manual_seed(7)

    def rand(*shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=dtype)

    p = LIFParameters(
        beta=rand(N, lo=0.6, hi=0.95).requires_grad_(),
        v_th=rand(N, lo=0.7, hi=1.2).requires_grad_(),
        v_rest=0.1,
        v_reset=-0.2,
    )
    x = rand(T, B, N, lo=-0.3, hi=0.9).requires_grad_()
    v0 = rand(B, N, lo=-0.5, hi=1.0).requires_grad_()
    weights = [rand(T, B, N, lo=-1, hi=1), rand(B, N, lo=-1, hi=1), rand(T, B, N, lo=-1, hi=1)]
    return x, v0, p, weights


def _run(backend, x, v0, p, weights):
    out = lif_sequence(x, v0, p, record_membrane=True, backend=backend)
    loss = sum((w * o).sum() for w, o in zip(weights, out, strict=True))
    return out, torch.autograd.grad(loss, [x, v0, p.beta, p.v_th])


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_thread_count_gives_the_same_bits(restore_threads, runner, dtype):
    """Native at 1, 2 and 3 threads, and eager at each: spikes, states and membranes equal bit
    for bit; native's gradients equal bit for bit across thread counts (each neuron's arithmetic
    is the same whichever thread runs it) and agree with eager's to rounding."""
    _use_runner(runner)
    x, v0, p, weights = _case(dtype)
    results = {}
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        assert native._split(B * N)[0] == threads  # the neurons really are cut in `threads`
        results["eager", threads] = _run("eager", x, v0, p, weights)
        for repeat in range(REPEATS):
            results["native", threads, repeat] = _run("native", x, v0, p, weights)
    (out_ref, grads_ref) = results["native", 1, 0]
    assert out_ref.spikes.sum() > 0 and (1 - out_ref.spikes).sum() > 0
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for (backend, *run), (out, grads) in results.items():
        for a, b in zip(out, out_ref, strict=True):
            assert torch.equal(a, b), (backend, *run)
        for g, r in zip(grads, grads_ref, strict=True):
            if backend == "native":
                assert torch.equal(g, r), (backend, *run)
            else:
                torch.testing.assert_close(g, r, rtol=tol, atol=tol)


def _mapped_openmp_runtimes() -> set[str]:
    with open("/proc/self/maps") as maps:
        paths = {f[5].strip() for f in (line.split(maxsplit=5) for line in maps) if len(f) == 6}
    return {p for p in paths if Path(p).name.startswith(native._OPENMP_RUNTIMES)}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")
@pytest.mark.skipif(not torch.backends.openmp.is_available(), reason="torch without OpenMP")
def test_the_ranges_run_on_torchs_own_openmp_runtime(restore_threads):
    """The kernel runs its ranges as parallel regions of the runtime torch loaded (no second
    runtime in the process), and no thread is left behind by a call: after torch's own team has
    started, a two-thread LIF adds no thread to the process."""
    before = _mapped_openmp_runtimes()
    assert len(before) == 1  # torch's
    lib = native._load()
    assert lib.snn_lif_uses_openmp() == 1
    parallel = ctypes.cast(ctypes.CDLL(next(iter(before))).GOMP_parallel, ctypes.c_void_p).value
    assert native._openmp_entry_points()[0] == parallel
    torch.set_num_threads(2)
    x = torch.rand(20, 4, 4096)
    torch.exp(torch.rand(1 << 22))  # torch's team of two is up
    # Compared as sets of thread ids: a thread that some earlier test started (a data loader's,
    # say) may exit meanwhile, which is no fault of the kernel; a new id would be.
    threads = set(os.listdir("/proc/self/task"))
    snn.LIF(beta=0.9, backend="native").run(x, record_membrane=True)
    assert set(os.listdir("/proc/self/task")) <= threads
    assert _mapped_openmp_runtimes() == before


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_own_threads_are_joined_before_a_call_returns(restore_threads):
    _use_runner("own threads")
    torch.set_num_threads(2)
    x = torch.rand(20, 4, 4096, requires_grad=True)
    threads = set(os.listdir("/proc/self/task"))  # ids, as in the test above
    snn.LIF(beta=0.9, backend="native")(x).sum().backward()
    assert set(os.listdir("/proc/self/task")) <= threads


# Ctrl-C and fork: the outputs are never freed under a running thread, and a forked child (whose
# OpenMP runtime believes in threads it does not have) still runs the kernel.

THREADED_SCRIPT = """
import os, signal, sys, threading, time
import torch, snn
torch.set_num_threads(2)
T, B, N = 1500, 2, 4096  # 8192 neurons: two ranges, one per thread
x = torch.rand(T, B, N)
lif = snn.LIF(beta=0.9, backend="native")
t = time.perf_counter(); lif.run(x, record_membrane=True); dt = time.perf_counter() - t
if sys.argv[1] == "sigint":
    for attempt in range(20):
        threading.Timer(dt * 0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            lif.run(x, record_membrane=True)
            time.sleep(dt)
        except KeyboardInterrupt:
            break
    # were the outputs freed under a still-running thread, these would be overwritten
    fresh = [torch.full((T, B, N), 7.0) for _ in range(2)]
    time.sleep(0.3)
    print("intact", all(bool((f == 7).all()) for f in fresh))
else:
    want = lif(x[:50]).numpy().tobytes()
    pid = os.fork()
    if pid == 0:  # compared in numpy: torch's own parallel operations would hang here
        os._exit(0 if lif(x[:50]).numpy().tobytes() == want else 1)
    print("child exit", os.waitpid(pid, 0)[1] >> 8)
"""


@pytest.mark.parametrize("case", ["sigint", "fork"])
def test_native_threads_survive_ctrl_c_and_fork(tmp_path, case):
    script = tmp_path / "threaded.py"
    script.write_text(THREADED_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), case], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == (
        ["intact", "True"] if case == "sigint" else ["child", "exit", "0"]
    )
