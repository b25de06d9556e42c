r"""The MNIST classifiers, built from a :class:`snn.training.config.ModelConfig` out of
:class:`snn.LIF`, :class:`snn.FoldTime` and torch layers.

Every model maps input spikes ``[T, B, 1, 28, 28]`` to an output sequence ``[T, B, 10]``:

* ``readout="leaky"``: the membrane potential of a non-spiking leaky integrator,
  ``v_t = beta_out v_{t-1} + W s_t + b`` (:class:`snn.LeakyIntegrator`). Its potential is a
  smooth, unbounded score, which cross-entropy handles well.
* ``readout="spiking"``: the spikes of a LIF output layer, to be counted.

``mlp``::

    Flatten -> [Linear -> LIF -> TimeDropout] x len(hidden) -> Linear -> readout

``cnn`` (each block halves the image; BatchNorm pools statistics over time and batch)::

    [Conv3x3 -> MaxPool2 -> BatchNorm -> LIF] x len(channels) -> Flatten
        -> [Linear -> LIF -> TimeDropout] x len(hidden) -> Linear -> readout

Example::

    >>> from snn.training.config import ModelConfig
    >>> net = build_model(ModelConfig(hidden=[32]), readout="leaky")
    >>> net(torch.zeros(5, 2, 1, 28, 28)).shape
    torch.Size([5, 2, 10])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import snn
from snn.training.config import ModelConfig, NeuronConfig

__all__ = ["TimeDropout", "build_model", "spiking_layers", "READOUTS"]

READOUTS = ("leaky", "spiking")


class TimeDropout(nn.Module):
    """Dropout whose mask is drawn once per sample and reused at every time step.

    Independent masks per step would only add noise to the rate code; one mask per sample
    removes a neuron for the whole presentation, which is what regularizes a rate-coded layer.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x[0]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _lif(n: NeuronConfig, shape: int | None) -> snn.LIF:
    """A hidden LIF layer; learned beta/threshold are per neuron (``shape``) or, for
    ``shape=None``, one per layer (as PLIF does for conv layers)."""
    learn = n.learn_beta or n.learn_threshold
    return snn.LIF(
        beta=n.beta,
        threshold=n.threshold,
        reset=n.reset,
        detach_reset=n.detach_reset,
        surrogate=n.surrogate,
        shape=shape if learn else None,
        learn_beta=n.learn_beta,
        learn_threshold=n.learn_threshold,
    )


def build_model(cfg: ModelConfig, readout: str, num_classes: int = 10) -> nn.Sequential:
    """The network described by ``cfg`` with a ``"leaky"`` or ``"spiking"`` output layer."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    layers: list[nn.Module] = []
    channels, side = 1, 28
    if cfg.kind == "cnn":
        for out in cfg.channels:
            layers += [
                snn.FoldTime(nn.Conv2d(channels, out, 3, padding=1, bias=False)),
                # pooling the input current before the neurons (as snnTorch's CSNN tutorial
                # does) gives the same 14x14 spike map as pooling spikes after, for a quarter
                # of the BatchNorm and LIF work
                snn.FoldTime(nn.MaxPool2d(2)),
                snn.FoldTime(nn.BatchNorm2d(out)),
                _lif(cfg.neuron, None),
            ]
            channels, side = out, side // 2
    elif cfg.kind != "mlp":
        raise ValueError(f"model kind must be 'mlp' or 'cnn', got {cfg.kind!r}")
    layers.append(nn.Flatten(start_dim=2))
    width = channels * side * side
    for h in cfg.hidden:
        layers += [nn.Linear(width, h), _lif(cfg.neuron, h)]
        if cfg.dropout > 0:
            layers.append(TimeDropout(cfg.dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    if readout == "leaky":
        layers.append(snn.LeakyIntegrator(cfg.readout_beta))
    else:
        layers.append(snn.LIF(beta=cfg.readout_beta))
    return nn.Sequential(*layers)


def spiking_layers(model: nn.Module) -> dict[str, snn.LIF]:
    """The spiking LIF layers by name; the :class:`snn.LeakyIntegrator` readout's inner LIF
    (``reset="none"``, it never spikes) is not one of them."""
    return {
        name: m for name, m in model.named_modules() if isinstance(m, snn.LIF) and m.reset != "none"
    }
