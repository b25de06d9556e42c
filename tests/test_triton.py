"""The Triton kernels of the LIF family (snn/kernels/triton_lif.py, triton_family.py,
triton_recurrent.py) against the references: spikes bit for bit in float32, gradients to 1e-5.

The same tests run on CUDA where there is one, and on CPU through Triton's interpreter: Triton
reads ``TRITON_INTERPRET`` when the kernels are decorated, so ``test_under_the_interpreter``
runs this file again in a child process with ``TRITON_INTERPRET=1`` (where the kernels are
decorated for the interpreter), with small blocks and chunks so that a few dozen neurons span
several blocks and a partial one, and a few steps several chunks and a partial one. CubaLIF,
ALIF and the recurrent layer are checked against the plain loops of tests/test_family.py and
tests/test_recurrent.py (written from the equations, sharing no code with snn).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import snn
from snn import surrogate as sg
from snn.functional import LIFParameters, lif_sequence
from tests._reference import equation_loop

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
ON_CUDA = not INTERPRETED and torch.cuda.is_available()
DEVICE = "cuda" if ON_CUDA else "cpu"

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
runs_kernels = pytest.mark.skipif(
    not (HAS_TRITON and (INTERPRETED or ON_CUDA)),
    reason="no CUDA here: these run in the child process of test_under_the_interpreter",
)
# the interpreter runs in a child process with these block and chunk sizes; CUDA uses the
# defaults, with more neurons (three blocks, the last one partial) and steps
NEURONS, STEPS, BATCH = (70, 9, 2) if INTERPRETED else (700, 70, 2)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # numpy's sigmoid


@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="this is the parent of the interpreted run")
def test_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "SNN_TRITON_TEST_BLOCK": "32"}
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Under the interpreter: blocks of 32 neurons and chunks of 4 steps."""
    if INTERPRETED:
        from snn.kernels import triton_lif

        monkeypatch.setattr(triton_lif, "BLOCK", int(os.environ["SNN_TRITON_TEST_BLOCK"]))
        monkeypatch.setattr(triton_lif, "CHUNK_STEPS", 4)


def _inputs(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.7 * torch.randn(STEPS, BATCH, NEURONS, generator=g, dtype=dtype) + 0.25
    v0 = 0.5 * torch.randn(BATCH, NEURONS, generator=g, dtype=dtype)
    beta = 0.4 + 0.55 * torch.rand(NEURONS, generator=g, dtype=dtype)
    v_th = 0.6 + 0.6 * torch.rand(NEURONS, generator=g, dtype=dtype)
    weights = [torch.randn(STEPS, BATCH, NEURONS, generator=g, dtype=dtype) for _ in range(2)]
    return [t.to(DEVICE) for t in (x, v0, beta, v_th, *weights)]


def _run(run, x, v0, beta, v_th, w_spikes, w_membrane, scalar_loss=False):
    """Outputs and the gradients of a loss on spikes, membrane and final state."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, v0, beta, v_th)]
    spikes, v_last, membrane = run(*leaves)
    if scalar_loss:  # sums hand backward gradients of stride 0
        loss = spikes.sum() + 0.1 * membrane.sum()
    else:
        loss = (spikes * w_spikes).sum() + 0.3 * (membrane * w_membrane).sum() + v_last.sum()
    loss.backward()
    return (spikes, membrane, v_last), [t.grad for t in leaves]


def _assert_same(got, want, rtol=1e-5, atol=1e-5):
    (outputs, grads), (ref_outputs, ref_grads) = got, want
    for name, a, b in zip(("spikes", "membrane", "v_last"), outputs, ref_outputs, strict=True):
        assert torch.equal(a, b), f"{name} differ at {int((a != b).sum())} places"
    for name, a, b in zip(("x", "v0", "beta", "v_th"), grads, ref_grads, strict=True):
        assert (a is None) == (b is None), f"{name}: a gradient on one side only"
        if a is not None:
            torch.testing.assert_close(
                a, b, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}"
            )


def _snn(backend, reset, detach, surrogate, v_rest=0.0, v_reset=0.0):
    def run(x, v0, beta, v_th):
        p = LIFParameters(
            beta=beta, v_th=v_th, v_rest=v_rest, v_reset=v_reset, reset=reset,
            detach_reset=detach, surrogate=surrogate,
        )  # fmt: skip
        out = lif_sequence(x, v0, p, record_membrane=True, backend=backend)
        return out.spikes, out.state, out.membrane

    return run


@runs_kernels
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_matches_the_reference_loop(reset, detach):
    """Every reset, with and without detach_reset, from a non-zero state, per-neuron learnable
    beta and v_th, v_rest and v_reset off zero: snn's reference loop."""
    inputs = _inputs()
    want = _run(_snn("reference", reset, detach, sg.ATan(), 0.1, -0.3), *inputs)
    got = _run(_snn("triton", reset, detach, sg.ATan(), 0.1, -0.3), *inputs)
    _assert_same(got, want)


@runs_kernels
@pytest.mark.parametrize(
    "name", ["atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "straight_through"]
)
def test_matches_the_equations(name):
    """The independent equation loop of tests/_reference.py, with each surrogate at its
    documented defaults (written out there, not taken from snn.surrogate)."""
    x, v0, beta, v_th, w_spikes, w_membrane = _inputs(seed=1)
    reset = "zero" if name in ("sigmoid", "triangle") else "subtract"

    def equations(x, v0, beta, v_th):
        spikes, trace, v_last, _ = equation_loop(x, v0, beta, v_th, 0.0, 0.0, reset, False, name)
        return spikes, v_last, trace

    want = _run(equations, x, v0, beta, v_th, w_spikes, w_membrane)
    got = _run(_snn("triton", reset, False, sg.get(name)), x, v0, beta, v_th, w_spikes, w_membrane)
    _assert_same(got, want)


@runs_kernels
def test_scalar_parameters_and_summed_losses():
    """A 0-dim learnable v_th and a float beta (gradients reduced over batch, neurons and time),
    and a loss on sums (incoming gradients of stride 0)."""
    x, v0, _, _, w_spikes, w_membrane = _inputs(seed=2)
    v_th = torch.tensor(0.8, device=DEVICE)

    def runner(backend):
        def run(x, v0, beta, v_th):
            p = LIFParameters(beta=0.85, v_th=v_th, surrogate="fast_sigmoid")
            out = lif_sequence(x, v0, p, record_membrane=True, backend=backend)
            return out.spikes, out.state, out.membrane

        return run

    args = (x, v0, torch.tensor(0.0), v_th, w_spikes, w_membrane)
    want = _run(runner("reference"), *args, scalar_loss=True)
    got = _run(runner("triton"), *args, scalar_loss=True)
    assert got[1][2] is None  # beta is a float here
    _assert_same(got, want)


@runs_kernels
def test_float64_matches_the_reference_loop():
    inputs = _inputs(torch.float64, seed=3)
    want = _run(_snn("reference", "subtract", False, sg.Sigmoid(), 0.2, 0.1), *inputs)
    got = _run(_snn("triton", "subtract", False, sg.Sigmoid(), 0.2, 0.1), *inputs)
    _assert_same(got, want, rtol=1e-12, atol=1e-12)
    assert got[0][0].dtype == torch.float64


@runs_kernels
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_bfloat16_matches_the_eager_executor(reset):
    """bfloat16 rounds after every operation as PyTorch's bfloat16 operations do: the eager
    executor's spikes and potentials, bit for bit (gradients to bfloat16's precision)."""
    inputs = _inputs(torch.bfloat16, seed=4)
    # v_rest = 0.25 is exact in bfloat16 (PyTorch rounds a Python number to bfloat16 on CPU but
    # not on CUDA; the kernels take v_rest and v_reset in the input's type)
    want = _run(_snn("eager", reset, False, sg.ATan(), 0.25, 0.0), *inputs)
    got = _run(_snn("triton", reset, False, sg.ATan(), 0.25, 0.0), *inputs)
    for a, b in zip(got[0], want[0], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)


@runs_kernels
@pytest.mark.parametrize("chunk", [1, 3, 10_000])
def test_chunk_length_changes_nothing(chunk):
    """One step per chunk, a partial last chunk, one chunk for everything: the same results."""
    from snn.kernels import triton_lif

    x, v0, beta, v_th, w_spikes, w_membrane = _inputs(seed=5)

    def lif(x, v0, beta, v_th):
        return triton_lif.lif_sequence(
            x, v0, beta, v_th, 0.0, 0.0, "zero", False, sg.Triangle(), True, chunk=chunk
        )

    inputs = (x, v0, beta, v_th, w_spikes, w_membrane)
    want = _run(_snn("reference", "zero", False, sg.Triangle()), *inputs)
    _assert_same(_run(lif, *inputs), want)


@runs_kernels
def test_fused_backend_on_cuda_picks_the_kernels(monkeypatch):
    """backend="fused" runs the Triton kernels on CUDA (and only there)."""
    from snn.kernels import triton_lif

    calls = []
    real = triton_lif.lif_sequence
    monkeypatch.setattr(triton_lif, "lif_sequence", lambda *a, **k: calls.append(1) or real(*a))
    x = torch.ones(3, 2, 4, device=DEVICE)
    lif_sequence(x, None, LIFParameters(beta=0.5), backend="fused")
    assert len(calls) == (1 if ON_CUDA else 0)


@runs_kernels
def test_what_the_kernels_refuse():
    x = torch.ones(3, 2, 4, device=DEVICE)
    with pytest.raises(ValueError, match="float16"):
        lif_sequence(x.half(), None, LIFParameters(), backend="triton")

    class Mine(sg.Surrogate):
        def derivative(self, u):
            return torch.ones_like(u)

    with pytest.raises(ValueError, match="built-in surrogates only, not Mine"):
        lif_sequence(x, None, LIFParameters(surrogate=Mine()), backend="triton")


@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="the interpreter runs CPU tensors")
def test_cpu_tensors_without_the_interpreter_are_refused():
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        lif_sequence(torch.ones(3, 2, 4), None, LIFParameters(), backend="triton")


@pytest.mark.skipif(HAS_TRITON, reason="triton is installed here")
def test_a_missing_triton_is_named():
    with pytest.raises(ValueError, match="triton is not installed"):
        lif_sequence(torch.ones(3, 2, 4), None, LIFParameters(), backend="triton")


def test_triton_is_a_backend():
    assert "triton" in snn.functional.BACKENDS


def _alif(backend_or_kernel, reset, detach, surrogate):
    """The ALIF from (v0, a0) with per-neuron learnable beta, v_th, rho and adapt."""
    from snn.family_functional import ALIFParameters, ALIFState, alif_sequence

    def run(x, v0, a0, beta, v_th, rho, adapt):
        if backend_or_kernel == "kernel":
            from snn.kernels import triton_family

            return triton_family.alif_sequence(
                x, v0, a0, beta, v_th, rho, adapt, 0.1, -0.2, reset, detach, surrogate, True
            )
        lif = LIFParameters(
            beta=beta, v_th=v_th, v_rest=0.1, v_reset=-0.2, reset=reset, detach_reset=detach,
            surrogate=surrogate,
        )  # fmt: skip
        p = ALIFParameters(lif=lif, rho=rho, adapt=adapt)
        out = alif_sequence(x, ALIFState(v0, a0), p, record_membrane=True, backend="reference")
        return out.spikes, out.state.v, out.state.a, out.membrane

    return run


@runs_kernels
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_alif_matches_the_reference_loop(reset, detach):
    """The ALIF kernels against snn.family_functional's reference loop: bitwise spikes and
    states, gradients for the input, both states and the four per-neuron parameters."""
    g = torch.Generator().manual_seed(6)
    x, v0, beta, v_th, w_spikes, w_membrane = _inputs(seed=6)
    a0 = (0.3 * torch.rand(BATCH, NEURONS, generator=g)).to(DEVICE)
    rho = (0.7 + 0.25 * torch.rand(NEURONS, generator=g)).to(DEVICE)
    adapt = (0.5 + torch.rand(NEURONS, generator=g)).to(DEVICE)

    def grads(run):
        leaves = [t.clone().requires_grad_() for t in (x, v0, a0, beta, v_th, rho, adapt)]
        spikes, v_last, a_last, membrane = run(*leaves)
        loss = (spikes * w_spikes).sum() + 0.3 * (membrane * w_membrane).sum()
        (loss + v_last.sum() + 0.5 * a_last.sum()).backward()
        return (spikes, v_last, a_last, membrane), [t.grad for t in leaves]

    surrogate = sg.Sigmoid() if detach else sg.ATan()
    (got, got_grads) = grads(_alif("kernel", reset, detach, surrogate))
    (want, want_grads) = grads(_alif("reference", reset, detach, surrogate))
    for name, a, b in zip(("spikes", "v", "a", "membrane"), got, want, strict=True):
        assert torch.equal(a, b), f"{name} differ at {int((a != b).sum())} places"
    names = ("x", "v0", "a0", "beta", "v_th", "rho", "adapt")
    for name, a, b in zip(names, got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def _family_case(kind, reset, seed=8):
    """A small CubaLIF ("cuba") or ALIF ("alif") case shaped as tests/test_family.py's: a
    non-zero state, per-neuron parameters that all take gradients, in float32."""
    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    drive = {"none": 0.05, "subtract": 0.45, "zero": 0.45}[reset] * (0.3 if kind == "cuba" else 1)
    x = drive + 0.35 * torch.randn(STEPS, BATCH, NEURONS, generator=g)
    p = {"beta": uniform(0.6, 0.95, NEURONS), "v_th": uniform(0.9, 1.2, NEURONS)}
    p["gain"] = uniform(0.8, 1.2, NEURONS)
    if kind == "cuba":
        p |= {"alpha": uniform(0.5, 0.8, NEURONS), "g_in": uniform(0.8, 1.2, NEURONS)}
        state = [uniform(-0.2, 0.4, BATCH, NEURONS), uniform(-0.2, 0.6, BATCH, NEURONS)]
    else:
        p |= {"rho": uniform(0.8, 0.98, NEURONS), "adapt": uniform(0.5, 2.0, NEURONS)}
        state = [uniform(-0.2, 0.6, BATCH, NEURONS), uniform(0.0, 0.3, BATCH, NEURONS)]
    weights = [torch.randn(STEPS, BATCH, NEURONS, generator=g) for _ in range(2)]
    weights += [torch.randn(BATCH, NEURONS, generator=g) for _ in range(4)]
    return x, state, p, weights


def _assert_matches(results, names, what):
    """Bitwise spikes at a firing rate that exercises the spike; each gradient to 1e-5 of its
    scale."""
    (want_spikes, want_grads), (got_spikes, got_grads) = results
    rate = float(want_spikes.float().mean())
    assert 0.05 <= rate <= 0.8, f"{what}: firing rate {rate:.3f}, the case does not exercise it"
    assert torch.equal(got_spikes, want_spikes), f"{what}: spikes differ"
    for name, want, got in zip(names, want_grads, got_grads, strict=True):
        scale = max(1.0, float(want.abs().max()))
        err = float((got - want).abs().max()) / scale
        assert err < 1e-5, f"{what}: dL/d{name} off by {err:.2e}"


@runs_kernels
@pytest.mark.parametrize(
    ("kind", "reset", "detach", "surrogate"),
    [("cuba", "subtract", False, "atan"), ("cuba", "zero", True, "fast_sigmoid"),
     ("alif", "subtract", False, "sigmoid")],
)  # fmt: skip
def test_cuba_lif_and_alif_match_the_equation_loop(kind, reset, detach, surrogate):
    """backend="triton" (the family kernel with the current or threshold state compiled in)
    against tests/test_family.py's loop of the equations: the input, both states and every
    per-neuron parameter (alpha, the input and membrane gains, beta, v_th; rho, adapt)."""
    from tests.test_family import leaves, loop, loss_of, snn_run

    x, state, p, weights = _family_case(kind, reset)
    x, weights = x.to(DEVICE), [w.to(DEVICE) for w in weights]
    state, p = [t.to(DEVICE) for t in state], {k: t.to(DEVICE) for k, t in p.items()}
    results = []
    for runner in ("test loop", "snn"):
        xs, ss, ps = leaves([x]), leaves(state), dict(zip(p, leaves(p.values()), strict=True))
        if runner == "snn":
            out = snn_run(kind, xs[0], ss, ps, reset, detach, sg.get(surrogate), "triton")
        else:
            out = loop(kind, xs[0], ss, ps, reset, detach, surrogate)
        grads = torch.autograd.grad(loss_of(*out, weights[:4]), [*xs, *ss, *ps.values()])
        results.append((out[0].detach(), grads))
    _assert_matches(results, ["x", "state0", "state1", *p], f"{kind} {reset}")


@runs_kernels
@pytest.mark.parametrize(
    ("kind", "reset", "detach"),
    [("lif", "subtract", False), ("cuba", "zero", True), ("alif", "subtract", False),
     ("alif", "zero", True)],
)  # fmt: skip
def test_recurrent_matches_the_recurrent_loop(kind, reset, detach):
    """snn.Recurrent's backend="triton" (a matrix product and a fused step kernel per step)
    against tests/test_recurrent.py's loop: spikes, and the gradients of the input, every state
    (the spikes before the first step too), the weight, the bias and every parameter."""
    x, state, p, weights = _family_case("cuba" if kind == "cuba" else "alif", reset, seed=9)
    g = torch.Generator().manual_seed(10)
    if kind == "lif":
        state = state[:1]
        del p["rho"], p["adapt"]
    scale = 0.3 if kind == "cuba" else 1.0
    weight = 0.3 * scale * torch.randn(NEURONS, NEURONS, generator=g) / NEURONS**0.5
    bias = 0.05 * torch.randn(NEURONS, generator=g)
    s0 = (torch.rand(BATCH, NEURONS, generator=g) < 0.3).float()
    x, weight, bias, s0 = (t.to(DEVICE) for t in (x, weight, bias, s0))
    weights = [w.to(DEVICE) for w in weights]
    state, p = [t.to(DEVICE) for t in state], {k: t.to(DEVICE) for k, t in p.items()}
    assert_recurrent_matches(kind, reset, detach, "triton", x, state, s0, p, weight, bias, weights)


def assert_recurrent_matches(kind, reset, detach, backend, x, state, s0, p, weight, bias, weights):
    """snn's recurrent_sequence with ``backend`` against tests/test_recurrent.py's loop, by
    :func:`_assert_matches` (tests/test_cuda.py runs it on CUDA too)."""
    from tests.test_recurrent import leaves, loop, loss_of, snn_run

    results = []
    for runner in ("test loop", "snn"):
        xs, ss, (s0_, w_, b_) = leaves([x]), leaves(state), leaves([s0, weight, bias])
        ps = dict(zip(p, leaves(p.values()), strict=True))
        if runner == "snn":
            out = snn_run(kind, xs[0], ss, s0_, ps, w_, b_, reset, detach, backend)
        else:
            out = loop(kind, xs[0], ss[0] if kind == "lif" else ss, s0_, ps, w_, b_, reset, detach)
        inputs = [*xs, *ss, s0_, w_, b_, *ps.values()]
        results.append((out[0].detach(), torch.autograd.grad(loss_of(*out, weights), inputs)))
    names = ["x", *[f"state{k}" for k in range(len(state))], "s0", "weight", "bias", *p]
    _assert_matches(results, names, f"recurrent {kind} {reset}")


@runs_kernels
@pytest.mark.parametrize("kind", ["lif", "cuba"])
def test_recurrent_node_saves_what_the_pytorch_node_saves(kind):
    """Training memory: like the PyTorch fused node (backend="fused" on CPU), the Triton node
    keeps two [T, B, N] tensors (the input u with the recurrent term, and the spikes, for dW),
    and otherwise only step-sized ones: the chunk-start states, its per-neuron parameters over
    the batch, the spikes before the first step, and the weight."""
    from snn.family_functional import CubaLIFParameters, recurrent_sequence
    from snn.kernels import triton_lif

    x = torch.rand(STEPS, BATCH, NEURONS, device=DEVICE)
    weight = torch.randn(NEURONS, NEURONS, device=DEVICE) / NEURONS
    lif = LIFParameters(beta=torch.full((NEURONS,), 0.9, device=DEVICE, requires_grad=True))
    p = CubaLIFParameters(lif=lif) if kind == "cuba" else lif

    def saved_shapes(backend):
        shapes = []

        def pack(t):
            shapes.append(tuple(t.shape))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            recurrent_sequence(x.requires_grad_(), None, p, weight, None, backend=backend)
        return shapes

    for backend in ("fused", "triton"):
        shapes = saved_shapes(backend)
        assert shapes.count(tuple(x.shape)) == 2, (backend, shapes)
        assert shapes.count(tuple(weight.shape)) == 1, (backend, shapes)
    rows = 2 if kind == "cuba" else 1  # the states: v, and i for CubaLIF
    chunks = -(-STEPS // triton_lif.CHUNK_STEPS)
    params = 3 + 2 * (kind == "cuba")  # beta, v_th, the reset's jump; alpha and g_cur
    others = [s for s in saved_shapes("triton") if s not in (tuple(x.shape), tuple(weight.shape))]
    # the chunk starts, the parameters over the batch, the spikes before the first step
    assert sum(math.prod(s) for s in others) == (chunks * rows + params + 1) * BATCH * NEURONS


@runs_kernels
@pytest.mark.parametrize("kind", ["cuba", "alif", "recurrent"])
def test_bfloat16_family_rounds_as_the_reference_loop(kind):
    """bfloat16 rounds to bfloat16 after every operation, as PyTorch's bfloat16 operations in
    snn's reference loop do: spikes and final states bit for bit (CubaLIF, ALIF, and a recurrent
    ALIF with a bias and an input gain; v_rest = v_reset = 0, exact in any type)."""
    from snn import family_functional as ff

    x, state, p, _ = _family_case("cuba" if kind == "cuba" else "alif", "subtract", seed=11)
    x, state = x.bfloat16().to(DEVICE), [t.bfloat16().to(DEVICE) for t in state]
    p = {k: t.bfloat16().to(DEVICE) for k, t in p.items()}
    lif = LIFParameters(beta=p["beta"], v_th=p["v_th"], gain=p["gain"])
    outs = []
    for backend in ("reference", "triton"):
        if kind == "cuba":
            params = ff.CubaLIFParameters(alpha=p["alpha"], lif=lif, input_gain=p["g_in"])
            out = ff.cuba_lif_sequence(x, ff.CubaLIFState(*state), params, backend=backend)
            outs.append((out.spikes, *out.state))
            continue
        params = ff.ALIFParameters(lif=lif, rho=p["rho"], adapt=p["adapt"])
        if kind == "alif":
            out = ff.alif_sequence(x, ff.ALIFState(*state), params, backend=backend)
            outs.append((out.spikes, *out.state))
            continue
        g = torch.Generator().manual_seed(12)
        weight = (0.3 * torch.randn(NEURONS, NEURONS, generator=g) / NEURONS**0.5).bfloat16()
        bias = (0.05 * torch.randn(NEURONS, generator=g)).bfloat16()
        s0 = (torch.rand(BATCH, NEURONS, generator=g) < 0.3).bfloat16()
        start = ff.RecurrentState(ff.ALIFState(*state), s0.to(DEVICE))
        out = ff.recurrent_sequence(x, start, params, weight.to(DEVICE), bias.to(DEVICE),
                                 backend=backend)  # fmt: skip
        outs.append((out.spikes, *out.state.neuron))
    rate = float(outs[0][0].float().mean())
    assert 0.05 <= rate <= 0.8, f"firing rate {rate:.3f}"
    for name, want, got in zip(("spikes", "state0", "state1"), *outs, strict=True):
        assert got.dtype == torch.bfloat16
        assert torch.equal(got, want), f"{kind}: {name} differ at {int((got != want).sum())} places"


@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="the interpreter runs CPU tensors")
def test_the_family_refuses_cpu_tensors_without_the_interpreter():
    from snn.family_functional import CubaLIFParameters, cuba_lif_sequence, recurrent_sequence

    with pytest.raises(ValueError, match="backend='triton' cannot run here.*TRITON_INTERPRET=1"):
        cuba_lif_sequence(torch.ones(3, 2, 4), None, CubaLIFParameters(), backend="triton")
    with pytest.raises(ValueError, match="backend='triton' cannot run here.*TRITON_INTERPRET=1"):
        recurrent_sequence(torch.ones(3, 2, 4), None, LIFParameters(), torch.eye(4), None,
                           backend="triton")  # fmt: skip


def test_triton_is_a_family_backend():
    assert snn.Recurrent(snn.ALIF(), 4, backend="triton").backend == "triton"


@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="compiles for the GPU: not under the interpreter")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_kernels_compile_for_a_gpu_without_fused_multiply_adds(monkeypatch, dtype):
    """Every kernel, with the arguments the nodes pass (the LIF, CubaLIF and ALIF sequences;
    the recurrent layer's step, recompute and reverse kernels, with a bias and an input gain, in
    float32; one neuron: Triton makes an integer 1 a constant unless told not to), compiles for
    sm_90 on this machine (Triton's compiler and ptxas need no GPU), and its PTX has no fused
    multiply-add; with enable_fp_fusion on, the same forward kernel has some (so the check can
    fail). The surrogates here call no library function: libdevice's float64 exp, which the
    sigmoid's backward calls, is written with fused multiply-adds of its own."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import mangle_type

    from snn.kernels import triton_family, triton_lif, triton_recurrent
    from snn.kernels.fused import fused_lif_sequence

    calls = []

    class Recorder:  # stands in for a kernel: keeps the launch's arguments, runs nothing
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: calls.append((self.kernel, args, kwargs))

    kernels = {
        triton_lif: ("_forward_kernel", "_backward_kernel"),
        triton_recurrent: ("_step_kernel", "_recompute_kernel", "_reverse_kernel"),
    }
    for module, names in kernels.items():
        for name in names:
            monkeypatch.setattr(module, name, Recorder(getattr(module, name)))

    def ptx(kernel, args, kwargs, **override):
        kwargs = {**kwargs, **override}
        options = {key: kwargs.pop(key) for key in ("num_warps", "enable_fp_fusion")}
        values = [*args, *[kwargs[p.name] for p in kernel.params[len(args) :]]]
        signature, constants = {}, {}
        for i, (param, value) in enumerate(zip(kernel.params, values, strict=True)):
            kind = (
                "constexpr"
                if param.is_constexpr
                else mangle_type(value, not param.do_not_specialize)
            )
            signature[param.name] = kind
            if kind == "constexpr":
                constants[(i,)] = value
        source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
        return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]

    def leaf(*shape):
        return torch.full(shape, 0.5, dtype=dtype, requires_grad=True)

    def backward(*outputs):
        sum(o.float().sum() for o in outputs if o.numel()).backward()

    x, v0, state, beta = leaf(3, 1, 1), leaf(1, 1), leaf(1, 1), leaf(1)
    backward(*fused_lif_sequence(x, v0, beta, leaf(), 0.1, 0.0, "subtract", False, sg.ATan(),
                                 True, executor="triton", chunk=2))  # fmt: skip
    family = triton_family._TritonFamily.apply
    backward(*family(x, v0, state, None, beta, 1.0, leaf(1), leaf(1), None, None, 0.0, 0.0,
                     "subtract", False, sg.FastSigmoid(), True, 2))  # fmt: skip
    backward(*family(x, v0, None, state, beta, 1.0, None, None, 0.9, leaf(1), 0.0, 0.0, "zero",
                     False, sg.Triangle(), True, 2))  # fmt: skip
    expected = ["_forward_kernel", "_backward_kernel"] * 3  # LIF, CubaLIF, ALIF
    if dtype == torch.float32:
        recurrent = triton_recurrent._TritonRecurrent.apply
        s0, weight = torch.zeros(1, 1), leaf(1, 1)
        cuba, alif = (
            (state, None, 0.8, leaf(1), None, None),
            (None, state, None, None, 0.9, leaf(1)),
        )
        for i0, a0, alpha, g_cur, rho, adapt in (cuba, alif):
            backward(*recurrent(x, v0, i0, a0, s0, weight, leaf(1), beta, 1.0, alpha, g_cur,
                                leaf(1), rho, adapt, 0.1, 0.0, "subtract", False, sg.ATan(),
                                True, 2))  # fmt: skip
        expected += ["_step_kernel", "_recompute_kernel", "_reverse_kernel"] * 2
    # the first launch of each kernel and neuron (the recurrent ones launch once per step)
    unique = {}
    for kernel, args, kwargs in calls:
        key = (kernel.__name__, kwargs["CURRENT"], kwargs["ADAPT"])
        unique.setdefault(key, (kernel, args, kwargs))
    calls = list(unique.values())
    assert [kernel.__name__ for kernel, _, _ in calls] == expected
    for kernel, args, kwargs in calls:
        code = ptx(kernel, args, kwargs)
        assert "fma.rn" not in code and "mad.rn" not in code, kernel.__name__
    kernel, args, kwargs = calls[0]
    assert "fma.rn" in ptx(kernel, args, kwargs, enable_fp_fusion=True)
