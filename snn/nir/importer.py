"""``nir.NIRGraph`` (or a ``.nir`` file) -> torch module: :func:`import_nir`.

Each node becomes a module through the table ``_BUILDERS`` (NIR node type -> builder), which is
also the list that :func:`import_nir`'s docstring and its error for anything else give. A loop
``neuron -> Affine/Linear -> the same neuron`` is folded into the neuron first, which becomes an
:class:`snn.Recurrent`; any other cycle is refused. A chain ``Input -> ... -> Output`` then becomes
``nn.Sequential``; any other graph a :class:`~snn.nir.modules.NIRGraphModule`.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from snn.family_neurons import CubaLIF, Recurrent
from snn.fold import FoldTime
from snn.functional import physical_beta
from snn.neurons import LIF, LeakyIntegrator
from snn.nir.modules import NIRGraphModule, Scale, Threshold, _module_keys
from snn.nir.parameters import (
    gain_from_resistance,
    require_nir,
    written_dt,
    written_exact,
    written_subtract_reset,
)

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = ["import_nir"]

# a NIR gain r * (1 - beta) this close to 1 is the deep-learning form (gain exactly 1)
_UNIT_GAIN_RTOL = 1e-6


class _Importer:
    """Builds one node at a time, with the ``dt``, discretization and dtype of the import."""

    def __init__(self, dt: float | None, exact: bool | None, dtype: torch.dtype) -> None:
        self.nir = require_nir()
        self.dt = dt
        self.exact = exact
        self.dtype = dtype
        self.builders = {getattr(self.nir, kind): build for kind, build in _BUILDERS.items()}

    def convert(self, name: str, node: Any) -> nn.Module:
        """The module for NIR node ``node`` called ``name``."""
        for kind in type(node).__mro__:
            if kind in self.builders:
                return self.builders[kind](self, name, node)
        raise ValueError(
            f"import_nir does not support the NIR node type {type(node).__name__} (node "
            f"'{name}'); supported: {SUPPORTED_NODES}"
        )

    def tensor(self, a: Any, shape: tuple[int, ...] | None = None) -> Tensor:
        a = np.asarray(a, dtype=np.float64)
        if shape is not None:
            a = np.broadcast_to(a, shape) if shape else a.reshape(())
        return torch.tensor(a, dtype=self.dtype)  # a copy: broadcast views are read-only

    def value(self, a: np.ndarray, shape: tuple[int, ...]) -> Tensor | float:
        """A per-neuron tensor of ``shape``, or a float when every neuron shares the value."""
        return float(a.flat[0]) if not shape else self.tensor(a, shape)

    def node_dt(self, name: str, node: Any) -> float:
        dt = self.dt if self.dt is not None else written_dt(node)
        if dt is None:
            raise ValueError(
                f"node '{name}' ({type(node).__name__}) is a continuous-time neuron and the graph "
                "does not say which dt it was written for; pass import_nir(graph, dt=...) "
                "(snnTorch simulates its graphs at dt=1e-4; Norse 1.1.0 writes tau as "
                "dt * tau_mem, so its files reproduce Norse's spikes at dt=1e-6 for its 1e-3)"
            )
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive time step, got dt={dt}")
        return dt

    def node_exact(self, node: Any) -> bool:
        return self.exact if self.exact is not None else written_exact(node)

    def decay(self, name: str, node: Any, tau: Any) -> tuple[np.ndarray, float, bool]:
        """``(beta, dt, exact)`` for the time constants ``tau`` of a neuron node."""
        dt, exact = self.node_dt(name, node), self.node_exact(node)
        try:
            beta = physical_beta(np.asarray(tau, dtype=np.float64), dt, exact)
        except ValueError as error:
            raise ValueError(f"node '{name}' ({type(node).__name__}): {error}") from error
        return _compact(beta), dt, exact

    # -- the builders of the table: (name, node) -> module -------------------------------------

    def affine(self, name: str, node: Any) -> nn.Module:
        return self.linear_layer(name, node.weight, node.bias)

    def linear(self, name: str, node: Any) -> nn.Module:
        return self.linear_layer(name, node.weight, None)

    def linear_layer(self, name: str, weight: Any, bias: Any | None) -> nn.Module:
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise ValueError(f"node '{name}' has a {weight.ndim}-D weight; only 2-D is supported")
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=self.dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(weight))
            if bias is not None:
                layer.bias.copy_(torch.tensor(np.broadcast_to(bias, (weight.shape[0],))))
        return layer

    def conv1d(self, _: str, node: Any) -> nn.Module:
        return self.conv(node, nn.Conv1d, 1)

    def conv2d(self, _: str, node: Any) -> nn.Module:
        return self.conv(node, nn.Conv2d, 2)

    def conv(self, node: Any, cls: type[nn.Conv1d | nn.Conv2d], ndim: int) -> nn.Module:
        weight = np.asarray(node.weight)
        groups = int(node.groups)

        def ints(v: Any) -> tuple[int, ...] | int:
            return tuple(int(x) for x in np.broadcast_to(np.asarray(v), (ndim,)))

        padding = node.padding
        padding = padding if isinstance(padding, str) else ints(padding)
        conv = cls(
            weight.shape[1] * groups,
            weight.shape[0],
            kernel_size=tuple(weight.shape[2:]),
            stride=ints(node.stride),
            padding=padding,
            dilation=ints(node.dilation),
            groups=groups,
            bias=True,
            dtype=self.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(torch.tensor(weight))
            conv.bias.copy_(torch.tensor(np.broadcast_to(node.bias, (weight.shape[0],))))
        return FoldTime(conv)

    def flatten(self, _: str, node: Any) -> nn.Module:
        start, end = int(node.start_dim), int(node.end_dim)  # NIR counts per-sample dims
        return nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end)

    def pool(self, _: str, node: Any) -> nn.Module:
        kernel, stride, padding = (
            tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,)))
            for a in (node.kernel_size, node.stride, node.padding)
        )
        divisor = 1 if isinstance(node, self.nir.SumPool2d) else None
        return FoldTime(nn.AvgPool2d(kernel, stride, padding, divisor_override=divisor))

    def scale(self, _: str, node: Any) -> nn.Module:
        return Scale(self.tensor(node.scale))

    def threshold(self, _: str, node: Any) -> nn.Module:
        return Threshold(self.tensor(node.threshold))

    def lif(self, name: str, node: Any) -> nn.Module:
        return self.lif_layer(
            name, node, node.tau, node.r, node.v_leak, node.v_threshold, node.v_reset
        )

    def lif_layer(
        self, name: str, node: Any, tau: Any, r: Any, v_leak: Any, v_threshold: Any, v_reset: Any
    ) -> nn.Module:
        """The deep-learning form for a gain of 1, the physical form for a uniform ``r``, else a
        :class:`Scale` by the per-neuron gain before a deep-form LIF."""
        beta, dt, exact = self.decay(name, node, tau)
        tau, r = _compact(tau), _compact(r)
        gain = _compact(gain_from_resistance(r, beta))
        threshold = _compact(v_threshold)
        shape = _param_shape(tau, beta, gain, threshold, r)
        options = self.neuron_options(name, node, v_leak, v_reset, shape)
        beta_t, threshold_t = self.value(beta, shape), self.value(threshold, shape)
        try:
            if _unit(gain):
                return LIF(beta_t, threshold_t, **options)  # deep-learning form, gain exactly 1
            if r.ndim == 0:
                return LIF.physical(tau, dt, v_th=threshold_t, r=float(r), exact=exact, **options)
            lif = LIF(beta_t, threshold_t, **options)
            return nn.Sequential(OrderedDict(gain=Scale(self.tensor(gain, shape)), lif=lif))
        except ValueError as error:
            raise ValueError(f"node '{name}' ({type(node).__name__}): {error}") from error

    def neuron_options(
        self, name: str, node: Any, v_leak: Any, v_reset: Any, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """The keywords a spiking neuron's constructor takes from node ``name``, past its decays
        and threshold."""
        return dict(
            v_rest=_uniform(name, "v_leak", "v_rest", v_leak),
            v_reset=_uniform(name, "v_reset", "v_reset", v_reset),
            reset="subtract" if written_subtract_reset(node) else "zero",
            shape=shape or None,
            dtype=self.dtype,
        )

    def integrate_and_fire(self, name: str, node: Any) -> nn.Module:
        gain = _compact(np.asarray(node.r, dtype=np.float64) * self.node_dt(name, node))
        threshold = _compact(node.v_threshold)
        shape = _param_shape(gain, threshold)
        try:
            lif = LIF(
                1.0,  # no leak; Euler and exact steps of dv/dt = R I agree: v += R dt I
                self.value(threshold, shape),
                reset="zero",
                v_reset=_uniform(name, "v_reset", "v_reset", node.v_reset),
                shape=shape or None,
                dtype=self.dtype,
            )
        except ValueError as error:
            raise ValueError(f"node '{name}' (IF): {error}") from error
        if _unit(gain):
            return lif
        return nn.Sequential(OrderedDict(gain=Scale(self.tensor(gain, shape)), lif=lif))

    def li(self, name: str, node: Any) -> nn.Module:
        return self.leaky_integrator(name, node, node.tau, node.r, node.v_leak)

    def leaky_integrator(self, name: str, node: Any, tau: Any, r: Any, v_leak: Any) -> nn.Module:
        beta, _, _ = self.decay(name, node, tau)
        gain = _compact(gain_from_resistance(r, beta))
        shape = _param_shape(beta, gain)
        return LeakyIntegrator(
            self.value(beta, shape),
            self.value(gain, shape),
            v_rest=_uniform(name, "v_leak", "v_rest", v_leak),
            shape=shape or None,
            dtype=self.dtype,
        )

    def integrator(self, name: str, node: Any) -> nn.Module:
        # dv/dt = R I: v += R dt I per step, Euler and exact alike
        gain = _compact(np.asarray(node.r, dtype=np.float64) * self.node_dt(name, node))
        shape = _param_shape(gain)
        return LeakyIntegrator(1.0, self.value(gain, shape), shape=shape or None, dtype=self.dtype)

    def synapse(self, name: str, node: Any) -> nn.Module:
        # tau_syn dI/dt = -I + w_in S, the current updated before the membrane uses it (as in
        # snnTorch's Synaptic; Norse's CubaLIF feeds the membrane the previous step's current)
        return self.leaky_integrator(name, node, node.tau_syn, node.w_in, np.zeros(()))

    def cuba_lif(self, name: str, node: Any) -> nn.Module:
        """An :class:`snn.CubaLIF`: the deep-learning form when both gains (``w_in (1 - alpha)``
        into the current, ``r (1 - beta)`` into the membrane) are 1, the physical form for a
        uniform ``r`` and ``w_in``, else a :class:`Scale` by the product of the per-neuron gains
        before a deep-form CubaLIF (the current is linear in its input and starts at 0, so
        scaling the input scales the current)."""
        alpha, dt, exact = self.decay(name, node, node.tau_syn)
        beta, _, _ = self.decay(name, node, node.tau_mem)
        r, w_in = _compact(node.r), _compact(node.w_in)
        input_gain = _compact(gain_from_resistance(w_in, alpha))
        gain = _compact(gain_from_resistance(r, beta))
        threshold = _compact(node.v_threshold)
        shape = _param_shape(alpha, beta, input_gain, gain, threshold)
        options = self.neuron_options(name, node, node.v_leak, node.v_reset, shape)
        alpha_t, beta_t, threshold_t = (self.value(a, shape) for a in (alpha, beta, threshold))
        try:
            if _unit(input_gain) and _unit(gain):  # deep-learning form, both gains exactly 1
                return CubaLIF(alpha_t, beta_t, threshold_t, **options)
            if r.ndim == 0 and w_in.ndim == 0:
                tau_syn, tau_mem = _compact(node.tau_syn), _compact(node.tau_mem)
                return CubaLIF.physical(
                    tau_syn, tau_mem, dt, v_th=threshold_t, r=float(r), w_in=float(w_in),
                    exact=exact, **options,
                )  # fmt: skip
            cuba = CubaLIF(alpha_t, beta_t, threshold_t, **options)
            scale = Scale(self.tensor(input_gain * gain, shape))
            return nn.Sequential(OrderedDict(gain=scale, neuron=cuba))
        except ValueError as error:
            raise ValueError(f"node '{name}' (CubaLIF): {error}") from error

    def cuba_li(self, name: str, node: Any) -> nn.Module:
        neuron = self.leaky_integrator(name, node, node.tau_mem, node.r, node.v_leak)
        return nn.Sequential(OrderedDict(synapse=self.synapse(name, node), neuron=neuron))

    def subgraph(self, _: str, node: Any) -> nn.Module:
        return _build(node, self)

    def recurrent(self, name: str, node: Any, module: nn.Module, loop_name: str, loop: Any):
        """Node ``name`` (built as ``module``) with the loop ``name -> loop_name -> name`` through
        the Affine/Linear ``loop``: an :class:`snn.Recurrent` around the neuron, whose input at
        step ``t`` is ``x_t + W s_{t-1} + b`` (the loop delivers the step before's spikes). A
        per-neuron :class:`Scale` before the neuron (a per-neuron ``r``) stays in front and is
        folded into the loop's rows: ``g (x + W s + b) = g x + (g W) s + g b``."""
        scale, neuron = None, module
        if isinstance(module, nn.Sequential) and isinstance(module[0], Scale):
            scale, neuron = module[0], module[1]
        if not isinstance(neuron, (LIF, CubaLIF)):
            raise ValueError(
                f"node '{name}' ({type(node).__name__}) is in the recurrent loop {name} -> "
                f"{loop_name} -> {name}; import_nir reads such a loop into a spiking neuron "
                "(LIF, IF or CubaLIF) only, as snn.Recurrent"
            )
        weight = np.asarray(loop.weight, dtype=np.float64)
        if weight.ndim != 2 or weight.shape[0] != weight.shape[1]:
            raise ValueError(
                f"the recurrent node '{loop_name}' has a weight of shape {weight.shape}; a loop "
                f"{name} -> {loop_name} -> {name} needs a square [N, N] one"
            )
        features = weight.shape[0]
        if neuron.shape not in (None, (features,)):
            raise ValueError(
                f"node '{name}' has neurons of shape {neuron.shape}, but its recurrent node "
                f"'{loop_name}' has a [{features}, {features}] weight"
            )
        bias = None
        if isinstance(loop, self.nir.Affine):
            bias = np.broadcast_to(np.asarray(loop.bias, dtype=np.float64), (features,))
        if scale is not None:
            g = np.broadcast_to(scale.scale.double().numpy(), (features,))
            weight = g[:, None] * weight
            bias = None if bias is None else g * bias
        layer = Recurrent(neuron, features, bias=bias is not None, dtype=self.dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(weight))
            if bias is not None:
                layer.bias.copy_(torch.tensor(bias))
        if scale is None:
            return layer
        return nn.Sequential(OrderedDict(gain=scale, recurrent=layer))


# NIR node type -> its builder: the one list of what import_nir reads (its docstring and the
# error for any other node are made from it)
_BUILDERS: dict[str, Callable[[_Importer, str, Any], nn.Module]] = {
    "Affine": _Importer.affine,
    "Linear": _Importer.linear,
    "Conv1d": _Importer.conv1d,
    "Conv2d": _Importer.conv2d,
    "Flatten": _Importer.flatten,
    "AvgPool2d": _Importer.pool,
    "SumPool2d": _Importer.pool,
    "Scale": _Importer.scale,
    "Threshold": _Importer.threshold,
    "LIF": _Importer.lif,
    "IF": _Importer.integrate_and_fire,
    "LI": _Importer.li,
    "I": _Importer.integrator,
    "CubaLIF": _Importer.cuba_lif,
    "CubaLI": _Importer.cuba_li,
    "NIRGraph": _Importer.subgraph,
}

*_layers, _graph = _BUILDERS  # the graph type comes last: a graph as a node of a graph
SUPPORTED_NODES = f"{', '.join(_layers)} and nested {_graph}"
"""The NIR node types :func:`import_nir` reads, from the table ``_BUILDERS``."""


def _unit(gain: np.ndarray) -> bool:
    """Whether every gain is within ``_UNIT_GAIN_RTOL`` of 1: the deep-learning form's gain."""
    return bool(np.allclose(gain, 1.0, rtol=_UNIT_GAIN_RTOL, atol=0.0))


def _compact(a: Any) -> np.ndarray:
    """float64 ``a``, as a 0-d array when all its entries are equal."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1)[:1].reshape(()) if a.size and np.all(a == a.flat[0]) else a


def _param_shape(*arrays: Any) -> tuple[int, ...]:
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    return () if int(np.prod(shape)) == 1 else tuple(int(s) for s in shape)


def _uniform(name: str, field: str, snn_field: str, value: Any) -> float:
    """The one value of NIR's per-neuron ``field``, which snn keeps per layer as ``snn_field``."""
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0 or not np.all(a == a.flat[0]):
        raise ValueError(
            f"node '{name}' has per-neuron {field} values; snn.LIF takes one {snn_field} per layer"
        )
    return float(a.flat[0])


def _recurrent_loops(graph: Any, nir: Any) -> dict[str, str]:
    """``{neuron: loop}`` for each loop ``neuron -> loop -> neuron`` in which ``loop`` is an
    Affine or Linear node that reads only that node and feeds only it (a recurrent layer, as
    snnTorch writes its RLeaky and RSynaptic)."""
    inputs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    consumers: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        inputs[dst].append(src)
        consumers[src].append(dst)
    loops: dict[str, str] = {}
    for name, node in graph.nodes.items():
        if not isinstance(node, (nir.Affine, nir.Linear)) or len(inputs[name]) != 1:
            continue
        (neuron,) = inputs[name]
        if consumers[name] != [neuron] or neuron == name:
            continue
        if isinstance(graph.nodes[neuron], (nir.Input, nir.Output)):
            continue
        if neuron in loops:
            raise ValueError(
                f"node '{neuron}' has two recurrent loops, through '{loops[neuron]}' and "
                f"'{name}'; import_nir reads one per neuron (sum their weights into one Affine)"
            )
        loops[neuron] = name
    return loops


def _topological_order(
    nodes: dict[str, Any], edges: list[tuple[str, str]]
) -> tuple[list[str], dict[str, list[str]]]:
    inputs: dict[str, list[str]] = {name: [] for name in nodes}
    for src, dst in edges:
        inputs[dst].append(src)
    order, done, path = [], set(), []  # path: each node is an input of the one before

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = [name, *reversed(path[path.index(name) + 1 :]), name]
            raise ValueError(
                f"the NIR graph has the cycle {' -> '.join(cycle)}; import_nir reads one kind of "
                "cycle, a spiking neuron -> Affine/Linear -> the same neuron (a recurrent "
                "layer, imported as snn.Recurrent), and no other"
            )
        path.append(name)
        for src in inputs[name]:
            visit(src)
        path.pop()
        done.add(name)
        order.append(name)

    for name in nodes:
        visit(name)
    return order, inputs


def _build(graph: Any, importer: _Importer) -> nn.Module:
    nir = importer.nir
    loops = _recurrent_loops(graph, nir)  # folded into their neurons, so the rest is acyclic
    in_loops = set(loops.values())
    nodes = {k: n for k, n in graph.nodes.items() if k not in in_loops}
    edges = [(s, d) for s, d in graph.edges if s not in in_loops and d not in in_loops]
    order, inputs = _topological_order(nodes, edges)
    input_names = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    output_names = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(input_names) != 1 or not output_names:
        raise ValueError(
            f"import_nir needs a graph with one Input node and at least one Output node; this one "
            f"has inputs {input_names} and outputs {output_names}"
        )
    compute = [k for k in order if k not in input_names and k not in output_names]
    modules = {k: importer.convert(k, nodes[k]) for k in compute}
    for neuron, loop in loops.items():
        modules[neuron] = importer.recurrent(
            neuron, nodes[neuron], modules[neuron], loop, graph.nodes[loop]
        )
    for k in compute + output_names:
        if not inputs[k]:
            raise ValueError(f"node '{k}' has no incoming edge")

    chain, current = [], input_names[0]
    consumers = {k: [d for s, d in edges if s == k] for k in nodes}
    while len(consumers[current]) == 1:
        nxt = consumers[current][0]
        if inputs[nxt] != [current]:
            break
        if nxt in output_names:
            if len(chain) == len(compute) and len(output_names) == 1:
                keys = _module_keys(chain)
                return nn.Sequential(OrderedDict((keys[k], modules[k]) for k in chain))
            break
        chain.append(nxt)
        current = nxt
    return NIRGraphModule(modules, inputs, compute, input_names[0], output_names)


def _read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """``nir.read(path)``, with errors that name the file and what import_nir expects of it."""
    nir = require_nir()
    expected = (
        "import_nir expects a .nir file, as nir.write(path, graph) writes one "
        "(for example of a graph from snn.export_nir)"
    )
    if not os.path.exists(path):
        raise FileNotFoundError(f"{str(path)!r} does not exist; {expected} (or a nir.NIRGraph)")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{str(path)!r} is a folder; {expected}")
    try:
        return nir.read(path)
    except PermissionError:
        raise
    except (OSError, KeyError) as error:  # h5py: not HDF5 at all, or HDF5 without a NIR graph
        raise ValueError(f"{str(path)!r} is not a NIR graph ({error}); {expected}") from error


def import_nir(
    graph: nir.NIRGraph | str | os.PathLike,
    dt: float | None = None,
    *,
    exact: bool | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    r"""Build a torch module from a NIR graph (or a ``.nir`` file) that runs ``[T, B, ...]``.

    Continuous-time neurons are discretized with step ``dt``: a NIR ``LIF`` with ``tau, r,
    v_leak, v_threshold, v_reset`` becomes an :class:`snn.LIF` with ``beta = 1 - dt/tau`` (or
    ``exp(-dt/tau)`` with ``exact=True``), input gain ``r (1 - beta)``, ``v_rest = v_leak`` and
    ``reset="zero"`` to ``v_reset`` (``"subtract"`` when snn wrote ``snn_reset`` metadata). A
    gain within 1e-6 of 1 becomes the deep-learning form (gain exactly 1); a uniform ``r`` the
    physical form; a per-neuron ``r`` a :class:`Scale` before the LIF. ``IF`` uses ``beta = 1``
    and gain ``r dt``. ``CubaLIF`` becomes an :class:`snn.CubaLIF` with ``alpha`` from
    ``tau_syn`` and ``beta`` from ``tau_mem`` in the same way, current gain ``w_in (1 - alpha)``
    and membrane gain ``r (1 - beta)``: the deep-learning form when both gains are within 1e-6
    of 1 (as snnTorch writes ``Synaptic``: ``w_in = tau_syn/dt``, ``r = tau_mem/dt``), the
    physical form (``snn.CubaLIF.physical``) for a uniform ``r`` and ``w_in``, else a
    :class:`Scale` by the product of the gains before it. ``LI``/``I`` return membrane
    potentials, and so does ``CubaLI`` (a synaptic :class:`LeakyIntegrator` followed by one).

    A loop ``neuron -> Affine/Linear -> the same neuron`` (a spiking ``LIF``, ``IF`` or
    ``CubaLIF``; the Affine reading only the neuron and feeding only it) is a recurrent layer:
    an :class:`snn.Recurrent` around the neuron, with the Affine's ``[N, N]`` weight and its
    bias. The loop delivers step ``t-1``'s spikes at step ``t``: the neuron's input is
    ``x_t + W s_{t-1} + b``, with ``s_{-1} = 0`` (so ``b`` enters from the first step).

    Args:
        graph: a ``nir.NIRGraph``, or the path of a ``.nir`` file written by ``nir.write``
            (from this library's :func:`export_nir` or another's).
        dt: the simulation step, in the graph's time unit. Defaults to the ``dt`` snn stored in
            each neuron node's metadata; other libraries' graphs need it (snnTorch simulates its
            graphs at ``dt=1e-4``; Norse 1.1.0 writes ``tau`` as ``dt * tau_mem``, so its files
            reproduce Norse's spikes at ``dt=1e-6`` for its default ``1e-3``; both checked by
            ``tests/test_interop_peers.py``).
        exact: exponential instead of Euler steps; defaults to the node metadata, else Euler
            (what snnTorch and Norse simulate).
        dtype: parameter dtype (default ``torch.get_default_dtype()``).

    Returns:
        ``nn.Sequential`` for a chain ``Input -> ... -> Output`` (module names are the node
        names with ``.`` replaced by ``_``), else a :class:`NIRGraphModule`.

    Reads the NIR node types {SUPPORTED_NODES}. Raises ``ValueError`` naming the node for
    any other node type (``Delay``, say), any other cycle (naming its nodes), a missing ``dt``,
    per-neuron ``v_leak``/``v_reset``, or ``dt > tau`` with Euler; ``FileNotFoundError`` for a
    path that does not exist and ``ValueError`` for a file that does not hold a NIR graph, both
    naming the path.

    Example (a graph as snnTorch writes a ``Leaky(beta=0.5)``: ``tau = dt/(1-beta)``,
    ``r = tau/dt``)::

        >>> import nir, numpy as np, torch
        >>> dt = 1e-4
        >>> g = nir.NIRGraph.from_list(
        ...     nir.LIF(tau=np.array([2 * dt]), r=np.array([2.0]), v_leak=np.zeros(1),
        ...             v_threshold=np.ones(1)))
        >>> net = import_nir(g, dt=dt)
        >>> net
        Sequential(
          (lif): LIF(beta=0.5, threshold=1, reset=zero, surrogate=ATan(alpha=2.0))
        )
        >>> net(torch.full((5, 1, 1), 0.6)).flatten().tolist()  # v: 0.6, 0.9, 1.05 -> 0, 0.6, 0.9
        [0.0, 0.0, 1.0, 0.0, 0.0]
    """
    nir = require_nir()
    if isinstance(graph, (str, os.PathLike)):
        graph = _read_graph(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(
            "import_nir expects a nir.NIRGraph or a path to a .nir file, "
            f"got {type(graph).__name__}"
        )
    importer = _Importer(dt, exact, dtype or torch.get_default_dtype())
    return _build(graph, importer)


if import_nir.__doc__:  # the list of node types comes from the table (None under python -OO)
    import_nir.__doc__ = import_nir.__doc__.replace("{SUPPORTED_NODES}", SUPPORTED_NODES)
