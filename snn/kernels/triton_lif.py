"""The Triton executor of the LIF family's fused nodes: one step body for the LIF, CubaLIF and
ALIF as GPU kernels, and the LIF's entry point (:func:`lif_sequence`, the third executor of
:class:`snn.kernels.fused._FusedLIF`). :mod:`snn.kernels.triton_family` runs CubaLIF and ALIF
on the same kernels; :mod:`snn.kernels.triton_recurrent` runs the recurrent layer on the same
step body, one step per launch between the matrix products.

The algorithm is :mod:`snn.kernels.fused`'s (its docstring has the equations and the reset
table) and the native C kernel's (``csrc/lif_kernel.h``): each Triton program takes a block of
``BLOCK`` neurons (the neurons of all samples, flattened) and walks them through time. The
neuron is the family's generic one (:mod:`snn.kernels.family`'s docstring), with two
``tl.constexpr`` switches compiled in or out: ``CURRENT`` (the synaptic current of CubaLIF,
``i_t = alpha i_{t-1} + c_t`` and ``I_t = g_cur i_t``) and ``ADAPT`` (the threshold state of
ALIF, ``theta_t = v_th + adapt a_{t-1}``, ``a_t = rho a_{t-1} + (1 - rho) s_t``); with both off
it is the LIF.

* **forward** writes the spikes (and, when asked, the membrane trace), the last states, and the
  states at the start of every chunk of ``chunk`` steps (chunk 0's is the initial state):
  nothing else is kept for backward besides the input current.
* **backward** walks the chunks from last to first. It recomputes the chunk's pre-spike
  potentials ``h_t`` from the chunk's saved start, with the forward's operations in the forward's
  order (so bitwise the forward's values), into the chunk's rows of the input gradient, which are
  scratch until the reverse loop overwrites them with ``dL/dI_t``; the current ``i_t`` and the
  adaptation ``a_{t-1}`` go into ``[chunk, neurons]`` scratch buffers (a LIF needs none). The
  reverse loop reads ``h_t`` back, rebuilds ``v_{t-1}`` from ``h_{t-1}`` (or the chunk's start)
  for ``dL/dbeta``, and carries ``dL/dv``, ``dL/di`` and ``dL/da`` by hand. The parameters'
  terms are summed over time per neuron in registers; the caller sums them over the batch to the
  parameters' shapes.

**Rounding.** Spikes must equal the reference loop's bit for bit, so every step rounds as
:func:`snn.functional.lif_step` does: ``beta * v`` (or ``(v - v_rest) * beta + v_rest``) is
rounded before the input is added. Triton's compiler contracts a multiply followed by an add
into one fused multiply-add by default (its ``enable_fp_fusion`` option: LLVM's contraction and
``ptxas --fmad``), which would round once instead of twice; every kernel is launched with
``enable_fp_fusion=False``, so each ``*`` and ``+`` is its own correctly rounded operation
(tests/test_triton.py compiles every kernel for sm_90 on the CPU and finds no ``fma`` in the
PTX; with the option on, the forward has some). The interpreter (``TRITON_INTERPRET=1``)
evaluates each operation with numpy and never fuses.

**Types.** float32 and float64 compute in their own type. bfloat16 computes in float32 and
rounds to bfloat16 after every operation of the recurrence (as PyTorch's bfloat16 operations
do, so it matches the eager executor; ``v_rest`` and ``v_reset`` are taken in bfloat16, like
the parameters); the rounding is done on the bits (round to nearest even), because the
interpreter's own float32 -> bfloat16 conversion does not round to nearest. float16 is not
covered (``backend="fused"`` runs it on the eager executor).

**Where it runs.** CUDA tensors with Triton installed; or CPU tensors when ``TRITON_INTERPRET=1``
was set before this module was imported (Triton reads it when the kernels are decorated), which
is how the tests check the kernels on a machine without a GPU. :func:`unavailable_reason` says
why it cannot run, or ``None``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from snn import surrogate as sg
from snn.kernels.native import _surrogate_code  # the same codes and constants as the C kernel

try:
    import triton
    import triton.language as tl
except ImportError as err:  # the module still imports; unavailable_reason says why
    triton = None
    _IMPORT_ERROR = f"triton is not installed ({err}); pip install triton"
else:
    _IMPORT_ERROR = None

__all__ = ["unavailable_reason", "lif_sequence", "INTERPRETED", "BLOCK", "CHUNK_STEPS"]

# whether the kernels below were decorated for Triton's CPU interpreter
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
# neurons per program and warps per program (one neuron per thread: the time loop is
# sequential, so a GPU is kept busy by many neurons in flight; unmeasured, and
# benchmarks/gpu_speed.py --blocks times others); steps between saved states
BLOCK = 128
NUM_WARPS = 4
CHUNK_STEPS = 32
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_COMPUTE = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "fp32"}


def unavailable_reason(x: Tensor, surrogate: sg.Surrogate) -> str | None:
    """Why the Triton kernels cannot run on ``x`` with ``surrogate``; ``None`` if they can."""
    if _IMPORT_ERROR is not None:
        return _IMPORT_ERROR
    if torch.compiler.is_compiling():
        return "torch.compile is tracing"
    if x.device.type != "cuda" and not (INTERPRETED and x.device.type == "cpu"):
        return (
            f"the input is on {x.device}: the kernels run on CUDA tensors, or on CPU tensors "
            "under Triton's interpreter (set TRITON_INTERPRET=1 before snn is imported)"
        )
    if x.dtype not in _COMPUTE:
        return f"they support float32, float64 and bfloat16, and the input is {x.dtype}"
    if _surrogate_code(surrogate) is None:
        return f"they know the built-in surrogates only, not {type(surrogate).__name__}"
    return None


# Triton compiles an integer argument equal to 1 as a constant (and others by divisibility):
# the sizes are plain runtime integers (n.to(tl.int64) needs a tensor, even for one neuron)
_SIZES = ("n", "steps", "chunk", "gs_step", "gm_step", "t", "t0", "t1", "c", "features")

if triton is not None:

    @triton.jit
    def _round(x, ROUND_BF16: tl.constexpr):
        # float32 -> nearest bfloat16 (ties to even), kept in float32
        if ROUND_BF16:
            bits = x.to(tl.uint32, bitcast=True)
            bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
            x = bits.to(tl.float32, bitcast=True)
        return x

    @triton.jit
    def _load(ptr, offs, mask, COMPUTE: tl.constexpr):
        return tl.load(ptr + offs, mask=mask, other=0).to(COMPUTE)

    @triton.jit
    def _prologue(params_ptr, consts_ptr, n, CURRENT: tl.constexpr, ADAPT: tl.constexpr,
                  COMPUTE: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
        """Every kernel's start: this program's neurons (``offs``, which exist, the row length
        in int64), the constants (:func:`constants`) and the per-neuron parameters (the rows of
        :func:`param_rows`; 0 for a state that is off)."""
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        n64 = n.to(tl.int64)
        v_rest = tl.load(consts_ptr)
        v_reset = tl.load(consts_ptr + 1)
        c1 = tl.load(consts_ptr + 2)
        c2 = tl.load(consts_ptr + 3)
        beta = _load(params_ptr, offs, mask, COMPUTE)
        v_th = _load(params_ptr + n64, offs, mask, COMPUTE)
        jump = _load(params_ptr + 2 * n64, offs, mask, COMPUTE)
        zero = tl.zeros_like(beta)
        alpha, g_cur, rho, one_minus_rho, adapt = zero, zero, zero, zero, zero
        if CURRENT:
            alpha = _load(params_ptr + 3 * n64, offs, mask, COMPUTE)
            g_cur = _load(params_ptr + 4 * n64, offs, mask, COMPUTE)
        if ADAPT:
            first = 3 + 2 * CURRENT
            rho = _load(params_ptr + first * n64, offs, mask, COMPUTE)
            one_minus_rho = _load(params_ptr + (first + 1) * n64, offs, mask, COMPUTE)
            adapt = _load(params_ptr + (first + 2) * n64, offs, mask, COMPUTE)
        return (offs, mask, n64, v_rest, v_reset, c1, c2, beta, v_th, jump, alpha, g_cur, rho,
                one_minus_rho, adapt)  # fmt: skip

    @triton.jit
    def _chunk_start(starts_ptr, c, n64, CURRENT: tl.constexpr, ADAPT: tl.constexpr):
        """Where chunk ``c``'s first states lie: rows v, [i], [a] of ``starts``."""
        v_ptr = starts_ptr + c * (1 + CURRENT + ADAPT) * n64
        return v_ptr, v_ptr + n64, v_ptr + (1 + CURRENT) * n64

    @triton.jit
    def _load_states(v_ptr, i_ptr, a_ptr, offs, mask, CURRENT: tl.constexpr,
                     ADAPT: tl.constexpr, COMPUTE: tl.constexpr):  # fmt: skip
        v = _load(v_ptr, offs, mask, COMPUTE)
        i, a = tl.zeros_like(v), tl.zeros_like(v)
        if CURRENT:
            i = _load(i_ptr, offs, mask, COMPUTE)
        if ADAPT:
            a = _load(a_ptr, offs, mask, COMPUTE)
        return v, i, a

    @triton.jit
    def _store_states(v_ptr, i_ptr, a_ptr, offs, mask, v, i, a, CURRENT: tl.constexpr,
                      ADAPT: tl.constexpr):  # fmt: skip
        tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)
        if CURRENT:
            tl.store(i_ptr + offs, i.to(i_ptr.dtype.element_ty), mask=mask)
        if ADAPT:
            tl.store(a_ptr + offs, a.to(a_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _integrate(v, beta, x, v_rest, HAS_REST: tl.constexpr, ROUND_BF16: tl.constexpr):
        # beta * v is rounded before x is added, as lif_step does
        if HAS_REST:
            leak = _round(v - v_rest, ROUND_BF16)
            leak = _round(_round(leak * beta, ROUND_BF16) + v_rest, ROUND_BF16)
        else:
            leak = _round(beta * v, ROUND_BF16)
        return _round(leak + x, ROUND_BF16)

    @triton.jit
    def _threshold(a, adapt, v_th, ADAPT: tl.constexpr, ROUND_BF16: tl.constexpr):
        theta = v_th
        if ADAPT:  # theta = v_th + adapt a_{t-1}
            theta = _round(_round(adapt * a, ROUND_BF16) + v_th, ROUND_BF16)
        return theta

    @triton.jit
    def _jump(theta, jump, v_reset, ADAPT: tl.constexpr, ROUND_BF16: tl.constexpr):
        # what the subtract reset removes: v_th - v_reset (given), or theta_t - v_reset
        if ADAPT:
            jump = _round(theta - v_reset, ROUND_BF16)
        return jump

    @triton.jit
    def _after_reset(h, s, jump, v_reset, RESET: tl.constexpr, ROUND_BF16: tl.constexpr):
        # s is 0 or 1, so s * jump and s * (h - v_reset) are exact
        v = h
        if RESET == 0:
            v = _round(h - s * jump, ROUND_BF16)
        elif RESET == 1:
            v = _round(h - s * _round(h - v_reset, ROUND_BF16), ROUND_BF16)
        return v

    @triton.jit
    def _step(v, i, a, c, beta, v_th, jump, alpha, g_cur, rho, one_minus_rho, adapt, v_rest,
              v_reset, RESET: tl.constexpr, HAS_REST: tl.constexpr, CURRENT: tl.constexpr,
              ADAPT: tl.constexpr, ROUND_BF16: tl.constexpr):  # fmt: skip
        """One step of the family's neuron from ``(v, i, a)`` with input ``c``: ``(h, s, v, i,
        a)``, each product rounded before its sum, as the reference steps."""
        drive = c
        if CURRENT:  # i = alpha i + c, I = g_cur i
            i = _round(_round(alpha * i, ROUND_BF16) + c, ROUND_BF16)
            drive = _round(g_cur * i, ROUND_BF16)
        h = _integrate(v, beta, drive, v_rest, HAS_REST, ROUND_BF16)
        theta = _threshold(a, adapt, v_th, ADAPT, ROUND_BF16)
        s = (h >= theta).to(h.dtype)
        v = _after_reset(h, s, _jump(theta, jump, v_reset, ADAPT, ROUND_BF16), v_reset, RESET,
                         ROUND_BF16)  # fmt: skip
        if ADAPT:  # a = rho a + (1 - rho) s; s is 0 or 1, so s * (1 - rho) is exact
            a = _round(_round(rho * a, ROUND_BF16) + s * one_minus_rho, ROUND_BF16)
        return h, s, v, i, a

    @triton.jit
    def _advance(v, i, a, c, row, offs, mask, spikes_ptr, membrane_ptr, beta, v_th, jump, alpha,
                 g_cur, rho, one_minus_rho, adapt, v_rest, v_reset, RESET: tl.constexpr,
                 RECORD: tl.constexpr, HAS_REST: tl.constexpr, CURRENT: tl.constexpr,
                 ADAPT: tl.constexpr, ROUND_BF16: tl.constexpr):  # fmt: skip
        """A forward step (:func:`_step`) that stores its spikes (and its membrane with
        ``RECORD``) in ``row``; returns the new ``(v, i, a)``."""
        h, s, v, i, a = _step(v, i, a, c, beta, v_th, jump, alpha, g_cur, rho, one_minus_rho,
                              adapt, v_rest, v_reset, RESET, HAS_REST, CURRENT, ADAPT,
                              ROUND_BF16)  # fmt: skip
        tl.store(spikes_ptr + row + offs, s.to(spikes_ptr.dtype.element_ty), mask=mask)
        if RECORD:
            tl.store(membrane_ptr + row + offs, v.to(membrane_ptr.dtype.element_ty), mask=mask)
        return v, i, a

    @triton.jit
    def _surrogate(u, c1, c2, KIND: tl.constexpr):
        # the codes and constants of snn.kernels.native._surrogate_code
        if KIND == 0:  # atan: c1 = alpha / 2, c2 = pi * alpha / 2
            z = c2 * u
            r = c1 / (1 + z * z)
        elif KIND == 1:  # fast sigmoid: c2 = slope
            d = 1 + c2 * tl.abs(u)
            r = 1 / (d * d)
        elif KIND == 2:  # sigmoid: c2 = slope
            sig = 1 / (1 + tl.exp(-c2 * u))
            r = c2 * sig * (1 - sig)
        elif KIND == 3:  # triangle: c2 = width
            r = tl.maximum(1 - tl.abs(u) / c2, 0) / c2
        elif KIND == 4:  # rectangular: c1 = width / 2, c2 = width
            r = tl.where(tl.abs(u) < c1, 1 / c2, 0 * u)
        else:  # straight through
            r = 0 * u + 1
        return r

    @triton.jit
    def _recompute(x_ptr, gx_ptr, i_scr_ptr, a_scr_ptr, g_in, t0, t1, n64, offs, mask, v, i, a,
                   beta, v_th, jump, alpha, g_cur, rho, one_minus_rho, adapt, v_rest, v_reset,
                   RESET: tl.constexpr, HAS_REST: tl.constexpr, CURRENT: tl.constexpr,
                   ADAPT: tl.constexpr, GAIN_IN: tl.constexpr, COMPUTE: tl.constexpr,
                   ROUND_BF16: tl.constexpr):  # fmt: skip
        """A chunk's steps again from its start ``(v, i, a)``, bitwise as the forward ran them:
        ``h_t`` into ``gx``'s row, ``i_t`` and ``a_{t-1}`` into the scratch rows ``t - t0``.
        The input is ``x`` (times ``g_in`` with ``GAIN_IN``)."""
        store_type = gx_ptr.dtype.element_ty
        for t in range(t0, t1):
            row = t * n64
            c = _load(x_ptr + row, offs, mask, COMPUTE)
            if GAIN_IN:
                c = _round(g_in * c, ROUND_BF16)
            if ADAPT:
                tl.store(a_scr_ptr + (t - t0) * n64 + offs, a.to(store_type), mask=mask)
            h, s, v, i, a = _step(v, i, a, c, beta, v_th, jump, alpha, g_cur, rho, one_minus_rho,
                                  adapt, v_rest, v_reset, RESET, HAS_REST, CURRENT, ADAPT,
                                  ROUND_BF16)  # fmt: skip
            tl.store(gx_ptr + row + offs, h.to(store_type), mask=mask)
            if CURRENT:
                tl.store(i_scr_ptr + (t - t0) * n64 + offs, i.to(store_type), mask=mask)

    @triton.jit
    def _reverse_step(gx_ptr, i_scr_ptr, a_scr_ptr, t, t0, n64, offs, mask, start_v, start_i,
                      d, spike_grad, delta_i, delta_a, beta, v_th, jump, alpha, g_cur, rho,
                      one_minus_rho, adapt, v_rest, v_reset, c1, c2, KIND: tl.constexpr,
                      RESET: tl.constexpr, DETACH: tl.constexpr, HAS_REST: tl.constexpr,
                      CURRENT: tl.constexpr, ADAPT: tl.constexpr, NEED_BETA: tl.constexpr,
                      COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr):  # fmt: skip
        """Reverse step ``t`` of the chunk that starts at ``t0`` (after :func:`_recompute`).

        ``d`` is dL/dv_t (the carried one plus a recorded trace's), ``spike_grad`` dL/ds_t from
        outside the neuron, ``delta_i`` alpha dL/di_{t+1} and ``delta_a`` dL/da_t. Returns
        ``(dL/dc_t, dL/dv_{t-1}, alpha dL/di_t, dL/da_{t-1})`` and this step's terms of
        ``dL/d(beta, v_th, alpha, g_cur, rho, adapt)``."""
        row = t * n64
        k = t - t0
        has_prev = t > t0
        h = _load(gx_ptr + row, offs, mask, COMPUTE)
        zero = tl.zeros_like(h)
        a_prev = zero
        if ADAPT:
            a_prev = _load(a_scr_ptr + k * n64, offs, mask, COMPUTE)
        theta = _threshold(a_prev, adapt, v_th, ADAPT, ROUND_BF16)
        jump_t = _jump(theta, jump, v_reset, ADAPT, ROUND_BF16)
        sigma = _surrogate(h - theta, c1, c2, KIND)
        s = (h >= theta).to(COMPUTE)
        if ADAPT:  # the spike also raises the adaptation
            spike_grad = spike_grad + one_minus_rho * delta_a
        through_spike = spike_grad * sigma
        dv_dh = zero + 1
        dv_dth = zero
        if RESET == 0:
            if DETACH:
                dv_dth = -s
            else:
                dv_dh = 1 - jump_t * sigma
                dv_dth = jump_t * sigma - s
        elif RESET == 1:
            dv_dh = 1 - s
            if not DETACH:
                dv_dh = dv_dh + (v_reset - h) * sigma
                dv_dth = (h - v_reset) * sigma
        grad_h = d * dv_dh + through_spike
        grad_theta = d * dv_dth - through_spike
        beta_term = zero
        if NEED_BETA:  # v_{t-1}: rebuilt from step t-1 (its h still in gx's row), or the start
            h_prev = _load(gx_ptr + row - n64, offs, mask & has_prev, COMPUTE)
            a_prev2 = zero
            if ADAPT:
                a_prev2 = _load(a_scr_ptr + (k - 1) * n64, offs, mask & has_prev, COMPUTE)
            theta_prev = _threshold(a_prev2, adapt, v_th, ADAPT, ROUND_BF16)
            s_prev = (h_prev >= theta_prev).to(COMPUTE)
            jump_prev = _jump(theta_prev, jump, v_reset, ADAPT, ROUND_BF16)
            v_prev = _after_reset(h_prev, s_prev, jump_prev, v_reset, RESET, ROUND_BF16)
            v_prev = tl.where(has_prev, v_prev, start_v)
            beta_term = grad_h * (v_prev - v_rest)
        grad_c = grad_h
        alpha_term = zero
        g_cur_term = zero
        if CURRENT:  # dL/dc_t = dL/di_t = g_cur dL/dh_t + alpha dL/di_{t+1}
            i_now = _load(i_scr_ptr + k * n64, offs, mask, COMPUTE)
            i_prev = _load(i_scr_ptr + (k - 1) * n64, offs, mask & has_prev, COMPUTE)
            i_prev = tl.where(has_prev, i_prev, start_i)
            g_cur_term = grad_h * i_now
            grad_c = g_cur * grad_h + delta_i
            alpha_term = grad_c * i_prev
            delta_i = alpha * grad_c
        rho_term = zero
        adapt_term = zero
        if ADAPT:
            adapt_term = grad_theta * a_prev
            rho_term = delta_a * (a_prev - s)
            delta_a = rho * delta_a + adapt * grad_theta
        return (grad_c, grad_h * beta, delta_i, delta_a, beta_term, grad_theta, alpha_term,
                g_cur_term, rho_term, adapt_term)  # fmt: skip

    @triton.jit
    def _add_sums(ptr, offs, mask, n64, beta_term, v_th_term, alpha_term, g_cur_term, rho_term,
                  adapt_term, CURRENT: tl.constexpr, ADAPT: tl.constexpr):  # fmt: skip
        """Add the terms into the rows of ``ptr`` (beta, v_th, [alpha, g_cur], [rho, adapt])."""
        tl.store(ptr + offs, tl.load(ptr + offs, mask=mask) + beta_term, mask=mask)
        p = ptr + n64
        tl.store(p + offs, tl.load(p + offs, mask=mask) + v_th_term, mask=mask)
        if CURRENT:
            p = ptr + 2 * n64
            tl.store(p + offs, tl.load(p + offs, mask=mask) + alpha_term, mask=mask)
            p = ptr + 3 * n64
            tl.store(p + offs, tl.load(p + offs, mask=mask) + g_cur_term, mask=mask)
        if ADAPT:
            p = ptr + (2 + 2 * CURRENT) * n64
            tl.store(p + offs, tl.load(p + offs, mask=mask) + rho_term, mask=mask)
            p = ptr + (3 + 2 * CURRENT) * n64
            tl.store(p + offs, tl.load(p + offs, mask=mask) + adapt_term, mask=mask)

    @triton.jit(do_not_specialize=_SIZES)
    def _forward_kernel(
        x_ptr, v0_ptr, i0_ptr, a0_ptr, params_ptr, consts_ptr,
        spikes_ptr, membrane_ptr, starts_ptr, v_last_ptr, i_last_ptr, a_last_ptr,
        n, steps, chunk,
        RESET: tl.constexpr, RECORD: tl.constexpr, HAS_REST: tl.constexpr,
        CURRENT: tl.constexpr, ADAPT: tl.constexpr,
        COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        (offs, mask, n64, v_rest, v_reset, c1, c2, beta, v_th, jump, alpha, g_cur, rho,
         one_minus_rho, adapt) = _prologue(params_ptr, consts_ptr, n, CURRENT, ADAPT, COMPUTE,
                                           BLOCK)  # fmt: skip
        v, i, a = _load_states(v0_ptr, i0_ptr, a0_ptr, offs, mask, CURRENT, ADAPT, COMPUTE)
        for t in range(0, steps):
            # the states at the start of each chunk: all backward keeps besides the input
            start_v, start_i, start_a = _chunk_start(starts_ptr, t // chunk, n64, CURRENT, ADAPT)
            _store_states(start_v, start_i, start_a, offs, mask & (t % chunk == 0), v, i, a,
                          CURRENT, ADAPT)  # fmt: skip
            row = t * n64
            v, i, a = _advance(v, i, a, _load(x_ptr + row, offs, mask, COMPUTE), row, offs, mask,
                               spikes_ptr, membrane_ptr, beta, v_th, jump, alpha, g_cur, rho,
                               one_minus_rho, adapt, v_rest, v_reset, RESET, RECORD, HAS_REST,
                               CURRENT, ADAPT, ROUND_BF16)  # fmt: skip
        _store_states(v_last_ptr, i_last_ptr, a_last_ptr, offs, mask, v, i, a, CURRENT, ADAPT)

    @triton.jit(do_not_specialize=_SIZES)
    def _backward_kernel(
        x_ptr, starts_ptr, i_scr_ptr, a_scr_ptr, gs_ptr, gs_step, gm_ptr, gm_step,
        gv_last_ptr, gi_last_ptr, ga_last_ptr, gx_ptr, gv0_ptr, gi0_ptr, ga0_ptr, sums_ptr,
        params_ptr, consts_ptr, n, steps, chunk,
        RESET: tl.constexpr, DETACH: tl.constexpr, KIND: tl.constexpr,
        HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, HAS_GV_LAST: tl.constexpr,
        HAS_GI_LAST: tl.constexpr, HAS_GA_LAST: tl.constexpr, NEED_BETA: tl.constexpr,
        HAS_REST: tl.constexpr, CURRENT: tl.constexpr, ADAPT: tl.constexpr,
        COMPUTE: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        (offs, mask, n64, v_rest, v_reset, c1, c2, beta, v_th, jump, alpha, g_cur, rho,
         one_minus_rho, adapt) = _prologue(params_ptr, consts_ptr, n, CURRENT, ADAPT, COMPUTE,
                                           BLOCK)  # fmt: skip
        store_type = gx_ptr.dtype.element_ty
        zero = tl.zeros([BLOCK], dtype=COMPUTE)
        # dL/dv_t, alpha dL/di_{t+1} and dL/da_t after the step being reversed
        delta_v, delta_i, delta_a = zero, zero, zero
        if HAS_GV_LAST:
            delta_v = _load(gv_last_ptr, offs, mask, COMPUTE)
        if HAS_GI_LAST:
            delta_i = _load(gi_last_ptr, offs, mask, COMPUTE)
        if HAS_GA_LAST:
            delta_a = _load(ga_last_ptr, offs, mask, COMPUTE)
        acc_beta, acc_v_th, acc_alpha = zero, zero, zero  # the parameters' sums over time
        acc_g_cur, acc_rho, acc_adapt = zero, zero, zero
        num_chunks = tl.cdiv(steps, chunk)
        for back in range(0, num_chunks):
            c = num_chunks - 1 - back
            t0 = c * chunk
            t1 = t0 + chunk
            if t1 > steps:
                t1 = steps
            start_v, start_i, start_a = _chunk_start(starts_ptr, c, n64, CURRENT, ADAPT)
            start_v, start_i, start_a = _load_states(start_v, start_i, start_a, offs, mask,
                                                     CURRENT, ADAPT, COMPUTE)  # fmt: skip
            _recompute(x_ptr, gx_ptr, i_scr_ptr, a_scr_ptr, zero, t0, t1, n64, offs, mask,
                       start_v, start_i, start_a, beta, v_th, jump, alpha, g_cur, rho,
                       one_minus_rho, adapt, v_rest, v_reset, RESET, HAS_REST, CURRENT, ADAPT,
                       False, COMPUTE, ROUND_BF16)  # fmt: skip
            for k in range(0, t1 - t0):
                t = t1 - 1 - k
                d = delta_v
                if HAS_GM:
                    d = d + _load(gm_ptr + t * gm_step.to(tl.int64), offs, mask, COMPUTE)
                spike_grad = zero
                if HAS_GS:
                    spike_grad = _load(gs_ptr + t * gs_step.to(tl.int64), offs, mask, COMPUTE)
                (grad_c, delta_v, delta_i, delta_a, beta_term, v_th_term, alpha_term,
                 g_cur_term, rho_term, adapt_term) = _reverse_step(
                    gx_ptr, i_scr_ptr, a_scr_ptr, t, t0, n64, offs, mask, start_v, start_i, d,
                    spike_grad, delta_i, delta_a, beta, v_th, jump, alpha, g_cur, rho,
                    one_minus_rho, adapt, v_rest, v_reset, c1, c2, KIND, RESET, DETACH,
                    HAS_REST, CURRENT, ADAPT, NEED_BETA, COMPUTE, ROUND_BF16)  # fmt: skip
                tl.store(gx_ptr + t * n64 + offs, grad_c.to(store_type), mask=mask)
                acc_beta += beta_term
                acc_v_th += v_th_term
                acc_alpha += alpha_term
                acc_g_cur += g_cur_term
                acc_rho += rho_term
                acc_adapt += adapt_term
        _store_states(gv0_ptr, gi0_ptr, ga0_ptr, offs, mask, delta_v, delta_i, delta_a, CURRENT,
                      ADAPT)  # fmt: skip
        _add_sums(sums_ptr, offs, mask, n64, acc_beta, acc_v_th, acc_alpha, acc_g_cur, acc_rho,
                  acc_adapt, CURRENT, ADAPT)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The host side, shared by the LIF (fused._FusedLIF), the family and the recurrent layer.


def launch_options(dtype: torch.dtype) -> dict:
    """The compile-time options every kernel is launched with, for inputs of ``dtype``."""
    compute = tl.float64 if dtype == torch.float64 else tl.float32
    return dict(
        COMPUTE=compute,
        ROUND_BF16=dtype == torch.bfloat16,
        BLOCK=BLOCK,
        num_warps=NUM_WARPS,
        enable_fp_fusion=False,  # see the module docstring: no fused multiply-add
    )


def launch(kernel, n: int, device: torch.device, *args, **kwargs) -> None:
    """Run ``kernel`` over ``n`` neurons on ``device``: Triton launches on the current CUDA
    device, which need not be the tensors' (a model on cuda:1)."""
    if not n:
        return
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        kernel[(triton.cdiv(n, BLOCK),)](*args, **kwargs)


def param_rows(
    like: Tensor, beta, v_th, jump, alpha=None, g_cur=None, rho=None, adapt=None
) -> Tensor:
    """The per-neuron parameters as the kernels read them: ``[P, *like.shape]`` rows of beta,
    v_th, the subtract reset's jump, then alpha and g_cur (a current state), then rho,
    ``1 - rho`` and adapt (a threshold state). ``1 - rho`` is formed as the reference step forms
    it: in double for a float, in rho's type for a tensor."""
    values = [beta, v_th, jump]
    if alpha is not None:
        values += [alpha, g_cur]
    if rho is not None:
        values += [rho, 1 - rho, adapt]
    as_tensor = [torch.as_tensor(p, dtype=like.dtype, device=like.device) for p in values]
    return torch.stack([p.to(like.dtype).expand(like.shape) for p in as_tensor])


def family_param_rows(
    like: Tensor, beta, v_th, v_reset: float, alpha, g_cur, rho, adapt
) -> tuple[Tensor, dict[str, tuple | None]]:
    """:func:`param_rows` for the family's nodes (alpha and g_cur ``None`` without a current,
    rho and adapt ``None`` without a threshold state; the subtract reset's jump from ``v_th``
    as given, a float subtracted in double as the reference does), and each parameter's shape
    for :func:`parameter_grads` (``None`` for a float)."""
    rows = param_rows(like, beta, v_th, v_th - v_reset, alpha, g_cur, rho, adapt)
    named = dict(beta=beta, v_th=v_th, alpha=alpha, g_cur=g_cur, rho=rho, adapt=adapt)
    return rows, {k: p.shape if isinstance(p, Tensor) else None for k, p in named.items()}


def parameter_grads(
    sums: Tensor, current_on: bool, adapt_on: bool, shapes: dict, needs, **extra: Tensor
) -> list[Tensor | None]:
    """The parameters' gradients, in the order of ``shapes``, from :func:`backward`'s per-element
    ``sums`` (and ``extra`` per-element sums by name): each summed to its parameter's shape
    where ``needs`` asks for it and the parameter is a tensor, else ``None``."""
    names = ["beta", "v_th", *(["alpha", "g_cur"] * current_on), *(["rho", "adapt"] * adapt_on)]
    per_element = dict(zip(names, sums, strict=True)) | extra
    return [
        per_element[name].sum_to_size(shape) if need and shape is not None else None
        for (name, shape), need in zip(shapes.items(), needs, strict=True)
    ]


def constants(
    like: Tensor, v_rest: float, v_reset: float, surrogate: sg.Surrogate | None
) -> Tensor:
    """``[v_rest, v_reset, c1, c2]`` in the compute type: the potentials in the input's type
    (exact for the usual 0), the surrogate's constants (snn.kernels.native's codes; 0 for
    ``None``, the forward's case)."""
    compute = torch.float64 if like.dtype == torch.float64 else torch.float32
    _, c1, c2 = (None, 0.0, 0.0) if surrogate is None else _surrogate_code(surrogate)
    potentials = torch.tensor([v_rest, v_reset], dtype=like.dtype).to(compute)
    return torch.cat([potentials, torch.tensor([c1, c2], dtype=compute)]).to(like.device)


def incoming(grad: Tensor | None, current: Tensor) -> tuple[Tensor | None, int]:
    """An incoming ``[T, ...]`` gradient as the kernels read it: a tensor whose steps are each
    contiguous, and the elements from one step to the next (0 when it is the same every step, as
    autograd hands back after a sum over time); ``None`` where no gradient flows in."""
    if grad is None or not grad.numel():
        return None, 0
    grad = grad.to(current.dtype)
    if grad.stride(0) == 0 or grad.shape[0] == 1:
        return grad[0].contiguous(), 0
    if grad[0].is_contiguous():
        return grad, grad.stride(0)
    return grad.contiguous(), current[0].numel()  # a layout the kernel cannot walk: one copy


def forward(
    current: Tensor,
    states: Sequence[Tensor | None],
    params: Tensor,
    v_rest: float,
    v_reset: float,
    reset: str,
    spikes: Tensor,
    membrane: Tensor | None,
    starts: Tensor,
    chunk: int,
) -> list[Tensor | None]:
    """The family's forward over ``current`` (contiguous ``[T, ...]``) from ``states`` ``(v0,
    i0 or None, a0 or None)`` with ``params`` (:func:`param_rows`): fills ``spikes``,
    ``membrane`` (unless ``None``) and ``starts`` (``[ceil(T / chunk), rows, ...]``, the states
    at each chunk's start); returns the last states (``None`` for those that are off)."""
    v0, i0, a0 = (None if s is None else s.contiguous() for s in states)
    current_on, adapt_on = i0 is not None, a0 is not None
    lasts = [torch.empty_like(v0), *[None if s is None else torch.empty_like(v0) for s in (i0, a0)]]
    consts = constants(current, v_rest, v_reset, None)  # the forward reads the potentials only
    launch(
        _forward_kernel, v0.numel(), current.device,
        current, v0, i0 if current_on else v0, a0 if adapt_on else v0, params, consts, spikes,
        spikes if membrane is None else membrane, starts,
        *[lasts[0] if s is None else s for s in lasts], v0.numel(), current.shape[0], chunk,
        RESET=_RESETS[reset], RECORD=membrane is not None, HAS_REST=v_rest != 0,
        CURRENT=current_on, ADAPT=adapt_on, **launch_options(current.dtype),
    )  # fmt: skip
    return lasts


def backward(
    current: Tensor,
    starts: Tensor,
    grad_spikes: Tensor | None,
    grad_membrane: Tensor | None,
    grad_lasts: Sequence[Tensor | None],
    params: Tensor,
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: sg.Surrogate,
    chunk: int,
    current_on: bool,
    adapt_on: bool,
    need_beta: bool,
) -> tuple[Tensor, list[Tensor | None], Tensor]:
    """The family's backward (see :func:`forward`): ``(dL/dcurrent, [dL/dv0, dL/di0 or None,
    dL/da0 or None], sums)``, where ``sums`` holds the per-element parameter gradients in rows
    beta, v_th, [alpha, g_cur], [rho, adapt] (beta's is 0 unless ``need_beta``)."""
    steps, like = current.shape[0], params[0]
    n = like.numel()
    gs, gs_step = incoming(grad_spikes, current)
    gm, gm_step = incoming(grad_membrane, current)
    last = [
        g.to(current.dtype).contiguous() if g is not None and on else None
        for g, on in zip(grad_lasts, (True, current_on, adapt_on), strict=True)
    ]
    grad_current = torch.empty_like(current)
    grads = [torch.empty_like(like), *[torch.empty_like(like) if on else None
                                       for on in (current_on, adapt_on)]]  # fmt: skip
    consts = constants(current, v_rest, v_reset, surrogate)
    sums = torch.zeros((2 + 2 * current_on + 2 * adapt_on, *like.shape), dtype=consts.dtype,
                       device=current.device)  # fmt: skip
    scratch = [current.new_empty((min(chunk, steps), *like.shape)) if on else current
               for on in (current_on, adapt_on)]  # fmt: skip
    launch(
        _backward_kernel, n, current.device,
        current, starts, *scratch, current if gs is None else gs, gs_step,
        current if gm is None else gm, gm_step, *[current if g is None else g for g in last],
        grad_current, *[grads[0] if g is None else g for g in grads], sums, params, consts,
        n, steps, chunk, RESET=_RESETS[reset], DETACH=detach_reset,
        KIND=_surrogate_code(surrogate)[0], HAS_GS=gs is not None, HAS_GM=gm is not None,
        HAS_GV_LAST=last[0] is not None, HAS_GI_LAST=last[1] is not None,
        HAS_GA_LAST=last[2] is not None, NEED_BETA=need_beta, HAS_REST=v_rest != 0,
        CURRENT=current_on, ADAPT=adapt_on, **launch_options(current.dtype),
    )  # fmt: skip
    return grad_current, grads, sums


def check_chunk(chunk: int | None, steps: int) -> int:
    """``chunk`` (default ``CHUNK_STEPS``, read now: the tests change it), at most ``steps``."""
    chunk = CHUNK_STEPS if chunk is None else chunk
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive number of time steps, got {chunk!r}")
    return min(chunk, steps)


def lif_sequence(
    current: Tensor,
    v0: Tensor,
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
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`snn.kernels.fused.fused_lif_sequence` on the Triton executor: the LIF over
    ``current`` (``[T, ...]``, already multiplied by the gain) from ``v0``.

    Returns ``(spikes [T, ...], v_last [...], membrane [T, ...] or an empty tensor)``. Use
    :func:`snn.functional.lif_sequence` with ``backend="triton"`` (or ``"fused"`` on CUDA),
    which validates its arguments; check :func:`unavailable_reason` first. ``chunk`` is the
    number of steps between saved potentials (default ``CHUNK_STEPS``).
    """
    from snn.kernels.fused import fused_lif_sequence

    why = unavailable_reason(current, surrogate)
    if why is not None:
        raise ValueError(f"snn's Triton kernels cannot run here: {why}")
    return fused_lif_sequence(
        current, v0, beta, v_th, v_rest, v_reset, reset, detach_reset, surrogate,
        record_membrane, executor="triton", chunk=check_chunk(chunk, current.shape[0]),
    )  # fmt: skip
