r"""Firing rate against constant input current (the f-I curve): two closed forms and a simulation.

**Continuous time.** With constant ``I`` the membrane relaxes towards
``v_inf = v_rest + R I``: ``v(t) = v_inf + (v_0 - v_inf) e^{-t/tau}``. From ``v_reset`` it
reaches ``v_th`` after ``T = tau ln((v_inf - v_reset) / (v_inf - v_th))``, so with a zero reset
and no refractory period

.. math::

    f(I) = \frac{1}{\tau \ln\dfrac{R I + v_{rest} - v_{reset}}{R I + v_{rest} - v_{th}}}
    \quad\text{for } R I + v_{rest} > v_{th}, \qquad f(I) = 0 \text{ below the rheobase }
    I_{rh} = (v_{th} - v_{rest}) / R.

**The Euler-discretized map** that the simulation runs,
``h_n = v_rest + beta (v_{n-1} - v_rest) + R (1 - beta) I``, has the same fixed point and solves
to ``h_n = v_inf + (v_0 - v_inf) beta^n``. A spike happens at the first ``n >= 1`` with
``h_n >= v_th``, after which ``v = v_reset`` exactly, so every interspike interval is the same
whole number of steps

.. math::

    n^* = \max\!\left(1, \left\lceil \frac{\ln q}{\ln\beta} \right\rceil\right), \qquad
    q = \frac{v_{inf} - v_{th}}{v_{inf} - v_{reset}},

and the rate is ``1 / (n* dt)``: a staircase in ``I`` that lies below the continuous curve
(the crossing waits for the end of a step) and converges to it as ``dt -> 0``.
A run of ``N`` steps from rest fires first at step ``n_0`` (the same formula started from
``v_rest``), then every ``n*`` steps, i.e. ``1 + (N - n_0) // n*`` spikes when ``n_0 <= N``.

Example, the seed's neuron at 1.5 nA: one spike every 14 steps of 0.1 ms, 71 in 100 ms::

    >>> from snn.demos.simulate import NeuronParams
    >>> p = NeuronParams()
    >>> float(discrete_rate_hz(1.5, p)), int(discrete_spike_count(1.5, 1000, p))
    (714.2857142857142, 71)
    >>> round(float(continuous_rate_hz(1.5, p)), 2)  # 1 / (10 ms * ln(155 / 135))
    723.85
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from snn.demos.simulate import NeuronParams, simulate

__all__ = [
    "FICurve",
    "continuous_rate_hz",
    "discrete_rate_hz",
    "discrete_spike_count",
    "simulate_fi",
    "steps_to_threshold",
]


def continuous_rate_hz(current: ArrayLike, p: NeuronParams) -> np.ndarray:
    """The continuous-time LIF rate (Hz) for constant ``current`` (nA); 0 at or below rheobase."""
    v_inf = p.v_rest + p.r * np.asarray(current, dtype=np.float64)
    above = v_inf > p.v_th
    safe = np.where(above, v_inf, p.v_th + 1.0)  # keeps the log finite where the rate is 0
    period_ms = p.tau * np.log((safe - p.v_reset) / (safe - p.v_th))
    return np.where(above, 1000.0 / period_ms, 0.0)


def steps_to_threshold(v_start: float, current: ArrayLike, p: NeuronParams) -> np.ndarray:
    """Steps of the discrete map from ``v_start`` to the first spike (``inf`` if it never fires).

    The smallest ``n >= 1`` with ``v_inf + (v_start - v_inf) beta^n >= v_th``.
    """
    beta = p.beta
    v_inf = p.v_rest + p.r * np.asarray(current, dtype=np.float64)
    d0 = v_start - v_inf  # distance to the fixed point at the start
    d_th = p.v_th - v_inf  # where the threshold sits relative to the fixed point
    first_step = d0 * beta >= d_th
    # otherwise it can only get there by climbing from below towards a fixed point above v_th
    climbing = ~first_step & (d_th < 0) & (d0 < 0)
    n = np.full(v_inf.shape, np.inf)
    n[first_step] = 1.0
    if climbing.any():  # here 0 < q < beta < 1
        q = d_th[climbing] / d0[climbing]
        n[climbing] = np.maximum(1.0, np.ceil(np.log(q) / np.log(beta)))
    return n


def discrete_rate_hz(current: ArrayLike, p: NeuronParams) -> np.ndarray:
    """The steady firing rate (Hz) of the discrete map: ``1 / (n* dt)``, 0 if it never fires."""
    n_star = steps_to_threshold(p.v_reset, current, p)
    return 1000.0 / (n_star * p.dt)  # inf steps -> 0 Hz


def discrete_spike_count(current: ArrayLike, n_steps: int, p: NeuronParams) -> np.ndarray:
    """Exactly how many spikes ``n_steps`` steps from rest give: first at ``n_0``, then every
    ``n*``."""
    n0 = steps_to_threshold(p.v_rest, current, p)
    n_star = steps_to_threshold(p.v_reset, current, p)
    fired = n0 <= n_steps
    count = np.zeros(n0.shape, dtype=np.int64)
    count[fired] = 1 + (n_steps - n0[fired]) // n_star[fired]
    return count


@dataclass
class FICurve:
    """Simulated spike counts and rates at ``currents`` (nA) over ``duration_ms``."""

    params: NeuronParams
    currents: np.ndarray
    spike_counts: np.ndarray
    duration_ms: float
    device: str

    @property
    def rates_hz(self) -> np.ndarray:
        """The simulated firing rate (Hz) at each current."""
        return self.spike_counts / (self.duration_ms / 1000.0)


def simulate_fi(
    currents: ArrayLike,
    p: NeuronParams,
    n_steps: int,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> FICurve:
    """One batched run of the LIF layer: neuron ``k`` gets the constant ``currents[k]`` (nA)."""
    currents = np.asarray(currents, dtype=np.float64).ravel()
    x = torch.as_tensor(currents, dtype=torch.float64).expand(n_steps, currents.size)
    sim = simulate(p, x, device=device, dtype=dtype, record_membrane=False)
    return FICurve(p, currents, sim.spike_counts().numpy(), sim.duration_ms, sim.device)
