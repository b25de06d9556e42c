"""CubaLIF and ALIF against a loop written from their equations (issue 12's contract).

The loop (``family_loop`` in tests/_reference.py, shared with tests/test_family_native.py)
shares no code with snn: its spike is ``Step`` (the surrogate formulas written out again).
Each case runs a population of more than one kernel tile (600 neurons) from a non-zero initial
state, with per-neuron parameters that all take gradients, a recorded membrane, and a loss on
the spikes, the membrane and the final state:

* float64: spikes bit for bit, every gradient (input, initial state, each parameter) to 1e-10;
* float32: spikes bit for bit (the documented rounding rule: each product rounded before the
  sum);
* closed forms: CubaLIF's current decays as ``alpha^t`` after a pulse (and its membrane as
  ``(beta^{t+1} - alpha^{t+1}) / (beta - alpha)``), ALIF's threshold relaxes as ``rho^t``.
"""

from __future__ import annotations

import io
import pickle

import pytest
import torch
from _reference import family_loop

import snn
from snn.family_functional import (
    ALIFParameters,
    ALIFState,
    CubaLIFParameters,
    CubaLIFState,
    alif_sequence,
    cuba_lif_sequence,
)
from snn.functional import LIFParameters

T, B, N = 41, 2, 600
V_REST, V_RESET = 0.1, -0.2
RESETS = ["subtract", "zero", "none"]
SURROGATES = ["atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "straight_through"]


def loop(kind, x, state, p, reset, detach, surrogate):
    """The CubaLIF / ALIF equations as a plain autograd loop; returns spikes, trace, state."""
    return family_loop(kind, x, state, p, reset, detach, surrogate, V_REST, V_RESET)


def make_case(kind, reset, dtype, seed=3):
    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi, *shape):
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype)

    drive = {"none": 0.05, "subtract": 0.45, "zero": 0.45}[reset]
    if kind == "cuba":
        drive *= 0.3  # the current sums about 1 / (1 - alpha) inputs
    x = (drive + 0.35 * torch.randn(T, B, N, generator=g, dtype=torch.float64)).to(dtype)
    p = {
        "beta": uniform(0.6, 0.95, N),
        "v_th": uniform(0.9, 1.2, N),
        "gain": uniform(0.8, 1.2, N),
    }
    if kind == "cuba":
        p |= {"alpha": uniform(0.5, 0.8, N), "g_in": uniform(0.8, 1.2, N)}
        state = [uniform(-0.2, 0.4, B, N), uniform(-0.2, 0.6, B, N)]
    else:
        p |= {"rho": uniform(0.8, 0.98, N), "adapt": uniform(0.5, 2.0, N)}
        state = [uniform(-0.2, 0.6, B, N), uniform(0.0, 0.3, B, N)]
    weights = [torch.randn(T, B, N, generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]
    weights += [torch.randn(B, N, generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]
    return x, state, p, weights


def snn_run(kind, x, state, p, reset, detach, surrogate, backend):
    lif = LIFParameters(
        beta=p["beta"], v_th=p["v_th"], v_rest=V_REST, v_reset=V_RESET, gain=p["gain"],
        reset=reset, detach_reset=detach, surrogate=surrogate,
    )  # fmt: skip
    if kind == "cuba":
        params = CubaLIFParameters(alpha=p["alpha"], lif=lif, input_gain=p["g_in"])
        out = cuba_lif_sequence(
            x, CubaLIFState(*state), params, record_membrane=True, backend=backend
        )
    else:
        params = ALIFParameters(lif=lif, rho=p["rho"], adapt=p["adapt"])
        out = alif_sequence(x, ALIFState(*state), params, record_membrane=True, backend=backend)
    return out.spikes, out.membrane, tuple(out.state)


def loss_of(spikes, membrane, final, weights):
    total = (spikes * weights[0]).sum() + (membrane * weights[1]).sum()
    return total + sum((f * w).sum() for f, w in zip(final, weights[2:], strict=True))


def leaves(tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def compare(kind, reset, detach, surrogate, backend, dtype=torch.float64):
    x, state, p, weights = make_case(kind, reset, dtype)
    results = []
    for runner in ("test loop", "snn"):
        xs, ss, ps = leaves([x]), leaves(state), dict(zip(p, leaves(p.values()), strict=True))
        if runner == "snn":
            out = snn_run(kind, xs[0], ss, ps, reset, detach, surrogate, backend)
        else:
            out = loop(kind, xs[0], ss, ps, reset, detach, surrogate)
        grads = torch.autograd.grad(loss_of(*out, weights), [*xs, *ss, *ps.values()])
        results.append((out[0].detach(), grads))
    (want_spikes, want_grads), (got_spikes, got_grads) = results
    return want_spikes, want_grads, got_spikes, got_grads, ["x", "state0", "state1", *p]


def assert_rate(spikes):
    rate = float(spikes.mean())
    assert 0.05 <= rate <= 0.8, f"firing rate {rate:.3f}: the case does not exercise the spike"


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_equals_the_equation_loop_in_float64(kind, reset, detach, backend):
    want_s, want_g, got_s, got_g, names = compare(kind, reset, detach, "atan", backend)
    assert_rate(want_s)
    assert torch.equal(got_s, want_s)
    for name, g_want, g_got in zip(names, want_g, got_g, strict=True):
        scale = max(1.0, float(g_want.abs().max()))
        err = float((g_got - g_want).abs().max()) / scale
        assert err < 1e-10, f"{kind} {reset} detach={detach}: dL/d{name} off by {err:.2e}"


@pytest.mark.parametrize(
    ("kind", "surrogate"), [(("cuba", "alif")[k % 2], name) for k, name in enumerate(SURROGATES)]
)
def test_every_surrogate(kind, surrogate):
    want_s, want_g, got_s, got_g, names = compare(kind, "subtract", False, surrogate, "fused")
    assert torch.equal(got_s, want_s)
    for name, g_want, g_got in zip(names, want_g, got_g, strict=True):
        scale = max(1.0, float(g_want.abs().max()))
        assert float((g_got - g_want).abs().max()) / scale < 1e-10, f"{surrogate}: dL/d{name}"


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["cuba", "alif"])
def test_float32_spikes_bitwise(kind, reset):
    """Spikes, and the membrane and final state too: a product fused into a sum shows there."""
    x, state, p, _ = make_case(kind, reset, torch.float32)
    want = loop(kind, x, state, p, reset, False, "atan")
    got = snn_run(kind, x, state, p, reset, False, "atan", "fused")
    assert_rate(want[0])
    assert torch.equal(got[0], want[0])
    assert torch.equal(got[1], want[1])
    assert all(torch.equal(a, b) for a, b in zip(got[2], want[2], strict=True))


# ---------------------------------------------------------------------------------------------
# Closed forms


def test_cuba_current_decays_as_alpha_power_after_a_pulse():
    alpha, beta, q, steps = 0.7, 0.9, 0.5, 30
    cell = snn.CubaLIFCell(alpha=alpha, beta=beta, threshold=1e9, dtype=torch.float64)
    x = torch.zeros(steps, 1, 1, dtype=torch.float64)
    x[0] = q
    # the membrane integrates it: v_t = q (beta^{t+1} - alpha^{t+1}) / (beta - alpha)
    t = torch.arange(steps, dtype=torch.float64)
    want_v = q * (beta ** (t + 1) - alpha ** (t + 1)) / (beta - alpha)
    state = None
    for k in range(steps):
        _, state = cell(x[k], state)
        assert state.i.item() == pytest.approx(q * alpha**k, rel=1e-12, abs=1e-300)
        assert state.v.item() == pytest.approx(want_v[k].item(), rel=1e-12)
    for backend in ("fused", "reference"):
        layer = snn.CubaLIF(alpha, beta, 1e9, dtype=torch.float64, backend=backend)
        out = layer.run(x, record_membrane=True)
        torch.testing.assert_close(out.membrane.flatten(), want_v, rtol=1e-12, atol=0)
        assert out.state.i.item() == pytest.approx(q * alpha ** (steps - 1), rel=1e-12)


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("k", [1, 2, 5, 12])
def test_alif_threshold_relaxes_as_rho_power_after_a_spike(k, backend):
    """beta = 0 and a zero reset make h_t = x_t: a probe k steps after one spike fires exactly
    when it reaches v_th + adapt (1 - rho) rho^(k-1)."""
    rho, adapt, v_th = 0.8, 1.5, 1.0
    alif = snn.ALIF(0.0, rho, adapt, v_th, reset="zero", dtype=torch.float64, backend=backend)
    theta = v_th + adapt * (1 - rho) * rho ** (k - 1)
    for factor, fires in ((1 + 1e-9, 1.0), (1 - 1e-9, 0.0)):
        x = torch.zeros(k + 1, 1, 1, dtype=torch.float64)
        x[0], x[k] = 5.0, theta * factor
        spikes = alif(x).flatten()
        assert spikes[0] == 1 and spikes[1:k].sum() == 0
        assert spikes[k] == fires
    out = alif.run(x)  # and the state: a = (1 - rho) rho^k after the last step
    assert out.state.a.item() == pytest.approx((1 - rho) * rho**k, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# The layers


CUBA = dict(alpha=0.8, beta=0.9, shape=8, learn_alpha=True, learn_beta=True, learn_threshold=True)
ALIF = dict(beta=0.9, rho=0.9, adapt=1.0, shape=8, learn_beta=True, learn_rho=True,
            learn_adapt=True, reset="zero")  # fmt: skip


def firing_layers():
    torch.manual_seed(0)
    cuba, alif = snn.CubaLIF(**CUBA), snn.ALIF(**ALIF)
    with torch.no_grad():  # move every parameter off its initial value
        for layer in (cuba, alif):
            for param in layer.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return cuba, alif


def test_layers_learn_every_parameter_and_match_the_reference_backend():
    x = torch.rand(30, 4, 8)
    for layer in firing_layers():
        drive = x * (0.25 if isinstance(layer, snn.CubaLIF) else 0.8)
        grads = []
        for backend in ("fused", "reference"):
            layer.backend = backend
            layer.zero_grad()
            spikes = layer(drive)
            assert 0.05 <= float(spikes.detach().mean()) <= 0.8
            spikes.sum().backward()
            grads.append({n: p.grad.clone() for n, p in layer.named_parameters()})
        assert set(grads[0]) == {n for n, _ in layer.named_parameters()} and len(grads[0]) == 3
        for name in grads[0]:
            assert torch.count_nonzero(grads[0][name]) > 0, name
            torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5)


def test_streaming_and_the_cell_equal_one_run():
    x = torch.rand(20, 3, 8)
    for layer, cell_type in zip(firing_layers(), (snn.CubaLIFCell, snn.ALIFCell), strict=True):
        whole = layer.run(x, record_membrane=True)
        first = layer.run(x[:7])
        second = layer.run(x[7:], first.state)
        assert torch.equal(torch.cat([first.spikes, second.spikes]), whole.spikes)
        cell = cell_type(**(CUBA if cell_type is snn.CubaLIFCell else ALIF))
        cell.load_state_dict(layer.state_dict())
        state, spikes = None, []
        for x_t in x:
            s, state = cell(x_t, state)
            spikes.append(s)
        assert torch.equal(torch.stack(spikes), whole.spikes)
        for a, b in zip(state, whole.state, strict=True):
            assert torch.equal(a, b)


def test_pickle_and_torch_save_round_trips():
    x = torch.rand(25, 2, 8)
    for layer in firing_layers():
        want = layer(x)
        assert want.sum() > 0
        copies = [pickle.loads(pickle.dumps(layer))]
        buffer = io.BytesIO()
        torch.save(layer, buffer)
        buffer.seek(0)
        copies.append(torch.load(buffer, weights_only=False))
        for copy in copies:
            assert repr(copy) == repr(layer)
            assert torch.equal(copy(x), want)


def test_float64_and_bf16():
    x = torch.rand(12, 2, 8, dtype=torch.float64)
    for layer in firing_layers():
        double = layer.double()
        assert double(x).dtype == torch.float64
        float_ = layer.float()
        with torch.no_grad():  # no spikes: the membranes can be compared step by step
            float_.threshold.fill_(1e3)
        want = float_.run(x.float(), record_membrane=True).membrane.detach()
        got = float_.to(torch.bfloat16).run(x.bfloat16(), record_membrane=True).membrane
        assert got.dtype == torch.bfloat16
        # bf16 keeps 8 bits: each step adds an error of about 2^-8 of the membrane
        err = (got.detach().float() - want).abs() / want.abs().clamp(min=0.1)
        assert float(err.max()) < 12 * 2**-8


def test_bf16_spikes_follow_the_same_rounding_rule():
    for kind in ("cuba", "alif"):
        x, state, p, _ = make_case(kind, "subtract", torch.bfloat16)
        want, _, _ = loop(kind, x, state, p, "subtract", False, "atan")
        got, _, _ = snn_run(kind, x, state, p, "subtract", False, "atan", "fused")
        assert torch.equal(got, want)


def test_physical_forms_follow_nir_euler_steps():
    """CubaLIF.physical against an Euler loop of NIR's equations, in mV/ms-style units."""
    tau_syn, tau_mem, dt, v_leak, v_reset, v_th, r, w_in = (
        5.0,
        20.0,
        0.5,
        -65.0,
        -70.0,
        -50.0,
        8.0,
        3.0,
    )
    cuba = snn.CubaLIF.physical(
        tau_syn, tau_mem, dt, v_leak, v_reset, v_th, r, w_in, dtype=torch.float64
    )
    x = torch.rand(200, 1, 1, dtype=torch.float64) * 4
    got = cuba(x).flatten().nonzero().flatten().tolist()
    i, v, want = 0.0, v_leak, []
    for t, x_t in enumerate(x.flatten().tolist()):
        i += dt / tau_syn * (-i + w_in * x_t)
        v += dt / tau_mem * (v_leak - v + r * i)
        if v >= v_th:
            want.append(t)
            v = v_reset
    assert len(want) > 3 and got == want
    alif = snn.ALIF.physical(20.0, 1.0, 0.0, 0.0, 1.0, 1.0, tau_adapt=100.0, adapt=2.0)
    assert alif.rho.item() == pytest.approx(0.99) and alif.tau_adapt.item() == pytest.approx(100)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="alpha must lie in"):
        snn.CubaLIF(alpha=1.5)
    with pytest.raises(ValueError, match="adapt must be >= 0"):
        snn.ALIF(adapt=-1.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        snn.ALIF(backend="native")
    with pytest.raises(ValueError, match="ALIFState holds a tensor of shape"):
        snn.ALIF().run(torch.rand(3, 2, 4), ALIFState(torch.zeros(2, 5), torch.zeros(2, 5)))


def test_compiles_with_fullgraph():
    cuba, alif = firing_layers()
    model = torch.nn.Sequential(cuba, alif)
    x = torch.rand(6, 2, 8)
    want = model(x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), want)
