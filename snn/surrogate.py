r"""Surrogate gradients: an exact Heaviside step forward, a smooth derivative backward.

A spiking neuron emits ``S = H(U)`` where ``U = v - v_th`` is the distance of the membrane
potential from threshold and ``H`` is the Heaviside step (``H(0) = 1``). ``dH/dU`` is zero almost
everywhere, so training replaces it in the backward pass by the derivative of a smooth function
(Neftci, Mostafa & Zenke, 2019). Every surrogate here is a small frozen dataclass with one method,
:meth:`Surrogate.derivative`; the forward pass is always the exact step.

=====================  ===================================================  ==================
name                   backward ``dS/dU``                                   default
=====================  ===================================================  ==================
``"atan"``             ``(alpha/2) / (1 + (pi*alpha*U/2)^2)``               ``alpha = 2.0``
``"fast_sigmoid"``     ``1 / (1 + slope*|U|)^2``                            ``slope = 25.0``
``"sigmoid"``          ``slope * sig(slope*U) * (1 - sig(slope*U))``        ``slope = 25.0``
``"triangle"``         ``max(0, 1 - |U|/width) / width``                    ``width = 1.0``
``"rectangular"``      ``1/width`` where ``|U| < width/2``, else 0          ``width = 1.0``
``"straight_through"`` ``1``                                                --
=====================  ===================================================  ==================

Your own surrogate is a subclass with a ``derivative`` method (define it at module level, so
that layers using it pickle):

    >>> import math, torch, snn
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Gaussian(snn.surrogate.Surrogate):
    ...     sigma: float = 0.5
    ...
    ...     def derivative(self, u):
    ...         norm = self.sigma * math.sqrt(2 * math.pi)
    ...         return torch.exp(-0.5 * (u / self.sigma) ** 2) / norm
    >>> lif = snn.LIF(beta=0.9, surrogate=Gaussian(0.3))
    >>> x = torch.full((3, 1, 1), 0.6, requires_grad=True)
    >>> lif(x).flatten().tolist()
    [0.0, 1.0, 0.0]
    >>> lif(x).sum().backward()  # the Gaussian's derivative carries the gradient
    >>> [round(g, 4) for g in x.grad.flatten().tolist()]
    [0.9713, 1.0407, 0.8763]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "Surrogate",
    "ATan",
    "FastSigmoid",
    "Sigmoid",
    "Triangle",
    "Rectangular",
    "StraightThrough",
    "spike",
    "get",
    "available",
]


@dataclass(frozen=True)
class Surrogate:
    """Base class: subclasses define ``derivative(u)``, the backward replacement for ``dH/dU``.

    Calling an instance on ``u`` returns ``H(u)`` with this surrogate in the backward pass.
    """

    def derivative(self, u: Tensor) -> Tensor:
        """``dS/dU`` at ``u = v - v_th``, used in place of the Heaviside step's derivative."""
        raise NotImplementedError(f"{type(self).__name__} must implement derivative(u)")

    def __call__(self, u: Tensor) -> Tensor:
        return spike(u, self)


@dataclass(frozen=True)
class ATan(Surrogate):
    r"""Arctangent (Fang et al., 2021): :math:`\frac{\alpha/2}{1 + (\pi \alpha U / 2)^2}`."""

    alpha: float = 2.0

    def derivative(self, u: Tensor) -> Tensor:
        return (self.alpha / 2) / (1 + (math.pi * self.alpha / 2 * u) ** 2)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    r"""Fast sigmoid, SuperSpike (Zenke & Ganguli, 2018): :math:`1 / (1 + k|U|)^2`."""

    slope: float = 25.0

    def derivative(self, u: Tensor) -> Tensor:
        return 1 / (1 + self.slope * u.abs()) ** 2


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    r"""Logistic sigmoid: :math:`k\,\sigma(kU)\,(1 - \sigma(kU))`, finite for any ``U``."""

    slope: float = 25.0

    def derivative(self, u: Tensor) -> Tensor:
        # torch.sigmoid saturates cleanly at 0 and 1, so no exp() of a large number is formed.
        sig = torch.sigmoid(self.slope * u)
        return self.slope * sig * (1 - sig)


@dataclass(frozen=True)
class Triangle(Surrogate):
    r"""Triangle (Esser et al., 2016; Bellec et al., 2018): :math:`\max(0, 1 - |U|/w) / w`.

    Its integral is 1, so it is a smoothed Dirac delta of half-width ``w``.
    """

    width: float = 1.0

    def derivative(self, u: Tensor) -> Tensor:
        return torch.clamp(1 - u.abs() / self.width, min=0) / self.width


@dataclass(frozen=True)
class Rectangular(Surrogate):
    r"""Rectangular window (Wu et al., 2018): :math:`1/w` where :math:`|U| < w/2`, else 0."""

    width: float = 1.0

    def derivative(self, u: Tensor) -> Tensor:
        return (u.abs() < self.width / 2).to(u.dtype) / self.width


@dataclass(frozen=True)
class StraightThrough(Surrogate):
    """Straight-through estimator (Bengio et al., 2013): the gradient passes unchanged."""

    def derivative(self, u: Tensor) -> Tensor:
        return torch.ones_like(u)


_BY_NAME: dict[str, type[Surrogate]] = {
    "atan": ATan,
    "fast_sigmoid": FastSigmoid,
    "sigmoid": Sigmoid,
    "triangle": Triangle,
    "rectangular": Rectangular,
    "straight_through": StraightThrough,
}


def available() -> list[str]:
    """The names :func:`get` accepts."""
    return sorted(_BY_NAME)


def get(surrogate: str | Surrogate) -> Surrogate:
    """Return a surrogate from its name (default hyper-parameters) or pass an instance through."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    if isinstance(surrogate, str):
        try:
            return _BY_NAME[surrogate.lower()]()
        except KeyError:
            raise ValueError(
                f"unknown surrogate {surrogate!r}; use one of {available()} "
                "or an instance of snn.surrogate.Surrogate"
            ) from None
    raise TypeError(
        "surrogate must be a name or a snn.surrogate.Surrogate instance, "
        f"got {type(surrogate).__name__}"
    )


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, surrogate: Surrogate) -> Tensor:
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_spike: Tensor) -> tuple[Tensor, None]:
        (u,) = ctx.saved_tensors
        return grad_spike * ctx.surrogate.derivative(u), None


def spike(u: Tensor, surrogate: Surrogate) -> Tensor:
    """``H(u)`` (1 where ``u >= 0``, else 0) with ``surrogate.derivative(u)`` as its gradient."""
    return _SurrogateSpike.apply(u, surrogate)
