r"""Run the seed's LIF neuron, one or many at once, through :class:`snn.LIF`.

The seed scripts integrate, with forward Euler and step ``dt``,

.. math::

    \tau \frac{dv}{dt} = (v_{rest} - v) + R\,I(t),

and when ``v >= v_th`` they count a spike and set ``v = v_reset``. That is exactly
``snn.LIF.physical(tau, dt, v_rest, v_reset, v_th, r)`` (``beta = 1 - dt/tau``, gain
``R dt/tau``, zero reset), so this module only builds the input current and calls that layer
once on a ``[T, N]`` tensor: one neuron or a population of ``N`` is the same batched run.

Conventions, as in the seed: step ``i`` (0-based) has time ``t_i = i dt``; the update at step
``i`` uses ``I(t_i)``; a spike found there is reported at ``t_i``; the membrane trace holds the
potential after the reset. Units: ms, mV, MOhm, nA (MOhm x nA = mV); rates in Hz.

Example (the seed's constant-current neuron)::

    >>> sim = simulate(NeuronParams(), input_current("constant", 1000, 0.1))
    >>> int(sim.spike_counts()[0]), sim.spike_times_ms(0)[:3], float(sim.firing_rates_hz()[0])
    (71, [1.0, 2.4, 3.8], 710.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from snn.functional import physical_beta
from snn.neurons import LIF

__all__ = ["INPUT_KINDS", "NeuronParams", "Simulation", "input_current", "simulate"]

INPUT_KINDS = ("constant", "sine")


@dataclass(frozen=True)
class NeuronParams:
    """The physical LIF parameters; the defaults are the seed scripts'.

    Args:
        tau: membrane time constant (ms).
        dt: time step (ms).
        v_rest, v_reset, v_th: resting, reset and threshold potentials (mV).
        r: membrane resistance (MOhm).
        exact: use the exact exponential decay ``exp(-dt/tau)`` instead of forward Euler.
    """

    tau: float = 10.0
    dt: float = 0.1
    v_rest: float = -65.0
    v_reset: float = -70.0
    v_th: float = -50.0
    r: float = 100.0
    exact: bool = False

    @property
    def beta(self) -> float:
        """The fraction of ``v - v_rest`` kept per step (raises ``ValueError`` if invalid)."""
        return physical_beta(self.tau, self.dt, self.exact)

    @property
    def rheobase(self) -> float:
        """The smallest constant current (nA) that ever reaches threshold, ``(v_th - v_rest)/R``."""
        return (self.v_th - self.v_rest) / self.r

    def layer(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """The :class:`snn.LIF` layer that runs these neurons (zero reset, as in the seed)."""
        return LIF.physical(
            self.tau,
            self.dt,
            self.v_rest,
            self.v_reset,
            self.v_th,
            self.r,
            exact=self.exact,
            reset="zero",
            device=device,
            dtype=dtype,
        )

    def as_dict(self) -> dict:
        """The parameters as a plain dict (written into the demo's JSON output)."""
        return asdict(self)


def input_current(
    kind: str,
    n_steps: int,
    dt: float,
    *,
    current: float = 1.5,
    noise: float = 0.0,
    period: float = 100.0,
    n_neurons: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    r"""The input current in nA, shape ``[n_steps, n_neurons]``, built on the CPU.

    * ``"constant"``: ``I(t) = current``;
    * ``"sine"``: ``I(t) = current (1 + sin(2 pi t / period))``;

    plus, when ``noise > 0``, ``noise * N(0, 1)`` drawn independently for every step and neuron.
    As in the seed, the noise is per step (not scaled by ``sqrt(dt)``), so its effect depends on
    ``dt``.

    The noise comes from a ``torch.Generator`` seeded with ``seed`` and always runs on the CPU, so
    a seed gives the same current whatever device simulates it. Neuron ``k`` gets draws
    ``k*n_steps ... (k+1)*n_steps - 1`` of that stream: neuron 0 of a population sees exactly the
    current of a single-neuron run with the same seed.
    """
    if kind not in INPUT_KINDS:
        raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {kind!r}")
    if n_steps < 1 or n_neurons < 1:
        raise ValueError(f"need n_steps >= 1 and n_neurons >= 1, got {n_steps}, {n_neurons}")
    if not noise >= 0:
        raise ValueError(f"the noise amplitude must be >= 0 nA, got {noise}")
    t = torch.arange(n_steps, dtype=torch.float64) * dt
    if kind == "constant":
        base = torch.full_like(t, current)
    else:
        base = current * (1 + torch.sin(2 * math.pi * t / period))
    i = base[:, None].expand(n_steps, n_neurons).clone()
    if noise > 0:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        # one neuron at a time: torch's CPU randn fills blocks of 16, so a single [T, N] draw
        # would not give neuron 0 the same numbers as a single-neuron run
        draws = [torch.randn(n_steps, generator=gen, dtype=torch.float64) for _ in range(n_neurons)]
        i += noise * torch.stack(draws, dim=1)
    return i.to(dtype)


@dataclass
class Simulation:
    """The result of :func:`simulate`, on the CPU.

    ``current``, ``spikes`` and ``membrane`` are ``[T, N]``; ``membrane`` (post-reset potential,
    mV) is ``None`` unless it was recorded. ``device`` is where the neurons ran.
    """

    params: NeuronParams
    current: Tensor
    spikes: Tensor
    membrane: Tensor | None
    device: str

    @property
    def n_steps(self) -> int:
        """The number of time steps simulated."""
        return self.spikes.shape[0]

    @property
    def n_neurons(self) -> int:
        """The number of neurons simulated side by side."""
        return self.spikes.shape[1]

    @property
    def duration_ms(self) -> float:
        """The simulated time, ``n_steps * dt``, in ms."""
        return self.n_steps * self.params.dt

    @property
    def time_ms(self) -> Tensor:
        """The time of each step in ms, ``[n_steps]`` float64, starting at 0."""
        return torch.arange(self.n_steps, dtype=torch.float64) * self.params.dt

    def spike_steps(self, neuron: int = 0) -> list[int]:
        """Indices of the steps at which ``neuron`` fired."""
        return self.spikes[:, neuron].nonzero().flatten().tolist()

    def spike_times_ms(self, neuron: int = 0) -> list[float]:
        """Spike times of ``neuron`` in ms (``step * dt``, rounded to 1e-9 ms)."""
        return [round(k * self.params.dt, 9) for k in self.spike_steps(neuron)]

    def spike_counts(self) -> Tensor:
        """Spikes per neuron, ``[N]``."""
        return self.spikes.sum(0).to(torch.int64)

    def firing_rates_hz(self) -> Tensor:
        """Spikes per neuron divided by the simulated time, in Hz, ``[N]``."""
        return self.spike_counts().to(torch.float64) / (self.duration_ms / 1000.0)


def simulate(
    params: NeuronParams,
    current: Tensor,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    record_membrane: bool = True,
) -> Simulation:
    """Run ``current`` (``[T, N]`` in nA) through one batched :class:`snn.LIF` from rest.

    float64 by default: the seed's numpy scripts run in double precision, and a threshold
    crossing decided in float32 can move a spike by a step.
    """
    if current.dim() != 2:
        raise ValueError(f"expected a current of shape [T, N], got {tuple(current.shape)}")
    layer = params.layer(device=device, dtype=dtype)
    with torch.no_grad():
        out = layer.run(current.to(device=device, dtype=dtype), record_membrane=record_membrane)
    membrane = out.membrane.cpu() if record_membrane else None
    return Simulation(params, current.cpu(), out.spikes.cpu().bool(), membrane, str(device))
