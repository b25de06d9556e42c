"""Gradients of both multi-step paths against a naive per-step autograd loop, in float64.

The naive loop below is written from the equations in the README with a test-local surrogate
function; it shares no code with snn's step or its fused node.
"""

import math

import pytest
import torch
from _backends import ALL_BACKENDS
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import snn
from snn import surrogate as sg

# the derivative formulas, written out again here (independent of snn.surrogate)
FORMULAS = {
    "atan": lambda u: 1.0 / (1 + (math.pi * u) ** 2),  # alpha = 2
    "fast_sigmoid": lambda u: 1 / (1 + 25 * u.abs()) ** 2,
    "sigmoid": lambda u: 25 * torch.exp(-25 * u) / (1 + torch.exp(-25 * u)) ** 2,
    "triangle": lambda u: torch.clamp(1 - u.abs(), min=0),
    "rectangular": lambda u: (u.abs() < 0.5).double(),
    "straight_through": lambda u: torch.ones_like(u),
}


class NaiveSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, name):
        ctx.save_for_backward(u)
        ctx.name = name
        return (u >= 0).double()

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * FORMULAS[ctx.name](u), None


def naive_loop(x, v0, beta, v_th, v_rest, v_reset, gain, reset, detach, name):
    """Return (spikes, post-reset trace, pre-spike potentials) by a plain Python loop."""
    v = v0
    spikes, trace, pre = [], [], []
    for t in range(x.shape[0]):
        h = v_rest + beta * (v - v_rest) + gain * x[t]
        s = NaiveSpike.apply(h - v_th, name)
        r = s.detach() if detach else s
        if reset == "subtract":
            v = h - r * (v_th - v_reset)
        elif reset == "zero":
            v = (1 - r) * h + r * v_reset
        else:
            v = h
        spikes.append(s)
        trace.append(v)
        pre.append(h)
    return torch.stack(spikes), torch.stack(trace), torch.stack(pre)


cases = st.fixed_dictionaries(
    {
        "T": st.integers(1, 12),
        "B": st.integers(1, 3),
        "N": st.integers(1, 4),
        "reset": st.sampled_from(["subtract", "zero", "none"]),
        "detach": st.booleans(),
        "surrogate": st.sampled_from(sorted(FORMULAS)),
        "per_neuron": st.booleans(),
        "physical": st.booleans(),
        "learn_beta": st.booleans(),
        "learn_threshold": st.booleans(),
        "with_state": st.booleans(),
        "record": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
    }
)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases)
def test_sequence_gradients_equal_naive_loop(backend, case):
    T, B, N = case["T"], case["B"], case["N"]
    g = torch.Generator().manual_seed(case["seed"])

    def rand(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)

    shape = N if case["per_neuron"] else None
    pshape = (N,) if case["per_neuron"] else ()
    beta0 = rand(*pshape, lo=0.3, hi=0.98)
    th0 = rand(*pshape, lo=0.5, hi=1.5)
    common = dict(
        reset=case["reset"],
        detach_reset=case["detach"],
        surrogate=case["surrogate"],
        shape=shape,
        learn_beta=case["learn_beta"],
        learn_threshold=case["learn_threshold"],
        backend=backend,
        dtype=torch.float64,
    )
    if case["physical"]:
        v_rest, v_reset, r = -0.4, -0.7, 3.0
        th0 = th0 - 0.6  # keep the threshold above v_reset
        lif = snn.LIF(beta0, th0, v_rest=v_rest, v_reset=v_reset, r=r, **common)
    else:
        v_rest, v_reset, r = 0.0, 0.0, None
        lif = snn.LIF(beta0, th0, **common)

    x = rand(T, B, N, lo=-0.5, hi=1.2).requires_grad_()
    v0 = rand(B, N, lo=-0.5, hi=1.0).requires_grad_() if case["with_state"] else None
    w_s, w_m, w_v = rand(T, B, N, lo=-1, hi=1), rand(T, B, N, lo=-1, hi=1), rand(B, N, lo=-1, hi=1)

    out = lif.run(x, v0, record_membrane=case["record"])
    loss = (w_s * out.spikes).sum() + (w_v * out.state).sum()
    if case["record"]:
        loss = loss + (w_m * out.membrane).sum()
    params = [p for p in lif.parameters()]
    inputs = [x] + ([v0] if v0 is not None else []) + params
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)

    # the same computation, naively; parameters go through the same (autograd) transforms
    beta = lif.beta
    v_th = lif.threshold
    gain = 1.0 if r is None else r * (1 - beta)
    start = v0 if v0 is not None else torch.full((B, N), v_rest, dtype=torch.float64)
    s_ref, m_ref, pre = naive_loop(
        x,
        start,
        beta,
        v_th,
        v_rest,
        v_reset,
        gain,
        case["reset"],
        case["detach"],
        case["surrogate"],
    )
    # a spike decided by rounding would make the comparison meaningless, not wrong
    assume(bool(((pre - v_th).abs() > 1e-9).all()))
    loss_ref = (w_s * s_ref).sum() + (w_v * m_ref[-1]).sum()
    if case["record"]:
        loss_ref = loss_ref + (w_m * m_ref).sum()
    grads_ref = torch.autograd.grad(loss_ref, inputs, allow_unused=True)

    assert torch.equal(out.spikes, s_ref)
    torch.testing.assert_close(out.state, m_ref[-1], rtol=0, atol=1e-12)
    for got, want in zip(grads, grads_ref, strict=True):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
            continue
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_surrogate_backward_is_its_formula(name):
    u = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    s = sg.spike(u, sg.get(name))
    assert torch.equal(s, (u >= 0).double())  # forward: the exact step, H(0) = 1
    (grad,) = torch.autograd.grad(s.sum(), u)
    torch.testing.assert_close(grad, FORMULAS[name](u.detach()), rtol=1e-12, atol=1e-14)


def test_surrogate_hyperparameters_enter_the_formula():
    u = torch.linspace(-2, 2, 101, dtype=torch.float64)
    torch.testing.assert_close(sg.ATan(alpha=4.0).derivative(u), 2 / (1 + (2 * math.pi * u) ** 2))
    torch.testing.assert_close(sg.FastSigmoid(slope=3.0).derivative(u), 1 / (1 + 3 * u.abs()) ** 2)
    torch.testing.assert_close(
        sg.Triangle(width=0.5).derivative(u), torch.clamp(1 - u.abs() / 0.5, min=0) / 0.5
    )
    torch.testing.assert_close(
        sg.Rectangular(width=2.0).derivative(u), (u.abs() < 1.0).double() / 2.0
    )


def test_sigmoid_surrogate_is_finite_for_any_input():
    u = torch.tensor([-1e30, -1e4, -50.0, 0.0, 50.0, 1e4, 1e30], dtype=torch.float64)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        d = sg.Sigmoid(slope=25.0).derivative(u.to(dtype))
        assert torch.isfinite(d).all()
    assert sg.Sigmoid(slope=25.0).derivative(torch.zeros(())).item() == pytest.approx(25 / 4)
