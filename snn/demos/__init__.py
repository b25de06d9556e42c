"""Single-neuron demos: the seed's LIF plots, a population, and the f-I curve.

Everything runs through :class:`snn.LIF` in its physical form; nothing here steps a neuron itself.

* :mod:`snn.demos.simulate`: the seed's parameters (:class:`NeuronParams`), input currents
  (constant, sine plus seeded noise) and one batched run of the layer.
* :mod:`snn.demos.fi_curve`: the firing rate against current, continuous-time and discrete-map
  closed forms, and the simulated curve.
* :mod:`snn.demos.plots`: the figures.
* :mod:`snn.demos.single_neuron`: the command, ``python -m snn.demos.single_neuron --help``.
"""

from snn.demos.fi_curve import (
    FICurve,
    continuous_rate_hz,
    discrete_rate_hz,
    discrete_spike_count,
    simulate_fi,
    steps_to_threshold,
)
from snn.demos.simulate import INPUT_KINDS, NeuronParams, Simulation, input_current, simulate

__all__ = [
    "INPUT_KINDS",
    "FICurve",
    "NeuronParams",
    "Simulation",
    "continuous_rate_hz",
    "discrete_rate_hz",
    "discrete_spike_count",
    "input_current",
    "simulate",
    "simulate_fi",
    "steps_to_threshold",
]
