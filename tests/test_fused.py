"""The fused LIF's own machinery: chunked recomputation, the native executor, what it saves, how
it reads the gradients autograd hands it (tests/test_native_threads.py covers its threads).

Every gradient here is checked in float64 against the reference backend (a plain autograd loop
over ``lif_step``), to 1e-10; every spike train bit for bit.
"""

import functools
import importlib.util
import itertools
import os
from pathlib import Path

import pytest
import torch
from _backends import FUSED_EXECUTORS, needs_cc

import snn
from snn.functional import LIFParameters, lif_sequence
from snn.kernels import fused

RESETS = ["subtract", "zero", "none"]
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _case(reset, detach, physical, seed, T=7, B=2, N=3, dtype=torch.float64):
    """Per-neuron learnable parameters, an initial state, and every output weighted."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=dtype)

    v_rest, v_reset = (-0.4, -0.7) if physical else (0.0, 0.0)
    params = {
        "beta": rand(N, lo=0.3, hi=0.95).requires_grad_(),
        "v_th": rand(N, lo=0.5, hi=1.2).requires_grad_(),
        "gain": 2.0 if physical else 1.0,
    }
    x = rand(T, B, N, lo=-0.5, hi=1.2).requires_grad_()
    v0 = rand(B, N, lo=-0.5, hi=1.0).requires_grad_()
    weights = [rand(T, B, N, lo=-1, hi=1), rand(B, N, lo=-1, hi=1), rand(T, B, N, lo=-1, hi=1)]
    p = LIFParameters(
        beta=params["beta"],
        v_th=params["v_th"],
        v_rest=v_rest,
        v_reset=v_reset,
        gain=params["gain"],
        reset=reset,
        detach_reset=detach,
        surrogate="atan",
    )
    return x, v0, p, weights


def _loss(out, weights):
    w_s, w_v, w_m = weights
    return (w_s * out.spikes).sum() + (w_v * out.state).sum() + (w_m * out.membrane).sum()


def _grads(x, v0, p, weights, run):
    out = run(x, v0, p)
    inputs = [x, v0, p.beta, p.v_th]
    return out, torch.autograd.grad(_loss(out, weights), inputs)


def _reference(x, v0, p):
    return lif_sequence(x, v0, p, record_membrane=True, backend="reference")


def _assert_same(got, want):
    out, grads = got
    out_ref, grads_ref = want
    assert torch.equal(out.spikes, out_ref.spikes)
    torch.testing.assert_close(out.state, out_ref.state, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.membrane, out_ref.membrane, rtol=0, atol=1e-12)
    for g, r in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "reset,detach,physical", list(itertools.product(RESETS, [False, True], [False, True]))
)
@pytest.mark.parametrize("block,blocks_per_chunk", [(1, 1), (1, 4), (3, 2), (7, 4)])
def test_chunked_recomputation_equals_reference(
    monkeypatch, reset, detach, physical, block, blocks_per_chunk
):
    x, v0, p, weights = _case(reset, detach, physical, seed=block)
    # blocks of `block` steps (one step of [B, N] is 6 elements), a saved potential every
    # `blocks_per_chunk` blocks; T = 7 leaves partial blocks and chunks
    monkeypatch.setattr(fused, "BLOCK_ELEMENTS", block * v0.numel())
    monkeypatch.setattr(fused, "CHECKPOINT_BLOCKS", blocks_per_chunk)
    eager = lambda x, v, p: lif_sequence(x, v, p, record_membrane=True, backend="eager")  # noqa: E731
    got = _grads(x, v0, p, weights, eager)
    _assert_same(got, _grads(x, v0, p, weights, _reference))


@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
def test_gradient_only_through_spikes_or_only_through_state(backend):
    """Unused outputs reach backward as None (no [T, ...] zeros are made); each alone is right."""
    x, v0, p, _ = _case("subtract", False, False, seed=5)
    for pick in (lambda o: o.spikes.sum(), lambda o: o.state.sum()):
        out = lif_sequence(x, v0, p, backend=backend)
        got = torch.autograd.grad(pick(out), [x, v0, p.beta, p.v_th])
        want = torch.autograd.grad(
            pick(lif_sequence(x, v0, p, backend="reference")), [x, v0, p.beta, p.v_th]
        )
        for g, r in zip(got, want, strict=True):
            torch.testing.assert_close(g, r, rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
@pytest.mark.parametrize("reset", RESETS)
def test_float32_spikes_are_bitwise_the_reference(reset, backend):
    """beta * v is rounded before the input is added, as lif_step does, so no spike moves."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 8, 256, generator=g) * 0.6
    p = LIFParameters(beta=0.93, v_th=1.0, v_rest=0.1, v_reset=-0.2, reset=reset)
    fast = lif_sequence(x, None, p, record_membrane=True, backend=backend)
    ref = lif_sequence(x, None, p, record_membrane=True, backend="reference")
    assert fast.spikes.sum() > 0
    assert torch.equal(fast.spikes, ref.spikes)
    assert torch.equal(fast.membrane, ref.membrane)


@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
def test_saves_only_the_input_and_chunk_start_potentials(backend):
    """The node's memory for backward: the input current plus one [B, N] per chunk."""
    T, B, N = 40, 4, 32
    x = torch.rand(T, B, N, requires_grad=True)
    lif = snn.LIF(beta=0.9, learn_beta=True, learn_threshold=True, shape=N, backend=backend)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lif(x)
    big = [t for t in saved if t.numel() >= T * B * N]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr()  # the input itself, no copy
    block = max(1, fused.BLOCK_ELEMENTS // (B * N))
    chunk = fused.NATIVE_CHUNK_STEPS if backend == "native" else fused.CHECKPOINT_BLOCKS * block
    chunks = -(-T // chunk)
    small = sum(t.numel() for t in saved if t.numel() < T * B * N)
    assert small <= (chunks + 1) * B * N + 2 * N + 1


def test_bad_chunk_is_rejected():
    with pytest.raises(ValueError, match="chunk must be a positive"):
        fused.fused_lif_sequence(
            torch.zeros(3, 1), torch.zeros(1), 0.9, 1.0, 0.0, 0.0, "subtract", False,
            snn.surrogate.ATan(), False, executor="eager", chunk=0,
        )  # fmt: skip


def _executor_run(executor, chunk):
    def run(x, v0, p):
        spikes, state, membrane = fused.fused_lif_sequence(
            p.gain * x, v0, p.beta, p.v_th, p.v_rest, p.v_reset, p.reset, p.detach_reset,
            p.surrogate, True, chunk=chunk, executor=executor,
        )  # fmt: skip
        return snn.functional.LIFSequence(spikes, state, membrane)

    return run


# ---------------------------------------------------------------------------------------------
# The native executor (snn/kernels/csrc): every reset, chunking, and why it declines to run.


@needs_cc
@pytest.mark.parametrize(
    "reset,detach,physical", list(itertools.product(RESETS, [False, True], [False, True]))
)
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_native_kernel_equals_reference(reset, detach, physical, chunk):
    """T = 7 in chunks of 1, 3 (partial last chunk) and 7 steps; per-neuron learnable params."""
    x, v0, p, weights = _case(reset, detach, physical, seed=chunk)
    got = _grads(x, v0, p, weights, _executor_run("native", chunk))
    _assert_same(got, _grads(x, v0, p, weights, _reference))


@needs_cc
@pytest.mark.parametrize("single", ["beta", "v_th"])
def test_native_mixes_single_valued_and_per_neuron_parameters(single):
    """One parameter a single (learnable) value, which the kernel repeats into a row of its own,
    the other per neuron: 2,100 neurons (8 tiles and a partial one), from rest and from a state."""
    g = torch.Generator().manual_seed(3)
    T, B, N = 30, 3, 700

    def rand(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)

    one = {"beta": 0.8, "v_th": 1.1}
    params = {"beta": rand(N, lo=0.5, hi=0.95), "v_th": rand(N, lo=0.6, hi=1.4)}
    params[single] = torch.tensor(one[single], dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in params.items()}
    p = LIFParameters(**params, v_reset=-0.2)
    x = rand(T, B, N, lo=-0.3, hi=0.9).requires_grad_()
    weights = [rand(T, B, N, lo=-1, hi=1), rand(B, N, lo=-1, hi=1), rand(T, B, N, lo=-1, hi=1)]
    for v0 in (None, rand(B, N, lo=-0.5, hi=1.0)):
        runs = [
            lif_sequence(x, v0, p, record_membrane=True, backend=backend)
            for backend in ("native", "reference")
        ]
        assert 0.05 < runs[1].spikes.mean() < 0.8
        inputs = [x, p.beta, p.v_th]
        grads = [torch.autograd.grad(_loss(out, weights), inputs) for out in runs]
        assert torch.equal(runs[0].spikes, runs[1].spikes)
        torch.testing.assert_close(runs[0].membrane, runs[1].membrane, rtol=0, atol=1e-12)
        for got, want in zip(*grads, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_native_backend_says_why_it_cannot_run(monkeypatch):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Mine(snn.surrogate.Surrogate):
        def derivative(self, u):
            return torch.ones_like(u)

    x = torch.rand(5, 2, 3)
    with pytest.raises(ValueError, match="float32 and float64, and the input is torch.bfloat16"):
        snn.LIF(backend="native")(x.bfloat16())
    with pytest.raises(ValueError, match="built-in surrogates only, not Mine"):
        snn.LIF(backend="native", surrogate=Mine())(x)
    # no compiler: "native" says so, and the default runs the eager executor, same spikes
    monkeypatch.setattr(snn.kernels.native, "_library", None)
    monkeypatch.setattr(snn.kernels.native, "_build_error", None)
    monkeypatch.setattr(snn.kernels.native, "_compiler", lambda: None)
    with pytest.raises(ValueError, match="could not be built: OSError: no C compiler found"):
        snn.LIF(backend="native")(x)
    assert torch.equal(snn.LIF()(x), snn.LIF(backend="reference")(x))


@needs_cc
def test_native_build_is_cached_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("SNN_CACHE_DIR", str(tmp_path))
    lib = snn.kernels.native._build()
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].name.startswith("lif-") and built[0].suffix == ".so"
    assert lib.snn_lif_abi() == snn.kernels.native._ABI
    umask = os.umask(0)
    os.umask(umask)
    assert built[0].stat().st_mode & 0o777 == 0o755 & ~umask  # loadable by a shared cache's users
    stamp = built[0].stat().st_mtime_ns
    snn.kernels.native._build()  # the same source and machine: loaded, not rebuilt
    assert [f.stat().st_mtime_ns for f in tmp_path.iterdir()] == [stamp]


@needs_cc
@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
def test_gradient_the_same_at_every_step_is_read_in_place(backend):
    """A loss on sums over time hands backward stride-0 gradients ([T, ...] views of one step);
    the result is as for the same gradient written out T times."""
    x, v0, p, weights = _case("zero", False, True, seed=8)
    w_s, w_v, w_m = weights[0][0], weights[1], weights[2][0]  # one step's weights, every step

    def loss(out):
        return (
            (w_s * out.spikes.sum(0)).sum()
            + (w_v * out.state).sum()
            + (w_m * out.membrane.sum(0)).sum()
        )

    inputs = [x, v0, p.beta, p.v_th]
    got = torch.autograd.grad(
        loss(lif_sequence(x, v0, p, record_membrane=True, backend=backend)), inputs
    )
    want = torch.autograd.grad(loss(_reference(x, v0, p)), inputs)
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)
    # and the all-zero strides of a plain .sum()
    got = torch.autograd.grad(lif_sequence(x, v0, p, backend=backend).spikes.sum(), inputs)
    want = torch.autograd.grad(_reference(x, v0, p).spikes.sum(), inputs)
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)


@functools.cache
def _lif_speed():
    spec = importlib.util.spec_from_file_location("lif_speed", BENCHMARKS / "lif_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peak_bytes(fn) -> float:
    """The peak of the tensor memory allocated while ``fn()`` runs, in bytes, measured as
    benchmarks/lif_speed.py measures B's (one parser of the profiler's allocation events)."""
    return _lif_speed().peak_tensor_memory(fn, "cpu") * 1e6


# Incoming gradients as autograd makes them: each a view of a [T, B, N] tensor of fresh values
GRADIENT_LAYOUTS = {
    "stride 0 over time": lambda g: g[:1].expand_as(g),  # a loss on spikes.sum(0)
    "stride 0 over the batch": lambda g: g[:, :1].expand_as(g),  # on spikes.sum(1)
    "stride 0 over the neurons": lambda g: g[:, :, :1].expand_as(g),  # on spikes.sum(2)
    "stride 0 everywhere": lambda g: g[:1, :1, :1].expand_as(g),  # on spikes.sum()
    "stride 0 over time and batch": lambda g: g[:1, :1].expand_as(g),
    "batch innermost": lambda g: g.transpose(1, 2).contiguous().transpose(1, 2),
    "every other element": lambda g: torch.cat([g, g], dim=2)[:, :, ::2],
}


@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
@pytest.mark.parametrize("layout", GRADIENT_LAYOUTS)
def test_a_gradient_of_any_strides_is_read_in_place(backend, layout):
    """The same result as for the gradient written out contiguously, and (native) no copy of it:
    the backward's peak allocation is dL/dI alone plus one step's worth, not a second [T, B, N].
    700 neurons x 3 are 8 tiles plus a partial one, 41 steps a chunk plus a partial one."""
    T, B, N = 41, 3, 700
    x, v0, p, _ = _case("subtract", False, False, seed=12, T=T, B=B, N=N)  # gain 1
    g = torch.Generator().manual_seed(13)
    layout = GRADIENT_LAYOUTS[layout]
    grad_spikes = layout(torch.randn(T, B, N, generator=g, dtype=x.dtype))
    grad_membrane = layout(torch.randn(T, B, N, generator=g, dtype=x.dtype))
    grad_state = torch.randn(B, N, generator=g, dtype=x.dtype)
    out = lif_sequence(x, v0, p, record_membrane=True, backend=backend)
    inputs = [x, v0, p.beta, p.v_th]

    def backward(*grads):
        return torch.autograd.grad(out, inputs, grads, retain_graph=True)

    want = backward(grad_spikes.contiguous(), grad_state, grad_membrane.contiguous())
    got = backward(grad_spikes, grad_state, grad_membrane)
    assert out.spikes.sum() > 0
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    if backend == "native":
        full = x.numel() * x.element_size()
        peak = _peak_bytes(lambda: backward(grad_spikes, grad_state, grad_membrane))
        assert full <= peak < 1.5 * full


@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
def test_an_empty_batch_runs(backend):
    x = torch.rand(5, 0, 3, requires_grad=True)
    lif = snn.LIF(backend=backend)
    out = lif.run(x, record_membrane=True)
    assert out.spikes.shape == out.membrane.shape == (5, 0, 3) and out.state.shape == (0, 3)
    out.spikes.sum().backward()
    assert x.grad.shape == (5, 0, 3)


@pytest.mark.parametrize("backend", FUSED_EXECUTORS)
def test_a_strided_input_gives_the_same_spikes_and_gradients(backend):
    g = torch.Generator().manual_seed(2)
    batch_first = (torch.rand(3, 20, 7, generator=g, dtype=torch.float64) * 0.8).requires_grad_()
    x = batch_first.transpose(0, 1)  # [T, B, N], not contiguous
    w = torch.randn(20, 3, 7, generator=g, dtype=torch.float64)
    got = snn.LIF(beta=0.8, backend=backend, dtype=torch.float64)(x)
    (grad,) = torch.autograd.grad((w * got).sum(), batch_first)
    want = snn.LIF(beta=0.8, backend="reference", dtype=torch.float64)(x.contiguous())
    (grad_want,) = torch.autograd.grad((w * want).sum(), batch_first)
    assert got.sum() > 0 and torch.equal(got, want)
    torch.testing.assert_close(grad, grad_want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_state_of_another_dtype_or_a_broadcasting_gain_is_refused(backend):
    x = torch.rand(3, 1, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="state is torch.float32 on cpu but the input is"):
        lif_sequence(x, torch.zeros(1, 4), LIFParameters(beta=0.9), backend=backend)
    wide = LIFParameters(beta=0.9, gain=torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"gain of shape \(2, 4\) would broadcast the input"):
        lif_sequence(x, None, wide, backend=backend)


def test_native_refuses_tensors_it_would_misread():
    x = torch.rand(4, 2, 3)
    starts = torch.empty(0, 2, 3)
    one = torch.tensor(0.9)
    with pytest.raises(ValueError, match="expected spikes of 24 elements"):
        snn.kernels.native.forward(x, x[0], one, one, one, 0.0, 0.0, "subtract",
                           torch.empty(4, 2, 2), None, starts, 4)  # fmt: skip
    with pytest.raises(ValueError, match="needs contiguous CPU torch.float32"):
        snn.kernels.native.forward(x, x[0], one, one, one, 0.0, 0.0, "subtract",
                           torch.empty(4, 2, 3, dtype=torch.float64), None, starts, 4)  # fmt: skip


def test_native_compiler_and_cache_dir_choices(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/gcc")
    with pytest.raises(OSError, match="is not an executable on PATH"):
        snn.kernels.native._compiler()  # never silently another compiler
    monkeypatch.setenv("CC", "sh -c")  # a command with arguments is kept whole
    assert snn.kernels.native._compiler() == ["sh", "-c"]
    for name in ("SNN_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(snn.kernels.native.Path, "home", staticmethod(no_home))
    assert snn.kernels.native._cache_dir().name == f"snn-{os.getuid()}"
