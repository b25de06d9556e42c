"""The whole grid: every executor x reset x detach_reset x surrogate x dtype, deterministically.

Each case runs a population of several kernel tiles plus a partial one (the native kernel walks
tiles of 256 neurons) over several chunks of steps plus a partial one, from a non-zero initial
state, with per-neuron learnable ``beta`` and ``v_th``, a per-neuron input gain, a recorded
membrane and a loss on the spikes, the membrane trace and the final state. It is compared with
a loop written from the equations (``tests/_reference.py``), which shares no code with snn:

* float64: spikes bit for bit, and every gradient (input, initial state, beta, v_th) to 1e-10;
* float32: spikes bit for bit against the same loop run in float32 with the documented rounding
  rule (``beta * v`` rounded before the input is added, no fused multiply-add), and gradients
  against the float64 loop within a bound derived from float32 rounding (see ``f32_bound``).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from _backends import needs_cc
from _reference import equation_loop

import snn
from snn.kernels import fused

T, B, N = 41, 2, 600  # 41 steps: one full native chunk of 32 plus a partial; 600 = 2 tiles + 88
V_REST, V_RESET = 0.1, -0.2
BETA_MAX = 0.95  # per-neuron beta is drawn from [0.6, BETA_MAX]
RESETS = ["subtract", "zero", "none"]
SURROGATES = ["atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "straight_through"]
EXECUTORS = [pytest.param("native", marks=needs_cc), "eager", "reference"]


def make_case(dtype, reset):
    """Inputs that make a good part of the neuron-steps fire, and per-neuron parameters.

    Without a reset the potential keeps what it integrates, so a weaker drive keeps it from
    settling above threshold for good.
    """
    g = torch.Generator().manual_seed(7)
    drive = 0.1 if reset == "none" else 0.45
    x = (drive + 0.35 * torch.randn(T, B, N, generator=g, dtype=torch.float64)).to(dtype)
    v0 = (0.8 * torch.rand(B, N, generator=g, dtype=torch.float64) - 0.2).to(dtype)
    beta = (0.6 + (BETA_MAX - 0.6) * torch.rand(N, generator=g, dtype=torch.float64)).to(dtype)
    v_th = (0.9 + 0.3 * torch.rand(N, generator=g, dtype=torch.float64)).to(dtype)
    weights = [torch.randn(T, B, N, generator=g, dtype=torch.float64) for _ in range(2)]
    weights.append(torch.randn(B, N, generator=g, dtype=torch.float64))
    gain = (0.8 + 0.4 * torch.rand(N, generator=g, dtype=torch.float64)).to(dtype)
    return x, v0, beta, v_th, gain, [w.to(dtype) for w in weights]


def loss_of(spikes, membrane, v_last, weights):
    return (spikes * weights[0]).sum() + (membrane * weights[1]).sum() + (v_last * weights[2]).sum()


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def run_snn(executor, dtype, reset, detach, name):
    *inputs, gain, w = make_case(dtype, reset)
    x, v0, beta, v_th = leaves(*inputs)
    p = snn.LIFParameters(
        beta=beta, v_th=v_th, v_rest=V_REST, v_reset=V_RESET, gain=gain, reset=reset,
        detach_reset=detach, surrogate=name,
    )  # fmt: skip
    out = snn.functional.lif_sequence(x, v0, p, record_membrane=True, backend=executor)
    loss_of(out.spikes, out.membrane, out.state, w).backward()
    return out.spikes.detach(), [x.grad, v0.grad, beta.grad, v_th.grad]


def run_loop(dtype, reset, detach, name):
    *inputs, gain, w = make_case(dtype, reset)
    x, v0, beta, v_th = leaves(*inputs)
    spikes, trace, v_last, h_max = equation_loop(
        gain * x, v0, beta, v_th, V_REST, V_RESET, reset, detach, name
    )
    loss_of(spikes, trace, v_last, w).backward()
    return spikes.detach(), [x.grad, v0.grad, beta.grad, v_th.grad], h_max


_loop_cache: dict = {}


def loop_result(dtype, reset, detach, name):
    key = (dtype, reset, detach, name)
    if key not in _loop_cache:
        _loop_cache[key] = run_loop(dtype, reset, detach, name)
    return _loop_cache[key]


# sup |d^2 S / dU^2| of each surrogate at its defaults: how fast its derivative moves with U
SECOND_DERIVATIVE_BOUND = {
    "atan": 0.65 * math.pi,  # 1/(1 + c^2 u^2) with c = pi: max 2c^2|u|/(1+c^2u^2)^2 = 9c/(8 sqrt 3)
    "fast_sigmoid": 2 * 25.0,  # 2k / (1 + k|u|)^3 at u = 0
    "sigmoid": 25.0**2 / (6 * math.sqrt(3)),  # k^2 s(1-s)(1-2s), largest where s = 1/2 - 1/sqrt 12
    "triangle": 1.0,  # slope 1/width^2 inside the triangle
    "rectangular": 0.0,  # flat inside and outside the window
    "straight_through": 0.0,
}


def f32_bound(reference: torch.Tensor, terms_summed: int, name: str, h_max: float) -> float:
    """The float32 error bound of one gradient tensor, relative to its largest magnitude.

    Backward runs a linear recurrence ``delta_{t-1} = beta (delta_t dv/dh + g_s sigma)``; a
    relative error ``e`` in a step's factors adds ``e`` to the relative error of every gradient
    that flows through that step, so over ``T`` steps the errors add up to ``T`` times one step's.
    One step's factors carry (a) about 8 roundings (the recomputed h, the surrogate, dv/dh, the
    multiply-adds), at most ``8 eps``, and (b) the error of the surrogate's derivative at a
    potential that float32 holds only to ``|dh| <= eps h_max / (1 - beta_max)`` (the forward
    recurrence's accumulated rounding, damped by the leak), which moves the derivative by at most
    ``sup|S''| |dh|``. A parameter's gradient further sums ``terms_summed`` float32 terms (one
    ``eps`` each, relative to the largest).
    """
    eps = torch.finfo(torch.float32).eps
    dh = h_max / (1 - BETA_MAX)
    per_step = 8 + SECOND_DERIVATIVE_BOUND[name] * dh
    return (T * per_step + terms_summed) * eps * float(reference.abs().max())


@pytest.fixture(autouse=True)
def small_eager_blocks(monkeypatch):
    # eager blocks of 3 steps and chunks of 12 (CHECKPOINT_BLOCKS = 4 blocks), so that the eager
    # executor crosses block and chunk boundaries within T as the native one does (chunk 32)
    monkeypatch.setattr(fused, "BLOCK_ELEMENTS", 3 * B * N)


@pytest.mark.parametrize("reset", RESETS)
def test_the_inputs_fire_in_every_tile(reset):
    spikes, _, _ = loop_result(torch.float64, reset, False, "atan")
    for a in range(0, N, 256):  # the last, partial tile included
        rate = float(spikes[..., a : a + 256].mean())
        assert 0.05 < rate < 0.8, (a, rate)


# detach_reset has nothing to detach without a reset, so reset="none" runs once
GRID = [
    (reset, detach, name)
    for reset, detach, name in itertools.product(RESETS, [False, True], SURROGATES)
    if not (reset == "none" and detach)
]


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(("reset", "detach", "name"), GRID)
def test_float64_equals_the_equations(executor, reset, detach, name):
    spikes, grads = run_snn(executor, torch.float64, reset, detach, name)
    ref_spikes, ref_grads, _ = loop_result(torch.float64, reset, detach, name)
    assert 0.05 < float(spikes.mean()) < 0.8
    assert torch.equal(spikes, ref_spikes)
    for what, got, want in zip(["x", "v0", "beta", "v_th"], grads, ref_grads, strict=True):
        scale = float(want.abs().max())
        assert scale > 0, f"no gradient reached {what}"
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * scale, msg=what)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(("reset", "detach", "name"), GRID)
def test_float32_spikes_exact_and_gradients_within_rounding(executor, reset, detach, name):
    spikes, grads = run_snn(executor, torch.float32, reset, detach, name)
    ref_spikes32, _, _ = loop_result(torch.float32, reset, detach, name)
    ref_spikes64, ref_grads, h_max = loop_result(torch.float64, reset, detach, name)
    assert torch.equal(spikes, ref_spikes32)  # bitwise: the same rounding as the equations
    # the float32 and float64 trajectories fire alike here, so their gradients are comparable
    assert torch.equal(spikes.double(), ref_spikes64)
    summed = {"x": 0, "v0": 0, "beta": B * T, "v_th": B * T}
    for what, got, want in zip(["x", "v0", "beta", "v_th"], grads, ref_grads, strict=True):
        bound = f32_bound(want, summed[what], name, h_max)
        err = float((got.double() - want).abs().max())
        assert err <= bound, f"{what}: error {err:.3g} above the float32 bound {bound:.3g}"
