"""CubaLIF and ALIF on the Triton kernels of :mod:`snn.kernels.triton_lif` (whose docstring has
the algorithm, the rounding rule without fused multiply-adds, the types and where it runs): the
same forward and backward kernels as the LIF's, with the synaptic current (CubaLIF) or the
threshold state (ALIF) compiled in, in one autograd node for the whole sequence.

The reverse recurrence is :mod:`snn.kernels.family`'s; backward keeps the chunk's current
``i_t`` (CubaLIF) or adaptation ``a_{t-1}`` (ALIF) in a ``[chunk, neurons]`` scratch buffer,
since neither can be run back from the potentials as the LIF's ``v_{t-1}`` is. Nothing here is
public API: :func:`snn.family_functional.cuba_lif_sequence` and
:func:`snn.family_functional.alif_sequence` call it on CUDA (``backend="fused"``) and under
``backend="triton"``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snn import surrogate as sg
from snn.kernels import triton_lif

__all__ = ["cuba_lif_sequence", "alif_sequence"]


class _TritonFamily(torch.autograd.Function):
    """CubaLIF (``i0`` given, ``a0`` None) or ALIF (``a0`` given, ``i0`` None) over ``c``."""

    @staticmethod
    def forward(
        ctx, c, v0, i0, a0, beta, v_th, alpha, g_cur, rho, adapt, v_rest, v_reset, reset,
        detach_reset, surrogate, record_membrane, chunk,
    ):  # fmt: skip
        c, v0 = c.contiguous(), v0.contiguous()
        current_on, adapt_on = i0 is not None, a0 is not None
        params, ctx.param_shapes = triton_lif.family_param_rows(
            v0, beta, v_th, v_reset, alpha, g_cur, rho, adapt
        )
        spikes = torch.empty_like(c)
        membrane = torch.empty_like(c) if record_membrane else c.new_empty(0)
        rows = 1 + current_on + adapt_on
        starts = v0.new_empty((-(-c.shape[0] // chunk), rows, *v0.shape))  # row 0: the start
        v_last, i_last, a_last = triton_lif.forward(
            c, (v0, i0, a0), params, v_rest, v_reset, reset, spikes,
            membrane if record_membrane else None, starts, chunk,
        )  # fmt: skip
        ctx.save_for_backward(c, starts, params)
        ctx.config = (v_rest, v_reset, reset, detach_reset, surrogate, chunk, current_on, adapt_on)
        ctx.set_materialize_grads(False)
        if not record_membrane:
            ctx.mark_non_differentiable(membrane)
        empty = c.new_empty(0)
        return (
            spikes,
            v_last,
            empty if i_last is None else i_last,
            empty if a_last is None else a_last,
            membrane,
        )

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v, grad_i, grad_a, grad_membrane):
        c, starts, params = ctx.saved_tensors
        v_rest, v_reset, reset, detach_reset, surrogate, chunk, current_on, adapt_on = ctx.config
        needs = ctx.needs_input_grad
        grad_c, (grad_v0, grad_i0, grad_a0), sums = triton_lif.backward(
            c, starts, grad_spikes, grad_membrane, (grad_v, grad_i, grad_a), params, v_rest,
            v_reset, reset, detach_reset, surrogate, chunk, current_on, adapt_on, needs[4],
        )  # fmt: skip
        param_grads = triton_lif.parameter_grads(
            sums, current_on, adapt_on, ctx.param_shapes, needs[4:10]
        )
        return (
            grad_c,
            grad_v0 if needs[1] else None,
            grad_i0 if needs[2] else None,
            grad_a0 if needs[3] else None,
            *param_grads,
            *[None] * 7,
        )


def _checked(current: Tensor, surrogate: sg.Surrogate, chunk: int | None) -> int:
    why = triton_lif.unavailable_reason(current, surrogate)
    if why is not None:
        raise ValueError(f"snn's Triton kernels cannot run here: {why}")
    return triton_lif.check_chunk(chunk, current.shape[0])


def cuba_lif_sequence(
    c: Tensor,
    i0: Tensor,
    v0: Tensor,
    alpha: Tensor | float,
    g_cur: Tensor | float,
    beta: Tensor | float,
    v_th: Tensor | float,
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: sg.Surrogate,
    record_membrane: bool,
    *,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The CubaLIF over ``c`` (``[T, ...]``, already multiplied by the input gain) from ``(i0,
    v0)``: ``i_t = alpha i_{t-1} + c_t`` into the membrane as ``g_cur i_t``. Returns ``(spikes,
    i_last, v_last, membrane or empty)``, as :func:`snn.family_functional.cuba_lif_sequence`
    computes them (bitwise the same spikes and states)."""
    chunk = _checked(c, surrogate, chunk)
    spikes, v, i, _, membrane = _TritonFamily.apply(
        c, v0, i0, None, beta, v_th, alpha, g_cur, None, None, v_rest, v_reset, reset,
        detach_reset, surrogate, record_membrane, chunk,
    )  # fmt: skip
    return spikes, i, v, membrane


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
    ``(v0, a0)``: ``(spikes, v_last, a_last, membrane or empty)``, as
    :func:`snn.family_functional.alif_sequence` computes them (bitwise the same spikes and
    states). Check :func:`snn.kernels.triton_lif.unavailable_reason` first."""
    chunk = _checked(current, surrogate, chunk)
    spikes, v, _, a, membrane = _TritonFamily.apply(
        current, v0, None, a0, beta, v_th, None, None, rho, adapt, v_rest, v_reset, reset,
        detach_reset, surrogate, record_membrane, chunk,
    )  # fmt: skip
    return spikes, v, a, membrane
