r"""The classifiers, built from a :class:`snn.training.config.ModelConfig` out of the neurons
(:class:`snn.LIF`, :class:`snn.CubaLIF`, :class:`snn.ALIF`, :class:`snn.Recurrent`),
:class:`snn.FoldTime` and torch layers.

Every model maps its dataset's input ``[T, B, *input_shape]`` (``[T, B, 1, 28, 28]`` for
MNIST; :func:`snn.training.encoding.model_io`) to an output sequence ``[T, B, num_classes]``:

* ``readout="leaky"``: the membrane potential of a non-spiking leaky integrator,
  ``v_t = beta_out v_{t-1} + W s_t + b`` (:class:`snn.LeakyIntegrator`). Its potential is a
  smooth, unbounded score, which cross-entropy handles well.
* ``readout="spiking"``: the spikes of a LIF output layer, to be counted.

The hidden neurons are ``model.neuron.kind`` (LIF by default). ``mlp``::

    Flatten -> [Linear -> neuron -> TimeDropout] x len(hidden) -> Linear -> readout

``cnn`` (each block halves the image; BatchNorm pools statistics over time and batch)::

    [Conv3x3 -> MaxPool2 -> BatchNorm -> neuron] x len(channels) -> Flatten
        -> [Linear -> neuron -> TimeDropout] x len(hidden) -> Linear -> readout

``rsnn`` (each hidden neuron also receives the layer's own spikes of the step before)::

    Flatten -> [Linear -> Recurrent(neuron) -> TimeDropout] x len(hidden) -> Linear -> readout

Example::

    >>> from snn.training.config import ModelConfig
    >>> net = build_model(ModelConfig(hidden=[32]), readout="leaky")
    >>> net(torch.zeros(5, 2, 1, 28, 28)).shape
    torch.Size([5, 2, 10])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import snn
from snn.training.config import ModelConfig, NeuronConfig
from snn.training.encoding import MNIST_IO, ModelIO

__all__ = ["TimeDropout", "build_model", "spiking_layers", "SPIKING", "READOUTS"]

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


def _neuron(n: NeuronConfig, shape: int | None) -> nn.Module:
    """A hidden layer of ``n.kind`` neurons; learned parameters are per neuron (``shape``) or,
    for ``shape=None``, one per layer (as PLIF does for conv layers)."""
    learn = {"learn_beta": n.learn_beta, "learn_threshold": n.learn_threshold}
    if n.kind == "cuba_lif":
        kind, extra = snn.CubaLIF, {"alpha": n.alpha, "learn_alpha": n.learn_alpha}
    elif n.kind == "alif":
        kind = snn.ALIF
        extra = {"rho": n.rho, "adapt": n.adapt, "learn_rho": n.learn_rho}
        extra["learn_adapt"] = n.learn_adapt
    else:
        kind, extra = snn.LIF, {}
    learned = any(learn.values()) or any(v for k, v in extra.items() if k.startswith("learn_"))
    return kind(
        beta=n.beta,
        threshold=n.threshold,
        reset=n.reset,
        detach_reset=n.detach_reset,
        surrogate=n.surrogate,
        shape=shape if learned else None,
        **learn,
        **extra,
    )


def build_model(cfg: ModelConfig, readout: str, io: ModelIO = MNIST_IO) -> nn.Sequential:
    """The network described by ``cfg`` with a ``"leaky"`` or ``"spiking"`` output layer, for
    inputs ``[T, B, *io.input_shape]`` and ``io.num_classes`` classes (MNIST's by default)."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    layers: list[nn.Module] = []
    shape = tuple(io.input_shape)
    if cfg.kind == "cnn":
        if len(shape) != 3:
            raise ValueError(
                f"model kind 'cnn' needs [channels, height, width] inputs, got {shape}"
            )
        channels, height, width = shape
        for out in cfg.channels:
            layers += [
                snn.FoldTime(nn.Conv2d(channels, out, 3, padding=1, bias=False)),
                # pooling the input current before the neurons (as snnTorch's CSNN tutorial
                # does) gives the same 14x14 spike map as pooling spikes after, for a quarter
                # of the BatchNorm and LIF work
                snn.FoldTime(nn.MaxPool2d(2)),
                snn.FoldTime(nn.BatchNorm2d(out)),
                _neuron(cfg.neuron, None),
            ]
            channels, height, width = out, height // 2, width // 2
        shape = (channels, height, width)
    elif cfg.kind not in ("mlp", "rsnn"):
        raise ValueError(f"model kind must be 'mlp', 'cnn' or 'rsnn', got {cfg.kind!r}")
    layers.append(nn.Flatten(start_dim=2))
    width = math.prod(shape)
    for h in cfg.hidden:
        layers.append(nn.Linear(width, h))
        neuron = _neuron(cfg.neuron, h)
        layers.append(snn.Recurrent(neuron, h) if cfg.kind == "rsnn" else neuron)
        if cfg.dropout > 0:
            layers.append(TimeDropout(cfg.dropout))
        width = h
    layers.append(nn.Linear(width, io.num_classes))
    if readout == "leaky":
        layers.append(snn.LeakyIntegrator(cfg.readout_beta))
    else:
        layers.append(snn.LIF(beta=cfg.readout_beta))
    return nn.Sequential(*layers)


SPIKING = (snn.LIF, snn.CubaLIF, snn.ALIF, snn.Recurrent)


def spiking_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The spiking layers by name, each called with a layer's input and returning its spikes: the
    neurons, and the :class:`snn.Recurrent` layers in place of the neuron they wrap (whose
    parameters they use). The :class:`snn.LeakyIntegrator` readout's inner LIF
    (``reset="none"``, it never spikes) is not one of them."""
    wrapped = {id(m.neuron) for m in model.modules() if isinstance(m, snn.Recurrent)}
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, SPIKING) and id(m) not in wrapped and getattr(m, "reset", "") != "none"
    }
