r"""Fused multi-step nodes for the LIF family: CubaLIF, ALIF and the recurrent layer.

Each node covers a whole sequence (no per-step graph). Which executor each neuron gets with
``backend="fused"``, and why:

* **LIF**: its own fused node (:mod:`snn.kernels.fused`), the native C kernel on CPU.
* **CubaLIF and ALIF, feed-forward, on CPU** (float32/float64, a built-in surrogate, a C
  compiler; :func:`snn.kernels.native.unavailable_reason` with ``family=True`` is ``None``):
  :func:`native_family_sequence`, the LIF's C kernel with the current or the threshold state
  switched on (``csrc/lif_kernel.h`` writes the step once, the states as compile-time flags).
  It is one pass over the input per direction, like the LIF's, so it costs about the LIF's
  time; the PyTorch node below runs several operations per step on ``[B, N]`` tensors.
* **On CUDA**: the Triton kernels where they run (``snn.kernels.triton_*``).
* **Recurrent layers on CPU, and everything else** (bf16, a user's surrogate, no compiler):
  :func:`fused_family_sequence` below, in PyTorch operations. A recurrent layer's
  ``[B, N] x [N, N]`` product sits inside its time loop, which the elementwise kernel does not
  hold; there torch's matmul dominates the time anyway.
* :func:`synaptic_current`, the current ``i_t = alpha i_{t-1} + c_t`` as a linear scan, is what
  CubaLIF runs where neither kernel does: it does not depend on the spikes, so a feed-forward
  CubaLIF is this scan followed by the LIF's own fused node (:func:`snn.functional.lif_sequence`).

All of them are one generic elementwise neuron (ALIF is LIF with a threshold state, CubaLIF is
LIF with a current state), optionally with a recurrent weight inside the time loop. Per neuron
and step, with every part optional::

    u_t     = (x_t + b) + s_{t-1} W^T             (recurrent: W and the bias b given)
    c_t     = g_in u_t                            (input gain; LIF's gain, CubaLIF's w_in)
    i_t     = alpha i_{t-1} + c_t                 (current state: i0 given)
    I_t     = g_cur i_t   (with a current state), else c_t
    h_t     = v_rest + beta (v_{t-1} - v_rest) + I_t
    theta_t = v_th + adapt a_{t-1}                (threshold state: a0 given), else v_th
    s_t     = H(h_t - theta_t)
    v_t     = reset(h_t, s_t, theta_t)            (subtract: h - s (theta - v_reset);
                                                   zero: h - s (h - v_reset); none: h)
    a_t     = rho a_{t-1} + (1 - rho) s_t

Each line is the same expression, in the same order, as the reference step in
:mod:`snn.family_functional` (each product rounded before the sum, no fused multiply-add), so
the spikes and states equal the reference loop's bit for bit, on every executor.

**Memory.** Forward keeps the node's input ``u`` (the caller's ``x`` for a feed-forward layer, a
new ``[T, ...]`` tensor with the recurrent term), the spikes of a recurrent layer (for ``dW``),
and the state ``(v, i, a)`` at the start of every chunk of ``K`` steps; nothing per step.
Backward walks the chunks from last to first, recomputes the chunk's steps from its first state
(bitwise the forward's values), computes the surrogate and reset factors for the whole chunk in
one vectorized pass, runs the reverse recurrence below by hand, then sums the parameter terms of
the chunk in one pass.

**The reverse recurrence.** With ``delta^v_t = dL/dv_t``, ``delta^a_t = dL/da_t`` and
``delta^i_t = dL/di_t`` (each including what later steps send back), ``sigma_t =
surrogate'(h_t - theta_t)``, and the spike's total gradient

``G_t = dL/ds_t (from the output) + [dL/du_{t+1} W] + (1 - rho) delta^a_t + delta^v_t dv_t/ds_t``

(the bracket only for a recurrent layer), for ``t = T .. 1``::

    dL/dh_t       = delta^v_t dv_t/dh_t + G_t sigma_t
    dL/dtheta_t   = -G_t sigma_t + delta^v_t dv_t/dtheta_t
    delta^v_{t-1} = beta dL/dh_t                      (+ dL/dv_{t-1} of a recorded trace)
    delta^i_t     = g_cur dL/dh_t + alpha delta^i_{t+1}, and dL/dc_t = delta^i_t
                    (without a current state dL/dc_t = dL/dh_t)
    dL/du_t       = g_in dL/dc_t   (= dL/dx_t)
    delta^a_{t-1} = rho delta^a_t + adapt dL/dtheta_t

and the parameters sum their terms over steps (and over the batch, to their shape)::

    dL/dbeta  = sum_t dL/dh_t (v_{t-1} - v_rest)     dL/dv_th   = sum_t dL/dtheta_t
    dL/dalpha = sum_t delta^i_t i_{t-1}              dL/dadapt  = sum_t dL/dtheta_t a_{t-1}
    dL/dg_cur = sum_t dL/dh_t i_t                    dL/drho    = sum_t delta^a_t (a_{t-1} - s_t)
    dL/dg_in  = sum_t dL/dc_t u_t                    dL/dW      = sum_t (dL/du_t)^T s_{t-1}
                                                     dL/db      = sum_t dL/du_t

The last is one matrix product over all ``T B`` rows at the end, not ``T`` small ones. The reset
factors (``detach_reset`` sets ``dv/ds`` to 0; the adaptation's path through ``s`` is kept):

============  ==============  ====================  ================
reset         dv_t/dh_t       dv_t/ds_t             dv_t/dtheta_t
============  ==============  ====================  ================
subtract      ``1``           ``-(theta_t - v_reset)``  ``-s_t``
zero          ``1 - s_t``     ``-(h_t - v_reset)``  ``0``
none          ``1``           ``0``                 ``0``
============  ==============  ====================  ================

For a plain LIF these reduce to the table in :mod:`snn.kernels.fused`. Only the multiply-adds
that carry ``delta`` (and, in a recurrent layer, one ``[B, N] x [N, N]`` product per step) are
sequential. The native kernel runs the same recurrences per neuron, in the LIF's form
(``dv/dh`` and ``dv/dtheta`` include the path through the spike, as in :mod:`snn.kernels.fused`'s
table, with ``theta_t - v_reset`` as the jump), chunks of ``NATIVE_CHUNK_STEPS`` steps, and the
parameters' sums in double. Nothing here is public API: use :mod:`snn.family_functional` or the
layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snn.kernels import native
from snn.kernels.fused import NATIVE_CHUNK_STEPS, as_tensor_like
from snn.surrogate import Surrogate

__all__ = ["FamilyConfig", "synaptic_current", "fused_family_sequence", "native_family_sequence"]

# at most this many elements per chunk buffer (4 MB in float32); see _chunk_steps
CHUNK_ELEMENTS = 1 << 20


class FamilyConfig(NamedTuple):
    """The non-tensor settings of :func:`fused_family_sequence`."""

    v_rest: float
    v_reset: float
    reset: str
    detach_reset: bool
    surrogate: Surrogate
    record_membrane: bool


def _is_one(g: Tensor | float | None) -> bool:
    return g is None or (isinstance(g, (int, float)) and g == 1)


# ---------------------------------------------------------------------------------------------
# The synaptic current: a linear scan, and its reverse.


class _SynapticCurrent(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c: Tensor, i0: Tensor, alpha: Tensor | float) -> Tensor:
        out = torch.empty_like(c)
        i = i0
        for t in range(c.shape[0]):
            # alpha * i is rounded before c_t is added, as in the reference step
            i = torch.mul(i, alpha, out=out[t]).add_(c[t])
        need_alpha = isinstance(alpha, Tensor) and ctx.needs_input_grad[2]
        ctx.save_for_backward(i0, out if need_alpha else None)
        ctx.alpha = alpha
        ctx.alpha_shape = alpha.shape if isinstance(alpha, Tensor) else None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        i0, out = ctx.saved_tensors
        alpha = ctx.alpha
        grad_c = torch.empty_like(grad_out)
        delta = torch.zeros_like(i0)
        for t in range(grad_out.shape[0] - 1, -1, -1):
            # delta_t = dL/di_t + alpha delta_{t+1}
            delta = torch.add(grad_out[t], delta * alpha, out=grad_c[t])
        grad_alpha = None
        if out is not None:
            grad_alpha = (grad_c[1:] * out[:-1]).sum(0) + grad_c[0] * i0
            grad_alpha = grad_alpha.sum_to_size(ctx.alpha_shape)
        return grad_c, delta * alpha if ctx.needs_input_grad[1] else None, grad_alpha


def synaptic_current(c: Tensor, i0: Tensor, alpha: Tensor | float) -> Tensor:
    """``i_t = alpha i_{t-1} + c_t`` for ``t = 1 .. T`` from ``i0``: all ``T`` currents, one node.

    Backward is the reverse scan ``delta_t = dL/di_t + alpha delta_{t+1}`` with ``dL/dc_t =
    delta_t``, ``dL/di0 = alpha delta_1`` and ``dL/dalpha = sum_t delta_t i_{t-1}``.
    """
    return _SynapticCurrent.apply(c, i0, alpha)


# ---------------------------------------------------------------------------------------------
# The generic neuron.


class _Params(NamedTuple):
    beta: Tensor | float
    v_th: Tensor | float
    alpha: Tensor | float | None
    g_cur: Tensor | float
    g_in: Tensor | float
    rho: Tensor | float | None
    adapt: Tensor | float | None


class _Chunk:
    """Buffers for ``n`` steps: the states before and after each step (``v[k]`` before step
    ``k``, ``v[k + 1]`` after), the pre-spike potentials, thresholds and spikes."""

    def __init__(self, n: int, like: Tensor, current: bool, adaptive: bool) -> None:
        def steps(m: int) -> Tensor:
            return like.new_empty((m, *like.shape))

        self.v = steps(n + 1)
        self.i = steps(n + 1) if current else None
        self.a = steps(n + 1) if adaptive else None
        self.h = steps(n)
        self.theta = steps(n) if adaptive else None
        self.s = steps(n)
        self.scratch = torch.empty_like(like)  # g_in u, then g_cur i
        self.drive = torch.empty_like(like)


def _as_value(t: Tensor | float | None) -> Tensor | float | None:
    """A one-element parameter as a Python number (cheaper per op), else as it is; not while
    torch.compile traces (there ``item()`` would be a data-dependent value)."""
    if isinstance(t, Tensor) and t.dim() == 0 and not torch.compiler.is_compiling():
        return t.item()
    return t


def _run_chunk(p: _Params, cfg: FamilyConfig, buf: _Chunk, n: int, u_at, spikes) -> None:
    """``n`` steps from ``buf.v[0]`` (``buf.i[0]``, ``buf.a[0]``), written into ``buf`` and
    ``spikes[:n]``; ``u_at(k)`` is step ``k``'s input ``u``. The arithmetic is the reference
    step's, operation for operation (each product rounded before the sum; where a multiply-add
    is fused, one factor is a spike, 0 or 1, so the product is exact)."""
    for k in range(n):
        u = u_at(k)
        c = u if _is_one(p.g_in) else torch.mul(u, p.g_in, out=buf.scratch)
        if buf.i is not None:  # i = alpha i + c
            c = torch.mul(buf.i[k], p.alpha, out=buf.i[k + 1]).add_(c)
            if not _is_one(p.g_cur):
                c = torch.mul(c, p.g_cur, out=buf.drive)
        h, v = buf.h[k], buf.v[k]
        if cfg.v_rest == 0:  # h = v_rest + beta (v - v_rest) + c
            torch.mul(v, p.beta, out=h)
        else:
            torch.sub(v, cfg.v_rest, out=h).mul_(p.beta).add_(cfg.v_rest)
        h.add_(c)
        theta = p.v_th
        if buf.a is not None:  # theta = v_th + adapt a
            theta = torch.mul(buf.a[k], p.adapt, out=buf.theta[k]).add_(p.v_th)
        s = torch.ge(h, theta, out=spikes[k])  # H(h - theta), H(0) = 1
        v_next = buf.v[k + 1]
        if cfg.reset == "subtract":  # h - s (theta - v_reset)
            jump = theta - cfg.v_reset
            if isinstance(jump, Tensor):
                torch.addcmul(h, s, jump, value=-1, out=v_next)
            else:
                torch.sub(h, s, alpha=jump, out=v_next)
        elif cfg.reset == "zero":  # h - s (h - v_reset)
            torch.addcmul(h, s, h if cfg.v_reset == 0 else h - cfg.v_reset, value=-1, out=v_next)
        else:
            v_next.copy_(h)
        if buf.a is not None:  # a = rho a + (1 - rho) s
            a = torch.mul(buf.a[k], p.rho, out=buf.a[k + 1])
            one_minus_rho = 1 - p.rho
            if isinstance(one_minus_rho, Tensor):
                a.addcmul_(s, one_minus_rho)
            else:
                a.add_(s, alpha=one_minus_rho)


def _chunk_steps(numel: int, num_steps: int) -> int:
    """About sqrt(T) steps: the saved chunk starts (T / K states) and backward's buffers (about
    twelve of K steps) then cost about the same, far below one [T, ...] tensor each; at most
    CHUNK_ELEMENTS elements per buffer."""
    return max(1, min(num_steps, round(num_steps**0.5), CHUNK_ELEMENTS // max(1, numel)))


def _start(buf: _Chunk, v, i, a) -> None:
    buf.v[0].copy_(v)
    if buf.i is not None:
        buf.i[0].copy_(i)
    if buf.a is not None:
        buf.a[0].copy_(a)


class _FusedFamily(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        x,
        v0,
        i0,
        a0,
        s0,
        beta,
        v_th,
        alpha,
        g_cur,
        g_in,
        rho,
        adapt,
        weight,
        bias,
        cfg,
        chunk,
    ):
        num_steps = x.shape[0]
        p = _Params(*[_as_value(t) for t in (beta, v_th, alpha, g_cur, g_in, rho, adapt)])
        current, adaptive = i0 is not None, a0 is not None
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x) if cfg.record_membrane else x.new_empty(0)
        u_all = torch.empty_like(x) if weight is not None else x
        bounds = [(t0, min(t0 + chunk, num_steps)) for t0 in range(0, num_steps, chunk)]
        # the state at the start of chunks 1, 2, ...: all backward needs besides the input
        starts = [v0.new_empty((len(bounds) - 1, *v0.shape)) if on else None
                  for on in (True, current, adaptive)]  # fmt: skip
        buf = _Chunk(min(chunk, num_steps), v0, current, adaptive)
        _start(buf, v0, i0, a0)
        product = torch.empty_like(v0) if weight is not None else None
        s_prev = [s0]

        def u_at_forward(t0):
            if weight is None:
                return lambda k: x[t0 + k]

            def u_at(k):  # u_t = (x_t + b) + s_{t-1} W^T, kept for backward
                torch.matmul(s_prev[0], weight.T, out=product)
                s_prev[0] = spikes[t0 + k]
                if bias is None:
                    return torch.add(x[t0 + k], product, out=u_all[t0 + k])
                return torch.add(x[t0 + k], bias, out=u_all[t0 + k]).add_(product)

            return u_at

        for c, (t0, t1) in enumerate(bounds):
            n = t1 - t0
            _run_chunk(p, cfg, buf, n, u_at_forward(t0), spikes[t0:t1])
            if cfg.record_membrane:
                membrane[t0:t1] = buf.v[1 : n + 1]
            if c + 1 < len(bounds):
                for store, states in zip(starts, (buf.v, buf.i, buf.a), strict=True):
                    if store is not None:
                        store[c].copy_(states[n])
                _start(buf, buf.v[n], None if buf.i is None else buf.i[n],
                       None if buf.a is None else buf.a[n])  # fmt: skip
        n = bounds[-1][1] - bounds[-1][0]
        empty = x.new_empty(0)
        v_last = buf.v[n].clone()
        i_last = buf.i[n].clone() if current else empty
        a_last = buf.a[n].clone() if adaptive else empty
        ctx.save_for_backward(
            u_all, spikes if weight is not None else None, v0, i0, a0, s0, weight, *starts,
            *[t if isinstance(t, Tensor) else None for t in (beta, v_th, alpha, g_cur, g_in, rho,
                                                             adapt)],
        )  # fmt: skip
        ctx.floats = [None if isinstance(t, Tensor) else t for t in (beta, v_th, alpha, g_cur,
                                                                    g_in, rho, adapt)]  # fmt: skip
        ctx.cfg, ctx.chunk = cfg, chunk
        ctx.set_materialize_grads(False)
        if not cfg.record_membrane:
            ctx.mark_non_differentiable(membrane)
        return spikes, v_last, i_last, a_last, membrane

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v, grad_i, grad_a, grad_membrane):
        u_all, spikes, v0, i0, a0, s0, weight, starts_v, starts_i, starts_a, *saved = (
            ctx.saved_tensors
        )
        tensors = [f if t is None else t for t, f in zip(saved, ctx.floats, strict=True)]
        p = _Params(*[_as_value(t) for t in tensors])
        cfg, chunk = ctx.cfg, ctx.chunk
        needs = ctx.needs_input_grad
        names = _Params._fields
        need = dict(zip(names, needs[5:12], strict=True))
        current, adaptive = i0 is not None, a0 is not None
        if not cfg.record_membrane:
            grad_membrane = None
        num_steps = u_all.shape[0]
        zeros = torch.zeros_like(v0)
        dv = zeros.clone() if grad_v is None else grad_v.clone()
        di = (zeros.clone() if grad_i is None else grad_i.clone()) if current else None
        da = (zeros.clone() if grad_a is None else grad_a.clone()) if adaptive else None
        sums = {name: torch.zeros_like(v0) for name, on in need.items() if on}
        grad_x = torch.empty_like(u_all)
        grad_rec = torch.zeros_like(v0) if weight is not None else None  # dL/ds_t via W
        n_max = min(chunk, num_steps)
        buf = _Chunk(n_max, v0, current, adaptive)
        g_buf = torch.empty_like(v0)
        plain = not current and _is_one(p.g_in)  # then dL/dh_t is dL/dx_t: write it there
        grad_h_buf = None if plain else v0.new_empty((n_max, *v0.shape))
        need_theta = adaptive or need["v_th"]
        grad_theta = v0.new_empty((n_max, *v0.shape)) if need_theta else None
        delta_a = v0.new_empty((n_max + 1, *v0.shape)) if adaptive else None
        delta_i = v0.new_empty((n_max, *v0.shape)) if current else None
        one_minus_rho = 1 - p.rho if adaptive else None

        bounds = [(t0, min(t0 + chunk, num_steps)) for t0 in range(0, num_steps, chunk)]
        for c in range(len(bounds) - 1, -1, -1):
            t0, t1 = bounds[c]
            n = t1 - t0
            if c == 0:
                _start(buf, v0, i0, a0)
            else:
                _start(buf, starts_v[c - 1], None if i0 is None else starts_i[c - 1],
                       None if a0 is None else starts_a[c - 1])  # fmt: skip
            _run_chunk(p, cfg, buf, n, lambda k, t0=t0: u_all[t0 + k], buf.s)
            h, s = buf.h[:n], buf.s[:n]
            theta = buf.theta[:n] if adaptive else p.v_th
            sigma = cfg.surrogate.derivative(h - theta)
            if sigma.shape != h.shape:
                sigma = sigma.expand_as(h)
            # the reset factors of the chunk's steps at once (None: 1 for dv/dh, 0 otherwise)
            dv_dh = dv_ds = None
            if cfg.reset == "subtract" and not cfg.detach_reset:
                dv_ds = torch.zeros_like(h).sub_(theta).add_(cfg.v_reset)  # -(theta - v_reset)
            elif cfg.reset == "zero":
                dv_dh = 1 - s
                if not cfg.detach_reset:
                    dv_ds = -(h - cfg.v_reset)
            grad_h = grad_x[t0:t1] if plain else grad_h_buf[:n]
            if adaptive:
                delta_a[n].copy_(da)  # delta_a[k + 1] holds dL/da_t of step k
            for k in range(n - 1, -1, -1):
                t = t0 + k
                if grad_membrane is not None:
                    dv.add_(grad_membrane[t])
                # G = dL/ds_t in all (output, recurrent, adaptation, reset), times sigma
                g = g_buf.copy_(grad_spikes[t]) if grad_spikes is not None else g_buf.zero_()
                if grad_rec is not None:
                    g.add_(grad_rec)
                if adaptive:
                    if isinstance(one_minus_rho, Tensor):
                        g.addcmul_(delta_a[k + 1], one_minus_rho)
                    else:
                        g.add_(delta_a[k + 1], alpha=one_minus_rho)
                if dv_ds is not None:
                    g.addcmul_(dv, dv_ds[k])
                g.mul_(sigma[k])
                gh = grad_h[k]  # dL/dh = dv dv/dh + G sigma
                if dv_dh is None:
                    torch.add(g, dv, out=gh)
                else:
                    torch.addcmul(g, dv, dv_dh[k], out=gh)
                if need_theta:  # dL/dtheta = -G sigma + dv dv/dtheta
                    if cfg.reset == "subtract":
                        torch.addcmul(g, dv, s[k], out=grad_theta[k]).neg_()
                    else:
                        torch.neg(g, out=grad_theta[k])
                torch.mul(gh, p.beta, out=dv)  # dL/dv_{t-1}
                gc = gh
                if current:  # delta^i_t = g_cur dL/dh + alpha delta^i_{t+1}
                    gc = delta_i[k]
                    if _is_one(p.g_cur):
                        torch.add(di, gh, out=gc)
                    else:
                        torch.addcmul(di, gh, torch.as_tensor(p.g_cur).to(gh), out=gc)
                    torch.mul(gc, p.alpha, out=di)
                if not plain:
                    if _is_one(p.g_in):
                        grad_x[t].copy_(gc)
                    else:
                        torch.mul(gc, p.g_in, out=grad_x[t])
                if adaptive:  # dL/da_{t-1} = rho delta^a_t + adapt dL/dtheta_t
                    torch.mul(delta_a[k + 1], p.rho, out=delta_a[k])
                    if isinstance(p.adapt, Tensor):
                        delta_a[k].addcmul_(p.adapt, grad_theta[k])
                    else:
                        delta_a[k].add_(grad_theta[k], alpha=p.adapt)
                if weight is not None:
                    torch.matmul(grad_x[t], weight, out=grad_rec)
            if adaptive:
                da.copy_(delta_a[0])
            # the parameters' terms of the whole chunk, summed over its steps
            if need["beta"]:
                before = buf.v[:n] if cfg.v_rest == 0 else buf.v[:n] - cfg.v_rest
                sums["beta"] += (grad_h * before).sum(0)
            if need["v_th"]:
                sums["v_th"] += grad_theta[:n].sum(0)
            if current and need["alpha"]:
                sums["alpha"] += (delta_i[:n] * buf.i[:n]).sum(0)
            if current and need["g_cur"]:
                sums["g_cur"] += (grad_h * buf.i[1 : n + 1]).sum(0)
            if need["g_in"]:
                dc = delta_i[:n] if current else grad_h
                sums["g_in"] += (dc * u_all[t0:t1]).sum(0)
            if adaptive and need["adapt"]:
                sums["adapt"] += (grad_theta[:n] * buf.a[:n]).sum(0)
            if adaptive and need["rho"]:
                sums["rho"] += (delta_a[1 : n + 1] * (buf.a[:n] - s)).sum(0)

        grad_weight = None
        if weight is not None and needs[12]:
            n = weight.shape[0]
            # dW = sum_t (dL/du_t)^T s_{t-1}: one product over all steps (and s_0 for t = 1)
            grad_weight = grad_x[1:].reshape(-1, n).T @ spikes[:-1].reshape(-1, n)
            grad_weight += grad_x[0].reshape(-1, n).T @ s0.reshape(-1, n)
        grad_bias = grad_x.sum((0, 1)) if weight is not None and needs[13] else None
        grads = [
            sums[name].sum_to_size(t.shape) if name in sums else None
            for name, t in zip(names, tensors, strict=True)
        ]
        return (
            grad_x,
            dv if needs[1] else None,
            di if current and needs[2] else None,
            da if adaptive and needs[3] else None,
            grad_rec if weight is not None and needs[4] else None,
            *grads,
            grad_weight,
            grad_bias,
            None,
            None,
        )


def fused_family_sequence(
    x: Tensor,
    v0: Tensor,
    i0: Tensor | None,
    a0: Tensor | None,
    s0: Tensor | None,
    *,
    beta: Tensor | float,
    v_th: Tensor | float,
    alpha: Tensor | float | None,
    current_gain: Tensor | float,
    input_gain: Tensor | float,
    rho: Tensor | float | None,
    adapt: Tensor | float | None,
    weight: Tensor | None,
    config: FamilyConfig,
    bias: Tensor | None = None,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run the generic neuron (module docstring) over ``x`` (``[T, B, ...]``).

    ``i0`` switches the current state on, ``a0`` the threshold state, ``weight`` (``[N, N]``,
    with ``s0`` the spikes before the first step, ``[B, N]``) the recurrent input. Returns
    ``(spikes, v_T, i_T, a_T, membrane)``, an empty tensor for each state that is off (and for
    the membrane unless ``config.record_membrane``). Validation is the caller's.
    """
    if weight is not None and s0 is None:
        raise ValueError("a recurrent weight needs s0, the spikes before the first step")
    if chunk is None:
        chunk = _chunk_steps(v0.numel(), x.shape[0])
    return _FusedFamily.apply(
        x, v0, i0, a0, s0, beta, v_th, alpha, current_gain, input_gain, rho, adapt, weight, bias,
        config, chunk,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The feed-forward CubaLIF and ALIF on the native kernel.


class _NativeFamily(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, i0, a0, beta, v_th, alpha, g_cur, g_in, rho, adapt, neuron, cfg, chunk):
        current, adaptive = neuron == "cuba", neuron == "alif"
        # a gain of exactly 1 (a number, so never learned) is left out: a neuron left with no
        # gain runs the kernel's variant that skips their multiplications
        given = {"beta": beta, "v_th": v_th} | ({} if _is_one(g_in) else {"g_in": g_in})
        if current:
            given |= {"alpha": alpha} | ({} if _is_one(g_cur) else {"g_cur": g_cur})
        if adaptive:  # 1 - rho as the reference step computes it: a number's here, in double;
            # a tensor's in the kernel, in its dtype (one torch op fewer per call)
            given |= {"rho": rho, "adapt": adapt}
            if not isinstance(rho, Tensor):
                given["one_minus_rho"] = 1 - rho
        else:  # likewise v_th - v_reset
            given["jump"] = v_th - cfg.v_reset
        # not expanded: the kernel repeats a single value itself, and expands per-neuron ones
        params = {k: as_tensor_like(t, x) for k, t in given.items()}
        # None: at rest, where the kernel starts by itself
        state0 = tuple(None if s is None else s.contiguous() for s in (v0, i0, a0))
        bounds = -(-x.shape[0] // chunk)
        starts = tuple(
            x.new_empty((bounds - 1, *x.shape[1:])) if on else None
            for on in (True, current, adaptive)
        )
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x) if cfg.record_membrane else x.new_empty(0)
        v_last, i_last, a_last = native.family_forward(
            x, neuron, state0, params, cfg.v_rest, cfg.v_reset, cfg.reset, spikes,
            membrane if cfg.record_membrane else None, starts, chunk,
        )  # fmt: skip
        ctx.save_for_backward(x, *state0, *starts, *[params.get(k) for k in native.PARAMETERS])
        ctx.shapes = [t.shape if isinstance(t, Tensor) else None
                      for t in (beta, v_th, alpha, g_cur, g_in, rho, adapt)]  # fmt: skip
        ctx.neuron, ctx.cfg, ctx.chunk = neuron, cfg, chunk
        ctx.set_materialize_grads(False)
        if not cfg.record_membrane:
            ctx.mark_non_differentiable(membrane)
        i_last, a_last = (x.new_empty(0) if s is None else s for s in (i_last, a_last))
        return spikes, v_last, i_last, a_last, membrane

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v, grad_i, grad_a, grad_membrane):
        x, v0, i0, a0, *rest = ctx.saved_tensors
        starts, saved = rest[:3], rest[3:]
        params = {k: t for k, t in zip(native.PARAMETERS, saved, strict=True) if t is not None}
        cfg, needs = ctx.cfg, ctx.needs_input_grad
        names = ("beta", "v_th", "alpha", "g_cur", "g_in", "rho", "adapt")
        need = {k for k, on in zip(names, needs[4:11], strict=True) if on and k in params}
        need |= {k for k, on in zip(native.STATES, needs[1:4], strict=True) if on}
        current, adaptive = ctx.neuron == "cuba", ctx.neuron == "alif"
        grad_x, grad_state0, grads = native.family_backward(
            x, ctx.neuron, (v0, i0, a0), tuple(starts), grad_spikes,
            grad_membrane if cfg.record_membrane else None,
            (grad_v, grad_i if current else None, grad_a if adaptive else None),
            params, need, cfg.v_rest, cfg.v_reset, cfg.reset, cfg.detach_reset, cfg.surrogate,
            ctx.chunk,
        )  # fmt: skip
        grad_params = [
            grads[k].sum_to_size(shape) if k in grads else None
            for k, shape in zip(names, ctx.shapes, strict=True)
        ]
        return grad_x, *grad_state0, *grad_params, None, None, None


def native_family_sequence(
    x: Tensor,
    v0: Tensor | None,
    i0: Tensor | None,
    a0: Tensor | None,
    *,
    neuron: str,
    beta: Tensor | float,
    v_th: Tensor | float,
    alpha: Tensor | float | None,
    current_gain: Tensor | float,
    input_gain: Tensor | float,
    rho: Tensor | float | None,
    adapt: Tensor | float | None,
    config: FamilyConfig,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`fused_family_sequence` without a recurrent weight, on the native C kernel:
    ``neuron`` is ``"cuba"`` (the CubaLIF: the current state on) or ``"alif"`` (the ALIF: the
    threshold state on). A state that is ``None`` starts at rest (``v_rest``, no current, no
    adaptation), without a tensor made for it; the neuron's other state must be ``None``. Same
    returns; the caller checks :func:`snn.kernels.native.unavailable_reason` (``family=True``)
    first. ``chunk``: steps between saved states (default ``NATIVE_CHUNK_STEPS``, the LIF
    kernel's)."""
    if neuron not in native.VARIANTS:
        raise ValueError(
            f"the native family kernel runs neuron={' or '.join(map(repr, native.VARIANTS))}, got "
            f"{neuron!r} (a plain LIF runs snn.functional.lif_sequence)"
        )
    if (i0 if neuron == "alif" else a0) is not None:
        lacks = "current state (i0)" if neuron == "alif" else "threshold state (a0)"
        raise ValueError(f"neuron={neuron!r} has no {lacks}: pass None for it")
    chunk = min(NATIVE_CHUNK_STEPS if chunk is None else chunk, x.shape[0])
    return _NativeFamily.apply(
        x.contiguous(), v0, i0, a0, beta, v_th, alpha, current_gain, input_gain, rho, adapt,
        neuron, config, chunk,
    )  # fmt: skip
