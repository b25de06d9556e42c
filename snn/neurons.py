r"""LIF layers as ``torch.nn.Module``: thin wrappers around :mod:`snn.functional`.

:class:`LIF` runs a whole time-first sequence ``[T, B, ...] -> [T, B, ...]`` and drops into
``nn.Sequential``; :class:`LIFCell` runs one step with explicit state, for online use. Both
implement, per neuron and step,

.. math::

    h_t = v_{rest} + \beta (v_{t-1} - v_{rest}) + g\,x_t,\qquad
    s_t = H(h_t - v_{th}),\qquad
    v_t = \mathrm{reset}(h_t, s_t)

(see :mod:`snn.functional` for the reset modes). Neither keeps state between calls: each call of
:class:`LIF` starts from rest unless you pass ``state=``, so there is nothing to reset by hand.

**Two forms, two names for the threshold.** The deep-learning form, ``LIF(beta, threshold)``,
calls the firing threshold ``threshold``: a unitless number, usually 1 and often learned
(``learn_threshold``), stored as the layer's ``threshold`` parameter (the name in every state
dict). The physical form, ``LIF.physical(tau, dt, v_rest, v_reset, v_th, r)``, calls it ``v_th``:
a membrane potential in the units of ``v_rest`` and ``v_reset`` (mV, say) and named like them,
as the functional core's :class:`snn.functional.LIFParameters` names it for both forms. It is
the same quantity, in the same tensor; each layer's ``repr`` uses the argument names of the
constructor that built its form, so that it reads as that call. The resting potential is
``v_rest`` everywhere in snn (NIR calls it ``v_leak``; :mod:`snn.nir` translates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor, nn

from snn import surrogate as _surrogate
from snn.functional import (
    BACKENDS,
    RESET_MODES,
    LIFParameters,
    LIFSequence,
    check_beta,
    check_finite,
    lif_sequence,
    lif_step,
    physical_beta,
    physical_tau,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["LIF", "LIFCell", "LeakyIntegrator"]

# learnable decays stay inside (0, 1) through beta = sigmoid(w) (Fang et al., 2021, PLIF);
# the initial beta is clamped this far from 0 and 1 so that w is finite
_LOGIT_EPS = 1e-6

_Layer = TypeVar("_Layer", bound="_LIFBase")


class _LIFBase(nn.Module):
    """Parameter handling shared by :class:`LIF` and :class:`LIFCell`."""

    def __init__(
        self,
        beta: float | Tensor = 0.9,
        threshold: float | Tensor = 1.0,
        *,
        reset: str = "subtract",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
        v_rest: float = 0.0,
        v_reset: float = 0.0,
        r: float | None = None,
        shape: int | Sequence[int] | None = None,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        check_input: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {reset!r}")
        self.surrogate = _surrogate.get(surrogate)
        self.reset = reset
        self.detach_reset = bool(detach_reset)
        self.v_rest = float(v_rest)
        self.v_reset = float(v_reset)
        if r is not None and not (math.isfinite(r) and r > 0):
            raise ValueError(f"the membrane resistance r must be a positive number, got r={r}")
        self.r = None if r is None else float(r)
        self.shape = (
            (shape,) if isinstance(shape, int) else (None if shape is None else tuple(shape))
        )
        self.learn_beta = bool(learn_beta)
        self.learn_threshold = bool(learn_threshold)
        self.check_input = bool(check_input)
        # set by physical(): the time step, the discretization and the tau it was given
        self._dt: float | None = None
        self._exact = False
        self._tau: float | Tensor | None = None

        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        self._init_beta = self._initial_tensor("beta", beta, factory)
        self._init_threshold = self._initial_tensor("threshold", threshold, factory)
        check_beta(self._init_beta)
        if not float(self._init_threshold.min()) > self.v_reset:
            raise ValueError(
                f"the threshold must lie above v_reset={self.v_reset}, got {threshold}"
            )
        if self.learn_beta:
            self.beta_logit = nn.Parameter(torch.empty_like(self._init_beta))
        else:
            self.register_buffer("beta_fixed", torch.empty_like(self._init_beta))
        if self.learn_threshold:
            self.threshold = nn.Parameter(torch.empty_like(self._init_threshold))
        else:
            self.register_buffer("threshold", torch.empty_like(self._init_threshold))
        self.reset_parameters()

    def _initial_tensor(self, name: str, value: float | Tensor, factory: dict) -> Tensor:
        # straight to the target dtype: a float64 layer must not see 0.99 rounded to float32
        t = torch.as_tensor(value, **factory).detach().clone()
        if self.shape is not None:
            try:
                t = t.expand(self.shape).clone()
            except RuntimeError:
                raise ValueError(
                    f"{name} of shape {tuple(t.shape)} cannot take the per-neuron "
                    f"shape {self.shape}"
                ) from None
        return t

    @classmethod
    def physical(
        cls: type[_Layer],
        tau: float | Tensor | np.ndarray,
        dt: float,
        v_rest: float,
        v_reset: float,
        v_th: float | Tensor | np.ndarray,
        r: float,
        *,
        exact: bool = False,
        reset: str = "zero",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
        shape: int | Sequence[int] | None = None,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        check_input: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> _Layer:
        """The physical form, as :meth:`snn.LIF.physical` (which also takes ``backend``)."""
        return cls._build_physical(
            tau,
            dt,
            exact,
            v_th,
            dict(
                v_rest=v_rest,
                v_reset=v_reset,
                r=r,
                reset=reset,
                detach_reset=detach_reset,
                surrogate=surrogate,
                shape=shape,
                learn_beta=learn_beta,
                learn_threshold=learn_threshold,
                check_input=check_input,
                device=device,
                dtype=dtype,
            ),
        )

    @classmethod
    def _build_physical(
        cls: type[_Layer],
        tau: float | Tensor | np.ndarray,
        dt: float,
        exact: bool,
        v_th: float | Tensor | np.ndarray,
        options: dict,
    ) -> _Layer:
        """What :meth:`physical` builds, from the constructor's keyword arguments ``options``."""
        v_reset = options["v_reset"]
        lowest_v_th = v_th if isinstance(v_th, (int, float)) else float(torch.as_tensor(v_th).min())
        if not lowest_v_th > v_reset:
            raise ValueError(f"v_th={v_th} must lie above v_reset={v_reset}")
        layer = cls(beta=physical_beta(tau, dt, exact), threshold=v_th, **options)
        layer._dt, layer._exact = float(dt), bool(exact)
        # the given tau, reported while beta is fixed (beta rounded to float32 would blur it)
        tau_t = torch.as_tensor(tau, dtype=torch.float64)
        layer._tau = float(tau_t) if tau_t.dim() == 0 else tau_t.detach().cpu().clone()
        return layer

    def reset_parameters(self) -> None:
        """Restore beta and threshold to their constructor values."""
        with torch.no_grad():
            if self.learn_beta:
                b = self._init_beta.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)
                self.beta_logit.copy_(torch.log(b) - torch.log1p(-b))
            else:
                self.beta_fixed.copy_(self._init_beta)
            self.threshold.copy_(self._init_threshold)

    @property
    def beta(self) -> Tensor:
        """The decay per step, in (0, 1) when learnable."""
        return torch.sigmoid(self.beta_logit) if self.learn_beta else self.beta_fixed

    @property
    def dt(self) -> float | None:
        """The time step of the physical form (``None`` for the deep-learning form)."""
        return self._dt

    @property
    def exact(self) -> bool:
        """Whether the physical form uses the exponential (``True``) or Euler discretization."""
        return self._exact

    @property
    def tau(self) -> Tensor | None:
        """The membrane time constant (physical form only): the one given to :meth:`physical`
        while beta is fixed, else the one implied by the current beta and dt."""
        if self._dt is None:
            return None
        b = self.beta.detach()
        if self._tau is not None and not self.learn_beta:
            if isinstance(self._tau, Tensor):
                return self._tau.to(b).expand_as(b).clone()
            return torch.full_like(b, self._tau)
        return physical_tau(b, self._dt, self._exact)

    def parameters_for(self, x: Tensor) -> LIFParameters:
        """The functional parameters, cast to the dtype of ``x`` (so float64 stays float64)."""
        if self.check_input:
            check_finite(x)
        beta = self.beta.to(x.dtype)
        return LIFParameters(
            beta=beta,
            v_th=self.threshold.to(x.dtype),
            v_rest=self.v_rest,
            v_reset=self.v_reset,
            gain=1.0 if self.r is None else self.r * (1 - beta),
            reset=self.reset,
            detach_reset=self.detach_reset,
            surrogate=self.surrogate,
        )

    def _check_features(self, features: torch.Size, where: str) -> None:
        if self.shape is not None:
            n = len(self.shape)
            if tuple(features[-n:]) != self.shape:
                raise ValueError(
                    f"this layer has per-neuron parameters of shape {self.shape}, but the input "
                    f"{where} has feature shape {tuple(features)}"
                )

    def extra_repr(self) -> str:
        def show(t: Tensor) -> str:
            return f"{t.item():.4g}" if t.numel() == 1 else f"<per-neuron {tuple(t.shape)}>"

        if self._dt is not None:
            tau = self.tau
            parts = [
                f"tau={show(tau)}",
                f"dt={self._dt:g}",
                f"v_rest={self.v_rest:g}",
                f"v_reset={self.v_reset:g}",
                f"v_th={show(self.threshold.detach())}",
                f"r={self.r:g}",
            ]
            if self._exact:
                parts.append("exact=True")
        else:
            parts = [
                f"beta={show(self.beta.detach())}",
                f"threshold={show(self.threshold.detach())}",
            ]
            if self.v_rest or self.v_reset:
                parts += [f"v_rest={self.v_rest:g}", f"v_reset={self.v_reset:g}"]
            if self.r is not None:
                parts.append(f"r={self.r:g}")
        parts += [f"reset={self.reset}", f"surrogate={self.surrogate}"]
        if self.detach_reset:
            parts.append("detach_reset=True")
        if self.learn_beta:
            parts.append("learn_beta=True")
        if self.learn_threshold:
            parts.append("learn_threshold=True")
        return ", ".join(parts)


class LIF(_LIFBase):
    r"""A layer of leaky integrate-and-fire neurons over a whole sequence.

    Input ``[T, B, ...]`` (time first) of input currents; output spikes of the same shape and
    dtype. Each call starts from rest (``v = v_rest``) unless ``state`` is passed to :meth:`run`.

    Deep-learning form (snnTorch's ``Leaky``), with one beta or one per neuron:

    >>> import torch, snn
    >>> snn.LIF(beta=0.9)  # threshold 1, subtract reset, arctan surrogate
    LIF(beta=0.9, threshold=1, reset=subtract, surrogate=ATan(alpha=2.0))
    >>> snn.LIF(beta=0.9, shape=100, learn_beta=True, learn_threshold=True)
    LIF(beta=<per-neuron (100,)>, threshold=<per-neuron (100,)>, reset=subtract,
        surrogate=ATan(alpha=2.0), learn_beta=True, learn_threshold=True)

    Physical form (``tau dv/dt = (v_rest - v) + R I``, Euler or exact steps; see
    :meth:`physical`):

    >>> snn.LIF.physical(tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0)
    LIF(tau=10, dt=0.1, v_rest=-65, v_reset=-70, v_th=-50, r=100, reset=zero,
        surrogate=ATan(alpha=2.0))

    Args:
        beta: decay per step in [0, 1]; a scalar, or a tensor broadcastable to the neuron shape.
        threshold: the firing threshold ``v_th``; scalar or per-neuron.
        reset: ``"subtract"`` (``v -= v_th - v_reset``), ``"zero"`` (``v = v_reset``) or ``"none"``.
        detach_reset: stop gradients flowing through the reset.
        surrogate: a name from :func:`snn.surrogate.available` or a ``Surrogate`` instance.
        v_rest, v_reset: resting and reset potentials.
        r: membrane resistance; when given the input gain is ``r * (1 - beta)`` (physical form),
            else 1.
        shape: per-neuron parameters of this shape (the trailing dims of the input), initialized
            from the scalar ``beta``/``threshold``.
        learn_beta: learn beta through ``beta = sigmoid(w)`` (PLIF), which keeps it in (0, 1).
        learn_threshold: learn the threshold.
        check_input: raise on NaN/Inf input (costs a reduction per call).
        backend: ``"fused"`` (default: one autograd node for the whole loop, run by the native
            C kernel on CPU where it can, else by PyTorch operations), ``"native"``, ``"eager"``,
            or ``"reference"`` (a plain autograd loop over :func:`snn.functional.lif_step`); see
            :func:`snn.functional.lif_sequence`.

    Example:

    >>> lif = snn.LIF(beta=0.5)
    >>> lif(torch.full((4, 1, 1), 0.6)).flatten().tolist()
    [0.0, 0.0, 1.0, 0.0]
    """

    def __init__(
        self,
        beta: float | Tensor = 0.9,
        threshold: float | Tensor = 1.0,
        *,
        reset: str = "subtract",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
        v_rest: float = 0.0,
        v_reset: float = 0.0,
        r: float | None = None,
        shape: int | Sequence[int] | None = None,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        check_input: bool = False,
        backend: str = "fused",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            beta,
            threshold,
            reset=reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
            v_rest=v_rest,
            v_reset=v_reset,
            r=r,
            shape=shape,
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            check_input=check_input,
            device=device,
            dtype=dtype,
        )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend

    @classmethod
    def physical(
        cls,
        tau: float | Tensor | np.ndarray,
        dt: float,
        v_rest: float,
        v_reset: float,
        v_th: float | Tensor | np.ndarray,
        r: float,
        *,
        exact: bool = False,
        reset: str = "zero",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
        shape: int | Sequence[int] | None = None,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        check_input: bool = False,
        backend: str = "fused",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> LIF:
        """The physical form: steps of ``tau dv/dt = (v_rest - v) + R I`` of length ``dt``.

        ``beta = 1 - dt/tau`` (Euler) or ``exp(-dt/tau)`` (``exact=True``), gain ``R (1 - beta)``,
        threshold ``v_th``, reset to ``v_reset`` (``reset="zero"``). Units are yours: tau and dt in
        ms, potentials in mV, R in MOhm, inputs in nA. ``tau`` and ``v_th`` may be per neuron
        (tensors or numpy arrays broadcastable to the neuron shape); the other keywords are the
        constructor's. The layer keeps ``dt``, ``exact`` and ``tau`` (see :attr:`tau`).

        >>> lif = LIF.physical(torch.tensor([5.0, 10.0]), dt=1.0, v_rest=0.0, v_reset=0.0,
        ...                    v_th=1.0, r=2.0)
        >>> lif.beta, lif.tau, lif.dt, lif.exact
        (tensor([0.8000, 0.9000]), tensor([ 5., 10.]), 1.0, False)
        """
        return cls._build_physical(
            tau,
            dt,
            exact,
            v_th,
            dict(
                v_rest=v_rest,
                v_reset=v_reset,
                r=r,
                reset=reset,
                detach_reset=detach_reset,
                surrogate=surrogate,
                shape=shape,
                learn_beta=learn_beta,
                learn_threshold=learn_threshold,
                check_input=check_input,
                backend=backend,
                device=device,
                dtype=dtype,
            ),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Spikes ``[T, B, ...]`` for input currents ``x`` of shape ``[T, B, ...]``, from rest."""
        return self.run(x).spikes

    def run(
        self, x: Tensor, state: Tensor | None = None, *, record_membrane: bool = False
    ) -> LIFSequence:
        """Run over ``x`` (``[T, B, ...]``) from ``state`` (``[B, ...]``; ``None`` = rest).

        Returns ``LIFSequence(spikes, state, membrane)``: the spikes, the final membrane potential
        (pass it back as ``state`` to stream the next chunk), and with ``record_membrane`` the
        post-reset membrane potential at every step.
        """
        if x.dim() < 2:
            raise ValueError(
                f"LIF expects a time-first input [T, B, ...], got a {x.dim()}-D tensor of shape "
                f"{tuple(x.shape)}; for a single sample use x[:, None], for one step use LIFCell"
            )
        if not x.is_floating_point():
            raise TypeError(f"LIF expects a floating-point input, got {x.dtype}; use x.float()")
        self._check_features(x.shape[2:], "[T, B, ...]")
        return lif_sequence(
            x, state, self.parameters_for(x), record_membrane=record_membrane, backend=self.backend
        )

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.backend == "fused" else f"{text}, backend={self.backend}"


class LIFCell(_LIFBase):
    """One step of a LIF layer with explicit state: ``spikes, state = cell(x, state)``.

    ``x`` is ``[B, ...]``; ``state=None`` starts from rest. Same arguments (less ``backend``) and
    equation as :class:`LIF`, and the same :meth:`physical` constructor.

    >>> import torch, snn
    >>> cell = snn.LIFCell(beta=0.9)
    >>> state = None
    >>> for x_t in torch.full((3, 1), 0.6):  # a stream of [B] inputs; v: 0.6, 1.14 -> 0.14, 0.726
    ...     spikes, state = cell(x_t, state)
    ...     print(spikes.item(), round(state.item(), 4))
    0.0 0.6
    1.0 0.14
    0.0 0.726
    """

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() == 0:
            raise ValueError(
                "LIFCell expects a batch-first input [B, ...] (at least 1-D), got a 0-D tensor; "
                "for a single neuron use x.reshape(1) (or x.unsqueeze(0))"
            )
        if not x.is_floating_point():
            raise TypeError(f"LIFCell expects a floating-point input, got {x.dtype}; use x.float()")
        if state is not None and state.shape != x.shape:
            raise ValueError(
                f"state shape {tuple(state.shape)} does not match the input {tuple(x.shape)}; "
                "pass state=None to start from rest (snn never re-zeroes it silently)"
            )
        self._check_features(x.shape[1:], "[B, ...]")
        return lif_step(x, state, self.parameters_for(x))


class LeakyIntegrator(nn.Module):
    r"""The LIF membrane without spikes or reset: ``tau dv/dt = (v_rest - v) + R I``.

    A readout layer for rate-free classification and the import target of NIR's ``LI`` and ``I``
    (whose ``v_leak`` is ``v_rest`` here). Maps ``[T, B, ...]`` input currents to the membrane
    potential ``[T, B, ...]`` after each step: ``v_t = v_rest + beta (v_{t-1} - v_rest) + gain
    x_t`` from ``v_0 = v_rest``. It runs its input, scaled by ``gain``, through an
    :class:`snn.LIF` with ``reset="none"`` and an infinite threshold (its ``lif`` attribute), so the
    LIF math stays in :mod:`snn.functional`. ``beta`` and ``gain`` may be per neuron. ``beta = 1``
    is the integrator ``I``.

    >>> import torch
    >>> li = LeakyIntegrator(beta=0.5, gain=1.0)
    >>> li(torch.ones(3, 1, 1)).flatten().tolist()
    [1.0, 1.5, 1.75]
    """

    def __init__(
        self,
        beta: float | Tensor,
        gain: float | Tensor = 1.0,
        v_rest: float = 0.0,
        *,
        shape: tuple[int, ...] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.lif = LIF(beta, math.inf, reset="none", v_rest=v_rest, shape=shape, dtype=dtype)
        gain_t = torch.as_tensor(gain, dtype=dtype or torch.get_default_dtype())
        self.register_buffer("gain", gain_t.expand(shape).clone() if shape else gain_t)

    def forward(self, x: Tensor) -> Tensor:
        """The membrane potential ``[T, B, ...]`` for input currents ``x`` ``[T, B, ...]``."""
        current = x * self.gain.to(x.dtype)
        return self.lif.run(current, record_membrane=True).membrane

    def extra_repr(self) -> str:
        g = self.gain
        return f"gain={g.item():.4g}" if g.numel() == 1 else f"gain=<per-neuron {tuple(g.shape)}>"
