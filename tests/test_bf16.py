"""bfloat16: values, not just dtypes, against float32 on inputs that fire.

bf16 keeps 8 significant bits (``eps = 2^-7``), so a bf16 run cannot match float32 bit for bit.
What it must do is agree within what that rounding allows. The bounds below come from bf16's
``eps``; the float32 side is the equation loop of ``tests/_reference.py`` run on the very same
(bf16-representable) inputs and parameters.
"""

from __future__ import annotations

import torch
from _reference import Step, equation_loop
from torch import nn

import snn

T, B, N = 8, 4, 300
V_REST, V_RESET = 0.0, 0.0
BETA_MAX = 0.8
EPS = torch.finfo(torch.bfloat16).eps


def bf16_case():
    g = torch.Generator().manual_seed(3)
    x = 0.45 + 0.35 * torch.randn(T, B, N, generator=g)
    v0 = 0.6 * torch.rand(B, N, generator=g)
    beta = 0.5 + (BETA_MAX - 0.5) * torch.rand(N, generator=g)
    v_th = torch.full((N,), 1.0)
    w_spikes = torch.randn(T, B, N, generator=g)
    w_membrane = torch.randn(T, B, N, generator=g)
    # every value exactly representable in bf16, so both sides start from the same numbers
    return [t.bfloat16() for t in (x, v0, beta, v_th, w_spikes, w_membrane)]


def run(dtype, backend=None):
    x, v0, beta, v_th, w_s, w_m = (t.to(dtype) for t in bf16_case())
    x.requires_grad_(True)
    if backend is None:
        spikes, membrane, _, h_max = equation_loop(
            x, v0, beta, v_th, V_REST, V_RESET, "subtract", False, "atan"
        )
    else:
        p = snn.LIFParameters(beta=beta, v_th=v_th, reset="subtract", surrogate="atan")
        out = snn.functional.lif_sequence(x, v0, p, record_membrane=True, backend=backend)
        spikes, membrane, h_max = out.spikes, out.membrane, None
    ((spikes * w_s).sum() + (membrane * w_m).sum()).backward()
    return spikes.detach().float(), membrane.detach().float(), x.grad.float(), h_max


class RoundToBF16(torch.autograd.Function):
    """Forward: round a float32 value to bf16 (as a bf16 operation rounds its result).
    Backward: the identity, so the gradient is that of the rounded trajectory, in float32."""

    @staticmethod
    def forward(ctx, x):
        return x.bfloat16().float()

    @staticmethod
    def backward(ctx, g):
        return g


def float32_backward_through_the_bf16_trajectory(x, v0, beta, v_th):
    """The subtract-reset LIF (v_rest = v_reset = 0) whose every forward result is rounded to
    bf16, as bf16 arithmetic rounds it, but whose backward runs in float32."""
    q = RoundToBF16.apply
    v = v0
    spikes, trace = [], []
    for t in range(x.shape[0]):
        h = q(q(beta * v) + x[t])
        s = Step.apply(q(h - v_th), "atan")
        v = q(h - s * v_th)
        spikes.append(s)
        trace.append(v)
    return torch.stack(spikes), torch.stack(trace)


def test_bf16_forward_is_bitwise_the_equations_in_bf16():
    # the same rounding rule as float32 (beta * v rounded before + x), now in bf16 arithmetic
    spikes, membrane, _, _ = run(torch.bfloat16, backend="fused")
    x, v0, beta, v_th, _, _ = bf16_case()
    with torch.no_grad():
        ref_spikes, ref_membrane, _, _ = equation_loop(
            x, v0, beta, v_th, V_REST, V_RESET, "subtract", False, "atan"
        )
    assert 0.05 < float(ref_spikes.float().mean()) < 0.8
    assert torch.equal(spikes, ref_spikes.float())
    assert torch.equal(membrane, ref_membrane.float())


def test_bf16_forward_agrees_with_float32_within_bf16_rounding():
    spikes, membrane, _, _ = run(torch.bfloat16, backend="fused")
    ref_spikes, ref_membrane, _, h_max = run(torch.float32)
    assert 0.05 < float(ref_spikes.mean()) < 0.8

    # each bf16 step rounds three times (beta * v, + x, the reset), each by at most eps/2 of
    # h_max; the leak scales an old error by beta per step, so after T steps |dh| is at most
    # 1.5 eps h_max (1 + beta + ... + beta^(T-1))
    damped_steps = (1 - BETA_MAX**T) / (1 - BETA_MAX)
    dh = 1.5 * EPS * h_max * damped_steps
    # a neuron whose float32 potential never comes within dh of threshold must spike alike
    v_th = 1.0
    pre = ref_membrane + ref_spikes * (v_th - V_RESET)  # h = v + s (v_th - v_reset)
    clear = ((pre - v_th).abs() > dh).all(0)  # [B, N]: never near threshold
    assert int(clear.sum()) >= 100, "too few neurons to compare: pick another seed"
    assert torch.equal(spikes[:, clear], ref_spikes[:, clear])

    # the membrane of those neurons, within the accumulated rounding
    assert float((membrane - ref_membrane)[:, clear].abs().max()) <= dh + EPS * h_max


def test_bf16_backward_agrees_with_float32_through_the_same_trajectory():
    spikes, membrane, grad, _ = run(torch.bfloat16, backend="fused")
    x, v0, beta, v_th, w_s, w_m = (t.float() for t in bf16_case())
    x.requires_grad_(True)
    ref_spikes, ref_membrane = float32_backward_through_the_bf16_trajectory(x, v0, beta, v_th)
    assert torch.equal(spikes, ref_spikes.detach()) and torch.equal(membrane, ref_membrane.detach())
    assert 0.05 < float(spikes.mean()) < 0.8
    ((ref_spikes * w_s).sum() + (ref_membrane * w_m).sum()).backward()
    # the same surrogate arguments on both sides, so only bf16's rounding of the backward's own
    # arithmetic separates them: ~8 roundings (eps/2 each) per step, and the recurrence damps an
    # old error by beta per step, as the forward does
    damped_steps = (1 - BETA_MAX**T) / (1 - BETA_MAX)
    bound = damped_steps * 8 * EPS / 2 * float(x.grad.abs().max())
    err = float((grad - x.grad).abs().max())
    assert err <= bound, (err, bound)


def test_a_training_step_under_cpu_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, 16, 64, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)

    def make():
        torch.manual_seed(0)
        return nn.Sequential(
            snn.FoldTime(nn.Linear(64, 128)), snn.LIF(beta=0.9), snn.FoldTime(nn.Linear(128, 10))
        )

    def step(model, autocast):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            hidden = model[0](x)
            spikes = model[1](hidden)
            out = model[2](spikes)
            loss = nn.functional.cross_entropy(out.float().mean(0), y)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        return hidden.dtype, spikes, float(loss.detach()), grads

    dtype, spikes, loss, grads = step(make(), autocast=True)
    _, spikes32, loss32, grads32 = step(make(), autocast=False)
    assert dtype == torch.bfloat16  # the LIF ran on bf16 input
    assert 0.05 < float(spikes.detach().float().mean()) < 0.8
    assert torch.isfinite(grads).all()
    # a few spikes flip under bf16, so compare the step, not the bits: the loss within the bf16
    # rounding of 64 + 128 summed products, and the update in the same direction
    assert abs(loss - loss32) <= (64 + 128) * EPS * abs(loss32)
    cosine = float(torch.nn.functional.cosine_similarity(grads.float(), grads32, dim=0))
    assert cosine > 0.9, cosine
    assert float((spikes.detach().float() != spikes32.detach()).float().mean()) < 0.05
