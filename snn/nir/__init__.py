r"""Export snn models to NIR, and build torch modules from NIR graphs written by any library.

`NIR <https://neuroir.org>`_ (the Neuromorphic Intermediate Representation; Pedersen et al.,
*Nature Communications* 15, 8122, 2024) describes a spiking network as a graph of continuous-time
primitives that several libraries and chips read and write (``tests/test_interop_peers.py``
checks what snn exchanges with the real snnTorch and Norse, and what not).
:func:`export_nir` turns a time-first snn model into a ``nir.NIRGraph``; :func:`import_nir` turns a
graph (from a file, or from another library) back into a torch module that runs ``[T, B, ...]``.

**The neuron.** NIR's ``LIF`` is the ODE

.. math::

    \tau\,\dot v = (v_{leak} - v) + R\,I,\qquad
    z = H(v - v_{threshold}),\qquad v \leftarrow v_{reset} \text{ after a spike,}

and snn's LIF is its discretization with step ``dt`` (:mod:`snn.functional`):
``h_t = v_rest + beta (v_{t-1} - v_rest) + g x_t`` with ``beta = 1 - dt/tau`` (Euler) or
``exp(-dt/tau)`` (exact for an input held over the step) and ``g = R (1 - beta)``.

=================  ===================================  ================================
NIR ``LIF`` field  physical form (``LIF.physical``)     deep-learning form (``beta``)
=================  ===================================  ================================
``tau``            ``tau`` (``dt / (1 - beta)`` Euler)  ``dt / (1 - beta)``
``r``              ``r``                                ``1 / (1 - beta)`` (gain 1)
``v_leak``         ``v_rest``                           ``v_rest`` (default 0)
``v_threshold``    ``v_th``                             ``threshold``
``v_reset``        ``v_reset``                          ``v_reset`` (default 0)
=================  ===================================  ================================

Every field is written per neuron (broadcast to the layer's neuron shape). The physical form maps
one to one and is exported with its own ``dt``; the deep form has no time unit, so
:func:`export_nir` picks one (``dt=1.0``: one step is one unit, NIR documents ms) and writes the
Euler-consistent ``tau`` and the ``r`` that makes the input gain exactly 1. snnTorch's exporter
uses the same map for ``Leaky`` (with ``dt = 1e-4``); Norse's ``LIFBox`` writes ``r = 1``, so its
gain is ``dt/tau``. ``dt`` and the discretization go into each neuron node's metadata
(``{"dt": ..., "discretization": "euler" | "exact"}``), which :func:`import_nir` reads when you
do not pass them.

**Resets.** NIR's LIF resets to ``v_reset``: ``reset="zero"`` maps exactly. ``reset="none"`` is
exported exactly as ``LI`` followed by ``Threshold``. ``reset="subtract"`` (snn's default, and
snnTorch's) has no NIR equivalent, so :func:`export_nir` refuses it unless you choose:
``subtract_reset="keep"`` writes a plain ``nir.LIF`` plus the metadata ``{"snn_reset":
"subtract"}``, which :func:`import_nir` honours (an exact snn round trip) but any other NIR
consumer ignores, resetting to ``v_reset`` instead (snnTorch's exporter does this silently);
``subtract_reset="zero"`` writes the layer as reset-to-``v_reset``, for everyone.
Spikes fire at ``v >= v_threshold`` here and at ``v > v_threshold`` in NIR's text; the two differ
only when the potential lands exactly on the threshold.

**The current-based neuron.** NIR's ``CubaLIF`` adds a synaptic current,
``tau_syn di/dt = -i + w_in x`` and ``tau_mem dv/dt = (v_leak - v) + r i``, and is
:class:`snn.CubaLIF` (``snn.CubaLIF.physical`` in the physical form): ``alpha`` and ``beta``
come from ``tau_syn`` and ``tau_mem`` as ``beta`` from ``tau`` above, the current gains
``w_in (1 - alpha) x_t`` and the membrane ``r (1 - beta) i_t``, the current of the same step.
The deep form (gains 1) is written with ``tau_syn = dt/(1 - alpha)``, ``w_in = 1/(1 - alpha)``
(snnTorch's ``Synaptic`` map, ``w_in = tau_syn/dt``) and ``tau_mem``, ``r`` as for the LIF; a
graph read with both gains within 1e-6 of 1 gives the deep form back, a uniform ``r`` and
``w_in`` the physical form, per-neuron ones a :class:`Scale` before a deep-form CubaLIF. Resets
and ``dt`` are the LIF's (``reset="none"`` is written as ``CubaLI`` + ``Threshold``).

**Recurrent layers.** :class:`snn.Recurrent` ``(neuron, N)`` is written as the cycle
``neuron -> Affine (weight [N, N], bias) -> the same neuron`` (``Linear`` without bias), the
loop's node named ``<layer>.w_rec``; :func:`import_nir` reads such a cycle around a spiking
``LIF``, ``IF`` or ``CubaLIF`` (snnTorch writes ``RLeaky`` so) back as
:class:`snn.Recurrent`. The cycle delivers step ``t-1``'s spikes at step ``t``: the neuron's
input is ``x_t + W s_{t-1} + b`` with ``s_{-1} = 0``, :class:`snn.Recurrent`'s own step. Any
other cycle (through more nodes, two loops into one neuron, a loop into a non-spiking node) is a
``ValueError`` that names it. ``snn.ALIF`` has no NIR node (NIR's neurons have a fixed
threshold), so its export is refused by name.

**What maps.** ``nn.Linear`` <-> ``Affine`` (``Linear`` without bias); ``FoldTime(nn.Conv1d /
Conv2d)`` <-> ``Conv1d / Conv2d``; ``nn.Flatten`` (start dim >= 2 on ``[T, B, ...]``) and
``torch.flatten`` <-> ``Flatten`` (NIR dims count from the first per-sample dim);
``FoldTime(nn.AvgPool2d)`` <-> ``AvgPool2d``, and with ``divisor_override=1`` <-> ``SumPool2d``;
``snn.LIF`` <-> ``LIF`` (or ``LI`` + ``Threshold``); ``snn.CubaLIF`` <-> ``CubaLIF``;
``snn.Recurrent`` <-> a neuron-Affine cycle; ``a + b`` of two branches becomes two edges
into one node (NIR sums a node's inputs). ``FoldTime`` is unwrapped; ``nn.Sequential`` and plain
``forward`` methods are traced with ``torch.fx``; ``nn.Identity`` and dropout vanish (export is in
eval mode). Import reads the node types {SUPPORTED_NODES}. Anything else (``MaxPool2d``,
``BatchNorm``, ``ReLU``, ``Delay``, ``ALIF``, other cycles) is a ``ValueError`` that names it.

**The package.** :mod:`snn.nir.export` (:func:`export_nir`) and :mod:`snn.nir.importer`
(:func:`import_nir`) each hold one table, from module type or NIR node type to its converter,
which is also the list their docstrings and errors give; :mod:`snn.nir.modules` holds the
modules an import builds where snn has no layer of its own (:class:`Threshold`, :class:`Scale`,
:class:`NIRGraphModule`); :mod:`snn.nir.parameters` the field map above, which both directions
use.

Example (a round trip through a file):

>>> import tempfile, os, nir, torch
>>> from torch import nn
>>> import snn
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(4, 3), snn.LIF(beta=0.8, reset="zero"))
>>> x = torch.rand(20, 2, 4)                                      # [T, B, features]
>>> graph = snn.export_nir(model, x)
>>> [type(n).__name__ for n in graph.nodes.values()]
['Input', 'Affine', 'LIF', 'Output']
>>> path = os.path.join(tempfile.mkdtemp(), "model.nir")
>>> nir.write(path, graph)
>>> again = snn.import_nir(path)                                  # dt from the metadata
>>> torch.equal(again(x), model(x))
True
"""

from __future__ import annotations

from snn.nir.export import DEFAULT_DT, export_nir
from snn.nir.importer import SUPPORTED_NODES, import_nir
from snn.nir.modules import NIRGraphModule, Scale, Threshold

__all__ = [
    "export_nir",
    "import_nir",
    "Threshold",
    "Scale",
    "NIRGraphModule",
    "DEFAULT_DT",
]

if __doc__:  # the node types come from the importer's table (None under python -OO)
    __doc__ = __doc__.replace("{SUPPORTED_NODES}", SUPPORTED_NODES)
