"""The fused multi-step LIF: the whole time loop is one autograd node.

A plain autograd loop keeps, for every step, the graph nodes of the leak, the spike, the reset and
a copy of each intermediate. This node instead saves one tensor, the pre-spike potential ``h_t``
(``[T, ...]``), and in backward runs the reverse recurrence by hand. With
``delta_t = dL/dv_t`` (the post-reset potential), ``sigma_t = surrogate'(h_t - v_th)`` and
``s_t = H(h_t - v_th)``, for ``t = T .. 1``::

    dL/dh_t     = delta_t * dv_t/dh_t + dL/ds_t * sigma_t
    dL/dI_t     = dL/dh_t                        (I_t = gain * x_t, the input current)
    dL/dbeta   += dL/dh_t * (v_{t-1} - v_rest)
    dL/dv_th   += -dL/ds_t * sigma_t + delta_t * dv_t/dv_th
    delta_{t-1} = dL/dh_t * beta  (+ dL/dv_{t-1} from a recorded membrane trace)

where, by reset mode (``detach_reset`` drops the terms that flow through the spike):

============  ==========================================  ====================================
reset         dv_t/dh_t                                   dv_t/dv_th
============  ==========================================  ====================================
subtract      ``1 - (v_th - v_reset) * sigma_t``          ``-s_t + (v_th - v_reset) * sigma_t``
zero          ``(1 - s_t) + (v_reset - h_t) * sigma_t``   ``(h_t - v_reset) * sigma_t``
none          ``1``                                       ``0``
============  ==========================================  ====================================

``v_{t-1}`` is recomputed from ``h_{t-1}`` (the reset is a function of it), so nothing else is
kept. The result equals autograd through :func:`snn.functional.lif_step` to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from snn.surrogate import Surrogate


def _as_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _after_reset(h: Tensor, fired: Tensor, jump: Tensor, v_reset: float, reset: str) -> Tensor:
    """Post-reset potential from the pre-spike potential ``h`` and the boolean spike mask."""
    if reset == "subtract":
        return h - fired.to(h.dtype) * jump
    if reset == "zero":
        return torch.where(fired, torch.full_like(h, v_reset), h)
    return h


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        current: Tensor,
        v0: Tensor,
        beta: Tensor | float,
        v_th: Tensor | float,
        v_rest: float,
        v_reset: float,
        reset: str,
        detach_reset: bool,
        surrogate: Surrogate,
        record_membrane: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        beta_t = _as_tensor(beta, current)
        v_th_t = _as_tensor(v_th, current)
        jump = v_th_t - v_reset
        # v_rest + beta (v - v_rest) = beta v + (1 - beta) v_rest: the constant once, not per step
        rest_term = (1 - beta_t) * v_rest if v_rest != 0 else None

        pre_spike = torch.empty_like(current)
        spikes = torch.empty_like(current)
        membrane = torch.empty_like(current) if record_membrane else current.new_empty(0)
        v = v0
        for t in range(current.shape[0]):
            h = pre_spike[t]
            torch.addcmul(current[t], v, beta_t, out=h)
            if rest_term is not None:
                h.add_(rest_term)
            fired = h >= v_th_t
            spikes[t].copy_(fired)
            v = _after_reset(h, fired, jump, v_reset, reset)
            if record_membrane:
                membrane[t].copy_(v)
        v_last = v.clone() if reset == "none" else v  # "none" leaves v a view of pre_spike

        ctx.save_for_backward(pre_spike, v0, beta_t, v_th_t)
        ctx.config = (v_rest, v_reset, reset, detach_reset, surrogate, record_membrane)
        ctx.param_shapes = (
            beta.shape if isinstance(beta, Tensor) else None,
            v_th.shape if isinstance(v_th, Tensor) else None,
        )
        if not record_membrane:
            ctx.mark_non_differentiable(membrane)
        return spikes, v_last, membrane

    @staticmethod
    def backward(ctx, grad_spikes: Tensor, grad_v_last: Tensor, grad_membrane: Tensor):
        pre_spike, v0, beta, v_th = ctx.saved_tensors
        v_rest, v_reset, reset, detach_reset, surrogate, record_membrane = ctx.config
        beta_shape, v_th_shape = ctx.param_shapes
        need_beta = ctx.needs_input_grad[2]
        need_v_th = ctx.needs_input_grad[3]
        jump = v_th - v_reset

        grad_current = torch.empty_like(pre_spike)
        grad_beta = torch.zeros_like(v0) if need_beta else None
        grad_v_th = torch.zeros_like(v0) if need_v_th else None
        delta = grad_v_last  # dL/dv_t, the post-reset potential
        for t in range(pre_spike.shape[0] - 1, -1, -1):
            h = pre_spike[t]
            if record_membrane:
                delta = delta + grad_membrane[t]
            u = h - v_th
            fired = u >= 0
            sigma = surrogate.derivative(u)
            through_spike = grad_spikes[t] * sigma

            if reset == "none" or (reset == "subtract" and detach_reset):
                dv_dh = None  # identity
            elif reset == "subtract":
                dv_dh = 1 - jump * sigma
            elif detach_reset:  # zero
                dv_dh = (~fired).to(h.dtype)
            else:
                dv_dh = (~fired).to(h.dtype) + (v_reset - h) * sigma
            grad_h = (delta if dv_dh is None else delta * dv_dh) + through_spike
            grad_current[t] = grad_h

            if need_v_th:
                grad_v_th -= through_spike
                if reset == "subtract":
                    grad_v_th -= delta * fired.to(h.dtype)
                    if not detach_reset:
                        grad_v_th += delta * jump * sigma
                elif reset == "zero" and not detach_reset:
                    grad_v_th += delta * (h - v_reset) * sigma
            if need_beta:
                if t == 0:
                    v_prev = v0
                else:
                    h_prev = pre_spike[t - 1]
                    v_prev = _after_reset(h_prev, h_prev >= v_th, jump, v_reset, reset)
                grad_beta += grad_h * (v_prev - v_rest)
            delta = grad_h * beta

        return (
            grad_current,
            delta if ctx.needs_input_grad[1] else None,
            grad_beta.sum_to_size(beta_shape) if need_beta else None,
            grad_v_th.sum_to_size(v_th_shape) if need_v_th else None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def fused_lif_sequence(
    current: Tensor,
    v0: Tensor,
    beta: Tensor | float,
    v_th: Tensor | float,
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: Surrogate,
    record_membrane: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the LIF over ``current`` (``[T, ...]``, already multiplied by the gain) from ``v0``.

    Returns ``(spikes [T, ...], v_last [...], membrane [T, ...] or an empty tensor)``. Use
    :func:`snn.functional.lif_sequence`, which validates its arguments, rather than this.
    """
    return _FusedLIF.apply(
        current, v0, beta, v_th, v_rest, v_reset, reset, detach_reset, surrogate, record_membrane
    )
