"""The ALIF's Triton executor (:func:`alif_sequence`): the LIF kernels' scheme
(:mod:`snn.kernels.triton_lif`, whose docstring has the algorithm, the rounding rule without
fused multiply-adds, the types and where it runs) with a threshold state.

ALIF: the LIF with a threshold state (snn.family_functional.alif_step), the same scheme. Per
step: theta = v_th + adapt a, spike against theta, reset (subtract: by theta - v_reset), then
a = rho a + (1 - rho) s, each product rounded before the sum. The reverse recurrence is
snn/kernels/family.py's; backward also keeps the chunk's adaptation before each step in a
[chunk, neurons] scratch buffer (the LIF rebuilds v_{t-1} from h_{t-1}; a cannot be run back).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snn import surrogate as sg
from snn.kernels import triton_lif as _lif  # its BLOCK and CHUNK_STEPS, read at call time
from snn.kernels.native import _surrogate_code
from snn.kernels.triton_lif import (
    _RESETS,
    _SIZES,
    _incoming,
    _launch,
    _launch_options,
    _per_neuron,
    triton,
    unavailable_reason,
)

if triton is not None:
    import triton.language as tl

    from snn.kernels.triton_lif import _integrate, _round, _surrogate

__all__ = ["alif_sequence"]

if triton is not None:

    @triton.jit
    def _threshold(a, adapt, v_th, ROUND_BF16: tl.constexpr):
        return _round(_round(adapt * a, ROUND_BF16) + v_th, ROUND_BF16)

    @triton.jit
    def _alif_after_reset(h, s, theta, v_reset, RESET: tl.constexpr, ROUND_BF16: tl.constexpr):
        v = h
        if RESET == 0:
            v = _round(h - s * _round(theta - v_reset, ROUND_BF16), ROUND_BF16)
        elif RESET == 1:
            v = _round(h - s * _round(h - v_reset, ROUND_BF16), ROUND_BF16)
        return v

    @triton.jit
    def _adapt(a, s, rho, one_minus_rho, ROUND_BF16: tl.constexpr):
        # s is 0 or 1: s * (1 - rho) is exact
        return _round(_round(rho * a, ROUND_BF16) + s * one_minus_rho, ROUND_BF16)

    @triton.jit(do_not_specialize=_SIZES)
    def _alif_forward_kernel(
        x_ptr, v0_ptr, a0_ptr, beta_ptr, v_th_ptr, rho_ptr, omr_ptr, adapt_ptr, consts_ptr,
        spikes_ptr, membrane_ptr, starts_v_ptr, starts_a_ptr, v_last_ptr, a_last_ptr,
        n, steps, chunk,
        RESET: tl.constexpr, RECORD: tl.constexpr, HAS_REST: tl.constexpr,
        COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        n64 = n.to(tl.int64)
        store_type = spikes_ptr.dtype.element_ty
        v_rest = tl.load(consts_ptr)
        v_reset = tl.load(consts_ptr + 1)
        beta = tl.load(beta_ptr + offs, mask=mask, other=0).to(COMPUTE)
        v_th = tl.load(v_th_ptr + offs, mask=mask, other=0).to(COMPUTE)
        rho = tl.load(rho_ptr + offs, mask=mask, other=0).to(COMPUTE)
        one_minus_rho = tl.load(omr_ptr + offs, mask=mask, other=0).to(COMPUTE)
        adapt = tl.load(adapt_ptr + offs, mask=mask, other=0).to(COMPUTE)
        v = tl.load(v0_ptr + offs, mask=mask, other=0).to(COMPUTE)
        a = tl.load(a0_ptr + offs, mask=mask, other=0).to(COMPUTE)
        for t in range(0, steps):
            at_start = mask & (t % chunk == 0)
            tl.store(starts_v_ptr + (t // chunk) * n64 + offs, v.to(store_type), mask=at_start)
            tl.store(starts_a_ptr + (t // chunk) * n64 + offs, a.to(store_type), mask=at_start)
            row = t * n64
            x = tl.load(x_ptr + row + offs, mask=mask, other=0).to(COMPUTE)
            h = _integrate(v, beta, x, v_rest, HAS_REST, ROUND_BF16)
            theta = _threshold(a, adapt, v_th, ROUND_BF16)
            s = (h >= theta).to(COMPUTE)
            tl.store(spikes_ptr + row + offs, s.to(store_type), mask=mask)
            v = _alif_after_reset(h, s, theta, v_reset, RESET, ROUND_BF16)
            a = _adapt(a, s, rho, one_minus_rho, ROUND_BF16)
            if RECORD:
                tl.store(membrane_ptr + row + offs, v.to(store_type), mask=mask)
        tl.store(v_last_ptr + offs, v.to(store_type), mask=mask)
        tl.store(a_last_ptr + offs, a.to(store_type), mask=mask)

    @triton.jit(do_not_specialize=_SIZES)
    def _alif_backward_kernel(
        x_ptr, starts_v_ptr, starts_a_ptr, scratch_ptr,
        gs_ptr, gs_step, gm_ptr, gm_step, gv_last_ptr, ga_last_ptr,
        gx_ptr, gv0_ptr, ga0_ptr, gbeta_ptr, gv_th_ptr, grho_ptr, gadapt_ptr,
        beta_ptr, v_th_ptr, rho_ptr, omr_ptr, adapt_ptr, consts_ptr,
        n, steps, chunk,
        RESET: tl.constexpr, DETACH: tl.constexpr, KIND: tl.constexpr,
        HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, HAS_GV_LAST: tl.constexpr,
        HAS_GA_LAST: tl.constexpr, HAS_REST: tl.constexpr,
        COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        n64 = n.to(tl.int64)
        store_type = gx_ptr.dtype.element_ty
        v_rest = tl.load(consts_ptr)
        v_reset = tl.load(consts_ptr + 1)
        c1 = tl.load(consts_ptr + 2)
        c2 = tl.load(consts_ptr + 3)
        beta = tl.load(beta_ptr + offs, mask=mask, other=0).to(COMPUTE)
        v_th = tl.load(v_th_ptr + offs, mask=mask, other=0).to(COMPUTE)
        rho = tl.load(rho_ptr + offs, mask=mask, other=0).to(COMPUTE)
        one_minus_rho = tl.load(omr_ptr + offs, mask=mask, other=0).to(COMPUTE)
        adapt = tl.load(adapt_ptr + offs, mask=mask, other=0).to(COMPUTE)
        zero = tl.zeros([BLOCK], dtype=COMPUTE)
        delta_v = zero  # dL/dv_t and dL/da_t after the step being reversed
        delta_a = zero
        if HAS_GV_LAST:
            delta_v = tl.load(gv_last_ptr + offs, mask=mask, other=0).to(COMPUTE)
        if HAS_GA_LAST:
            delta_a = tl.load(ga_last_ptr + offs, mask=mask, other=0).to(COMPUTE)
        acc_beta = zero
        acc_v_th = zero
        acc_rho = zero
        acc_adapt = zero
        num_chunks = tl.cdiv(steps, chunk)
        for back in range(0, num_chunks):
            c = num_chunks - 1 - back
            t0 = c * chunk
            t1 = t0 + chunk
            if t1 > steps:
                t1 = steps
            start_v = tl.load(starts_v_ptr + c * n64 + offs, mask=mask, other=0).to(COMPUTE)
            v = start_v
            a = tl.load(starts_a_ptr + c * n64 + offs, mask=mask, other=0).to(COMPUTE)
            for t in range(t0, t1):  # recompute: h into dL/dI's row, a_{t-1} into the scratch
                row = t * n64
                x = tl.load(x_ptr + row + offs, mask=mask, other=0).to(COMPUTE)
                h = _integrate(v, beta, x, v_rest, HAS_REST, ROUND_BF16)
                tl.store(gx_ptr + row + offs, h.to(store_type), mask=mask)
                tl.store(scratch_ptr + (t - t0) * n64 + offs, a.to(store_type), mask=mask)
                theta = _threshold(a, adapt, v_th, ROUND_BF16)
                s = (h >= theta).to(COMPUTE)
                v = _alif_after_reset(h, s, theta, v_reset, RESET, ROUND_BF16)
                a = _adapt(a, s, rho, one_minus_rho, ROUND_BF16)
            for k in range(0, t1 - t0):
                t = t1 - 1 - k
                row = t * n64
                h = tl.load(gx_ptr + row + offs, mask=mask, other=0).to(COMPUTE)
                a_prev = tl.load(scratch_ptr + (t - t0) * n64 + offs, mask=mask, other=0)
                a_prev = a_prev.to(COMPUTE)
                theta = _threshold(a_prev, adapt, v_th, ROUND_BF16)
                s = (h >= theta).to(COMPUTE)
                sigma = _surrogate(h - theta, c1, c2, KIND)
                d = delta_v  # dL/dv_t
                if HAS_GM:
                    gm = tl.load(gm_ptr + t * gm_step + offs, mask=mask, other=0).to(COMPUTE)
                    d = d + gm
                dv_dh = zero + 1
                dv_ds = zero
                dv_dtheta = zero
                if RESET == 0:
                    dv_dtheta = -s
                    if not DETACH:
                        dv_ds = -(theta - v_reset)
                elif RESET == 1:
                    dv_dh = 1 - s
                    if not DETACH:
                        dv_ds = -(h - v_reset)
                total = one_minus_rho * delta_a + d * dv_ds  # dL/ds_t: the spike's total
                if HAS_GS:
                    total += tl.load(gs_ptr + t * gs_step + offs, mask=mask, other=0).to(COMPUTE)
                through_spike = total * sigma
                grad_h = d * dv_dh + through_spike
                grad_theta = d * dv_dtheta - through_spike
                tl.store(gx_ptr + row + offs, grad_h.to(store_type), mask=mask)
                # v_{t-1}: rebuilt from step t-1 (its h still in the scratch row), or the start
                has_prev = t > t0
                h_prev = tl.load(gx_ptr + row - n64 + offs, mask=mask & has_prev, other=0)
                h_prev = h_prev.to(COMPUTE)
                a_prev2 = tl.load(scratch_ptr + (t - t0 - 1) * n64 + offs,
                                  mask=mask & has_prev, other=0).to(COMPUTE)  # fmt: skip
                theta_prev = _threshold(a_prev2, adapt, v_th, ROUND_BF16)
                s_prev = (h_prev >= theta_prev).to(COMPUTE)
                v_prev = _alif_after_reset(h_prev, s_prev, theta_prev, v_reset, RESET, ROUND_BF16)
                v_prev = tl.where(has_prev, v_prev, start_v)
                acc_beta += grad_h * (v_prev - v_rest)
                acc_v_th += grad_theta
                acc_adapt += grad_theta * a_prev
                acc_rho += delta_a * (a_prev - s)
                delta_a = rho * delta_a + adapt * grad_theta
                delta_v = grad_h * beta
        tl.store(gv0_ptr + offs, delta_v.to(store_type), mask=mask)
        tl.store(ga0_ptr + offs, delta_a.to(store_type), mask=mask)
        tl.store(gbeta_ptr + offs, acc_beta, mask=mask)
        tl.store(gv_th_ptr + offs, acc_v_th, mask=mask)
        tl.store(grho_ptr + offs, acc_rho, mask=mask)
        tl.store(gadapt_ptr + offs, acc_adapt, mask=mask)


class _TritonALIF(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, current, v0, a0, beta, v_th, rho, adapt, v_rest, v_reset, reset, detach_reset,
        surrogate, record_membrane, chunk,
    ):  # fmt: skip
        current, v0, a0 = current.contiguous(), v0.contiguous(), a0.contiguous()
        steps, n = current.shape[0], v0.numel()
        compute = torch.float64 if current.dtype == torch.float64 else torch.float32
        as_tensor = lambda value: torch.as_tensor(value, dtype=current.dtype, device=v0.device)  # noqa: E731
        # 1 - rho as the reference step forms it: in double for a float, in rho's type else
        params = [_per_neuron(as_tensor(p), v0) for p in (beta, v_th, rho, 1 - rho, adapt)]
        code, c1, c2 = _surrogate_code(surrogate)
        potentials = torch.tensor([v_rest, v_reset], dtype=current.dtype).to(compute)
        consts = torch.cat([potentials, torch.tensor([c1, c2], dtype=compute)]).to(v0.device)
        spikes = torch.empty_like(current)
        membrane = torch.empty_like(current) if record_membrane else current.new_empty(0)
        starts_v = v0.new_empty((triton.cdiv(steps, chunk), *v0.shape))
        starts_a = torch.empty_like(starts_v)
        v_last, a_last = torch.empty_like(v0), torch.empty_like(v0)
        if n:
            _launch(
                _alif_forward_kernel, n, current.device,
                current, v0, a0, *params, consts, spikes,
                membrane if record_membrane else spikes, starts_v, starts_a, v_last, a_last,
                n, steps, chunk, RESET=_RESETS[reset], RECORD=record_membrane,
                HAS_REST=v_rest != 0, **_launch_options(current.dtype),
            )  # fmt: skip
        ctx.save_for_backward(current, starts_v, starts_a, *params, consts)
        ctx.config = (reset, detach_reset, code, v_rest != 0, chunk)
        ctx.param_shapes = tuple(
            p.shape if isinstance(p, Tensor) else None for p in (beta, v_th, rho, adapt)
        )
        ctx.set_materialize_grads(False)
        if not record_membrane:
            ctx.mark_non_differentiable(membrane)
        return spikes, v_last, a_last, membrane

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v_last, grad_a_last, grad_membrane):
        current, starts_v, starts_a, *params, consts = ctx.saved_tensors
        reset, detach_reset, code, has_rest, chunk = ctx.config
        steps, n = current.shape[0], params[0].numel()
        gs, gs_step = _incoming(grad_spikes, current)
        gm, gm_step = _incoming(grad_membrane if grad_membrane is not None and
                                grad_membrane.numel() else None, current)  # fmt: skip
        last = [None if g is None else g.to(current.dtype).contiguous()
                for g in (grad_v_last, grad_a_last)]  # fmt: skip
        grad_current = torch.empty_like(current)
        grad_v0, grad_a0 = torch.zeros_like(params[0]), torch.zeros_like(params[0])
        sums = [torch.zeros(params[0].shape, dtype=consts.dtype, device=current.device)
                for _ in range(4)]  # fmt: skip
        scratch = current.new_empty((min(chunk, steps), *params[0].shape))
        if n:
            _launch(
                _alif_backward_kernel, n, current.device,
                current, starts_v, starts_a, scratch, current if gs is None else gs, gs_step,
                current if gm is None else gm, gm_step,
                *[current if g is None else g for g in last], grad_current, grad_v0, grad_a0,
                *sums, *params, consts, n, steps, chunk, RESET=_RESETS[reset],
                DETACH=detach_reset, KIND=code, HAS_GS=gs is not None, HAS_GM=gm is not None,
                HAS_GV_LAST=last[0] is not None, HAS_GA_LAST=last[1] is not None,
                HAS_REST=has_rest, **_launch_options(current.dtype),
            )  # fmt: skip
        needs = ctx.needs_input_grad
        param_grads = [
            g.sum_to_size(shape) if need and shape is not None else None
            for g, shape, need in zip(sums, ctx.param_shapes, needs[3:7], strict=True)
        ]
        return (
            grad_current,
            grad_v0 if needs[1] else None,
            grad_a0 if needs[2] else None,
            *param_grads,
            *[None] * 7,
        )


def alif_sequence(
    current: Tensor,
    v0: Tensor,
    a0: Tensor,
    beta: Tensor | float,
    v_th: Tensor | float,
    rho: Tensor | float,
    adapt: Tensor | float,
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: sg.Surrogate,
    record_membrane: bool,
    *,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ALIF over ``current`` (``[T, ...]``, already multiplied by the input gain) from
    ``(v0, a0)`` on the Triton kernels: ``(spikes, v_last, a_last, membrane or empty)``, as
    :func:`snn.family_functional.alif_sequence` computes them (bitwise the same spikes and
    states). Check :func:`unavailable_reason` first."""
    why = unavailable_reason(current, surrogate)
    if why is not None:
        raise ValueError(f"snn's Triton kernels cannot run here: {why}")
    chunk = _lif.CHUNK_STEPS if chunk is None else chunk
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive number of time steps, got {chunk!r}")
    chunk = min(chunk, current.shape[0])
    return _TritonALIF.apply(
        current, v0, a0, beta, v_th, rho, adapt, v_rest, v_reset, reset, detach_reset,
        surrogate, record_membrane, chunk,
    )  # fmt: skip
