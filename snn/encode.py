"""Spike encoders: static or slowly varying data -> time-first spike trains ``[T, ...]``.

* :func:`poisson` (rate coding): at every step each input fires with probability
  ``clamp(gain * x, 0, 1)``, independently.
* :func:`latency` (time-to-first-spike): one spike per input, earlier for larger values.
* :func:`delta` (change coding): a spike where a sequence changes by more than a threshold.

All run on the input's device and keep its floating dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
from torch import Tensor

__all__ = ["poisson", "latency", "delta"]


def _check_steps(num_steps: int) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int):
        raise TypeError(f"num_steps must be an int, got {type(num_steps).__name__}")
    if num_steps <= 0:
        raise ValueError(f"num_steps must be a positive number of time steps, got {num_steps}")


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _check_number(
    value: float, name: str, allowed: str, ok: Callable[[float], bool] = _positive
) -> None:
    """Raise unless ``value`` is a real number (else ``TypeError``) for which ``ok`` holds (else
    ``ValueError``); both messages name the argument and the values it accepts."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__}")
    if not ok(value):
        raise ValueError(f"{name} must be {allowed}, got {value}")


def _check_float(x: Tensor, name: str, finite: bool = True) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a floating-point tensor, got {x.dtype}; use x.float()")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} input holds NaN or Inf; encoders need finite values")


def poisson(
    x: Tensor,
    num_steps: int,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    check_input: bool = True,
) -> Tensor:
    """Rate-code ``x`` into ``num_steps`` Bernoulli spike frames: ``[num_steps, *x.shape]``.

    ``P(spike) = clamp(gain * x, 0, 1)`` at every step, so the expected spike count of an input is
    ``num_steps * p``. Pass a ``torch.Generator`` on ``x``'s device for reproducible spikes.
    ``check_input=False`` skips the NaN/Inf scan (a full pass and, on GPU, a host sync) in hot
    training loops whose data is known to be clean.

    Example::

        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> poisson(torch.tensor([0.0, 1.0]), num_steps=3, generator=g).tolist()
        [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    """
    _check_float(x, "poisson", finite=check_input)
    _check_steps(num_steps)
    # gain <= 0 would silently give no spikes at all; so would NaN (it compares false)
    _check_number(gain, "poisson's gain", "a finite number > 0 (P(spike) = clamp(gain * x, 0, 1))")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the input is on {x.device}; "
            f"make it with torch.Generator(device={str(x.device)!r})"
        )
    p = torch.clamp(gain * x, 0.0, 1.0)
    u = torch.rand((num_steps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < p).to(x.dtype)


def latency(
    x: Tensor,
    num_steps: int,
    *,
    method: str = "linear",
    tau: float = 1.0,
    threshold: float = 0.01,
) -> Tensor:
    """One spike per input at a time that falls as the value rises: ``[num_steps, *x.shape]``.

    ``x`` must lie in [0, 1]. Inputs below ``threshold`` never fire. The spike step is

    * ``method="linear"``: ``round((1 - x) * (num_steps - 1))``, so 1 fires at step 0;
    * ``method="log"``: the time an RC circuit ``tau dV/dt = -V + x`` charged from 0 takes to
      reach ``threshold``, ``tau * ln(x / (x - threshold))`` steps, clipped to the last step.
    """
    _check_float(x, "latency")
    _check_steps(num_steps)
    if bool((x < 0).any()) or bool((x > 1).any()):
        raise ValueError("latency expects inputs in [0, 1]; normalize them first (x / x.max())")
    _check_number(threshold, "latency's threshold", "a number in [0, 1)", lambda t: 0 <= t < 1)
    fires = x >= threshold if threshold > 0 else x > 0
    if method == "linear":
        t = torch.round((1 - x) * (num_steps - 1))
    elif method == "log":
        _check_number(tau, "latency's tau", "a finite number > 0 (in time steps)")
        safe = torch.where(fires, x, torch.ones_like(x))
        t = torch.round(tau * torch.log(safe / (safe - threshold))) if threshold > 0 else 0 * x
        t = torch.clamp(t, max=num_steps - 1)
    else:
        raise ValueError(f"method must be 'linear' or 'log', got {method!r}")
    steps = torch.arange(num_steps, device=x.device, dtype=x.dtype).view(-1, *([1] * x.dim()))
    return ((steps == t) & fires).to(x.dtype)


def delta(x: Tensor, threshold: float = 0.1, *, off_spikes: bool = False) -> Tensor:
    """Spikes where a time-first sequence ``x`` (``[T, ...]``) changes by at least ``threshold``.

    Step ``t`` compares ``x[t]`` with ``x[t-1]``; the first step compares with zeros, so a
    first frame above threshold fires. Rises give +1; with ``off_spikes`` falls give -1.
    """
    _check_float(x, "delta")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(
            f"delta expects a time-first sequence [T, ...] with T >= 1, got {tuple(x.shape)}"
        )
    _check_number(threshold, "delta's threshold", "a finite number > 0")
    change = torch.diff(x, dim=0, prepend=torch.zeros_like(x[:1]))
    out = (change >= threshold).to(x.dtype)
    if off_spikes:
        out = out - (change <= -threshold).to(x.dtype)
    return out
