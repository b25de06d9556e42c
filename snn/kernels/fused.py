r"""The fused multi-step LIF: the whole time loop is one autograd node.

A plain autograd loop keeps, for every step, the graph nodes of the leak, the spike, the reset and
a copy of each intermediate: about four ``[T, ...]`` tensors for a layer. This node keeps the input
current (which the caller holds anyway while the layer runs) and the membrane potential at the
start of every chunk of ``K`` steps (``T / K`` tensors of one step's size), nothing else; its
training memory is then about that of a ReLU layer. Backward walks the chunks from last to first:
it recomputes the chunk's pre-spike potentials ``h_t`` from the chunk's first potential, with the
same operations in the same order as the forward (so bitwise the same values), into the chunk's
slice of the input gradient, which is free until the reverse loop writes it. Then, a block of
steps at a time, it computes the elementwise factors (surrogate, ``dv/dh``) for all the block's
steps in one vectorized pass, and runs the reverse recurrence by hand.

With ``delta_t = dL/dv_t`` (the post-reset potential), ``sigma_t = surrogate'(h_t - v_th)`` and
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

Only the multiply-add ``delta_{t-1} = beta * (delta_t * dv_t/dh_t + dL/ds_t * sigma_t)`` is
sequential (two operations per step); ``sigma``, ``dv/dh`` and the parameter terms are computed
a block at a time.

Every step rounds exactly as :func:`snn.functional.lif_step` does (``beta * v`` is rounded
before ``I_t`` is added: no fused multiply-add), so the spikes equal the reference loop's bit for
bit and the gradients equal autograd through it to rounding.

Three executors run the same algorithm (the *backend* is what a user asks
:func:`snn.functional.lif_sequence` for; the *executor* is what then runs this node):

* **native** (what ``backend="fused"`` picks on CPU): a plain-C kernel,
  ``snn/kernels/csrc/lif.c``, that walks tiles of neurons through time, recomputing a chunk's
  potentials into a buffer that stays in cache, on torch's own threads
  (:mod:`snn.kernels.native` builds and loads it). CPU, float32/float64, built-in surrogates.
* **triton** (what ``backend="fused"`` picks on CUDA): one Triton kernel forward and one
  backward, each walking blocks of neurons through time (:mod:`snn.kernels.triton_lif`, the
  family's kernels with the current and threshold states compiled out). CUDA, or CPU under
  ``TRITON_INTERPRET=1``; float32, float64, bfloat16, built-in surrogates.
* **eager**: PyTorch operations writing into preallocated buffers, four per step forward and six
  per step backward, plus a handful per block. Needs nothing but PyTorch; runs anywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snn.kernels import native
from snn.surrogate import Surrogate

__all__ = ["fused_lif_sequence", "EXECUTORS"]

# Eager backward computes the elementwise factors for blocks of about this many elements (1 MB in
# float32): large enough that each op is cheap per element, small enough to stay in cache and to
# keep the surrogate's temporaries small. A potential is saved every CHECKPOINT_BLOCKS blocks.
BLOCK_ELEMENTS = 1 << 18
CHECKPOINT_BLOCKS = 4
# The native kernel saves a potential every this many steps and recomputes a chunk at a time
# into a buffer of this many steps per tile of neurons (see snn/kernels/csrc/lif_kernel.h).
NATIVE_CHUNK_STEPS = 32
EXECUTORS = ("eager", "native", "triton")


def as_tensor_like(value: Tensor | float, like: Tensor) -> Tensor:
    """``value`` as a tensor of ``like``'s dtype and device (itself if it already is one)."""
    if isinstance(value, Tensor) and value.dtype == like.dtype and value.device == like.device:
        return value  # as as_tensor would, without its cost per call
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _chunk_bounds(num_steps: int, chunk: int) -> list[tuple[int, int]]:
    return [(t0, min(t0 + chunk, num_steps)) for t0 in range(0, num_steps, chunk)]


# ---------------------------------------------------------------------------------------------
# The eager executor: lif_step's arithmetic, into preallocated buffers.


def _integrate_into(
    out: Tensor, v: Tensor, current_t: Tensor, beta: Tensor | float, v_rest: float
) -> Tensor:
    # beta * v is rounded before current_t is added, as in lif_step (addcmul would fuse them)
    if v_rest == 0:
        torch.mul(v, beta, out=out)
    else:
        torch.sub(v, v_rest, out=out).mul_(beta).add_(v_rest)
    return out.add_(current_t)


def _reset_into(
    out: Tensor, h: Tensor, s: Tensor, jump: Tensor | float, v_reset: float, reset: str
) -> Tensor:
    # s is 0 or 1, so s * jump is exact and a fused multiply-add rounds as lif_step does
    if reset == "subtract":
        if isinstance(jump, Tensor):
            return torch.addcmul(h, s, jump, value=-1, out=out)
        return torch.sub(h, s, alpha=jump, out=out)
    if reset == "zero":
        diff = h if v_reset == 0 else h - v_reset
        return torch.addcmul(h, s, diff, value=-1, out=out)
    return h


def _shares_storage(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _scalar_or_tensor(t: Tensor) -> Tensor | float:
    """A one-element parameter as a Python number (cheaper per op), else the tensor.

    Not while torch.compile traces the layer: there ``item()`` would be a data-dependent value.
    """
    if t.dim() == 0 and not torch.compiler.is_compiling():
        return t.item()
    return t


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        current: Tensor,
        v0: Tensor | None,
        beta: Tensor | float,
        v_th: Tensor | float,
        v_rest: float,
        v_reset: float,
        reset: str,
        detach_reset: bool,
        surrogate: Surrogate,
        record_membrane: bool,
        chunk: int,
        block: int,
        executor: str,
    ) -> tuple[Tensor, Tensor, Tensor]:
        if v0 is None and executor != "native":  # rest; the native kernel starts there itself
            v0 = torch.full_like(current[0], v_rest)
        beta_t = as_tensor_like(beta, current)
        v_th_t = as_tensor_like(v_th, current)
        # from v_th as given (a float is subtracted in double, as lif_step does); x - 0 is x
        jump_t = v_th_t if v_reset == 0 else as_tensor_like(v_th - v_reset, current)
        num_steps = current.shape[0]
        chunks = -(-num_steps // chunk)
        spikes = torch.empty_like(current)
        # an empty tensor when not asked for, not None: torch.compile's backward needs a tensor
        membrane = torch.empty_like(current) if record_membrane else current.new_empty(0)
        # the potential at the start of chunks 1, 2, ...: all backward needs besides the input
        # (none for a single chunk; the Triton kernels also keep chunk 0's, v0, in row 0)
        starts = (
            current.new_empty((chunks - (executor != "triton"), *current.shape[1:]))
            if chunks > 1 or executor == "triton"
            else None
        )

        if executor == "triton":
            from snn.kernels import triton_lif  # imports Triton: only for this executor

            params = triton_lif.param_rows(v0, beta_t, v_th_t, jump_t)
            v_last, _, _ = triton_lif.forward(
                current, (v0, None, None), params, v_rest, v_reset, reset, spikes,
                membrane if record_membrane else None, starts[:, None], chunk,
            )  # fmt: skip
        elif executor == "native":
            v_last = native.forward(
                current, v0, beta_t, v_th_t, jump_t, v_rest, v_reset, reset, spikes,
                membrane if record_membrane else None, starts, chunk,
            )  # fmt: skip
        else:
            v_last = _forward_eager(
                current, v0, beta_t, v_th_t, jump_t, v_rest, v_reset, reset, spikes, membrane,
                _chunk_bounds(num_steps, chunk), starts, record_membrane,
            )  # fmt: skip

        ctx.save_for_backward(current, v0, starts, beta_t, v_th_t, jump_t)
        ctx.config = (
            v_rest,
            v_reset,
            reset,
            detach_reset,
            surrogate,
            record_membrane,
            chunk,
            block,
        )
        ctx.executor = executor
        ctx.param_shapes = (
            beta.shape if isinstance(beta, Tensor) else None,
            v_th.shape if isinstance(v_th, Tensor) else None,
        )
        ctx.set_materialize_grads(False)
        if not record_membrane:
            ctx.mark_non_differentiable(membrane)
        return spikes, v_last, membrane

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v_last, grad_membrane):
        current, v0, starts, beta, v_th, jump = ctx.saved_tensors
        v_rest, v_reset, reset, detach_reset, surrogate, record_membrane, chunk, block = ctx.config
        beta_shape, v_th_shape = ctx.param_shapes
        need_beta = ctx.needs_input_grad[2]
        need_v_th = ctx.needs_input_grad[3]
        if not record_membrane:
            grad_membrane = None
        if ctx.executor == "triton":
            from snn.kernels import triton_lif

            params = triton_lif.param_rows(v0, beta, v_th, jump)
            grad_current, (delta, _, _), sums = triton_lif.backward(
                current, starts, grad_spikes, grad_membrane, (grad_v_last, None, None), params,
                v_rest, v_reset, reset, detach_reset, surrogate, chunk, False, False, need_beta,
            )  # fmt: skip
            grad_beta, grad_v_th = sums
        elif ctx.executor == "native":
            grad_current, delta, grad_beta, grad_v_th = native.backward(
                current, v0, starts, grad_spikes, grad_membrane, grad_v_last, beta, v_th, jump,
                v_rest, v_reset, reset, detach_reset, surrogate, chunk, need_beta, need_v_th,
                ctx.needs_input_grad[1],
            )  # fmt: skip
        else:
            bounds = _chunk_bounds(current.shape[0], chunk)
            delta = torch.zeros_like(v0) if grad_v_last is None else grad_v_last
            grad_current = torch.empty_like(current)
            config = (v_rest, v_reset, reset, detach_reset, surrogate, need_beta, need_v_th)
            delta, grad_beta, grad_v_th = _backward_eager(
                current, v0, starts, grad_spikes, grad_membrane, delta, beta, v_th, jump,
                grad_current, bounds, config, block,
            )  # fmt: skip
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
            None,
            None,
            None,
        )


def _forward_eager(
    current, v0, beta_t, v_th_t, jump_t, v_rest, v_reset, reset, spikes, membrane, bounds,
    starts, record,
) -> Tensor:  # fmt: skip
    beta = _scalar_or_tensor(beta_t)
    v_th = _scalar_or_tensor(v_th_t)
    jump = _scalar_or_tensor(jump_t)
    h = torch.empty_like(v0)
    v_buf = torch.empty_like(v0)
    v = v0
    for c, (t0, t1) in enumerate(bounds):
        if c:
            starts[c - 1].copy_(v)
        for t in range(t0, t1):
            _integrate_into(h, v, current[t], beta, v_rest)
            s = torch.ge(h, v_th, out=spikes[t])
            if reset == "none":
                v = membrane[t].copy_(h) if record else h
            else:
                v = _reset_into(membrane[t] if record else v_buf, h, s, jump, v_reset, reset)
    # v_last must not be a view of another output, nor a buffer this call keeps using
    return v.clone() if record or v is v0 else v


def _backward_eager(
    current, v0, starts, grad_spikes, grad_membrane, delta, beta_t, v_th_t, jump_t,
    grad_current, bounds, config, block,
):  # fmt: skip
    v_rest, v_reset, reset, detach_reset, surrogate, need_beta, need_v_th = config
    beta = _scalar_or_tensor(beta_t)
    v_th = _scalar_or_tensor(v_th_t)
    jump = _scalar_or_tensor(jump_t)
    longest = max(t1 - t0 for t0, t1 in bounds)
    # the potential before each step of the chunk (for dL/dbeta), dL/dv at each step (dL/dv_th)
    before = current.new_empty((longest, *v0.shape)) if need_beta else None
    deltas = current.new_empty((min(block, longest), *v0.shape)) if need_v_th else None
    s_buf = torch.empty_like(v0)
    v_buf = torch.empty_like(v0)
    delta_buf = torch.empty_like(v0)
    grad_beta = torch.zeros_like(v0) if need_beta else None
    grad_v_th = torch.zeros_like(v0) if need_v_th else None

    for c in range(len(bounds) - 1, -1, -1):
        t0, t1 = bounds[c]
        # the chunk's slice of the gradient is scratch until the reverse loop writes it: it holds
        # h, then h - v_th, then dL/ds * sigma, then dL/dh
        v = v0 if c == 0 else starts[c - 1]
        for t in range(t0, t1):  # recompute h exactly as the forward did
            if need_beta:
                before[t - t0].copy_(v)
            h = _integrate_into(grad_current[t], v, current[t], beta, v_rest)
            if t + 1 < t1:
                s = torch.ge(h, v_th, out=s_buf)
                v = h if reset == "none" else _reset_into(v_buf, h, s, jump, v_reset, reset)
        # then blocks of the chunk, last first: the elementwise factors of a block at once (the
        # only extra memory: sigma and the surrogate's temporaries for one block), then its steps
        last_block = t0 + (t1 - t0 - 1) // block * block
        for b0 in range(last_block, t0 - 1, -block):
            b1 = min(b0 + block, t1)
            delta = _backward_block(
                grad_current[b0:b1], None if grad_spikes is None else grad_spikes[b0:b1],
                None if grad_membrane is None else grad_membrane[b0:b1], delta, delta_buf,
                deltas, grad_v_th, beta, v_th, jump, v_reset, reset, detach_reset, surrogate,
            )  # fmt: skip
        if need_beta:
            before_n = before[: t1 - t0] if v_rest == 0 else before[: t1 - t0] - v_rest
            grad_beta.add_((grad_current[t0:t1] * before_n).sum(0))
    # delta_buf is reused: hand back a tensor nobody else writes to
    return delta.clone() if delta is delta_buf else delta, grad_beta, grad_v_th


def _backward_block(
    work, grad_spikes, grad_membrane, delta, delta_buf, deltas, grad_v_th, beta, v_th, jump,
    v_reset, reset, detach_reset, surrogate,
) -> Tensor:  # fmt: skip
    """Reverse the steps of one block; ``work`` holds their h on entry and dL/dI on return."""
    n = work.shape[0]
    above_reset = work - v_reset if reset == "zero" else None  # h - v_reset
    u = work.sub_(v_th)
    fired = (u >= 0).to(u.dtype) if reset == "zero" or grad_v_th is not None else None
    sigma = surrogate.derivative(u)
    # a surrogate may hand back (a view of) its input, which is overwritten next; under
    # torch.compile storage cannot be inspected, and the copy is fused away
    if torch.compiler.is_compiling() or _shares_storage(sigma, u):
        sigma = sigma.clone()
    if sigma.shape != u.shape:
        sigma = sigma.expand_as(u)
    through_spike = None
    if grad_spikes is not None:
        through_spike = torch.mul(grad_spikes, sigma, out=work)
    factor_v_th = None  # dL/dv_th += sum_t delta_t * factor_v_th_t
    if grad_v_th is not None:
        if through_spike is not None:
            grad_v_th.sub_(through_spike.sum(0))
        if reset == "subtract":
            factor_v_th = -fired if detach_reset else torch.mul(sigma, jump).sub_(fired)
        elif reset == "zero" and not detach_reset:
            factor_v_th = above_reset * sigma
    if reset == "subtract" and not detach_reset:
        dv_dh = (sigma.mul_(-jump) if sigma.is_contiguous() else torch.mul(sigma, -jump)).add_(1)
    elif reset == "zero":
        dv_dh = fired.neg_().add_(1)  # 1 - s
        if not detach_reset:
            dv_dh.addcmul_(above_reset, sigma, value=-1)
    else:
        dv_dh = None  # identity

    for k in range(n - 1, -1, -1):
        if grad_membrane is not None:
            delta = delta + grad_membrane[k]
        if deltas is not None:
            deltas[k].copy_(delta)
        grad_h = work[k]  # holds dL/ds * sigma of this step, if any
        if dv_dh is None:
            if through_spike is None:
                grad_h.copy_(delta)
            else:
                grad_h.add_(delta)
        elif through_spike is None:
            torch.mul(delta, dv_dh[k], out=grad_h)
        else:
            grad_h.addcmul_(delta, dv_dh[k])
        delta = torch.mul(grad_h, beta, out=delta_buf)
    if factor_v_th is not None:
        grad_v_th.add_((deltas[:n] * factor_v_th).sum(0))
    return delta


def fused_lif_sequence(
    current: Tensor,
    v0: Tensor | None,
    beta: Tensor | float,
    v_th: Tensor | float,
    v_rest: float,
    v_reset: float,
    reset: str,
    detach_reset: bool,
    surrogate: Surrogate,
    record_membrane: bool,
    *,
    executor: str,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the LIF over ``current`` (``[T, ...]``, already multiplied by the gain) from ``v0``
    (``None``: from rest, ``v_rest``).

    Returns ``(spikes [T, ...], v_last [...], membrane [T, ...] or an empty tensor)``. Use
    :func:`snn.functional.lif_sequence`, which validates its arguments, rather than this.

    ``executor`` is ``"eager"``, ``"native"`` or ``"triton"`` (see the module docstring; the
    caller picks it for the backend the user asked for, and checks that native or Triton can
    run, with :func:`snn.kernels.native.unavailable_reason` or
    :func:`snn.kernels.triton_lif.unavailable_reason`). ``chunk`` is the number of steps between
    saved potentials (default: ``CHECKPOINT_BLOCKS`` blocks of about ``BLOCK_ELEMENTS``
    elements eagerly, ``NATIVE_CHUNK_STEPS`` native, ``triton_lif.CHUNK_STEPS`` Triton).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    num_steps = current.shape[0]
    neurons = current.numel() // num_steps if num_steps else 0
    block = max(1, BLOCK_ELEMENTS // max(1, neurons))
    if chunk is None and executor == "triton":
        from snn.kernels import triton_lif

        chunk = triton_lif.CHUNK_STEPS
    if chunk is None:
        chunk = NATIVE_CHUNK_STEPS if executor == "native" else CHECKPOINT_BLOCKS * block
    if executor in ("native", "triton"):
        current = current.contiguous()  # the kernels walk raw memory
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive number of time steps, got {chunk!r}")
    chunk = min(chunk, num_steps)
    block = min(block, chunk)
    return _FusedLIF.apply(
        current, v0, beta, v_th, v_rest, v_reset, reset, detach_reset, surrogate,
        record_membrane, chunk, block, executor,
    )  # fmt: skip
