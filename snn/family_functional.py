r"""The LIF family as pure functions: the current-based CubaLIF, the adaptive ALIF, and the
recurrent input that wraps any of them.

Each neuron is the LIF of :mod:`snn.functional` with one more state, and its step calls the LIF's
own pieces (:func:`snn.functional.integrate`, :func:`snn.functional.fire`,
:func:`snn.functional.lif_step`), so the spike, the reset modes, ``detach_reset`` and the
surrogates are the LIF's. One step of each, per neuron:

**CubaLIF** (state ``CubaLIFState(i, v)``; snnTorch's ``Synaptic`` with ``reset_delay=False``):

.. math::

    i_t = \alpha\, i_{t-1} + g_{in} x_t, \qquad
    h_t = v_{rest} + \beta (v_{t-1} - v_{rest}) + g\, i_t, \qquad
    s_t = H(h_t - v_{th}), \quad v_t = \mathrm{reset}(h_t, s_t, v_{th})

**ALIF** (state ``ALIFState(v, a)``; Bellec et al. 2018):

.. math::

    \theta_t = v_{th} + \mathrm{adapt}\; a_{t-1}, \qquad
    h_t = v_{rest} + \beta (v_{t-1} - v_{rest}) + g\, x_t, \qquad
    s_t = H(h_t - \theta_t), \quad v_t = \mathrm{reset}(h_t, s_t, \theta_t), \qquad
    a_t = \rho\, a_{t-1} + (1 - \rho)\, s_t

The subtract reset removes ``theta_t - v_reset``; the zero reset sets ``v_reset``.

**Recurrent** (state ``RecurrentState(neuron, spikes)``): the neuron's input at step ``t`` is
``(x_t + b) + W s_{t-1}``, with ``s_0`` the state's spikes (zero from rest).

Every product is rounded before it is added (no fused multiply-add), the rule the fused nodes in
:mod:`snn.kernels.family` follow too, so their spikes equal the reference loops' bit for bit.
Each ``*_sequence`` has three backends: ``"reference"`` (a plain autograd loop over the step),
``"fused"`` (one autograd node for the whole sequence; the plain loop while ``torch.compile``
traces) and ``"triton"`` (the fused node's Triton kernels, which ``"fused"`` picks on CUDA:
:mod:`snn.kernels.triton_family` and :mod:`snn.kernels.triton_recurrent`; CUDA, or CPU tensors
under ``TRITON_INTERPRET=1``):

>>> import torch
>>> from snn.family_functional import ALIFParameters, alif_sequence
>>> p = ALIFParameters(rho=0.5, adapt=1.0)  # beta 0.9, threshold 1
>>> out = alif_sequence(torch.full((6, 1), 0.6), None, p)
>>> out.spikes.flatten().tolist()  # a LIF would fire at every other step
[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
>>> out.state.a.item()  # each spike adds (1 - rho) = 0.5 to a, which then halves every step
0.15625
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from snn import surrogate as _surrogate
from snn.functional import (
    LIFParameters,
    check_beta,
    fire,
    initial_state,
    integrate,
    lif_sequence,
    lif_step,
    physical_beta,
)
from snn.kernels import native
from snn.kernels.family import (
    FamilyConfig,
    fused_family_sequence,
    native_family_sequence,
    synaptic_current,
)

__all__ = [
    "FAMILY_BACKENDS",
    "CubaLIFParameters",
    "CubaLIFState",
    "CubaLIFSequence",
    "cuba_lif_step",
    "cuba_lif_sequence",
    "ALIFParameters",
    "ALIFState",
    "ALIFSequence",
    "alif_step",
    "alif_sequence",
    "RecurrentState",
    "RecurrentSequence",
    "recurrent_sequence",
]

FAMILY_BACKENDS = ("fused", "triton", "reference")


def _is_one(g: Tensor | float) -> bool:
    return isinstance(g, (int, float)) and g == 1


# ---------------------------------------------------------------------------------------------
# CubaLIF


@dataclass(frozen=True)
class CubaLIFParameters:
    """Parameters of one CubaLIF population: the synapse's ``alpha`` and ``input_gain``
    (``x -> i``) and the membrane's :class:`snn.functional.LIFParameters` (its ``gain`` scales the
    current into the membrane). Tensors broadcast against the neuron shape.

    >>> p = CubaLIFParameters.physical(tau_syn=5.0, tau_mem=10.0, dt=1.0, v_rest=0.0,
    ...                                v_reset=0.0, v_th=1.0, r=2.0, w_in=3.0)
    >>> p.alpha, round(p.input_gain, 12), p.lif.beta, round(p.lif.gain, 12)  # dt/tau w_in, r
    (0.8, 0.6, 0.9, 0.2)
    """

    alpha: Tensor | float = 0.8
    lif: LIFParameters = field(default_factory=LIFParameters)
    input_gain: Tensor | float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, Tensor):
            _check_decay("alpha", self.alpha)

    @classmethod
    def physical(
        cls,
        tau_syn: float,
        tau_mem: float,
        dt: float,
        v_rest: float,
        v_reset: float,
        v_th: float,
        r: float,
        w_in: float = 1.0,
        *,
        exact: bool = False,
        reset: str = "zero",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
    ) -> CubaLIFParameters:
        """NIR's CubaLIF, ``tau_syn di/dt = -i + w_in x`` and ``tau_mem dv/dt = (v_rest - v) + r
        i``, in steps of ``dt``: ``alpha = 1 - dt/tau_syn`` (or ``exp(-dt/tau_syn)``), the
        current gains ``(1 - alpha) w_in x_t``; the membrane is :meth:`LIFParameters.physical`."""
        alpha = physical_beta(tau_syn, dt, exact)
        lif = LIFParameters.physical(
            tau_mem, dt, v_rest, v_reset, v_th, r, exact=exact, reset=reset,
            detach_reset=detach_reset, surrogate=surrogate,
        )  # fmt: skip
        return cls(alpha=alpha, lif=lif, input_gain=(1.0 - alpha) * w_in)


class CubaLIFState(NamedTuple):
    """The synaptic current ``i`` and membrane potential ``v``, each ``[B, ...]``."""

    i: Tensor
    v: Tensor


class CubaLIFSequence(NamedTuple):
    """``spikes [T, B, ...]``, the final ``state``, and the post-reset ``membrane [T, B, ...]``
    when asked for (else ``None``)."""

    spikes: Tensor
    state: CubaLIFState
    membrane: Tensor | None


def cuba_lif_step(
    x: Tensor, state: CubaLIFState | None, p: CubaLIFParameters
) -> tuple[Tensor, CubaLIFState]:
    """One CubaLIF step: the current, then the LIF step on it. ``state=None`` is rest."""
    if state is None:
        state = CubaLIFState(torch.zeros_like(x), initial_state(x, p.lif))
    i = p.alpha * state.i + (x if _is_one(p.input_gain) else p.input_gain * x)
    s, v = lif_step(i, state.v, p.lif)
    return s, CubaLIFState(i, v)


def cuba_lif_sequence(
    x: Tensor,
    state: CubaLIFState | None,
    p: CubaLIFParameters,
    *,
    record_membrane: bool = False,
    backend: str = "fused",
) -> CubaLIFSequence:
    """Run the CubaLIF over ``x`` (``[T, B, ...]``).

    ``"fused"``: on CPU the native C kernel with the current state on
    (:func:`snn.kernels.family.native_family_sequence`) where it runs; elsewhere the current as
    one linear-scan node (:func:`snn.kernels.family.synaptic_current`) feeding the LIF's fused
    node (:func:`snn.functional.lif_sequence`): the current does not depend on the spikes. On
    CUDA (and under ``"triton"``) the family's Triton kernels with the current state compiled in
    (:func:`snn.kernels.triton_family.cuba_lif_sequence`).
    """
    _check_sequence(x, backend)
    if state is not None:
        _check_state(state, x, "CubaLIFState")
    if backend == "reference" or torch.compiler.is_compiling():
        state = _cuba_state(x, state, p)
        return CubaLIFSequence(*_reference(cuba_lif_step, x, state, p, record_membrane, "v"))
    if _runs_triton(x, backend, p.lif.surrogate):  # CUDA, or asked for
        return _triton_cuba_lif(x, _cuba_state(x, state, p), p, record_membrane)
    q = p.lif
    if native.unavailable_reason(x, q.surrogate, family=True) is None:
        config = FamilyConfig(
            q.v_rest, q.v_reset, q.reset, q.detach_reset, q.surrogate, record_membrane
        )
        i0, v0 = (None, None) if state is None else state  # None: the kernel starts at rest
        spikes, v, i, _, membrane = native_family_sequence(
            x, v0, i0, None, neuron="cuba", beta=q.beta, v_th=q.v_th, alpha=p.alpha,
            current_gain=q.gain, input_gain=p.input_gain, rho=None, adapt=None, config=config,
        )  # fmt: skip
        return CubaLIFSequence(spikes, CubaLIFState(i, v), membrane if record_membrane else None)
    state = _cuba_state(x, state, p)
    c = x if _is_one(p.input_gain) else p.input_gain * x
    currents = synaptic_current(c, state.i, p.alpha)
    out = lif_sequence(currents, state.v, p.lif, record_membrane=record_membrane)
    return CubaLIFSequence(out.spikes, CubaLIFState(currents[-1], out.state), out.membrane)


def _alif_state(x: Tensor, state: ALIFState | None, p: ALIFParameters) -> ALIFState:
    """``state`` (checked by the caller), or the resting state for one step of ``x``."""
    if state is None:
        return ALIFState(initial_state(x[0], p.lif), torch.zeros_like(x[0]))
    return state


def _cuba_state(x: Tensor, state: CubaLIFState | None, p: CubaLIFParameters) -> CubaLIFState:
    """``state`` (checked by the caller), or the resting state for one step of ``x``."""
    if state is None:
        return CubaLIFState(torch.zeros_like(x[0]), initial_state(x[0], p.lif))
    return state


# ---------------------------------------------------------------------------------------------
# ALIF


@dataclass(frozen=True)
class ALIFParameters:
    """Parameters of one ALIF population: the membrane's :class:`snn.functional.LIFParameters`
    (whose ``v_th`` is the threshold at rest), the adaptation's decay ``rho`` and its strength
    ``adapt`` (the threshold rises by ``adapt (1 - rho)`` per spike).

    >>> p = ALIFParameters.physical(20.0, 1.0, 0.0, 0.0, 1.0, 1.0, tau_adapt=200.0, adapt=1.8)
    >>> round(p.rho, 12), p.lif.beta
    (0.995, 0.95)
    """

    lif: LIFParameters = field(default_factory=LIFParameters)
    rho: Tensor | float = 0.95
    adapt: Tensor | float = 1.8

    def __post_init__(self) -> None:
        if not isinstance(self.rho, Tensor):
            _check_decay("rho", self.rho)
        if not isinstance(self.adapt, Tensor) and not self.adapt >= 0:
            raise ValueError(
                f"adapt must be >= 0 (a spike raises the threshold), got adapt={self.adapt}"
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
        tau_adapt: float,
        adapt: float,
        exact: bool = False,
        reset: str = "zero",
        detach_reset: bool = False,
        surrogate: str | _surrogate.Surrogate = "atan",
    ) -> ALIFParameters:
        """The LIF's physical form with a threshold state of time constant ``tau_adapt``:
        ``rho = 1 - dt/tau_adapt`` (or ``exp(-dt/tau_adapt)``); ``adapt`` in the units of
        ``v_th``."""
        lif = LIFParameters.physical(
            tau, dt, v_rest, v_reset, v_th, r, exact=exact, reset=reset,
            detach_reset=detach_reset, surrogate=surrogate,
        )  # fmt: skip
        return cls(lif=lif, rho=physical_beta(tau_adapt, dt, exact), adapt=adapt)


class ALIFState(NamedTuple):
    """The membrane potential ``v`` and the adaptation ``a`` (0 at rest), each ``[B, ...]``."""

    v: Tensor
    a: Tensor


class ALIFSequence(NamedTuple):
    """``spikes [T, B, ...]``, the final ``state``, and the post-reset ``membrane [T, B, ...]``
    when asked for (else ``None``)."""

    spikes: Tensor
    state: ALIFState
    membrane: Tensor | None


def alif_step(x: Tensor, state: ALIFState | None, p: ALIFParameters) -> tuple[Tensor, ALIFState]:
    """One ALIF step: the LIF's integrate and fire against the adapted threshold, then the
    adaptation. ``state=None`` is rest."""
    if state is None:
        state = ALIFState(initial_state(x, p.lif), torch.zeros_like(x))
    theta = p.lif.v_th + p.adapt * state.a
    s, v = fire(integrate(x, state.v, p.lif), theta, p.lif)
    a = p.rho * state.a + (1 - p.rho) * s
    return s, ALIFState(v, a)


def alif_sequence(
    x: Tensor,
    state: ALIFState | None,
    p: ALIFParameters,
    *,
    record_membrane: bool = False,
    backend: str = "fused",
) -> ALIFSequence:
    """Run the ALIF over ``x`` (``[T, B, ...]``); ``"fused"`` is, where each runs, the native C
    kernel on CPU (:func:`snn.kernels.family.native_family_sequence`) or the Triton kernels on
    CUDA (:func:`snn.kernels.triton_family.alif_sequence`), with the threshold state on; else the
    family's fused node in PyTorch operations (:func:`snn.kernels.family.fused_family_sequence`)."""
    _check_sequence(x, backend)
    if state is not None:
        _check_state(state, x, "ALIFState")
    if backend == "reference" or torch.compiler.is_compiling():
        state = _alif_state(x, state, p)
        return ALIFSequence(*_reference(alif_step, x, state, p, record_membrane, "v"))
    q = p.lif
    if _runs_triton(x, backend, q.surrogate):  # CUDA, or asked for
        from snn.kernels import triton_family

        state = _alif_state(x, state, p)
        spikes, v, a, membrane = triton_family.alif_sequence(
            x if _is_one(q.gain) else q.gain * x, state.v, state.a, q.beta, q.v_th, p.rho,
            p.adapt, q.v_rest, q.v_reset, q.reset, q.detach_reset, q.surrogate, record_membrane,
        )  # fmt: skip
        return ALIFSequence(spikes, ALIFState(v, a), membrane if record_membrane else None)
    if native.unavailable_reason(x, q.surrogate, family=True) is None:
        config = FamilyConfig(
            q.v_rest, q.v_reset, q.reset, q.detach_reset, q.surrogate, record_membrane
        )
        v0, a0 = (None, None) if state is None else state  # None: the kernel starts at rest
        spikes, v, _, a, membrane = native_family_sequence(
            x, v0, None, a0, neuron="alif", beta=q.beta, v_th=q.v_th, alpha=None,
            current_gain=1.0, input_gain=q.gain, rho=p.rho, adapt=p.adapt, config=config,
        )  # fmt: skip
    else:
        spikes, v, _, a, membrane = _fused(
            x, _alif_state(x, state, p), None, p, None, record_membrane
        )
    return ALIFSequence(spikes, ALIFState(v, a), membrane if record_membrane else None)


# ---------------------------------------------------------------------------------------------
# Recurrent

NeuronParameters = LIFParameters | CubaLIFParameters | ALIFParameters
NeuronState = Tensor | CubaLIFState | ALIFState


class RecurrentState(NamedTuple):
    """The wrapped neuron's state and the spikes of the last step (``[B, N]``), which the next
    step receives through the weight."""

    neuron: NeuronState
    spikes: Tensor


class RecurrentSequence(NamedTuple):
    """``spikes [T, B, N]``, the final ``state``, and the post-reset ``membrane [T, B, N]`` when
    asked for (else ``None``)."""

    spikes: Tensor
    state: RecurrentState
    membrane: Tensor | None


def neuron_step(x: Tensor, state: NeuronState | None, p: NeuronParameters):
    """One step of the neuron ``p`` describes: :func:`snn.functional.lif_step`,
    :func:`cuba_lif_step` or :func:`alif_step`."""
    if isinstance(p, CubaLIFParameters):
        return cuba_lif_step(x, state, p)
    if isinstance(p, ALIFParameters):
        return alif_step(x, state, p)
    return lif_step(x, state, p)


def neuron_rest(x_t: Tensor, p: NeuronParameters) -> NeuronState:
    """The resting state of the neuron ``p`` describes, shaped as one step ``x_t``."""
    if isinstance(p, CubaLIFParameters):
        return CubaLIFState(torch.zeros_like(x_t), initial_state(x_t, p.lif))
    if isinstance(p, ALIFParameters):
        return ALIFState(initial_state(x_t, p.lif), torch.zeros_like(x_t))
    return initial_state(x_t, p)


def recurrent_sequence(
    x: Tensor,
    state: RecurrentState | None,
    p: NeuronParameters,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    record_membrane: bool = False,
    backend: str = "fused",
) -> RecurrentSequence:
    """Run a neuron with recurrent input over ``x`` (``[T, B, N]``): at step ``t`` its input is
    ``(x_t + bias) + s_{t-1} @ weight.T``.

    ``"fused"`` is the family's fused node with the weight inside: one node for the sequence,
    whose backward ends with ``dW = sum_t (dL/du_t)^T s_{t-1}`` as one matrix product. On CUDA
    (and under ``backend="triton"``) that node runs on Triton kernels, one matrix product and
    one fused step kernel per step (:mod:`snn.kernels.triton_recurrent`).
    """
    _check_sequence(x, backend)
    n = x.shape[-1]
    if x.dim() != 3 or weight.shape != (n, n):
        raise ValueError(
            f"a recurrent layer takes [T, B, N] inputs and an [N, N] weight, got the input "
            f"{tuple(x.shape)} and the weight {tuple(weight.shape)}"
        )
    if state is None:
        state = RecurrentState(neuron_rest(x[0], p), torch.zeros_like(x[0]))
    else:
        _check_state(state, x, "RecurrentState")
    if backend == "reference" or torch.compiler.is_compiling():
        drive = x if bias is None else x + bias
        return _reference_recurrent(drive, state, p, weight, record_membrane)
    surrogate = (p if isinstance(p, LIFParameters) else p.lif).surrogate
    if _runs_triton(x, backend, surrogate):  # CUDA, or asked for
        from snn.kernels import triton_recurrent

        spikes, v, i, a, membrane = triton_recurrent.recurrent_sequence(
            x, state.neuron, state.spikes, p, weight, bias, record_membrane
        )
    else:  # the bias is added inside the node, into the buffer of u: no [T, B, N] temporary
        spikes, v, i, a, membrane = _fused(
            x, state.neuron, state.spikes, p, weight, record_membrane, bias
        )
    if isinstance(p, CubaLIFParameters):
        neuron = CubaLIFState(i, v)
    elif isinstance(p, ALIFParameters):
        neuron = ALIFState(v, a)
    else:
        neuron = v
    return RecurrentSequence(
        spikes, RecurrentState(neuron, spikes[-1]), membrane if record_membrane else None
    )


def _reference_recurrent(drive, state, p, weight, record_membrane) -> RecurrentSequence:
    spikes, trace = [], []
    neuron, s = state
    for x_t in drive.unbind(0):
        s, neuron = neuron_step(x_t + s @ weight.T, neuron, p)
        spikes.append(s)
        if record_membrane:
            trace.append(neuron if isinstance(neuron, Tensor) else neuron.v)
    membrane = torch.stack(trace) if record_membrane else None
    return RecurrentSequence(torch.stack(spikes), RecurrentState(neuron, s), membrane)


# ---------------------------------------------------------------------------------------------
# Shared plumbing


def _check_decay(name: str, value: float) -> None:
    try:
        check_beta(value)
    except ValueError:
        raise ValueError(
            f"{name} must lie in [0, 1] (the fraction kept per step), got {name}={value}"
        ) from None


def _check_sequence(x: Tensor, backend: str) -> None:
    if backend not in FAMILY_BACKENDS:
        raise ValueError(f"backend must be one of {FAMILY_BACKENDS}, got {backend!r}")
    if x.dim() < 2:
        raise ValueError(
            f"expected a time-first input [T, B, ...], got shape {tuple(x.shape)}; add the "
            "missing dimensions (x[:, None] for a batch of one), or use the step for one step"
        )
    if x.shape[0] == 0:
        raise ValueError("the input has T = 0 time steps; pass at least one step along dim 0")


def _check_state(state: tuple, x: Tensor, name: str) -> None:
    tensors = [t for part in state for t in (part if isinstance(part, tuple) else (part,))]
    for t in tensors:
        if t.shape != x.shape[1:]:
            raise ValueError(
                f"{name} holds a tensor of shape {tuple(t.shape)}, but one step of the input is "
                f"{tuple(x.shape[1:])}; pass state=None to start from rest"
            )
        if t.dtype != x.dtype or t.device != x.device:
            raise ValueError(
                f"{name} holds a {t.dtype} tensor on {t.device} but the input is {x.dtype} on "
                f"{x.device}; convert the state (snn does not convert it silently)"
            )


def _reference(step, x, state, p, record_membrane, field_name):
    spikes, trace = [], []
    # unbind, not x[t]: indexing would make each step's backward write a full-size zero gradient
    for x_t in x.unbind(0):
        s, state = step(x_t, state, p)
        spikes.append(s)
        if record_membrane:
            trace.append(getattr(state, field_name))
    return torch.stack(spikes), state, torch.stack(trace) if record_membrane else None


def _fused(x, neuron_state, s0, p: NeuronParameters, weight, record_membrane, bias=None):
    """The family's fused node for the neuron ``p`` describes, from ``neuron_state``."""
    i0 = a0 = alpha = rho = adapt = None
    current_gain: Tensor | float = 1.0
    if isinstance(p, CubaLIFParameters):
        lif, input_gain = p.lif, p.input_gain
        i0, v0 = neuron_state
        alpha, current_gain = p.alpha, lif.gain
    elif isinstance(p, ALIFParameters):
        lif = p.lif
        input_gain = lif.gain
        v0, a0 = neuron_state
        rho, adapt = p.rho, p.adapt
    else:
        lif, input_gain, v0 = p, p.gain, neuron_state
    config = FamilyConfig(
        lif.v_rest, lif.v_reset, lif.reset, lif.detach_reset, lif.surrogate, record_membrane
    )
    return fused_family_sequence(
        x, v0, i0, a0, s0, beta=lif.beta, v_th=lif.v_th, alpha=alpha, current_gain=current_gain,
        input_gain=input_gain, rho=rho, adapt=adapt, weight=weight, config=config, bias=bias,
    )  # fmt: skip


def _runs_triton(x: Tensor, backend: str, surrogate: _surrogate.Surrogate) -> bool:
    """Whether this call runs on the Triton kernels: ``backend="triton"`` (an error names what
    is missing where they cannot run), or ``"fused"`` on CUDA where they can."""
    if backend != "triton" and not (backend == "fused" and x.device.type == "cuda"):
        return False
    from snn.kernels import triton_lif  # imports Triton: only when asked for, or on CUDA

    why = triton_lif.unavailable_reason(x, surrogate)
    if why is not None and backend == "triton":
        raise ValueError(f"backend='triton' cannot run here: {why}")
    return why is None


def _triton_cuba_lif(x: Tensor, state: CubaLIFState, p: CubaLIFParameters, record_membrane):
    from snn.kernels import triton_family

    q = p.lif
    spikes, i, v, membrane = triton_family.cuba_lif_sequence(
        x if _is_one(p.input_gain) else p.input_gain * x, state.i, state.v, p.alpha, q.gain,
        q.beta, q.v_th, q.v_rest, q.v_reset, q.reset, q.detach_reset, q.surrogate,
        record_membrane,
    )  # fmt: skip
    return CubaLIFSequence(spikes, CubaLIFState(i, v), membrane if record_membrane else None)
