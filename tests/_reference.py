"""Independent references for the tests: plain Python/numpy loops and closed forms.

Nothing here imports snn: these are the numbers the package is checked against.
"""

from __future__ import annotations

import math

import numpy as np


def euler_lif_loop(
    current: np.ndarray, tau: float, dt: float, v_rest: float, v_reset: float, v_th: float, r: float
) -> tuple[list[int], list[float]]:
    """The seed's loop: v += (v_rest - v + R I) dt / tau; spike when v >= v_th; v = v_reset.

    Returns the spike step indices and the post-reset trace.
    """
    v = v_rest
    spikes, trace = [], []
    for i, i_t in enumerate(current):
        v += (v_rest - v + r * float(i_t)) * dt / tau
        if v >= v_th:
            spikes.append(i)
            v = v_reset
        trace.append(v)
    return spikes, trace


def discrete_lif_loop(
    x: np.ndarray,
    beta: float,
    v_th: float,
    reset: str,
    v_rest: float = 0.0,
    v_reset: float = 0.0,
    gain: float = 1.0,
) -> list[int]:
    """v <- v_rest + beta (v - v_rest) + gain x, spike at v >= v_th, then the named reset."""
    v = v_rest
    spikes = []
    for i, x_t in enumerate(x):
        v = v_rest + beta * (v - v_rest) + gain * float(x_t)
        if v >= v_th:
            spikes.append(i)
            if reset == "subtract":
                v -= v_th - v_reset
            elif reset == "zero":
                v = v_reset
    return spikes


def zero_reset_spike_steps(
    beta: float, drive: float, v_rest: float, v_reset: float, v_th: float, num_steps: int
) -> list[int]:
    """Closed form for a constant drive ``drive = gain * x`` with reset to ``v_reset``.

    From v_0, v_n = v_inf + (v_0 - v_inf) beta^n with v_inf = v_rest + drive / (1 - beta).
    The first spike is the smallest n >= 1 with v_n >= v_th starting from v_rest; later ones
    follow every n_reset steps starting from v_reset.
    """
    v_inf = v_rest + drive / (1 - beta)
    if v_inf < v_th:
        return []

    def steps_from(v0: float) -> int:
        # beta^n <= (v_inf - v_th) / (v_inf - v0)  <=>  n >= log(ratio) / log(beta)
        ratio = (v_inf - v_th) / (v_inf - v0)
        if ratio <= 0:
            return 1
        return max(1, math.ceil(math.log(ratio) / math.log(beta) - 1e-9))

    first = steps_from(v_rest) - 1
    period = steps_from(v_reset)
    return list(range(first, num_steps, period))
