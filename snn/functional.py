r"""The LIF neuron as pure functions: ``step(input, state, params) -> (spikes, state)``.

Every LIF in snn (the modules, the single-neuron demos, the MNIST models) runs through this file.
One step of the leaky integrate-and-fire neuron is

.. math::

    h_t &= v_{rest} + \beta\,(v_{t-1} - v_{rest}) + g\,x_t   &\text{(leak and integrate)}\\
    s_t &= H(h_t - v_{th})                                     &\text{(fire)}\\
    v_t &= \begin{cases}
        h_t - s_t\,(v_{th} - v_{reset}) & \text{reset="subtract"}\\
        h_t\,(1 - s_t) + v_{reset}\,s_t & \text{reset="zero"}\\
        h_t & \text{reset="none"}
    \end{cases}

``H`` is the Heaviside step with ``H(0) = 1``; its gradient is the chosen surrogate's
(:mod:`snn.surrogate`). With ``detach_reset`` the ``s_t`` in the reset carries no gradient.

Two parameterizations give the same cell (:class:`LIFParameters`):

* **deep-learning form** (snnTorch's ``Leaky``): ``beta``, ``v_th = 1``, ``v_rest = v_reset = 0``,
  ``g = 1``;
* **physical form** (``tau dv/dt = (v_rest - v) + R I``, as in NIR's LIF), discretized with step
  ``dt``: forward Euler gives ``beta = 1 - dt/tau``, the exact solution for an input held over the
  step gives ``beta = exp(-dt/tau)``; both give ``g = R (1 - beta)`` (``= R dt / tau`` for Euler).
  Units are the user's: mV, ms, MOhm and nA work as they are (MOhm x nA = mV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from snn import surrogate as _surrogate
from snn.kernels import native as _native
from snn.kernels.fused import fused_lif_sequence

__all__ = [
    "RESET_MODES",
    "BACKENDS",
    "LIFParameters",
    "LIFSequence",
    "physical_beta",
    "physical_tau",
    "lif_step",
    "lif_sequence",
    "integrate",
    "fire",
]

RESET_MODES = ("subtract", "zero", "none")
BACKENDS = ("fused", "native", "eager", "triton", "reference")


def physical_beta(
    tau: float | Tensor | np.ndarray, dt: float, exact: bool = False
) -> float | Tensor | np.ndarray:
    """Decay per step of ``tau dv/dt = -v``: ``1 - dt/tau`` (Euler) or ``exp(-dt/tau)`` (exact).

    ``tau`` is a number, or a tensor or numpy array of per-neuron time constants (the result has
    its type). Raises ``ValueError`` for ``tau <= 0``, ``dt <= 0``, or (Euler only) ``dt > tau``,
    where the Euler step overshoots and ``beta`` would be negative. :func:`physical_tau` is the
    inverse.

    >>> physical_beta(10.0, 0.1)
    0.99
    >>> physical_beta(torch.tensor([1.0, 2.0]), 0.5, exact=True)  # exp(-0.5), exp(-0.25)
    tensor([0.6065, 0.7788])
    """
    _check_time_step(dt)
    if isinstance(tau, (int, float)):  # a number stays a Python float (math, not numpy)
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive time constant, got tau={tau}")
        if exact:
            return math.exp(-dt / tau)
        if dt > tau:
            raise ValueError(
                f"dt={dt} > tau={tau}: the Euler step overshoots (beta = 1 - dt/tau < 0); "
                "use a smaller dt, or exact=True for the exponential discretization"
            )
        return 1.0 - dt / tau
    lib, tau = _array_namespace(tau)
    if not bool(lib.all(lib.isfinite(tau) & (tau > 0))):
        raise ValueError(f"tau must be a positive time constant, got tau={tau}")
    if exact:
        return lib.exp(-dt / tau)
    if bool(lib.any(tau < dt)):
        raise ValueError(
            f"dt={dt} > tau={float(tau.min()):.6g} (the smallest tau): the Euler step overshoots "
            "(beta = 1 - dt/tau < 0); use a smaller dt, or exact=True for the exponential "
            "discretization"
        )
    return 1.0 - dt / tau


def physical_tau(
    beta: float | Tensor | np.ndarray, dt: float, exact: bool = False
) -> float | Tensor | np.ndarray:
    """The time constant whose decay per step is ``beta``: the inverse of :func:`physical_beta`.

    ``dt / (1 - beta)`` (Euler) or ``-dt / ln(beta)`` (exact), elementwise for a tensor or numpy
    array. ``beta = 1`` (no leak) gives ``tau = inf``; ``beta = 0`` gives ``dt`` (Euler) or 0
    (exact). Raises ``ValueError`` for ``dt <= 0`` or a ``beta`` outside [0, 1].

    >>> physical_tau(0.75, 1.0)
    4.0
    >>> physical_tau(torch.tensor([0.5, 0.75]), 1.0, exact=True)  # ln 2 and ln(4/3) steps
    tensor([1.4427, 3.4761])
    >>> physical_tau(np.array([0.5, 1.0]), 1.0)  # beta = 1: no leak
    array([ 2., inf])
    """
    _check_time_step(dt)
    check_beta(beta)
    if isinstance(beta, (int, float)):
        if beta == 1.0:
            return math.inf
        if exact:
            return 0.0 if beta == 0.0 else -dt / math.log(beta)
        return dt / (1.0 - beta)
    lib, beta = _array_namespace(beta)
    with np.errstate(divide="ignore"):  # beta = 1 is tau = inf (and exact beta = 0 is tau = 0)
        return -dt / lib.log(beta) if exact else dt / (1.0 - beta)


def _check_time_step(dt: float) -> None:
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive time step, got dt={dt}")


def _array_namespace(a: Tensor | np.ndarray) -> tuple[ModuleType, Tensor | np.ndarray]:
    """``(torch, a)`` for a tensor, else ``(numpy, a as a float64 array)``."""
    if isinstance(a, Tensor):
        return torch, a
    return np, np.asarray(a, dtype=np.float64)


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of one LIF population. ``beta``, ``v_th`` and ``gain`` may be tensors that
    broadcast against the neuron shape (per-neuron values, learnable ones included).

    Build the deep-learning form directly and the physical form with :meth:`physical`:

    >>> LIFParameters(beta=0.9).v_th
    1.0
    >>> p = LIFParameters.physical(10.0, 0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0)
    >>> round(p.beta, 12), round(p.gain, 12)  # 1 - dt/tau, R dt/tau
    (0.99, 1.0)
    """

    beta: Tensor | float = 0.9
    v_th: Tensor | float = 1.0
    v_rest: float = 0.0
    v_reset: float = 0.0
    gain: Tensor | float = 1.0
    reset: str = "subtract"
    detach_reset: bool = False
    surrogate: _surrogate.Surrogate = field(default_factory=_surrogate.ATan)

    def __post_init__(self) -> None:
        if self.reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {self.reset!r}")
        if not isinstance(self.surrogate, _surrogate.Surrogate):
            object.__setattr__(self, "surrogate", _surrogate.get(self.surrogate))
        if not isinstance(self.beta, Tensor):  # tensors are checked once, where they are made
            check_beta(self.beta)
        if isinstance(self.v_th, (int, float)) and not self.v_th > self.v_reset:
            raise ValueError(
                f"the threshold v_th={self.v_th} must lie above v_reset={self.v_reset}, "
                "or a spike could not lower the potential"
            )

    @classmethod
    def physical(
        cls,
        tau: float,
        dt: float,
        v_rest: float,
        v_reset: float,
        v_th: float,
        r: float,
        *,
        exact: bool = False,
        reset: str = "zero",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
    ) -> LIFParameters:
        """The physical form: Euler (or, with ``exact``, exponential) steps of
        ``tau dv/dt = (v_rest - v) + R I``, resetting to ``v_reset`` by default."""
        beta = physical_beta(tau, dt, exact)
        if not (math.isfinite(r) and r > 0):
            raise ValueError(f"the membrane resistance r must be a positive number, got r={r}")
        return cls(
            beta=beta,
            v_th=v_th,
            v_rest=v_rest,
            v_reset=v_reset,
            gain=r * (1.0 - beta),
            reset=reset,
            detach_reset=detach_reset,
            surrogate=_surrogate.get(surrogate),
        )


class LIFSequence(NamedTuple):
    """What :func:`lif_sequence` returns.

    ``spikes`` is ``[T, B, ...]``; ``state`` the membrane potential after the last step
    (``[B, ...]``, pass it back in to continue a stream); ``membrane`` is the post-reset potential
    at every step, ``[T, B, ...]``, when asked for, else ``None``.
    """

    spikes: Tensor
    state: Tensor
    membrane: Tensor | None


def check_beta(beta: Tensor | np.ndarray | float) -> None:
    """Raise ``ValueError`` unless every ``beta`` lies in [0, 1]."""
    if isinstance(beta, Tensor):
        ok = bool(((beta >= 0) & (beta <= 1)).all())
    elif isinstance(beta, np.ndarray):
        ok = bool(np.all((beta >= 0) & (beta <= 1)))
    else:
        ok = 0.0 <= beta <= 1.0
    if not ok:
        raise ValueError(
            f"beta must lie in [0, 1] (the fraction of v - v_rest kept per step), got {beta}"
        )


def check_finite(x: Tensor, what: str = "input") -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or Inf (used when input checking is switched on)."""
    if not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"{what} holds {n_nan} NaN and {n_inf} Inf values; clean the data upstream "
            "(or construct the layer with check_input=False to skip this check)"
        )


def initial_state(x: Tensor, p: LIFParameters) -> Tensor:
    """The resting state ``v = v_rest`` with the shape, dtype and device of one step of ``x``."""
    return torch.full_like(x, p.v_rest)


def integrate(x: Tensor, v: Tensor, p: LIFParameters) -> Tensor:
    """The pre-spike potential ``h = v_rest + beta (v - v_rest) + gain x`` (leak and integrate)."""
    leak = p.beta * v if p.v_rest == 0 else p.v_rest + p.beta * (v - p.v_rest)
    return leak + (x if _is_one(p.gain) else p.gain * x)


def fire(h: Tensor, v_th: Tensor | float, p: LIFParameters) -> tuple[Tensor, Tensor]:
    """Spike where ``h`` reaches ``v_th``, then reset as ``p`` says: ``(spikes, new_state)``.

    ``v_th`` is ``p.v_th`` for the LIF; the adaptive threshold of ALIF passes its own, per step.
    """
    s = _surrogate.spike(h - v_th, p.surrogate)
    return s, _reset(h, s, v_th, p)


def _reset(h: Tensor, s: Tensor, v_th: Tensor | float, p: LIFParameters) -> Tensor:
    if p.reset == "none":
        return h
    r = s.detach() if p.detach_reset else s
    if p.reset == "subtract":
        return h - r * (v_th - p.v_reset)
    return h - r * (h - p.v_reset)  # "zero": h where no spike, v_reset where one


def lif_step(x: Tensor, state: Tensor | None, p: LIFParameters) -> tuple[Tensor, Tensor]:
    """One LIF step: input ``x`` (``[B, ...]``) and membrane ``state`` -> ``(spikes, new_state)``.

    ``state=None`` starts from rest. Plain autograd: this is also the reference the fused path is
    tested against.
    """
    v = initial_state(x, p) if state is None else state
    return fire(integrate(x, v, p), p.v_th, p)


def _native_unavailable(x: Tensor, p: LIFParameters) -> str | None:
    """Why the native kernel cannot run this call (a torch.compile trace cannot call C through
    ctypes), or ``None``."""
    if torch.compiler.is_compiling():
        return "torch.compile is tracing"
    return _native.unavailable_reason(x, p.surrogate)


def _broadcasts_into(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` broadcasts against ``target`` without enlarging it (what
    ``torch.broadcast_shapes(shape, target) == target`` says, without its cost per call)."""
    if len(shape) > len(target):
        return False
    return all(a in (1, b) for a, b in zip(reversed(shape), reversed(target), strict=False))


def _is_one(g: Tensor | float) -> bool:
    return isinstance(g, (int, float)) and g == 1


def _reference_sequence(
    x: Tensor, state: Tensor, p: LIFParameters, record_membrane: bool
) -> LIFSequence:
    spikes, trace = [], []
    v = state
    # unbind, not x[t]: indexing would make each step's backward write a full-size zero gradient
    for x_t in x.unbind(0):
        s, v = lif_step(x_t, v, p)
        spikes.append(s)
        if record_membrane:
            trace.append(v)
    return LIFSequence(torch.stack(spikes), v, torch.stack(trace) if record_membrane else None)


def lif_sequence(
    x: Tensor,
    state: Tensor | None,
    p: LIFParameters,
    *,
    record_membrane: bool = False,
    backend: str = "fused",
) -> LIFSequence:
    """Run the LIF over a time-first input ``x`` of shape ``[T, B, ...]``.

    The backends (all give the same spikes and states bit for bit, and the same gradients to
    rounding):

    * ``"fused"`` (default): the time loop inside one autograd node (:mod:`snn.kernels.fused`)
      that keeps one potential per chunk of steps for backward and runs the reverse recurrence by
      hand. It runs the ``"native"`` executor where that can run, ``"triton"`` on CUDA where
      that can run, else ``"eager"``.
    * ``"native"``: the fused node's C kernel (:mod:`snn.kernels.native`): CPU, float32 or
      float64, a built-in surrogate, and a C compiler. An error says which of these is missing.
    * ``"eager"``: the fused node as PyTorch operations; runs anywhere (GPU, bf16,
      ``torch.compile`` tracing, your own surrogate).
    * ``"triton"``: the fused node's Triton kernels (:mod:`snn.kernels.triton_lif`): CUDA, or
      CPU under ``TRITON_INTERPRET=1``; float32, float64 or bfloat16, a built-in surrogate.
    * ``"reference"``: a plain autograd loop over :func:`lif_step`, to compare against.
    """
    if x.dim() < 2:
        raise ValueError(
            f"expected a time-first input [T, B, ...], got shape {tuple(x.shape)}; "
            "add the missing dimensions (x[:, None] for a batch of one), "
            "or use lif_step for one step"
        )
    if x.shape[0] == 0:
        raise ValueError("the input has T = 0 time steps; pass at least one step along dim 0")
    # state=None (rest) goes on as None: the native kernel starts from rest itself, and the fused
    # node makes the resting state where its executor needs one
    if state is not None and state.shape != x.shape[1:]:
        raise ValueError(
            f"state shape {tuple(state.shape)} does not match one step of the input "
            f"{tuple(x.shape[1:])}; pass state=None to start from rest (snn never re-zeroes it "
            "silently)"
        )
    elif state is not None and (state.dtype != x.dtype or state.device != x.device):
        raise ValueError(
            f"state is {state.dtype} on {state.device} but the input is {x.dtype} on {x.device}; "
            "pass state.to(x) (snn does not convert it silently)"
        )
    if isinstance(p.gain, Tensor) and not _broadcasts_into(p.gain.shape, x.shape):
        raise ValueError(
            f"a gain of shape {tuple(p.gain.shape)} would broadcast the input {tuple(x.shape)} to "
            "a larger shape; give the gain the shape of the neurons (the input's trailing "
            "dimensions) or a scalar"
        )
    if backend == "reference":
        return _reference_sequence(x, initial_state(x[0], p) if state is None else state, p,
                                   record_membrane)  # fmt: skip
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    executor = backend
    if backend == "triton" or (backend == "fused" and x.device.type == "cuda"):
        from snn.kernels import triton_lif  # imports Triton: only when asked for, or on CUDA

        why = triton_lif.unavailable_reason(x, p.surrogate)
        if backend == "fused":
            executor = "eager" if why else "triton"
        elif why is not None:
            raise ValueError(f"backend='triton' cannot run here: {why}")
    elif backend in ("fused", "native"):
        why = _native_unavailable(x, p)
        if backend == "fused":
            executor = "eager" if why else "native"
        elif why is not None:
            raise ValueError(
                f"backend='native' cannot run here: {why}; use backend='fused', which picks "
                "the native kernel where it can and the eager executor elsewhere"
            )
    current = x if _is_one(p.gain) else p.gain * x
    args = (current, state, p.beta, p.v_th, p.v_rest, p.v_reset, p.reset, p.detach_reset)
    if executor == "triton":
        spikes, v_last, membrane = triton_lif.lif_sequence(*args, p.surrogate, record_membrane)
    else:
        spikes, v_last, membrane = fused_lif_sequence(
            *args, p.surrogate, record_membrane, executor=executor
        )
    return LIFSequence(spikes, v_last, membrane if record_membrane else None)
