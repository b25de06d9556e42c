"""Independent references for the tests: plain Python/numpy loops and closed forms.

Nothing here imports snn: these are the numbers the package is checked against.
"""

from __future__ import annotations

import math

import numpy as np
import torch


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


# the surrogate derivatives at their documented defaults, written out again (not snn.surrogate's)
DERIVATIVES = {
    "atan": lambda u: 1.0 / (1 + (math.pi * u) ** 2),  # (alpha/2) / (1 + (pi alpha u/2)^2), alpha 2
    "fast_sigmoid": lambda u: 1 / (1 + 25 * u.abs()) ** 2,  # slope 25
    "sigmoid": lambda u: 25 * torch.sigmoid(25 * u) * (1 - torch.sigmoid(25 * u)),  # slope 25
    "triangle": lambda u: torch.clamp(1 - u.abs(), min=0),  # width 1
    "rectangular": lambda u: (u.abs() < 0.5).to(u.dtype),  # width 1
    "straight_through": lambda u: torch.ones_like(u),
}


class Step(torch.autograd.Function):
    """H(u) forward (H(0) = 1), the named surrogate's derivative backward."""

    @staticmethod
    def forward(ctx, u, name):
        ctx.save_for_backward(u)
        ctx.name = name
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * DERIVATIVES[ctx.name](u), None


def equation_loop(x, v0, beta, v_th, v_rest, v_reset, reset, detach, name):
    """The LIF equations (README, "The LIF neuron") as a plain autograd loop over ``x[t]``.

    Rounds as the documented rule says: ``beta * (v - v_rest)`` is rounded before the input is
    added, and a reset subtracts ``s * (v_th - v_reset)`` or ``s * (h - v_reset)``. Returns
    ``(spikes, membrane after each step, final membrane, largest |h| on the way)``.
    """
    v = v0
    spikes, trace, h_max = [], [], 0.0
    for t in range(x.shape[0]):
        h = v_rest + beta * (v - v_rest) + x[t]
        h_max = max(h_max, float(h.detach().abs().max()))
        s = Step.apply(h - v_th, name)
        v = _after_reset(h, s.detach() if detach else s, v_th, reset, v_reset)
        spikes.append(s)
        trace.append(v)
    return torch.stack(spikes), torch.stack(trace), v, h_max


def _after_reset(h, r, theta, reset, v_reset):
    """The potential after a step's reset: ``r`` is the spike (detached or not)."""
    if reset == "subtract":
        return h - r * (theta - v_reset)
    if reset == "zero":
        return h - r * (h - v_reset)
    return h


def family_step(kind, u, state, p, reset, detach, surrogate, v_rest, v_reset):
    """One step of the LIF ("lif", state ``(v,)``), CubaLIF ("cuba", ``(i, v)``) or ALIF
    ("alif", ``(v, a)``) on the input ``u``, with the parameters in the dict ``p`` (gain, beta,
    v_th; alpha, g_in; rho, adapt); returns the spike and the new state."""
    if kind == "cuba":
        i, v = state
        i = p["alpha"] * i + p["g_in"] * u
        drive, theta = p["gain"] * i, p["v_th"]
    elif kind == "alif":
        v, a = state
        drive, theta = p["gain"] * u, p["v_th"] + p["adapt"] * a
    else:
        (v,) = state
        drive, theta = p["gain"] * u, p["v_th"]
    h = v_rest + p["beta"] * (v - v_rest) + drive
    s = Step.apply(h - theta, surrogate)
    v = _after_reset(h, s.detach() if detach else s, theta, reset, v_reset)
    if kind == "alif":
        return s, (v, p["rho"] * a + (1 - p["rho"]) * s)
    return s, ((i, v) if kind == "cuba" else (v,))


def family_loop(kind, x, state, p, reset, detach, surrogate, v_rest, v_reset):
    """:func:`family_step` over ``x`` for CubaLIF ("cuba", state ``(i, v)``) or ALIF ("alif",
    ``(v, a)``); returns the spikes, the membrane trace and the final state."""
    spikes, trace = [], []
    for x_t in x.unbind(0):
        s, state = family_step(kind, x_t, state, p, reset, detach, surrogate, v_rest, v_reset)
        spikes.append(s)
        trace.append(state[1] if kind == "cuba" else state[0])
    return torch.stack(spikes), torch.stack(trace), tuple(state)
