"""snn.Recurrent against a loop written here: ``u_t = x_t + b + s_{t-1} W^T`` into the neuron.

The loop (tests/_reference.py's ``family_step``) shares no code with snn. Every neuron of
the family runs with 600 neurons (more than one tile), per-neuron parameters, a non-zero initial
state including the spikes of the step before, and gradients for the input, every state, the
weight, the bias and every parameter (float64, to 1e-10). Then: with ``weight = 0`` the layer is
the bare neuron; the fused node is one graph node whatever ``T``; streaming and the one-step
method equal one run.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from _reference import family_step

import snn
from snn.family_functional import (
    ALIFParameters,
    ALIFState,
    CubaLIFParameters,
    CubaLIFState,
    RecurrentState,
    recurrent_sequence,
)
from snn.functional import LIFParameters

T, B, N = 41, 2, 600
V_REST, V_RESET = 0.1, -0.2


def loop(kind, x, neuron_state, s, p, weight, bias, reset, detach):
    """The recurrent neuron's equations, step by step, with plain autograd."""
    state = (neuron_state,) if kind == "lif" else tuple(neuron_state)
    spikes, trace = [], []
    for x_t in x.unbind(0):
        u = x_t + bias + s @ weight.T  # the spikes of the step before
        s, state = family_step(kind, u, state, p, reset, detach, "atan", V_REST, V_RESET)
        spikes.append(s)
        trace.append(state[1] if kind == "cuba" else state[0])
    return torch.stack(spikes), torch.stack(trace), (*state, s)


def make_case(kind, dtype=torch.float64, seed=5):
    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi, *shape):
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype)

    scale = 0.3 if kind == "cuba" else 1.0
    x = (scale * (0.35 + 0.35 * torch.randn(T, B, N, generator=g, dtype=torch.float64))).to(dtype)
    weight = (0.3 * scale * torch.randn(N, N, generator=g, dtype=torch.float64) / N**0.5).to(dtype)
    bias = uniform(-0.05, 0.05, N)
    p = {"beta": uniform(0.6, 0.95, N), "v_th": uniform(0.9, 1.2, N), "gain": uniform(0.8, 1.2, N)}
    if kind == "cuba":
        p |= {"alpha": uniform(0.5, 0.8, N), "g_in": uniform(0.8, 1.2, N)}
        state = [uniform(-0.2, 0.4, B, N), uniform(-0.2, 0.6, B, N)]
    elif kind == "alif":
        p |= {"rho": uniform(0.8, 0.98, N), "adapt": uniform(0.5, 2.0, N)}
        state = [uniform(-0.2, 0.6, B, N), uniform(0.0, 0.3, B, N)]
    else:
        state = [uniform(-0.2, 0.6, B, N)]
    s0 = (torch.rand(B, N, generator=g) < 0.3).to(dtype)
    weights = [torch.randn(T, B, N, generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]
    weights += [torch.randn(B, N, generator=g, dtype=torch.float64).to(dtype) for _ in range(4)]
    return x, state, s0, p, weight, bias, weights


def snn_run(kind, x, state, s0, p, weight, bias, reset, detach, backend):
    lif = LIFParameters(
        beta=p["beta"], v_th=p["v_th"], v_rest=V_REST, v_reset=V_RESET, gain=p["gain"],
        reset=reset, detach_reset=detach,
    )  # fmt: skip
    if kind == "cuba":
        params, neuron = CubaLIFParameters(p["alpha"], lif, p["g_in"]), CubaLIFState(*state)
    elif kind == "alif":
        params, neuron = ALIFParameters(lif, p["rho"], p["adapt"]), ALIFState(*state)
    else:
        params, neuron = lif, state[0]
    out = recurrent_sequence(
        x, RecurrentState(neuron, s0), params, weight, bias, record_membrane=True,
        backend=backend,
    )  # fmt: skip
    final = (out.state.neuron,) if kind == "lif" else tuple(out.state.neuron)
    return out.spikes, out.membrane, (*final, out.state.spikes)


def loss_of(spikes, membrane, final, weights):
    total = (spikes * weights[0]).sum() + (membrane * weights[1]).sum()
    return total + sum((f * w).sum() for f, w in zip(final, weights[2:], strict=False))


def leaves(tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


CASES = [
    ("lif", "subtract", False),
    ("lif", "zero", True),
    ("cuba", "subtract", False),
    ("cuba", "none", True),
    ("alif", "subtract", False),
    ("alif", "zero", True),
]


# every case through the fused node; half of them through snn's own autograd loop too
@pytest.mark.parametrize(
    ("kind", "reset", "detach", "backend"),
    [(*case, "fused") for case in CASES] + [(*case, "reference") for case in CASES[::2]],
)
def test_equals_the_recurrent_loop(kind, reset, detach, backend):
    x, state, s0, p, weight, bias, weights = make_case(kind)
    results = []
    for runner in ("test loop", "snn"):
        xs, ss, (s0_, w_, b_) = leaves([x]), leaves(state), leaves([s0, weight, bias])
        ps = dict(zip(p, leaves(p.values()), strict=True))
        if runner == "snn":
            out = snn_run(kind, xs[0], ss, s0_, ps, w_, b_, reset, detach, backend)
        else:
            neuron = ss[0] if kind == "lif" else ss
            out = loop(kind, xs[0], neuron, s0_, ps, w_, b_, reset, detach)
        inputs = [*xs, *ss, s0_, w_, b_, *ps.values()]
        grads = torch.autograd.grad(loss_of(*out, weights), inputs)
        results.append((out[0].detach(), grads))
    names = ["x", *[f"state{k}" for k in range(len(state))], "s0", "weight", "bias", *p]
    (want_s, want_g), (got_s, got_g) = results
    rate = float(want_s.mean())
    assert 0.05 <= rate <= 0.8, f"firing rate {rate:.3f}"
    assert torch.equal(got_s, want_s)
    for name, g_want, g_got in zip(names, want_g, got_g, strict=True):
        scale = max(1.0, float(g_want.abs().max()))
        err = float((g_got - g_want).abs().max()) / scale
        assert err < 1e-10, f"{kind} {reset}: dL/d{name} off by {err:.2e}"


def test_float32_spikes_bitwise():
    x, state, s0, p, weight, bias, _ = make_case("alif", torch.float32)
    want, _, _ = loop("alif", x, state, s0, p, weight, bias, "subtract", False)
    got, _, _ = snn_run("alif", x, state, s0, p, weight, bias, "subtract", False, "fused")
    assert 0.05 <= float(want.mean()) <= 0.8
    assert torch.equal(got, want)


def neurons():
    return [
        snn.LIF(beta=0.9, shape=16, learn_beta=True),
        snn.CubaLIF(alpha=0.7, beta=0.9, shape=16, learn_alpha=True),
        snn.ALIF(beta=0.9, rho=0.9, adapt=1.0, shape=16, learn_rho=True, learn_adapt=True),
    ]


def test_zero_weight_is_the_bare_neuron():
    torch.manual_seed(1)
    for neuron in neurons():
        layer = snn.Recurrent(neuron, 16, bias=False)
        with torch.no_grad():
            layer.weight.zero_()
        x = (
            torch.rand(30, 3, 16) * (0.3 if isinstance(neuron, snn.CubaLIF) else 0.8)
        ).requires_grad_()
        spikes = layer(x)
        assert 0.05 <= float(spikes.detach().mean()) <= 0.8
        (grad_rec,) = torch.autograd.grad(spikes.sum(), x)
        bare = neuron(x)
        (grad_bare,) = torch.autograd.grad(bare.sum(), x)
        assert torch.equal(spikes, bare)
        torch.testing.assert_close(grad_rec, grad_bare, rtol=1e-5, atol=1e-6)


def test_the_fused_node_is_one_graph_node_for_any_length():
    """No per-step graph: the number of autograd nodes does not grow with T."""

    def graph_size(fn):
        seen, todo = set(), [fn]
        while todo:
            node = todo.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            todo.extend(f for f, _ in node.next_functions)
        return len(seen)

    layer = snn.Recurrent(snn.ALIF(shape=16, learn_rho=True), 16)
    sizes = {}
    for backend in ("fused", "reference"):
        layer.backend = backend
        sizes[backend] = [graph_size(layer(torch.rand(t, 2, 16)).grad_fn) for t in (5, 50)]
    assert sizes["fused"][0] == sizes["fused"][1] < 20
    assert sizes["reference"][1] > 5 * sizes["reference"][0] / 2


def test_streaming_and_the_step_equal_one_run():
    torch.manual_seed(2)
    for neuron in neurons():
        layer = snn.Recurrent(neuron, 16)
        x = torch.rand(24, 2, 16) * (0.3 if isinstance(neuron, snn.CubaLIF) else 0.8)
        whole = layer.run(x)
        assert whole.spikes.sum() > 0
        first = layer.run(x[:10])
        second = layer.run(x[10:], first.state)
        assert torch.equal(torch.cat([first.spikes, second.spikes]), whole.spikes)
        state, spikes = None, []
        for x_t in x:
            s, state = layer.step(x_t, state)
            spikes.append(s)
        assert torch.equal(torch.stack(spikes), whole.spikes)


def test_pickle_compile_and_errors():
    torch.manual_seed(3)
    layer = snn.Recurrent(snn.ALIF(shape=16, learn_adapt=True), 16)
    x = torch.rand(8, 2, 16)
    want = layer(x)
    assert want.sum() > 0
    assert torch.equal(pickle.loads(pickle.dumps(layer))(x), want)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), want)
    with pytest.raises(ValueError, match="expects inputs"):
        layer(torch.rand(8, 2, 15))
    with pytest.raises(ValueError, match="build it with shape=16"):
        snn.Recurrent(snn.ALIF(shape=8), 16)
    with pytest.raises(TypeError, match="wraps a layer of the LIF family"):
        snn.Recurrent(torch.nn.ReLU(), 16)
