"""snn: spiking neural networks in PyTorch, trained with surrogate gradients.

* :class:`snn.LIF`, :class:`snn.LIFCell`: leaky integrate-and-fire layers (:mod:`snn.neurons`)
  over a pure functional core (:mod:`snn.functional`).
* :mod:`snn.surrogate`: surrogate gradients for the spike.
* :mod:`snn.encode`: Poisson, latency and delta spike encoders.
* :class:`snn.CubaLIF`, :class:`snn.ALIF` (and their cells), :class:`snn.Recurrent`: the LIF
  family, current-based, adaptive and recurrent (:mod:`snn.family_neurons`), over
  :mod:`snn.family_functional`.
* :class:`snn.LeakyIntegrator`: the same membrane without spikes, for readouts.
* :class:`snn.FoldTime`: run Conv2d, BatchNorm, pooling over ``[T, B, ...]``.
* :func:`snn.export_nir`, :func:`snn.import_nir`: to and from NIR, the graph format snnTorch,
  Norse, SpikingJelly, Sinabs, Lava and neuromorphic chips share (:mod:`snn.nir`).
"""

from snn import encode, family_functional, functional, surrogate
from snn.family_functional import ALIFState, CubaLIFState, RecurrentState
from snn.family_neurons import ALIF, ALIFCell, CubaLIF, CubaLIFCell, Recurrent
from snn.fold import FoldTime
from snn.functional import LIFParameters, LIFSequence
from snn.neurons import LIF, LeakyIntegrator, LIFCell
from snn.nir import export_nir, import_nir

__all__ = [
    "LIF",
    "LIFCell",
    "LeakyIntegrator",
    "CubaLIF",
    "CubaLIFCell",
    "CubaLIFState",
    "ALIF",
    "ALIFCell",
    "ALIFState",
    "Recurrent",
    "RecurrentState",
    "FoldTime",
    "LIFParameters",
    "LIFSequence",
    "encode",
    "functional",
    "family_functional",
    "surrogate",
    "export_nir",
    "import_nir",
]

__version__ = "0.1.0"
