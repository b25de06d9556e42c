"""The fused LIF's Triton executor: the fused node's algorithm as GPU kernels, for the LIF
(:func:`lif_sequence`, which CubaLIF's fused path also runs on: its synaptic current is a scan
in front of the LIF); :mod:`snn.kernels.triton_alif` runs the ALIF on the same scheme and
shares this module's helpers.

The algorithm is :mod:`snn.kernels.fused`'s (its docstring has the equations and the reset
table) and the native C kernel's (``csrc/lif_kernel.h``): each Triton program takes a block of
``BLOCK`` neurons (the neurons of all samples, flattened) and walks them through time.

* **forward** writes the spikes (and, when asked, the membrane trace), the last potential, and
  the potential at the start of every chunk of ``chunk`` steps (chunk 0's is ``v0``): nothing
  else is kept for backward besides the input current.
* **backward** walks the chunks from last to first. It recomputes the chunk's pre-spike
  potentials ``h_t`` from the chunk's saved start, with the forward's operations in the forward's
  order (so bitwise the forward's values), into the chunk's rows of the input gradient, which are
  scratch until the reverse loop overwrites them with ``dL/dI_t``. The reverse loop reads
  ``h_t`` back, rebuilds ``v_{t-1}`` from ``h_{t-1}`` (or the chunk's start) for ``dL/dbeta``,
  and carries ``delta = dL/dv`` by hand. ``dL/dbeta`` and ``dL/dv_th`` are summed over time per
  neuron in registers; the caller sums them over the batch to the parameters' shapes.

**Rounding.** Spikes must equal the reference loop's bit for bit, so every step rounds as
:func:`snn.functional.lif_step` does: ``beta * v`` (or ``(v - v_rest) * beta + v_rest``) is
rounded before the input is added. Triton's compiler contracts a multiply followed by an add
into one fused multiply-add by default (its ``enable_fp_fusion`` option: LLVM's contraction and
``ptxas --fmad``), which would round once instead of twice; both kernels are launched with
``enable_fp_fusion=False``, so each ``*`` and ``+`` is its own correctly rounded operation
(tests/test_triton.py compiles every kernel for sm_90 on the CPU and finds no ``fma`` in the
PTX; with the option on, the forward has eight). The interpreter (``TRITON_INTERPRET=1``)
evaluates each operation with numpy and never fuses.

**Types.** float32 and float64 compute in their own type. bfloat16 computes in float32 and
rounds to bfloat16 after every operation of the recurrence (as PyTorch's bfloat16 operations
do, so it matches the eager executor; ``v_rest`` and ``v_reset`` are taken in bfloat16, like
``beta`` and ``v_th``); the rounding is done on the bits (round to nearest even),
because the interpreter's own float32 -> bfloat16 conversion does not round to nearest.
float16 is not covered (``backend="fused"`` runs it on the eager executor).

**Where it runs.** CUDA tensors with Triton installed; or CPU tensors when ``TRITON_INTERPRET=1``
was set before this module was imported (Triton reads it when the kernels are decorated), which
is how the tests check the kernels on a machine without a GPU. :func:`unavailable_reason` says
why it cannot run, or ``None``.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

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
# benchmarks/gpu_speed.py --blocks times others); steps between saved potentials
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
_SIZES = ("n", "steps", "chunk", "gs_step", "gm_step")

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
    def _integrate(v, beta, x, v_rest, HAS_REST: tl.constexpr, ROUND_BF16: tl.constexpr):
        # beta * v is rounded before x is added, as lif_step does
        if HAS_REST:
            leak = _round(v - v_rest, ROUND_BF16)
            leak = _round(_round(leak * beta, ROUND_BF16) + v_rest, ROUND_BF16)
        else:
            leak = _round(beta * v, ROUND_BF16)
        return _round(leak + x, ROUND_BF16)

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

    @triton.jit(do_not_specialize=_SIZES)
    def _forward_kernel(
        x_ptr, v0_ptr, beta_ptr, v_th_ptr, jump_ptr, consts_ptr,
        spikes_ptr, membrane_ptr, starts_ptr, v_last_ptr,
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
        jump = tl.load(jump_ptr + offs, mask=mask, other=0).to(COMPUTE)
        v = tl.load(v0_ptr + offs, mask=mask, other=0).to(COMPUTE)
        for t in range(0, steps):
            # the potential at the start of each chunk: all backward keeps besides the input
            tl.store(starts_ptr + (t // chunk) * n64 + offs, v.to(store_type),
                     mask=mask & (t % chunk == 0))  # fmt: skip
            row = t * n64
            x = tl.load(x_ptr + row + offs, mask=mask, other=0).to(COMPUTE)
            h = _integrate(v, beta, x, v_rest, HAS_REST, ROUND_BF16)
            s = (h >= v_th).to(COMPUTE)
            tl.store(spikes_ptr + row + offs, s.to(store_type), mask=mask)
            v = _after_reset(h, s, jump, v_reset, RESET, ROUND_BF16)
            if RECORD:
                tl.store(membrane_ptr + row + offs, v.to(store_type), mask=mask)
        tl.store(v_last_ptr + offs, v.to(store_type), mask=mask)

    @triton.jit(do_not_specialize=_SIZES)
    def _backward_kernel(
        x_ptr, starts_ptr, gs_ptr, gs_step, gm_ptr, gm_step, gv_last_ptr,
        gx_ptr, gv0_ptr, gbeta_ptr, gv_th_ptr,
        beta_ptr, v_th_ptr, jump_ptr, consts_ptr,
        n, steps, chunk,
        RESET: tl.constexpr, DETACH: tl.constexpr, KIND: tl.constexpr,
        HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, HAS_GV_LAST: tl.constexpr,
        NEED_BETA: tl.constexpr, NEED_V_TH: tl.constexpr, HAS_REST: tl.constexpr,
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
        jump = tl.load(jump_ptr + offs, mask=mask, other=0).to(COMPUTE)
        zero = tl.zeros([BLOCK], dtype=COMPUTE)
        delta = zero  # dL/dv after the step being reversed
        if HAS_GV_LAST:
            delta = tl.load(gv_last_ptr + offs, mask=mask, other=0).to(COMPUTE)
        acc_beta = zero
        acc_v_th = zero
        num_chunks = tl.cdiv(steps, chunk)
        for back in range(0, num_chunks):
            c = num_chunks - 1 - back
            t0 = c * chunk
            t1 = t0 + chunk
            if t1 > steps:
                t1 = steps
            start = tl.load(starts_ptr + c * n64 + offs, mask=mask, other=0).to(COMPUTE)
            v = start
            for t in range(t0, t1):  # recompute h exactly as the forward did, into dL/dI
                row = t * n64
                x = tl.load(x_ptr + row + offs, mask=mask, other=0).to(COMPUTE)
                h = _integrate(v, beta, x, v_rest, HAS_REST, ROUND_BF16)
                tl.store(gx_ptr + row + offs, h.to(store_type), mask=mask)
                v = _after_reset(h, (h >= v_th).to(COMPUTE), jump, v_reset, RESET, ROUND_BF16)
            h = tl.load(gx_ptr + (t1 - 1) * n64 + offs, mask=mask, other=0).to(COMPUTE)
            for k in range(0, t1 - t0):
                t = t1 - 1 - k
                row = t * n64
                # h_{t-1} is still in the scratch row before this one (or the chunk starts)
                has_prev = t > t0
                h_prev = tl.load(gx_ptr + row - n64 + offs, mask=mask & has_prev, other=0)
                h_prev = h_prev.to(COMPUTE)
                sigma = _surrogate(h - v_th, c1, c2, KIND)
                s = (h >= v_th).to(COMPUTE)
                d = delta  # dL/dv_t
                if HAS_GM:
                    gm = tl.load(gm_ptr + t * gm_step + offs, mask=mask, other=0).to(COMPUTE)
                    d = d + gm
                dv_dh = zero + 1
                dv_dth = zero
                if RESET == 0:
                    if DETACH:
                        dv_dth = -s
                    else:
                        dv_dh = 1 - jump * sigma
                        dv_dth = jump * sigma - s
                elif RESET == 1:
                    dv_dh = 1 - s
                    if not DETACH:
                        dv_dh = dv_dh + (v_reset - h) * sigma
                        dv_dth = (h - v_reset) * sigma
                through_spike = zero
                if HAS_GS:
                    gs = tl.load(gs_ptr + t * gs_step + offs, mask=mask, other=0).to(COMPUTE)
                    through_spike = gs * sigma
                grad_h = d * dv_dh + through_spike
                tl.store(gx_ptr + row + offs, grad_h.to(store_type), mask=mask)
                if NEED_V_TH:
                    acc_v_th += d * dv_dth - through_spike
                if NEED_BETA:
                    s_prev = (h_prev >= v_th).to(COMPUTE)
                    v_prev = _after_reset(h_prev, s_prev, jump, v_reset, RESET, ROUND_BF16)
                    v_prev = tl.where(has_prev, v_prev, start)
                    acc_beta += grad_h * (v_prev - v_rest)
                delta = grad_h * beta
                h = h_prev
        tl.store(gv0_ptr + offs, delta.to(store_type), mask=mask)
        if NEED_BETA:
            tl.store(gbeta_ptr + offs, acc_beta, mask=mask)
        if NEED_V_TH:
            tl.store(gv_th_ptr + offs, acc_v_th, mask=mask)


def _launch_options(dtype: torch.dtype) -> dict:
    compute = tl.float64 if dtype == torch.float64 else tl.float32
    return dict(
        COMPUTE=compute,
        ROUND_BF16=dtype == torch.bfloat16,
        BLOCK=BLOCK,
        num_warps=NUM_WARPS,
        enable_fp_fusion=False,  # see the module docstring: no fused multiply-add
    )


def _launch(kernel, n: int, device: torch.device, *args, **kwargs) -> None:
    """Run ``kernel`` over ``n`` neurons on ``device``: Triton launches on the current CUDA
    device, which need not be the tensors' (a model on cuda:1)."""
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        kernel[(triton.cdiv(n, BLOCK),)](*args, **kwargs)


def _per_neuron(p: Tensor, like: Tensor) -> Tensor:
    return p.to(like.dtype).expand(like.shape).contiguous()


def _incoming(grad: Tensor | None, current: Tensor) -> tuple[Tensor | None, int]:
    """An incoming ``[T, ...]`` gradient as the kernel reads it: a tensor whose steps are each
    contiguous, and the elements from one step to the next (0 when it is the same every step, as
    autograd hands back after a sum over time); ``None`` where no gradient flows in."""
    if grad is None:
        return None, 0
    grad = grad.to(current.dtype)
    if grad.stride(0) == 0 or grad.shape[0] == 1:
        return grad[0].contiguous(), 0
    if grad[0].is_contiguous():
        return grad, grad.stride(0)
    return grad.contiguous(), current[0].numel()  # a layout the kernel cannot walk: one copy


class _TritonLIF(torch.autograd.Function):
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
        surrogate: sg.Surrogate,
        record_membrane: bool,
        chunk: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        current = current.contiguous()
        v0 = v0.contiguous()
        steps, n = current.shape[0], v0.numel()
        compute = torch.float64 if current.dtype == torch.float64 else torch.float32
        as_tensor = lambda value: torch.as_tensor(value, dtype=current.dtype, device=v0.device)  # noqa: E731
        # from v_th as given (a float is subtracted in double, as lif_step does)
        params = [_per_neuron(as_tensor(p), v0) for p in (beta, v_th, v_th - v_reset)]
        code, c1, c2 = _surrogate_code(surrogate)
        # v_rest and v_reset in the input's type, like beta and v_th (exact for the usual 0)
        potentials = torch.tensor([v_rest, v_reset], dtype=current.dtype).to(compute)
        consts = torch.cat([potentials, torch.tensor([c1, c2], dtype=compute)]).to(v0.device)
        spikes = torch.empty_like(current)
        membrane = torch.empty_like(current) if record_membrane else current.new_empty(0)
        starts = v0.new_empty((triton.cdiv(steps, chunk), *v0.shape))  # row 0 is v0
        v_last = torch.empty_like(v0)
        if n:
            _launch(
                _forward_kernel, n, current.device,
                current, v0, *params, consts, spikes, membrane if record_membrane else spikes,
                starts, v_last, n, steps, chunk, RESET=_RESETS[reset], RECORD=record_membrane,
                HAS_REST=v_rest != 0, **_launch_options(current.dtype),
            )  # fmt: skip
        ctx.save_for_backward(current, starts, *params, consts)
        ctx.config = (reset, detach_reset, code, v_rest != 0, chunk)
        ctx.param_shapes = tuple(p.shape if isinstance(p, Tensor) else None for p in (beta, v_th))
        ctx.set_materialize_grads(False)
        if not record_membrane:
            ctx.mark_non_differentiable(membrane)
        return spikes, v_last, membrane

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v_last, grad_membrane):
        current, starts, beta, v_th, jump, consts = ctx.saved_tensors
        reset, detach_reset, code, has_rest, chunk = ctx.config
        need_beta, need_v_th = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        steps, n = current.shape[0], beta.numel()
        gs, gs_step = _incoming(grad_spikes, current)
        gm, gm_step = _incoming(grad_membrane if grad_membrane is not None and
                                grad_membrane.numel() else None, current)  # fmt: skip
        if grad_v_last is not None:
            grad_v_last = grad_v_last.to(current.dtype).contiguous()
        grad_current = torch.empty_like(current)
        grad_v0 = torch.empty_like(beta)
        per_neuron = torch.empty(beta.shape, dtype=consts.dtype, device=beta.device)
        grad_beta = torch.empty_like(per_neuron) if need_beta else None
        grad_v_th = torch.empty_like(per_neuron) if need_v_th else None
        if n:
            _launch(
                _backward_kernel, n, current.device,
                current, starts, current if gs is None else gs, gs_step,
                current if gm is None else gm, gm_step,
                current if grad_v_last is None else grad_v_last, grad_current, grad_v0,
                per_neuron if grad_beta is None else grad_beta,
                per_neuron if grad_v_th is None else grad_v_th, beta, v_th, jump, consts,
                n, steps, chunk, RESET=_RESETS[reset], DETACH=detach_reset, KIND=code,
                HAS_GS=gs is not None, HAS_GM=gm is not None,
                HAS_GV_LAST=grad_v_last is not None, NEED_BETA=need_beta, NEED_V_TH=need_v_th,
                HAS_REST=has_rest, **_launch_options(current.dtype),
            )  # fmt: skip
        else:
            grad_v0 = grad_v0.zero_() if grad_v_last is None else grad_v_last.clone()
            for g in (grad_beta, grad_v_th):
                if g is not None:
                    g.zero_()
        beta_shape, v_th_shape = ctx.param_shapes
        return (
            grad_current,
            grad_v0 if ctx.needs_input_grad[1] else None,
            grad_beta.sum_to_size(beta_shape) if need_beta else None,
            grad_v_th.sum_to_size(v_th_shape) if need_v_th else None,
            *[None] * 7,
        )


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
    """:func:`snn.kernels.fused.fused_lif_sequence` on the Triton kernels: the LIF over
    ``current`` (``[T, ...]``, already multiplied by the gain) from ``v0``.

    Returns ``(spikes [T, ...], v_last [...], membrane [T, ...] or an empty tensor)``. Use
    :func:`snn.functional.lif_sequence` with ``backend="triton"`` (or ``"fused"`` on CUDA),
    which validates its arguments; check :func:`unavailable_reason` first. ``chunk`` is the
    number of steps between saved potentials (default ``CHUNK_STEPS``).
    """
    why = unavailable_reason(current, surrogate)
    if why is not None:
        raise ValueError(f"snn's Triton kernels cannot run here: {why}")
    chunk = CHUNK_STEPS if chunk is None else chunk
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive number of time steps, got {chunk!r}")
    chunk = min(chunk, current.shape[0])
    return _TritonLIF.apply(
        current, v0, beta, v_th, v_rest, v_reset, reset, detach_reset, surrogate,
        record_membrane, chunk,
    )  # fmt: skip
