"""CubaLIF and ALIF on the native C kernel against a per-step autograd loop.

The loop (tests/_reference.py's ``family_loop``) shares no code with snn (its spike is
``Step``). Each case runs 1400 neurons (B = 2, N = 700): at 1, 2 and 3 threads every range
holds several 256-neuron tiles and a partial one (the kernel's minimum range is lowered so that
this small population splits);
T = 75 steps, two 32-step chunks and a partial one; non-zero initial states; per-neuron
parameters that all take gradients, or Python numbers; a loss on the spikes, the recorded
membrane and the final states. The native results must not depend on the thread count, bit for
bit.
"""

from __future__ import annotations

import pytest
import torch
from _backends import needs_cc
from _reference import family_loop

from snn.family_functional import (
    ALIFParameters,
    ALIFState,
    CubaLIFParameters,
    CubaLIFState,
    alif_sequence,
    cuba_lif_sequence,
)
from snn.functional import LIFParameters
from snn.kernels import native

pytestmark = needs_cc

T, B, N = 75, 2, 700
V_REST, V_RESET = 0.1, -0.2
RESETS = ["subtract", "zero", "none"]
SURROGATES = ["atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "straight_through"]
THREADS = (1, 2, 3)


KERNEL_CALLS = []


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch):
    """Let 1400 neurons split over up to 3 threads, and count the native kernel's forward calls;
    restore the thread count afterwards."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(native, "_MIN_NEURONS_PER_THREAD", 256)
    family_forward = native.family_forward

    def counted(*args, **kwargs):
        KERNEL_CALLS.append(1)
        return family_forward(*args, **kwargs)

    monkeypatch.setattr(native, "family_forward", counted)
    yield
    torch.set_num_threads(threads)


def loop(kind, x, state, p, reset, detach, surrogate):
    """The neuron's equations as a plain autograd loop (tests/_reference.py's)."""
    return family_loop(kind, x, state, p, reset, detach, surrogate, V_REST, V_RESET)


def make_case(kind, reset, dtype, per_neuron=True, seed=5):
    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi, *shape):
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype)

    drive = {"none": 0.05, "subtract": 0.45, "zero": 0.45}[reset] * (0.3 if kind == "cuba" else 1)
    x = (drive + 0.35 * torch.randn(T, B, N, generator=g, dtype=torch.float64)).to(dtype)
    ranges = {"beta": (0.6, 0.95), "v_th": (0.9, 1.2), "gain": (0.8, 1.2)}
    if kind == "cuba":
        ranges |= {"alpha": (0.5, 0.8), "g_in": (0.8, 1.2)}
        state = [uniform(-0.2, 0.4, B, N), uniform(-0.2, 0.6, B, N)]
    else:
        ranges |= {"rho": (0.8, 0.98), "adapt": (0.5, 2.0)}
        state = [uniform(-0.2, 0.6, B, N), uniform(0.0, 0.3, B, N)]
    if per_neuron == "0-d":  # tensors of one value: the kernel repeats each into a row
        p = {k: torch.tensor((lo + hi) / 2, dtype=dtype) for k, (lo, hi) in ranges.items()}
    elif per_neuron:
        p = {k: uniform(lo, hi, N) for k, (lo, hi) in ranges.items()}
    else:  # numbers: the kernel must round them as torch rounds a scalar operand
        p = {k: (lo + hi) / 2 for k, (lo, hi) in ranges.items()}
    weights = [torch.randn(T, B, N, generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]
    weights += [torch.randn(B, N, generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]
    return x, state, p, weights


def snn_run(kind, x, state, p, reset, detach, surrogate, record_membrane=True):
    calls = len(KERNEL_CALLS)
    lif = LIFParameters(
        beta=p["beta"], v_th=p["v_th"], v_rest=V_REST, v_reset=V_RESET, gain=p["gain"],
        reset=reset, detach_reset=detach, surrogate=surrogate,
    )  # fmt: skip
    if kind == "cuba":
        params = CubaLIFParameters(alpha=p["alpha"], lif=lif, input_gain=p["g_in"])
        out = cuba_lif_sequence(x, CubaLIFState(*state), params, record_membrane=record_membrane)
    else:
        params = ALIFParameters(lif=lif, rho=p["rho"], adapt=p["adapt"])
        out = alif_sequence(x, ALIFState(*state), params, record_membrane=record_membrane)
    assert len(KERNEL_CALLS) == calls + 1, "this did not run the native kernel"
    return out.spikes, out.membrane, tuple(out.state)


def loss_of(spikes, membrane, final, weights):
    total = (spikes * weights[0]).sum() + (membrane * weights[1]).sum()
    return total + sum((f * w).sum() for f, w in zip(final, weights[2:], strict=True))


def leaves(x, state, p):
    def leaf(t):
        return t.detach().clone().requires_grad_(True) if isinstance(t, torch.Tensor) else t

    return leaf(x), [leaf(s) for s in state], {k: leaf(t) for k, t in p.items()}


def gradients(out, loss, x, state, p):
    inputs = [x, *state, *[t for t in p.values() if isinstance(t, torch.Tensor)]]
    return [o.detach() for o in (out[0], out[1], *out[2])], torch.autograd.grad(loss, inputs)


def assert_rate(spikes):
    rate = float(spikes.mean())
    assert 0.05 <= rate <= 0.8, f"firing rate {rate:.3f}: the case does not exercise the spike"


def assert_close(got, want, what):
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        err = float((g - w).abs().max()) / max(1.0, float(w.abs().max()))
        assert err < 1e-10, f"{what}: gradient {k} off by {err:.2e}"


def run_both(kind, reset, detach, surrogate, dtype=torch.float64, per_neuron=True, ones=()):
    """The loop once, the native kernel at 1, 2 and 3 threads: (loop's, [native's per count]).
    ``ones``: parameters set to the number 1 instead."""
    x, state, p, weights = make_case(kind, reset, dtype, per_neuron)
    p |= {k: 1.0 for k in ones}
    xs, ss, ps = leaves(x, state, p)
    out = loop(kind, xs, ss, ps, reset, detach, surrogate)
    want = gradients(out, loss_of(*out, weights), xs, ss, ps)
    got = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        assert native._split(B * N)[0] == threads  # the neurons really are cut in `threads`
        xs, ss, ps = leaves(x, state, p)
        out = snn_run(kind, xs, ss, ps, reset, detach, surrogate)
        got.append(gradients(out, loss_of(*out, weights), xs, ss, ps))
    return want, got


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_equals_the_step_loop_in_float64(kind, reset, detach):
    """Spikes, membrane and final states bit for bit, every gradient to 1e-10, at each thread
    count; and the native results bit for bit the same at every thread count."""
    (want_out, want_grads), got = run_both(kind, reset, detach, "atan")
    assert_rate(want_out[0])
    for outs, grads in got:
        assert all(torch.equal(a, b) for a, b in zip(outs, want_out, strict=True))
        assert_close(grads, want_grads, f"{kind} {reset} detach={detach}")
        assert all(torch.equal(a, b) for a, b in zip(grads, got[0][1], strict=True))


@pytest.mark.parametrize(
    ("kind", "surrogate"), [(("alif", "cuba")[k % 2], name) for k, name in enumerate(SURROGATES)]
)
def test_every_surrogate(kind, surrogate):
    (want_out, want_grads), got = run_both(kind, "subtract", False, surrogate)
    for outs, grads in got:
        assert torch.equal(outs[0], want_out[0])
        assert_close(grads, want_grads, surrogate)


@pytest.mark.parametrize(
    "per_neuron", [True, False, "0-d"], ids=["per-neuron", "numbers", "0-d tensors"]
)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_float32_bitwise(kind, reset, per_neuron):
    """Spikes, the membrane and the final states: a product fused into a sum, or a number
    rounded otherwise than torch rounds it (1 - rho in double, say), shows there; with 0-dim
    tensors, the rows the kernel fills with their values (1 - rho its own)."""
    x, state, p, _ = make_case(kind, reset, torch.float32, per_neuron)
    want = loop(kind, x, state, p, reset, False, "atan")
    assert_rate(want[0])
    torch.set_num_threads(2)
    got = snn_run(kind, x, state, p, reset, False, "atan")
    assert torch.equal(got[0], want[0])
    assert torch.equal(got[1], want[1])
    assert all(torch.equal(a, b) for a, b in zip(got[2], want[2], strict=True))


@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_parameters_as_numbers_in_float64(kind):
    (want_out, want_grads), got = run_both(kind, "zero", False, "atan", per_neuron=False)
    for outs, grads in got:
        assert all(torch.equal(a, b) for a, b in zip(outs, want_out, strict=True))
        assert_close(grads, want_grads, f"{kind} with numbers")


@pytest.mark.parametrize(("kind", "one"), [("cuba", "g_in"), ("cuba", "gain"), ("alif", "gain")])
def test_a_gain_of_one(kind, one):
    """A gain that is the number 1, the other parameters per neuron and learned: the CubaLIF's
    input gain or current gain, not both (the kernel reads a row of ones for it; with both at 1
    it runs its variant without them, as in the test above), and the ALIF's input gain (its
    variant without it)."""
    (want_out, want_grads), got = run_both(kind, "subtract", False, "atan", ones=(one,))
    assert_rate(want_out[0])
    for outs, grads in got:
        assert all(torch.equal(a, b) for a, b in zip(outs, want_out, strict=True))
        assert_close(grads, want_grads, f"{kind} with {one} = 1")


@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_stride_zero_gradients(kind):
    """Losses whose gradients autograd hands over broadcast (stride 0 over every dimension, over
    the batch, over time) give what the same gradient materialized gives, bit for bit, and what
    the loop gives to 1e-10."""
    x, state, p, _ = make_case(kind, "subtract", torch.float64)
    w = torch.linspace(-1, 1, N, dtype=torch.float64)
    losses = {
        "sum": (lambda s, m: s.sum() + m.sum(), lambda s, m: (s * torch.ones_like(s)).sum()
                + (m * torch.ones_like(m)).sum()),
        "batch": (lambda s, m: (s.sum(1) * w).sum() + m.mean(1).sum(),
                  lambda s, m: (s * w.expand_as(s).contiguous()).sum()
                  + (m * torch.full_like(m, 1 / B)).sum()),
        "time": (lambda s, m: (s.sum(0) * w).sum(),
                 lambda s, m: (s * w.expand_as(s).clone()).sum()),
    }  # fmt: skip
    torch.set_num_threads(2)
    for name, (broadcast, materialized) in losses.items():
        results = []
        for runner, loss_fn in (("snn", broadcast), ("snn", materialized), ("loop", broadcast)):
            xs, ss, ps = leaves(x, state, p)
            if runner == "snn":
                out = snn_run(kind, xs, ss, ps, "subtract", False, "atan")
            else:
                out = loop(kind, xs, ss, ps, "subtract", False, "atan")
            results.append(gradients(out, loss_fn(out[0], out[1]), xs, ss, ps)[1])
        assert all(torch.equal(a, b) for a, b in zip(results[0], results[1], strict=True)), name
        assert_close(results[0], results[2], f"{kind} {name}")


def test_without_a_recorded_membrane_and_scalar_tensors():
    """No membrane output, 0-dim tensor parameters (their gradients sum over every neuron), an
    input that is not contiguous (the kernel reads a contiguous copy)."""
    x, state, p, weights = make_case("alif", "subtract", torch.float64)
    x = x.transpose(1, 2).contiguous().transpose(1, 2)  # same values, batch stride 1
    assert not x.is_contiguous()
    p = {k: torch.tensor(float(t.mean()), dtype=torch.float64) for k, t in p.items()}
    results = []
    for runner in ("loop", "snn"):
        xs, ss, ps = leaves(x, state, p)
        assert not xs.is_contiguous()
        if runner == "snn":
            spikes, membrane, final = snn_run("alif", xs, ss, ps, "subtract", False, "atan", False)
            assert membrane is None
        else:
            spikes, _, final = loop("alif", xs, ss, ps, "subtract", False, "atan")
        loss = (spikes * weights[0]).sum() + (final[1] * weights[3]).sum()
        results.append(torch.autograd.grad(loss, [xs, *ss, *ps.values()]))
    assert_close(results[1], results[0], "0-dim parameters")


@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_from_rest_without_a_state(kind):
    """``state=None``: the kernel starts every neuron at rest itself (v_rest, no current, no
    adaptation), as the loop does from those states given as tensors: outputs bit for bit,
    gradients to 1e-10; and the same from those tensors given, needing no gradient (the kernel
    then writes none for them)."""
    x, state, p, weights = make_case(kind, "subtract", torch.float64)
    rest = [torch.full((B, N), V_REST, dtype=torch.float64), torch.zeros(B, N, dtype=torch.float64)]
    if kind == "cuba":
        rest.reverse()  # CubaLIFState is (i, v)
    xs, _, ps = leaves(x, state, p)
    want_out = loop(kind, xs, rest, ps, "subtract", False, "atan")
    assert_rate(want_out[0])
    inputs = [xs, *[t for t in ps.values() if isinstance(t, torch.Tensor)]]
    want = torch.autograd.grad(loss_of(*want_out, weights), inputs)
    torch.set_num_threads(2)
    xs, _, ps = leaves(x, state, p)
    inputs = [xs, *[t for t in ps.values() if isinstance(t, torch.Tensor)]]
    lif = LIFParameters(
        beta=ps["beta"], v_th=ps["v_th"], v_rest=V_REST, v_reset=V_RESET, gain=ps["gain"],
        reset="subtract", surrogate="atan",
    )  # fmt: skip
    calls = len(KERNEL_CALLS)
    for given in (None, rest):  # from rest; then the same state given, needing no gradient
        if kind == "cuba":
            params = CubaLIFParameters(alpha=ps["alpha"], lif=lif, input_gain=ps["g_in"])
            out = cuba_lif_sequence(x=xs, state=given and CubaLIFState(*given), p=params,
                                    record_membrane=True)  # fmt: skip
        else:
            params = ALIFParameters(lif=lif, rho=ps["rho"], adapt=ps["adapt"])
            out = alif_sequence(x=xs, state=given and ALIFState(*given), p=params,
                                record_membrane=True)  # fmt: skip
        got_out = (out.spikes, out.membrane, tuple(out.state))
        assert torch.equal(got_out[0], want_out[0]) and torch.equal(got_out[1], want_out[1])
        assert all(torch.equal(a, b) for a, b in zip(got_out[2], want_out[2], strict=True))
        got = torch.autograd.grad(loss_of(*got_out, weights), inputs)
        assert_close(got, want, f"{kind} from rest (state given: {given is not None})")
    assert len(KERNEL_CALLS) == calls + 2, "this did not run the native kernel"


def test_refuses_another_neuron_or_a_state_it_lacks():
    from snn.kernels.family import FamilyConfig, native_family_sequence
    from snn.surrogate import ATan

    x = torch.rand(4, 2, 3)
    config = FamilyConfig(0.0, 0.0, "subtract", False, ATan(), False)
    args = dict(beta=0.9, v_th=1.0, alpha=0.8, current_gain=1.0, input_gain=1.0, rho=0.9,
                adapt=1.0, config=config)  # fmt: skip
    with pytest.raises(ValueError, match="neuron='cuba' or 'alif', got 'lif'"):
        native_family_sequence(x, None, None, None, neuron="lif", **args)
    with pytest.raises(ValueError, match="'alif' has no current state"):
        native_family_sequence(x, None, torch.zeros(2, 3), None, neuron="alif", **args)
    with pytest.raises(ValueError, match="'cuba' has no threshold state"):
        native_family_sequence(x, None, None, torch.zeros(2, 3), neuron="cuba", **args)
