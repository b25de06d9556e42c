r"""The LIF family as layers: :class:`CubaLIF`, :class:`ALIF` (with their cells) and
:class:`Recurrent`, thin wrappers around :mod:`snn.family_functional`.

Like :class:`snn.LIF`, each layer maps a time-first input ``[T, B, ...]`` to spikes of the same
shape, starts from rest on every call unless you pass ``state=`` to ``run``, and keeps no state
between calls: the state is a NamedTuple you hold (``CubaLIFState(i, v)``, ``ALIFState(v, a)``,
``RecurrentState(neuron, spikes)``). The LIF's options all carry over: per-neuron ``shape``,
learnable parameters, every reset mode, ``detach_reset``, every surrogate, the physical form.

**CubaLIF**, a current-based LIF: the input charges a synaptic current that decays by ``alpha``
per step, and the current (not the input) charges the membrane::

    i_t = alpha i_{t-1} + x_t
    h_t = v_rest + beta (v_{t-1} - v_rest) + i_t,   then spike and reset as the LIF

A single input pulse thus keeps driving the membrane for a while (``alpha^t`` after ``t`` steps):

>>> import torch, snn
>>> cuba = snn.CubaLIF(alpha=0.5, beta=0.9, threshold=10.0)  # too high a threshold to fire
>>> x = torch.zeros(4, 1, 1)
>>> x[0] = 1.0  # one pulse
>>> out = cuba.run(x, record_membrane=True)
>>> out.membrane.flatten().tolist()  # 1, 0.9 + 0.5, 1.26 + 0.25, 1.359 + 0.125
[1.0, 1.399999976158142, 1.5099999904632568, 1.4839999675750732]

**ALIF**, an adaptive threshold (Bellec et al. 2018): each spike raises the threshold, which
relaxes back by ``rho`` per step::

    theta_t = threshold + adapt a_{t-1}
    s_t = H(h_t - theta_t),  the subtract reset removes theta_t - v_reset
    a_t = rho a_{t-1} + (1 - rho) s_t

>>> alif = snn.ALIF(beta=0.9, rho=0.9, adapt=2.0)
>>> lif = snn.LIF(beta=0.9)
>>> drive = torch.full((50, 1, 1), 0.5)
>>> int(lif(drive).sum()), int(alif(drive).sum())  # adaptation spaces the spikes out
(22, 15)

**Recurrent** wraps a layer of the family: the neuron's input at step ``t`` is
``x_t + bias + weight @ s_{t-1}``, the spikes of the step before fed back through an ``[N, N]``
weight (snnTorch's ``RLeaky(all_to_all=True)``):

>>> rsnn = snn.Recurrent(snn.ALIF(beta=0.9, shape=16, learn_rho=True), 16)
>>> rsnn(torch.rand(20, 3, 16)).shape
torch.Size([20, 3, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from snn import surrogate as _surrogate
from snn.family_functional import (
    FAMILY_BACKENDS,
    ALIFParameters,
    ALIFSequence,
    ALIFState,
    CubaLIFParameters,
    CubaLIFSequence,
    CubaLIFState,
    RecurrentSequence,
    RecurrentState,
    _check_decay,
    alif_sequence,
    alif_step,
    cuba_lif_sequence,
    cuba_lif_step,
    neuron_rest,
    neuron_step,
    recurrent_sequence,
)
from snn.functional import physical_beta, physical_tau
from snn.neurons import _LOGIT_EPS, _LIFBase

__all__ = ["CubaLIF", "CubaLIFCell", "ALIF", "ALIFCell", "Recurrent"]


class _FamilyBase(_LIFBase):
    """The LIF's parameter handling plus extra per-neuron parameters: decays in (0, 1) learnt
    through a sigmoid (``alpha``, ``rho``, like ``beta``) and plain ones (``adapt``)."""

    _extras: tuple[tuple[str, bool], ...] = ()  # (name, is a decay), set in _add_extra

    def _add_extra(self, name: str, value, learn: bool, decay: bool, factory: dict) -> None:
        init = self._initial_tensor(name, value, factory)
        if decay:
            _check_decay(name, float(init.min()))
            _check_decay(name, float(init.max()))
        elif not float(init.min()) >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        setattr(self, f"_init_{name}", init)
        setattr(self, f"learn_{name}", bool(learn))
        slot = f"{name}_logit" if decay and learn else (name if learn else f"{name}_fixed")
        if learn:  # straight into _parameters: a property of this name (adapt) reads it there
            self._parameters[slot] = nn.Parameter(torch.empty_like(init))
        else:
            self.register_buffer(slot, torch.empty_like(init))
        self._extras = (*self._extras, (name, decay))
        self._reset_extra(name, decay)

    def _reset_extra(self, name: str, decay: bool) -> None:
        init = getattr(self, f"_init_{name}")
        with torch.no_grad():
            if decay and getattr(self, f"learn_{name}"):
                b = init.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)
                getattr(self, f"{name}_logit").copy_(torch.log(b) - torch.log1p(-b))
            elif getattr(self, f"learn_{name}"):
                self._parameters[name].copy_(init)
            else:
                getattr(self, f"{name}_fixed").copy_(init)

    def _extra(self, name: str) -> Tensor:
        if not getattr(self, f"learn_{name}"):
            return getattr(self, f"{name}_fixed")
        if f"{name}_logit" in self._parameters:
            return torch.sigmoid(self._parameters[f"{name}_logit"])
        return self._parameters[name]

    def reset_parameters(self) -> None:
        """Restore every parameter to its constructor value."""
        super().reset_parameters()
        for name, decay in self._extras:
            self._reset_extra(name, decay)

    def _show(self, name: str) -> str:
        t = self._extra(name).detach()
        shown = f"{t.item():.4g}" if t.numel() == 1 else f"<per-neuron {tuple(t.shape)}>"
        return f"{name}={shown}"

    def _learn_flags(self) -> str:
        return "".join(
            f", learn_{name}=True" for name, _ in self._extras if getattr(self, f"learn_{name}")
        )

    def _check_x(self, x: Tensor, min_dim: int, what: str) -> None:
        shape = "[T, B, ...]" if min_dim == 2 else "[B, ...]"
        if x.dim() < min_dim:
            raise ValueError(
                f"{type(self).__name__} expects {what} input {shape}, got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"{type(self).__name__} expects a floating-point input, got {x.dtype}; "
                "use x.float()"
            )
        self._check_features(x.shape[min_dim:], shape)


def _backend_checked(backend: str) -> str:
    if backend not in FAMILY_BACKENDS:
        raise ValueError(f"backend must be one of {FAMILY_BACKENDS}, got {backend!r}")
    return backend


# ---------------------------------------------------------------------------------------------
# CubaLIF


class _CubaLIFBase(_FamilyBase):
    def __init__(
        self,
        alpha: float | Tensor = 0.8,
        beta: float | Tensor = 0.9,
        threshold: float | Tensor = 1.0,
        *,
        reset: str = "subtract",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
        v_rest: float = 0.0,
        v_reset: float = 0.0,
        r: float | None = None,
        w_in: float | None = None,
        shape: int | Sequence[int] | None = None,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        check_input: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            beta, threshold, reset=reset, detach_reset=detach_reset, surrogate=surrogate,
            v_rest=v_rest, v_reset=v_reset, r=r, shape=shape, learn_beta=learn_beta,
            learn_threshold=learn_threshold, check_input=check_input, device=device, dtype=dtype,
        )  # fmt: skip
        if w_in is not None and not math.isfinite(w_in):
            raise ValueError(f"w_in must be a finite number, got w_in={w_in}")
        self.w_in = None if w_in is None else float(w_in)
        self._tau_syn: float | Tensor | None = None
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        self._add_extra("alpha", alpha, learn_alpha, True, factory)

    @property
    def alpha(self) -> Tensor:
        """The synaptic current's decay per step, in (0, 1) when learnable."""
        return self._extra("alpha")

    @property
    def tau_syn(self) -> Tensor | None:
        """The synaptic time constant (physical form only), as :attr:`tau` is the membrane's."""
        if self._dt is None:
            return None
        a = self.alpha.detach()
        if self._tau_syn is not None and not self.learn_alpha:
            return torch.as_tensor(self._tau_syn).to(a).expand_as(a).clone()
        return physical_tau(a, self._dt, self._exact)

    @classmethod
    def physical(
        cls,
        tau_syn: float | Tensor,
        tau_mem: float | Tensor,
        dt: float,
        v_rest: float,
        v_reset: float,
        v_th: float | Tensor,
        r: float,
        w_in: float = 1.0,
        exact: bool = False,
        **options,
    ):
        """NIR's CubaLIF: ``tau_syn di/dt = -i + w_in x`` and ``tau_mem dv/dt = (v_rest - v) +
        r i``, in steps of ``dt``.

        Euler: ``alpha = 1 - dt/tau_syn``, the current gains ``(dt/tau_syn) w_in x_t``,
        ``beta = 1 - dt/tau_mem``, the membrane gains ``(dt/tau_mem) r i_t``; ``exact=True``
        uses ``exp(-dt/tau)`` and the gains ``(1 - alpha) w_in`` and ``(1 - beta) r``. The reset
        is ``"zero"`` (to ``v_reset``) unless ``reset=`` says otherwise; the other keywords are
        the constructor's.

        >>> cuba = CubaLIF.physical(tau_syn=5.0, tau_mem=10.0, dt=1.0, v_rest=0.0, v_reset=0.0,
        ...                         v_th=1.0, r=2.0, w_in=3.0)
        >>> cuba
        CubaLIF(tau_syn=5, tau_mem=10, dt=1, v_rest=0, v_reset=0, v_th=1, r=2, w_in=3,
          reset=zero, surrogate=ATan(alpha=2.0))
        """
        options.setdefault("reset", "zero")
        layer = cls._build_physical(
            tau_mem, dt, exact, v_th,
            dict(v_rest=v_rest, v_reset=v_reset, r=r, alpha=physical_beta(tau_syn, dt, exact),
                 w_in=w_in, **options),
        )  # fmt: skip
        tau_t = torch.as_tensor(tau_syn, dtype=torch.float64)
        layer._tau_syn = float(tau_t) if tau_t.dim() == 0 else tau_t.detach().cpu().clone()
        return layer

    def parameters_for(self, x: Tensor) -> CubaLIFParameters:
        """The functional parameters, cast to the dtype of ``x``."""
        alpha = self.alpha.to(x.dtype)
        gain = 1.0 if self.w_in is None else self.w_in * (1 - alpha)
        return CubaLIFParameters(alpha=alpha, lif=super().parameters_for(x), input_gain=gain)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self._dt is not None:
            tau_syn = self.tau_syn
            shown = f"{tau_syn.item():.4g}" if tau_syn.numel() == 1 else "<per-neuron>"
            text = f"tau_syn={shown}, tau_mem=" + text[len("tau=") :]
        else:
            text = f"{self._show('alpha')}, {text}"
        if self.w_in is not None:
            head, sep, tail = text.partition(", reset=")
            text = f"{head}, w_in={self.w_in:g}{sep}{tail}"
        return text + self._learn_flags()


class CubaLIF(_CubaLIFBase):
    r"""A layer of current-based LIF neurons over a whole sequence ``[T, B, ...] -> spikes``.

    One step (see :mod:`snn.family_neurons` for a worked example)::

        i_t = alpha i_{t-1} + g_in x_t
        h_t = v_rest + beta (v_{t-1} - v_rest) + g i_t,  s_t = H(h_t - threshold),  reset

    with ``g_in = 1`` and ``g = 1`` in this deep-learning form (snnTorch's ``Synaptic`` with
    ``reset_delay=False``: the fresh current enters the same step), and ``g_in = w_in (1 -
    alpha)``, ``g = r (1 - beta)`` when ``w_in`` and ``r`` are given (the physical form,
    :meth:`physical`, NIR's CubaLIF).

    >>> import snn
    >>> snn.CubaLIF(alpha=0.8, beta=0.9, shape=10, learn_alpha=True)
    CubaLIF(alpha=<per-neuron (10,)>, beta=<per-neuron (10,)>, threshold=<per-neuron (10,)>,
      reset=subtract, surrogate=ATan(alpha=2.0), learn_alpha=True)

    Args:
        alpha: the current's decay per step in [0, 1]; scalar or per neuron.
        beta, threshold, reset, detach_reset, surrogate, v_rest, v_reset, r, shape,
            learn_beta, learn_threshold, check_input, device, dtype: as :class:`snn.LIF`.
        w_in: the input's weight into the current; when given the input gain is
            ``w_in (1 - alpha)``, else 1.
        learn_alpha: learn ``alpha = sigmoid(w)`` per neuron, as ``learn_beta`` does ``beta``.
        backend: ``"fused"`` (default: one node for the sequence: the native C kernel on CPU,
            the Triton kernels on CUDA, where each runs), ``"triton"`` (the Triton kernels, or
            an error saying why they cannot run) or ``"reference"`` (a plain autograd loop over
            the step).
    """

    def __init__(self, *args, backend: str = "fused", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = _backend_checked(backend)

    def forward(self, x: Tensor) -> Tensor:
        """Spikes ``[T, B, ...]`` for inputs ``x`` of shape ``[T, B, ...]``, from rest."""
        return self.run(x).spikes

    def run(
        self, x: Tensor, state: CubaLIFState | None = None, *, record_membrane: bool = False
    ) -> CubaLIFSequence:
        """Run from ``state`` (``None`` = rest): ``CubaLIFSequence(spikes, state, membrane)``,
        the membrane potential at every step only with ``record_membrane``."""
        self._check_x(x, 2, "a time-first")
        return cuba_lif_sequence(
            x, state, self.parameters_for(x), record_membrane=record_membrane, backend=self.backend
        )


class CubaLIFCell(_CubaLIFBase):
    """One CubaLIF step with explicit state: ``spikes, state = cell(x, state)`` for ``x`` of
    shape ``[B, ...]``; the arguments (less ``backend``) and :meth:`physical` are
    :class:`CubaLIF`'s.

    >>> import torch, snn
    >>> cell = snn.CubaLIFCell(alpha=0.5, beta=0.9)
    >>> spikes, state = cell(torch.ones(1, 1))
    >>> state
    CubaLIFState(i=tensor([[1.]]), v=tensor([[0.]]))
    """

    def forward(self, x: Tensor, state: CubaLIFState | None = None) -> tuple[Tensor, CubaLIFState]:
        self._check_x(x, 1, "a batch-first")
        return cuba_lif_step(x, state, self.parameters_for(x))


# ---------------------------------------------------------------------------------------------
# ALIF


class _ALIFBase(_FamilyBase):
    def __init__(
        self,
        beta: float | Tensor = 0.9,
        rho: float | Tensor = 0.95,
        adapt: float | Tensor = 1.8,
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
        learn_rho: bool = False,
        learn_adapt: bool = False,
        learn_threshold: bool = False,
        check_input: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            beta, threshold, reset=reset, detach_reset=detach_reset, surrogate=surrogate,
            v_rest=v_rest, v_reset=v_reset, r=r, shape=shape, learn_beta=learn_beta,
            learn_threshold=learn_threshold, check_input=check_input, device=device, dtype=dtype,
        )  # fmt: skip
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        self._tau_adapt: float | Tensor | None = None
        self._add_extra("rho", rho, learn_rho, True, factory)
        self._add_extra("adapt", adapt, learn_adapt, False, factory)

    @property
    def rho(self) -> Tensor:
        """The adaptation's decay per step, in (0, 1) when learnable."""
        return self._extra("rho")

    @property
    def adapt(self) -> Tensor:
        """How far the threshold rises per unit of adaptation ``a`` (a spike adds ``1 - rho``)."""
        return self._extra("adapt")

    @property
    def tau_adapt(self) -> Tensor | None:
        """The adaptation's time constant (physical form only)."""
        if self._dt is None:
            return None
        r = self.rho.detach()
        if self._tau_adapt is not None and not self.learn_rho:
            return torch.as_tensor(self._tau_adapt).to(r).expand_as(r).clone()
        return physical_tau(r, self._dt, self._exact)

    @classmethod
    def physical(
        cls,
        tau: float | Tensor,
        dt: float,
        v_rest: float,
        v_reset: float,
        v_th: float | Tensor,
        r: float,
        *,
        tau_adapt: float | Tensor,
        adapt: float | Tensor,
        exact: bool = False,
        **options,
    ):
        """The LIF's physical form (:meth:`snn.LIF.physical`) with a threshold that rises by
        ``adapt (1 - rho)`` (in the units of ``v_th``) per spike and relaxes with time constant
        ``tau_adapt``: ``rho = 1 - dt/tau_adapt`` (Euler) or ``exp(-dt/tau_adapt)``.

        >>> ALIF.physical(20.0, 1.0, -65.0, -70.0, -50.0, 10.0, tau_adapt=200.0, adapt=5.0)
        ALIF(tau=20, dt=1, v_rest=-65, v_reset=-70, v_th=-50, r=10, tau_adapt=200, adapt=5,
          reset=zero, surrogate=ATan(alpha=2.0))
        """
        options.setdefault("reset", "zero")
        rho = physical_beta(tau_adapt, dt, exact)
        layer = cls._build_physical(
            tau, dt, exact, v_th,
            dict(v_rest=v_rest, v_reset=v_reset, r=r, rho=rho, adapt=adapt, **options),
        )  # fmt: skip
        tau_t = torch.as_tensor(tau_adapt, dtype=torch.float64)
        layer._tau_adapt = float(tau_t) if tau_t.dim() == 0 else tau_t.detach().cpu().clone()
        return layer

    def parameters_for(self, x: Tensor) -> ALIFParameters:
        """The functional parameters, cast to the dtype of ``x``."""
        return ALIFParameters(
            lif=super().parameters_for(x), rho=self.rho.to(x.dtype), adapt=self.adapt.to(x.dtype)
        )

    def extra_repr(self) -> str:
        head, sep, tail = super().extra_repr().partition(", reset=")
        if self._dt is not None:
            tau_adapt = self.tau_adapt
            shown = f"{tau_adapt.item():.4g}" if tau_adapt.numel() == 1 else "<per-neuron>"
            head += f", tau_adapt={shown}"
        else:
            head += f", {self._show('rho')}"
        return f"{head}, {self._show('adapt')}{sep}{tail}{self._learn_flags()}"


class ALIF(_ALIFBase):
    r"""A layer of adaptive-threshold LIF neurons (Bellec et al. 2018's LSNN neuron) over a whole
    sequence ``[T, B, ...] -> spikes``.

    One step (a worked example is in :mod:`snn.family_neurons`)::

        theta_t = threshold + adapt a_{t-1}
        h_t = v_rest + beta (v_{t-1} - v_rest) + g x_t,  s_t = H(h_t - theta_t)
        v_t = h_t - s_t (theta_t - v_reset)  (subtract; "zero" sets v_reset)
        a_t = rho a_{t-1} + (1 - rho) s_t

    >>> import snn
    >>> snn.ALIF(beta=0.9, rho=0.95, adapt=1.8, shape=4, learn_rho=True, learn_adapt=True)
    ALIF(beta=<per-neuron (4,)>, threshold=<per-neuron (4,)>, rho=<per-neuron (4,)>,
      adapt=<per-neuron (4,)>, reset=subtract, surrogate=ATan(alpha=2.0), learn_rho=True,
      learn_adapt=True)

    Args:
        beta, threshold, reset, detach_reset, surrogate, v_rest, v_reset, r, shape,
            learn_beta, learn_threshold, check_input, device, dtype: as :class:`snn.LIF`
            (``threshold`` is the threshold at rest).
        rho: the adaptation's decay per step in [0, 1]; scalar or per neuron.
        adapt: the threshold's rise per unit of adaptation, >= 0; scalar or per neuron.
        learn_rho: learn ``rho = sigmoid(w)`` per neuron; learn_adapt: learn ``adapt``.
        backend: ``"fused"`` (default: one node for the sequence, :mod:`snn.kernels.family`;
            the Triton kernels on CUDA), ``"triton"`` (those kernels, or an error saying why
            they cannot run) or ``"reference"`` (a plain autograd loop over the step).
    """

    def __init__(self, *args, backend: str = "fused", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = _backend_checked(backend)

    def forward(self, x: Tensor) -> Tensor:
        """Spikes ``[T, B, ...]`` for inputs ``x`` of shape ``[T, B, ...]``, from rest."""
        return self.run(x).spikes

    def run(
        self, x: Tensor, state: ALIFState | None = None, *, record_membrane: bool = False
    ) -> ALIFSequence:
        """Run from ``state`` (``None`` = rest): ``ALIFSequence(spikes, state, membrane)``."""
        self._check_x(x, 2, "a time-first")
        return alif_sequence(
            x, state, self.parameters_for(x), record_membrane=record_membrane, backend=self.backend
        )


class ALIFCell(_ALIFBase):
    """One ALIF step with explicit state: ``spikes, state = cell(x, state)`` for ``x`` of shape
    ``[B, ...]``; the arguments (less ``backend``) and :meth:`physical` are :class:`ALIF`'s.

    >>> import torch, snn
    >>> cell = snn.ALIFCell(beta=0.9, rho=0.5, adapt=1.0)
    >>> spikes, state = cell(torch.full((1, 1), 1.2))
    >>> spikes.item(), state  # v = 1.2 - 1 after the spike, a = (1 - rho) * 1
    (1.0, ALIFState(v=tensor([[0.2000]]), a=tensor([[0.5000]])))
    """

    def forward(self, x: Tensor, state: ALIFState | None = None) -> tuple[Tensor, ALIFState]:
        self._check_x(x, 1, "a batch-first")
        return alif_step(x, state, self.parameters_for(x))


# ---------------------------------------------------------------------------------------------
# Recurrent


class Recurrent(nn.Module):
    r"""Recurrent input for a layer of the family: ``[T, B, N] -> spikes [T, B, N]``.

    At step ``t`` the wrapped neuron receives ``x_t + bias + weight @ s_{t-1}`` (computed as
    ``(x_t + bias) + s_{t-1} @ weight.T``), where ``s_0`` is zero from rest or the last spikes
    of a passed :class:`snn.family_functional.RecurrentState`. ``weight`` is ``[N, N]`` and
    ``bias`` ``[N]``, initialized as ``nn.Linear(N, N)`` does.

    The fused backend runs the whole sequence, matrix product included, as one autograd node
    (:mod:`snn.kernels.family`; on CUDA :mod:`snn.kernels.triton_recurrent`, a matrix product
    and one Triton step kernel per step): training keeps no per-step graph, and
    ``weight.grad`` is one matrix product over all steps.

    >>> import torch, snn
    >>> layer = snn.Recurrent(snn.CubaLIF(alpha=0.8, beta=0.9), 8)
    >>> layer
    Recurrent(
      features=8, bias=True
      (neuron): CubaLIF(alpha=0.8, beta=0.9, threshold=1, reset=subtract, surrogate=ATan(alpha=2.0))
    )
    >>> out = layer.run(torch.rand(10, 2, 8))
    >>> out.spikes.shape, out.state.spikes.shape  # the last spikes, fed to the next call
    (torch.Size([10, 2, 8]), torch.Size([2, 8]))

    Args:
        neuron: a :class:`snn.LIF`, :class:`CubaLIF` or :class:`ALIF` (or one of their cells);
            its parameters are used, its backend is not.
        features: the number of neurons ``N``.
        bias: learn an additive bias ``[N]``.
        backend: ``"fused"`` (default), ``"triton"`` (the fused node on Triton kernels, or an
            error saying why they cannot run) or ``"reference"`` (a plain per-step autograd
            loop).
    """

    def __init__(
        self,
        neuron: nn.Module,
        features: int,
        bias: bool = True,
        *,
        backend: str = "fused",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(neuron, _LIFBase):
            raise TypeError(
                f"Recurrent wraps a layer of the LIF family (snn.LIF, snn.CubaLIF, snn.ALIF), "
                f"got {type(neuron).__name__}"
            )
        if not (isinstance(features, int) and features >= 1):
            raise ValueError(f"features must be a positive number of neurons, got {features!r}")
        if neuron.shape is not None and neuron.shape != (features,):
            raise ValueError(
                f"the neuron has per-neuron parameters of shape {neuron.shape}, but the layer has "
                f"{features} features; build it with shape={features}"
            )
        self.neuron = neuron
        self.features = features
        self.backend = _backend_checked(backend)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(features, features, **factory))
        self.bias = nn.Parameter(torch.empty(features, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialization for ``weight`` and ``bias``; the neuron's own reset."""
        bound = 1 / math.sqrt(self.features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        self.neuron.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """Spikes ``[T, B, N]`` for inputs ``x`` of shape ``[T, B, N]``, from rest."""
        return self.run(x).spikes

    def _check(self, x: Tensor, dims: int) -> None:
        if x.dim() != dims or x.shape[-1] != self.features:
            shape = "[T, B, N]" if dims == 3 else "[B, N]"
            raise ValueError(
                f"Recurrent({self.features}) expects inputs {shape} with N = {self.features}, "
                f"got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"Recurrent expects a floating-point input, got {x.dtype}")

    def run(
        self, x: Tensor, state: RecurrentState | None = None, *, record_membrane: bool = False
    ) -> RecurrentSequence:
        """Run from ``state`` (``None`` = rest, no spikes before the first step):
        ``RecurrentSequence(spikes, state, membrane)``."""
        self._check(x, 3)
        p = self.neuron.parameters_for(x)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return recurrent_sequence(
            x, state, p, self.weight.to(x.dtype), bias, record_membrane=record_membrane,
            backend=self.backend,
        )  # fmt: skip

    def step(self, x: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
        """One step with explicit state, for ``x`` of shape ``[B, N]``: ``spikes, state``."""
        self._check(x, 2)
        p = self.neuron.parameters_for(x)
        if state is None:
            state = RecurrentState(neuron_rest(x, p), torch.zeros_like(x))
        drive = x if self.bias is None else x + self.bias.to(x.dtype)
        s, neuron = neuron_step(drive + state.spikes @ self.weight.to(x.dtype).T, state.neuron, p)
        return s, RecurrentState(neuron, s)

    def extra_repr(self) -> str:
        text = f"features={self.features}, bias={self.bias is not None}"
        return text if self.backend == "fused" else f"{text}, backend={self.backend}"
