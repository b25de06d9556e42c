r"""Fused multi-step nodes for the LIF family: CubaLIF, ALIF and the recurrent layer.

Two autograd nodes, each one node for a whole sequence (no per-step graph), in PyTorch
operations:

* :func:`synaptic_current`: the current-based synapse ``i_t = alpha i_{t-1} + c_t`` as a linear
  scan. It does not depend on the spikes, so a feed-forward CubaLIF is this scan followed by the
  LIF's own fused node (:func:`snn.functional.lif_sequence`, the native C kernel where it runs):
  CubaLIF is LIF with a current state in front.
* :func:`fused_family_sequence`: one generic elementwise neuron that covers every member (ALIF is
  LIF with a threshold state, CubaLIF is LIF with a current state), optionally with a recurrent
  weight inside the time loop. Per neuron and step, with every part optional::

      u_t     = x_t + s_{t-1} W^T                   (recurrent: W given)
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
  the spikes and states equal the reference loop's bit for bit.

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
sequential. Nothing here is public API: use :mod:`snn.family_functional` or the layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snn.surrogate import Surrogate

__all__ = ["FamilyConfig", "synaptic_current", "fused_family_sequence"]

# the backward recomputes and vectorizes chunks of about this many elements (4 MB in float32)
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


def _step(u, v, i, a, beta, v_th, alpha, g_cur, g_in, rho, adapt, cfg: FamilyConfig):
    """One step of the generic neuron: ``(s, h, theta, v, i, a)``; the reference's expressions."""
    c = u if _is_one(g_in) else g_in * u
    if i is not None:
        i = alpha * i + c
        c = i if _is_one(g_cur) else g_cur * i
    leak = beta * v if cfg.v_rest == 0 else cfg.v_rest + beta * (v - cfg.v_rest)
    h = leak + c
    theta = v_th if a is None else v_th + adapt * a
    s = (h - theta >= 0).to(h.dtype)
    if cfg.reset == "subtract":
        v = h - s * (theta - cfg.v_reset)
    elif cfg.reset == "zero":
        v = h - s * (h - cfg.v_reset)
    else:
        v = h
    if a is not None:
        a = rho * a + (1 - rho) * s
    return s, h, theta, v, i, a


def _chunk_steps(numel: int, num_steps: int) -> int:
    return max(1, min(num_steps, CHUNK_ELEMENTS // max(1, numel)))


class _FusedFamily(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x, v0, i0, a0, s0, beta, v_th, alpha, g_cur, g_in, rho, adapt, weight, cfg, chunk
    ):
        num_steps = x.shape[0]
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x) if cfg.record_membrane else x.new_empty(0)
        u_all = torch.empty_like(x) if weight is not None else x
        starts = []  # (v, i, a) at the start of chunks 1, 2, ...
        v, i, a, s = v0, i0, a0, s0
        params = (beta, v_th, alpha, g_cur, g_in, rho, adapt)
        for t in range(num_steps):
            if t and t % chunk == 0:
                starts.append((v, i, a))  # each step makes new tensors: no copy needed
            u = x[t] if weight is None else torch.add(x[t], s @ weight.T, out=u_all[t])
            s, _, _, v, i, a = _step(u, v, i, a, *params, cfg)
            spikes[t] = s
            if cfg.record_membrane:
                membrane[t] = v
        ctx.save_for_backward(
            u_all, spikes if weight is not None else None, v0, i0, a0, s0, weight,
            *[p if isinstance(p, Tensor) else None for p in params],
        )  # fmt: skip
        ctx.starts = starts
        ctx.floats = [None if isinstance(p, Tensor) else p for p in params]
        ctx.cfg, ctx.chunk = cfg, chunk
        ctx.set_materialize_grads(False)
        if not cfg.record_membrane:
            ctx.mark_non_differentiable(membrane)
        empty = x.new_empty(0)
        v_last = v.clone() if v is v0 else v
        i_last = empty if i is None else (i.clone() if i is i0 else i)
        a_last = empty if a is None else (a.clone() if a is a0 else a)
        return spikes, v_last, i_last, a_last, membrane

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v, grad_i, grad_a, grad_membrane):
        u_all, spikes, v0, i0, a0, s0, weight, *saved = ctx.saved_tensors
        params = [f if t is None else t for t, f in zip(saved, ctx.floats, strict=True)]
        beta, v_th, alpha, g_cur, g_in, rho, adapt = params
        cfg, chunk = ctx.cfg, ctx.chunk
        needs = ctx.needs_input_grad
        names = ("beta", "v_th", "alpha", "g_cur", "g_in", "rho", "adapt")
        need = dict(zip(names, needs[5:12], strict=True))
        current, adaptive = i0 is not None, a0 is not None
        if not cfg.record_membrane:
            grad_membrane = None
        num_steps = u_all.shape[0]
        zeros = torch.zeros_like(v0)
        dv = zeros if grad_v is None else grad_v
        di = (zeros if grad_i is None else grad_i) if current else None
        da = (zeros if grad_a is None else grad_a) if adaptive else None
        one_minus_rho = 1 - rho if adaptive else None
        sums = {name: zeros for name, on in need.items() if on}
        grad_x = torch.empty_like(u_all)
        grad_rec = None  # dL/ds_t through the recurrent weight, from step t + 1

        bounds = [(t0, min(t0 + chunk, num_steps)) for t0 in range(0, num_steps, chunk)]
        for c in range(len(bounds) - 1, -1, -1):
            t0, t1 = bounds[c]
            v, i, a = (v0, i0, a0) if c == 0 else ctx.starts[c - 1]
            rec = {k: [] for k in ("v", "i", "a", "h", "theta", "s", "i_new")}
            for t in range(t0, t1):  # recompute exactly as the forward did
                rec["v"].append(v)
                rec["i"].append(i)
                rec["a"].append(a)
                s, h, theta, v, i, a = _step(u_all[t], v, i, a, *params, cfg)
                rec["h"].append(h)
                rec["theta"].append(theta)
                rec["s"].append(s)
                rec["i_new"].append(i)
            h = torch.stack(rec["h"])
            s = torch.stack(rec["s"])
            theta = torch.stack(rec["theta"]) if adaptive else v_th
            sigma = cfg.surrogate.derivative(h - theta).expand_as(h)
            # the reset factors of the chunk's steps at once (None: identity or zero)
            dv_dh = dv_ds = dv_dtheta = None
            if cfg.reset == "subtract":
                dv_ds = None if cfg.detach_reset else -(theta - cfg.v_reset)
                dv_dtheta = -s
            elif cfg.reset == "zero":
                dv_dh = 1 - s
                dv_ds = None if cfg.detach_reset else -(h - cfg.v_reset)
            if dv_ds is not None:  # a float when the threshold is one
                dv_ds = torch.as_tensor(dv_ds, dtype=h.dtype, device=h.device).expand_as(h)
            n = t1 - t0
            grad_h = torch.empty_like(h)
            grad_theta = torch.empty_like(h) if (adaptive or need["v_th"]) else None
            delta_a = torch.empty_like(h) if adaptive else None
            delta_i = torch.empty_like(h) if current else None
            for k in range(n - 1, -1, -1):
                t = t0 + k
                if grad_membrane is not None:
                    dv = dv + grad_membrane[t]
                g = grad_spikes[t] if grad_spikes is not None else None
                if grad_rec is not None:
                    g = grad_rec if g is None else g + grad_rec
                if adaptive:
                    delta_a[k] = da
                    term = one_minus_rho * da
                    g = term if g is None else g + term
                if dv_ds is not None:
                    term = dv * dv_ds[k]
                    g = term if g is None else g + term
                gh = dv if dv_dh is None else dv * dv_dh[k]
                if g is not None:
                    gs = g * sigma[k]
                    gh = gh + gs
                grad_h[k] = gh
                if grad_theta is not None:
                    gt = zeros if g is None else -gs
                    if dv_dtheta is not None:
                        gt = gt + dv * dv_dtheta[k]
                    grad_theta[k] = gt
                dv = gh * beta
                if current:
                    di = di + (gh if _is_one(g_cur) else g_cur * gh)
                    delta_i[k] = di
                    gc = di
                    di = di * alpha
                else:
                    gc = gh
                gu = gc if _is_one(g_in) else g_in * gc
                grad_x[t] = gu
                if adaptive:
                    da = da * rho + adapt * grad_theta[k]
                if weight is not None:
                    grad_rec = gu @ weight
            # the parameters' terms of the whole chunk, summed over its steps
            chunk_sl = slice(t0, t1)
            if need["beta"]:
                before = torch.stack(rec["v"])
                sums["beta"] = sums["beta"] + (grad_h * (before - cfg.v_rest)).sum(0)
            if need["v_th"]:
                sums["v_th"] = sums["v_th"] + grad_theta.sum(0)
            if current and need["alpha"]:
                sums["alpha"] = sums["alpha"] + (delta_i * torch.stack(rec["i"])).sum(0)
            if current and need["g_cur"]:
                sums["g_cur"] = sums["g_cur"] + (grad_h * torch.stack(rec["i_new"])).sum(0)
            if need["g_in"]:
                dc = delta_i if current else grad_h
                sums["g_in"] = sums["g_in"] + (dc * u_all[chunk_sl]).sum(0)
            if adaptive and need["adapt"]:
                before = torch.stack(rec["a"])
                sums["adapt"] = sums["adapt"] + (grad_theta * before).sum(0)
            if adaptive and need["rho"]:
                before = torch.stack(rec["a"])
                sums["rho"] = sums["rho"] + (delta_a * (before - s)).sum(0)

        grad_weight = None
        if weight is not None and needs[12]:
            n = weight.shape[0]
            # dW = sum_t (dL/du_t)^T s_{t-1}: one product over all steps (and s_0 for t = 1)
            grad_weight = grad_x[1:].reshape(-1, n).T @ spikes[:-1].reshape(-1, n)
            grad_weight = grad_weight + grad_x[0].reshape(-1, n).T @ s0.reshape(-1, n)
        grads = [
            sums[name].sum_to_size(p.shape) if name in sums else None
            for name, p in zip(need, params, strict=True)
        ]
        return (
            grad_x,
            dv if needs[1] else None,
            di if current and needs[2] else None,
            da if adaptive and needs[3] else None,
            grad_rec if s0 is not None and needs[4] else None,
            *grads,
            grad_weight,
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
        x, v0, i0, a0, s0, beta, v_th, alpha, current_gain, input_gain, rho, adapt, weight,
        config, chunk,
    )  # fmt: skip
