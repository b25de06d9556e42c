"""The recurrent layer (:func:`snn.family_functional.recurrent_sequence`) on Triton kernels.

The recurrent input couples all neurons of a sample at every step, so the time loop cannot run
inside one kernel as the feed-forward neurons' does (:mod:`snn.kernels.triton_lif`). Each step
is instead one matrix product (PyTorch's, ``s_{t-1} W^T`` into a ``[B, N]`` buffer) and one
Triton kernel that adds it to ``x_t + b`` and runs the family's step body (the feed-forward
kernels' ``_advance``: LIF, CubaLIF or ALIF, with the same rounding, so the spikes equal the
reference loop's bit for bit).

The node keeps what the PyTorch fused node (:mod:`snn.kernels.family`) keeps: the input ``u_t
= (x_t + b) + s_{t-1} W^T`` of every step, the spikes (for ``dW``) and the states at the start
of every chunk of ``CHUNK_STEPS`` steps; nothing per step besides. Backward walks the chunks
from last to first: one kernel recomputes a chunk's steps from its start (``u`` is kept, so this
needs no matrix product) into the rows of the input gradient and the chunk's scratch; then per
step, last first, one kernel runs the reverse step (the feed-forward kernels' ``_reverse_step``,
with ``dL/ds_t`` including what step ``t + 1`` sends back through ``W``) and writes ``dL/du_t``,
and one matrix product ``dL/du_t W`` carries it to step ``t - 1``. At the end ``dW = sum_t
(dL/du_t)^T s_{t-1}`` is one matrix product over all ``T B`` rows (and one for ``s_0``), and
``db`` one sum.

Per step that is two launches forward and two backward, from Python; capturing the loop in a
CUDA graph would remove the launch overhead, which is unmeasured (no GPU has run this yet).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snn import surrogate as sg
from snn.kernels import triton_lif
from snn.kernels.native import _surrogate_code
from snn.kernels.triton_lif import _RESETS, _SIZES, triton

if triton is not None:
    import triton.language as tl

    from snn.kernels.triton_lif import (
        _add_sums,
        _advance,
        _chunk_start,
        _load,
        _load_states,
        _prologue,
        _recompute,
        _reverse_step,
        _round,
        _store_states,
    )

__all__ = ["unavailable_reason", "recurrent_sequence"]


def unavailable_reason(x: Tensor, surrogate: sg.Surrogate, weight: Tensor) -> str | None:
    """Why the recurrent kernels cannot run on ``x`` with ``weight``; ``None`` if they can."""
    why = triton_lif.unavailable_reason(x, surrogate)
    if why is None and (weight.device != x.device or weight.dtype != x.dtype):
        why = f"the weight is {weight.dtype} on {weight.device}, the input {x.dtype} on {x.device}"
    return why


if triton is not None:

    @triton.jit(do_not_specialize=_SIZES)
    def _step_kernel(
        x_ptr, bias_ptr, product_ptr, u_ptr, v_ptr, i_ptr, a_ptr, params_ptr, g_in_ptr,
        consts_ptr, spikes_ptr, membrane_ptr, t, n, features,
        RESET: tl.constexpr, RECORD: tl.constexpr, HAS_REST: tl.constexpr,
        CURRENT: tl.constexpr, ADAPT: tl.constexpr, HAS_BIAS: tl.constexpr,
        GAIN_IN: tl.constexpr, COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr,
        BLOCK: tl.constexpr,
    ):  # fmt: skip
        (offs, mask, n64, v_rest, v_reset, c1, c2, beta, v_th, jump, alpha, g_cur, rho,
         one_minus_rho, adapt) = _prologue(params_ptr, consts_ptr, n, CURRENT, ADAPT, COMPUTE,
                                           BLOCK)  # fmt: skip
        row = t * n64
        u = _load(x_ptr + row, offs, mask, COMPUTE)
        if HAS_BIAS:  # u = (x + b) + s W^T, as the reference adds them
            u = _round(u + _load(bias_ptr, offs % features, mask, COMPUTE), ROUND_BF16)
        u = _round(u + _load(product_ptr, offs, mask, COMPUTE), ROUND_BF16)
        tl.store(u_ptr + row + offs, u.to(u_ptr.dtype.element_ty), mask=mask)
        c = u
        if GAIN_IN:
            c = _round(_load(g_in_ptr, offs, mask, COMPUTE) * u, ROUND_BF16)
        v, i, a = _load_states(v_ptr, i_ptr, a_ptr, offs, mask, CURRENT, ADAPT, COMPUTE)
        v, i, a = _advance(v, i, a, c, row, offs, mask, spikes_ptr, membrane_ptr, beta, v_th, jump,
                           alpha, g_cur, rho, one_minus_rho, adapt, v_rest, v_reset, RESET, RECORD,
                           HAS_REST, CURRENT, ADAPT, ROUND_BF16)  # fmt: skip
        _store_states(v_ptr, i_ptr, a_ptr, offs, mask, v, i, a, CURRENT, ADAPT)

    @triton.jit(do_not_specialize=_SIZES)
    def _recompute_kernel(
        u_ptr, starts_ptr, i_scr_ptr, a_scr_ptr, gx_ptr, params_ptr, g_in_ptr, consts_ptr,
        c, t0, t1, n,
        RESET: tl.constexpr, HAS_REST: tl.constexpr, CURRENT: tl.constexpr,
        ADAPT: tl.constexpr, GAIN_IN: tl.constexpr, COMPUTE: tl.constexpr,
        ROUND_BF16: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        (offs, mask, n64, v_rest, v_reset, c1, c2, beta, v_th, jump, alpha, g_cur, rho,
         one_minus_rho, adapt) = _prologue(params_ptr, consts_ptr, n, CURRENT, ADAPT, COMPUTE,
                                           BLOCK)  # fmt: skip
        g_in = tl.zeros_like(beta)
        if GAIN_IN:
            g_in = _load(g_in_ptr, offs, mask, COMPUTE)
        v, i, a = _chunk_start(starts_ptr, c, n64, CURRENT, ADAPT)
        v, i, a = _load_states(v, i, a, offs, mask, CURRENT, ADAPT, COMPUTE)
        _recompute(u_ptr, gx_ptr, i_scr_ptr, a_scr_ptr, g_in, t0, t1, n64, offs, mask, v, i, a,
                   beta, v_th, jump, alpha, g_cur, rho, one_minus_rho, adapt, v_rest, v_reset,
                   RESET, HAS_REST, CURRENT, ADAPT, GAIN_IN, COMPUTE, ROUND_BF16)  # fmt: skip

    @triton.jit(do_not_specialize=_SIZES)
    def _reverse_kernel(
        u_ptr, starts_ptr, i_scr_ptr, a_scr_ptr, gx_ptr, gs_ptr, gs_step, gm_ptr, gm_step,
        rec_ptr, dv_ptr, di_ptr, da_ptr, sums_ptr, g_in_sum_ptr, params_ptr, g_in_ptr,
        consts_ptr, t, t0, c, n,
        RESET: tl.constexpr, DETACH: tl.constexpr, KIND: tl.constexpr,
        HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, NEED_BETA: tl.constexpr,
        HAS_REST: tl.constexpr, CURRENT: tl.constexpr, ADAPT: tl.constexpr,
        GAIN_IN: tl.constexpr, COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr,
        BLOCK: tl.constexpr,
    ):  # fmt: skip
        (offs, mask, n64, v_rest, v_reset, c1, c2, beta, v_th, jump, alpha, g_cur, rho,
         one_minus_rho, adapt) = _prologue(params_ptr, consts_ptr, n, CURRENT, ADAPT, COMPUTE,
                                           BLOCK)  # fmt: skip
        store_type = gx_ptr.dtype.element_ty
        start_v, start_i, start_a = _chunk_start(starts_ptr, c, n64, CURRENT, ADAPT)
        start_v, start_i, start_a = _load_states(start_v, start_i, start_a, offs, mask, CURRENT,
                                                 ADAPT, COMPUTE)  # fmt: skip
        # the carried dL/dv_t, alpha dL/di_{t+1}, dL/da_t, from the step after this one
        delta_v, delta_i, delta_a = _load_states(dv_ptr, di_ptr, da_ptr, offs, mask, CURRENT,
                                                 ADAPT, COMPUTE)  # fmt: skip
        d = delta_v
        if HAS_GM:
            d = d + _load(gm_ptr + t * gm_step.to(tl.int64), offs, mask, COMPUTE)
        spike_grad = _load(rec_ptr, offs, mask, COMPUTE)  # dL/du_{t+1} W: through the weight
        if HAS_GS:
            spike_grad = spike_grad + _load(gs_ptr + t * gs_step.to(tl.int64), offs, mask, COMPUTE)
        (grad_c, delta_v, delta_i, delta_a, beta_term, v_th_term, alpha_term, g_cur_term,
         rho_term, adapt_term) = _reverse_step(
            gx_ptr, i_scr_ptr, a_scr_ptr, t, t0, n64, offs, mask, start_v, start_i, d,
            spike_grad, delta_i, delta_a, beta, v_th, jump, alpha, g_cur, rho, one_minus_rho,
            adapt, v_rest, v_reset, c1, c2, KIND, RESET, DETACH, HAS_REST, CURRENT, ADAPT,
            NEED_BETA, COMPUTE, ROUND_BF16)  # fmt: skip
        grad_u = grad_c
        if GAIN_IN:  # c = g_in u
            u = _load(u_ptr + t * n64, offs, mask, COMPUTE)
            total = tl.load(g_in_sum_ptr + offs, mask=mask) + grad_c * u
            tl.store(g_in_sum_ptr + offs, total, mask=mask)
            grad_u = _load(g_in_ptr, offs, mask, COMPUTE) * grad_c
        tl.store(gx_ptr + t * n64 + offs, grad_u.to(store_type), mask=mask)
        _store_states(dv_ptr, di_ptr, da_ptr, offs, mask, delta_v, delta_i, delta_a, CURRENT,
                      ADAPT)  # fmt: skip
        _add_sums(sums_ptr, offs, mask, n64, beta_term, v_th_term, alpha_term, g_cur_term,
                  rho_term, adapt_term, CURRENT, ADAPT)  # fmt: skip


def _is_one(g) -> bool:
    return g is None or (isinstance(g, (int, float)) and g == 1)


class _TritonRecurrent(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x, v0, i0, a0, s0, weight, bias, beta, v_th, alpha, g_cur, g_in, rho, adapt,
        v_rest, v_reset, reset, detach_reset, surrogate, record_membrane, chunk,
    ):  # fmt: skip
        x = x.contiguous()
        steps, _, features = x.shape
        n = v0.numel()
        current_on, adapt_on = i0 is not None, a0 is not None
        params, shapes = triton_lif.family_param_rows(
            v0, beta, v_th, v_reset, alpha, g_cur, rho, adapt
        )
        # g_in comes between g_cur and rho, in the order of forward's arguments
        ctx.param_shapes = {k: shapes[k] for k in ("beta", "v_th", "alpha", "g_cur")}
        ctx.param_shapes |= {"g_in": g_in.shape if isinstance(g_in, Tensor) else None}
        ctx.param_shapes |= {k: shapes[k] for k in ("rho", "adapt")}
        gain_in = not _is_one(g_in)
        g_in_rows = params  # a placeholder the kernels do not read, unless:
        if gain_in:
            g_in_rows = torch.as_tensor(g_in, dtype=x.dtype, device=x.device)
            g_in_rows = g_in_rows.to(x.dtype).expand(v0.shape).contiguous()
        consts = triton_lif.constants(x, v_rest, v_reset, None)
        # the states, updated in place step by step (and returned as the last states)
        states = [s.contiguous().clone() for s in (v0, i0, a0) if s is not None]
        v, i, a = states[0], states[1] if current_on else v0, states[-1] if adapt_on else v0
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x) if record_membrane else x.new_empty(0)
        u_all = torch.empty_like(x)
        starts = v0.new_empty((-(-steps // chunk), len(states), *v0.shape))  # row 0: the start
        product = torch.empty_like(v0)
        bias_rows = x if bias is None else bias.contiguous()  # x: a placeholder, not read
        s_prev = s0
        options = dict(
            RESET=_RESETS[reset], RECORD=record_membrane, HAS_REST=v_rest != 0,
            CURRENT=current_on, ADAPT=adapt_on, HAS_BIAS=bias is not None, GAIN_IN=gain_in,
            **triton_lif.launch_options(x.dtype),
        )  # fmt: skip
        for t in range(steps):
            if t % chunk == 0:
                for row, state in enumerate(states):
                    starts[t // chunk, row].copy_(state)
            torch.matmul(s_prev, weight.T, out=product)
            triton_lif.launch(
                _step_kernel, n, x.device,
                x, bias_rows, product, u_all, v, i, a, params,
                g_in_rows, consts, spikes, membrane if record_membrane else spikes, t, n,
                features, **options,
            )  # fmt: skip
            s_prev = spikes[t]
        ctx.save_for_backward(u_all, spikes, s0, weight, starts, params,
                              g_in_rows if gain_in else None)  # fmt: skip
        ctx.config = (v_rest, v_reset, reset, detach_reset, surrogate, chunk, current_on, adapt_on,
                      gain_in)  # fmt: skip
        ctx.set_materialize_grads(False)
        if not record_membrane:
            ctx.mark_non_differentiable(membrane)
        empty = x.new_empty(0)
        return (
            spikes,
            states[0],
            states[1] if current_on else empty,
            states[-1] if adapt_on else empty,
            membrane,
        )

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v, grad_i, grad_a, grad_membrane):
        u_all, spikes, s0, weight, starts, params, g_in_rows = ctx.saved_tensors
        g_in_rows = params if g_in_rows is None else g_in_rows  # a placeholder without g_in
        v_rest, v_reset, reset, detach_reset, surrogate, chunk, current_on, adapt_on, gain_in = (
            ctx.config
        )
        needs = ctx.needs_input_grad
        steps, _, features = u_all.shape
        like = params[0]
        n = like.numel()
        gs, gs_step = triton_lif.incoming(grad_spikes, u_all)
        gm, gm_step = triton_lif.incoming(grad_membrane, u_all)

        def carried(grad, on):  # dL/d(state) after the last step, updated in place
            if not on:
                return like
            return torch.zeros_like(like) if grad is None else grad.to(like).contiguous().clone()

        grads_in = zip((grad_v, grad_i, grad_a), (True, current_on, adapt_on), strict=True)
        dv, di, da = (carried(g, on) for g, on in grads_in)
        consts = triton_lif.constants(u_all, v_rest, v_reset, surrogate)
        sums = torch.zeros((2 + 2 * current_on + 2 * adapt_on, *like.shape), dtype=consts.dtype,
                           device=like.device)  # fmt: skip
        g_in_sum = torch.zeros_like(like, dtype=consts.dtype) if gain_in else sums
        scratch = [u_all.new_empty((min(chunk, steps), *like.shape)) if on else u_all
                   for on in (current_on, adapt_on)]  # fmt: skip
        rec = torch.zeros_like(like)  # dL/ds_t through the weight: dL/du_{t+1} W
        grad_x = torch.empty_like(u_all)
        common = dict(
            RESET=_RESETS[reset], HAS_REST=v_rest != 0, CURRENT=current_on, ADAPT=adapt_on,
            GAIN_IN=gain_in, **triton_lif.launch_options(u_all.dtype),
        )  # fmt: skip
        reverse = dict(
            DETACH=detach_reset, KIND=_surrogate_code(surrogate)[0], HAS_GS=gs is not None,
            HAS_GM=gm is not None, NEED_BETA=needs[7], **common,
        )  # fmt: skip
        for c in range(starts.shape[0] - 1, -1, -1):
            t0, t1 = c * chunk, min((c + 1) * chunk, steps)
            triton_lif.launch(
                _recompute_kernel, n, u_all.device,
                u_all, starts, *scratch, grad_x, params, g_in_rows, consts, c, t0, t1, n,
                **common,
            )  # fmt: skip
            for t in range(t1 - 1, t0 - 1, -1):
                triton_lif.launch(
                    _reverse_kernel, n, u_all.device,
                    u_all, starts, *scratch, grad_x, u_all if gs is None else gs, gs_step,
                    u_all if gm is None else gm, gm_step, rec, dv, di, da, sums, g_in_sum,
                    params, g_in_rows, consts, t, t0, c, n, **reverse,
                )  # fmt: skip
                torch.matmul(grad_x[t], weight, out=rec)
        grad_weight = None
        if needs[5]:
            # dW = sum_t (dL/du_t)^T s_{t-1}: one product over all steps (and s_0 for t = 1)
            grad_weight = grad_x[1:].reshape(-1, features).T @ spikes[:-1].reshape(-1, features)
            grad_weight += grad_x[0].T @ s0
        grad_bias = grad_x.sum((0, 1)) if needs[6] else None
        param_grads = triton_lif.parameter_grads(
            sums, current_on, adapt_on, ctx.param_shapes, needs[7:14], g_in=g_in_sum
        )
        return (
            grad_x,
            dv if needs[1] else None,
            di if current_on and needs[2] else None,
            da if adapt_on and needs[3] else None,
            rec if needs[4] else None,
            grad_weight,
            grad_bias,
            *param_grads,
            *[None] * 7,
        )


def recurrent_sequence(
    x: Tensor,
    neuron_state,
    s0: Tensor,
    p,
    weight: Tensor,
    bias: Tensor | None,
    record_membrane: bool,
    *,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor]:
    """The neuron ``p`` describes (LIF, CubaLIF or ALIF parameters) from ``neuron_state``, with
    the recurrent input ``(x_t + bias) + s_{t-1} @ weight.T`` (``s_0 = s0``), over ``x``
    (``[T, B, N]``). Returns ``(spikes, v_last, i_last or None, a_last or None, membrane or
    empty)``. Validation is the caller's (:func:`snn.family_functional.recurrent_sequence`);
    check :func:`unavailable_reason` first."""
    from snn.family_functional import ALIFParameters, CubaLIFParameters

    i0 = a0 = alpha = g_cur = rho = adapt = None
    if isinstance(p, CubaLIFParameters):
        lif, g_in = p.lif, p.input_gain
        i0, v0 = neuron_state
        alpha, g_cur = p.alpha, lif.gain
    elif isinstance(p, ALIFParameters):
        lif, g_in = p.lif, p.lif.gain
        v0, a0 = neuron_state
        rho, adapt = p.rho, p.adapt
    else:
        lif, g_in, v0 = p, p.gain, neuron_state
    why = unavailable_reason(x, lif.surrogate, weight)
    if why is not None:
        raise ValueError(f"snn's Triton kernels cannot run here: {why}")
    chunk = triton_lif.check_chunk(chunk, x.shape[0])
    spikes, v, i, a, membrane = _TritonRecurrent.apply(
        x, v0, i0, a0, s0, weight, bias, lif.beta, lif.v_th, alpha, g_cur, g_in, rho, adapt,
        lif.v_rest, lif.v_reset, lif.reset, lif.detach_reset, lif.surrogate, record_membrane,
        chunk,
    )  # fmt: skip
    return spikes, v, i if i0 is not None else None, a if a0 is not None else None, membrane
