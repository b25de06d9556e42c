"""snn model -> ``nir.NIRGraph``: :func:`export_nir` (the mapping is described in :mod:`snn.nir`).

The model is traced with ``torch.fx`` and run once on a sample to learn every tensor's shape;
each module then becomes a chain of NIR nodes through the table ``_EXPORTERS``, which is also the
list that :func:`export_nir`'s docstring and its errors give.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx
from torch import Tensor, nn

from snn.family_neurons import (
    ALIF,
    ALIFCell,
    CubaLIF,
    CubaLIFCell,
    Recurrent,
    _ALIFBase,
    _CubaLIFBase,
)
from snn.fold import FoldTime
from snn.functional import physical_tau
from snn.neurons import LIF, LeakyIntegrator, LIFCell, _LIFBase
from snn.nir.modules import Scale, Threshold
from snn.nir.parameters import neuron_metadata, require_nir, resistance_from_gain

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = ["export_nir", "DEFAULT_DT"]

DEFAULT_DT = 1.0
"""The time step written for deep-learning-form layers when no physical layer fixes one."""

_SUBTRACT_CHOICES = ("error", "keep", "zero")


@dataclass(frozen=True)
class Feedback:
    """A chain entry for a recurrent loop: ``node`` reads the chain's last node and feeds its
    first (NIR delivers the step before's output around a cycle)."""

    node: Any


# a chain of new NIR nodes for one module: (suffix of the node name, node or Feedback)
Chain = list[tuple[str, Any]]

_NEURONS = (LIF, LIFCell, CubaLIF, CubaLIFCell, ALIF, ALIFCell)
_LEAVES = (*_NEURONS, Recurrent, FoldTime, LeakyIntegrator, Threshold, Scale)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


class _ShapeRecorder(torch.fx.Interpreter):
    """Runs the traced graph once and keeps every node's output shape."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[torch.fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, Tensor):
            self.shapes[n] = tuple(result.shape)
        return result


def _per_sample(shape: tuple, folded: bool) -> tuple:
    """The per-sample dims of a tensor of ``shape``: after ``[T*B]`` (folded) or ``[T, B]``."""
    return shape[1:] if folded else shape[2:]


def _np(t: Tensor) -> np.ndarray:
    """A CPU numpy copy, whatever the device; half types widen to float32."""
    t = t.detach()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.cpu().numpy().copy()


def _float64(t: Tensor | float, shape: tuple[int, ...]) -> np.ndarray:
    value = _np(t).astype(np.float64) if isinstance(t, Tensor) else np.float64(t)
    return np.broadcast_to(value, shape).copy()


def _dense_kernel(weight: np.ndarray, groups: int) -> np.ndarray:
    """The ``[C_out, C_in, ...]`` kernel equal to a grouped ``[C_out, C_in / groups, ...]`` one."""
    c_out, c_in_group = weight.shape[:2]
    dense = np.zeros((c_out, c_in_group * groups, *weight.shape[2:]), dtype=weight.dtype)
    per_group = c_out // groups
    for g in range(groups):
        rows = slice(g * per_group, (g + 1) * per_group)
        dense[rows, g * c_in_group : (g + 1) * c_in_group] = weight[rows]
    return dense


def _pair(v: int | tuple[int, ...]) -> np.ndarray:
    return np.array((v, v) if isinstance(v, int) else tuple(v), dtype=np.int64)


class _Exporter:
    """Converts one module at a time; holds the graph's ``dt`` and the subtract-reset choice."""

    def __init__(self, dt: float | None, subtract_reset: str) -> None:
        self.nir = require_nir()
        self.requested_dt = dt
        self.subtract_reset = subtract_reset
        self.graph_dt: float | None = None

    def resolve_dt(self, lif_layers: Iterable[tuple[str, _LIFBase | LeakyIntegrator]]) -> None:
        physical = {name: layer.dt for name, layer in lif_layers if getattr(layer, "dt", None)}
        dts = set(physical.values())
        if len(dts) > 1:
            raise ValueError(
                f"the physical-form neuron layers use different time steps {physical}; a NIR graph "
                "is simulated with one dt, so build every physical layer with the same dt"
            )
        if dts:
            (dt,) = dts
            if self.requested_dt is not None and not math.isclose(self.requested_dt, dt):
                raise ValueError(
                    f"dt={self.requested_dt} was requested, but the physical-form layers were "
                    f"built with dt={dt}; leave dt out (or pass dt={dt})"
                )
            self.graph_dt = float(dt)
        else:
            dt = DEFAULT_DT if self.requested_dt is None else self.requested_dt
            if not (math.isfinite(dt) and dt > 0):
                raise ValueError(f"dt must be a positive time step, got dt={dt}")
            self.graph_dt = float(dt)

    def convert(
        self, name: str, module: nn.Module, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        """The NIR nodes for ``module``, which maps ``in_shape`` to ``out_shape``; ``folded``:
        it runs inside FoldTime, on ``[T*B, ...]`` instead of ``[T, B, ...]``."""
        for types, export in _EXPORTERS:
            if isinstance(module, types):
                return export(self, name, module, in_shape, out_shape, folded)
        raise ValueError(_unsupported_message(name, module))

    # -- the exporters of the table: (name, module, in_shape, out_shape, folded) -> Chain ------

    def folded(
        self, name: str, fold: FoldTime, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        """FoldTime(inner): inner runs on [T*B, ...]; a Sequential is converted layer by layer."""
        inner = fold.module
        layers = list(inner.named_children()) if isinstance(inner, nn.Sequential) else [("", inner)]
        example = torch.zeros(1, *in_shape[2:], device=_device_of(inner))
        converted = []
        with torch.no_grad():
            for sub, layer in layers:
                out = layer(example)
                label = f"{name}.{sub}" if sub else name
                nodes = self.convert(label, layer, (1, *example.shape[1:]), tuple(out.shape), True)
                converted += [
                    (f".{sub}{suffix}" if sub else suffix, node) for suffix, node in nodes
                ]
                example = out
        return converted

    def vanish(self, *_: Any) -> Chain:
        """Identity, and dropout in eval mode: no node."""
        return []

    def linear(
        self, name: str, module: nn.Linear, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        sample = _per_sample(in_shape, folded)
        if len(sample) != 1:
            raise ValueError(
                f"module '{name}' (Linear) sees per-sample shape {sample}; NIR's "
                "Affine takes a vector, so flatten first (nn.Flatten(2) on [T, B, ...])"
            )
        weight = _np(module.weight)
        if module.bias is None:
            return [("", self.nir.Linear(weight=weight))]
        return [("", self.nir.Affine(weight=weight, bias=_np(module.bias)))]

    def conv(
        self,
        name: str,
        module: nn.Conv1d | nn.Conv2d,
        in_shape: tuple,
        out_shape: tuple,
        folded: bool,
    ) -> Chain:
        if not folded:
            raise ValueError(
                f"module '{name}' ({type(module).__name__}) runs on the time-first input "
                "directly; wrap it as snn.FoldTime(conv)"
            )
        if module.padding_mode != "zeros":
            raise ValueError(
                f"module '{name}' uses padding_mode={module.padding_mode!r}; NIR convolutions "
                "pad with zeros"
            )
        bias = (
            _np(module.bias)
            if module.bias is not None
            else np.zeros(module.out_channels, dtype=_np(module.weight).dtype)
        )
        spatial = tuple(int(s) for s in in_shape[2:])
        weight = _np(module.weight)
        if module.groups > 1:
            # nir 1.0's shape check reads weight.shape[1] as the input channels, which is
            # wrong for grouped convolutions: write the equal dense (block-diagonal) kernel
            weight = _dense_kernel(weight, module.groups)
        common = dict(
            weight=weight,
            stride=module.stride if isinstance(module, nn.Conv2d) else module.stride[0],
            padding=module.padding,
            dilation=module.dilation if isinstance(module, nn.Conv2d) else module.dilation[0],
            groups=1,
            bias=bias,
        )
        if isinstance(module, nn.Conv2d):
            return [("", self.nir.Conv2d(input_shape=spatial, **common))]
        padding = common["padding"]
        common["padding"] = padding if isinstance(padding, str) else padding[0]
        return [("", self.nir.Conv1d(input_shape=spatial[0], **common))]

    def flatten_module(
        self, name: str, module: nn.Flatten, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        first = 1 if folded else 2
        return [("", self.flatten(name, in_shape, module.start_dim, module.end_dim, first))]

    def flatten(self, name: str, in_shape: tuple, start: int, end: int, first: int) -> Any:
        """NIR's Flatten for dims ``start..end`` of a tensor whose per-sample dims begin at
        ``first`` (NIR counts from there)."""
        ndim = len(in_shape)
        start, end = start % ndim, end % ndim
        if start < first:
            what = "[T*B, ...]" if first == 1 else "[T, B, ...]"
            raise ValueError(
                f"module '{name}' flattens dims {start}..{end} of {what}, which mixes time or "
                f"batch into the features; use start_dim={first} (nn.Flatten({first}) on "
                f"{what})"
            )
        nir_end = -1 if end == ndim - 1 else end - first
        return self.nir.Flatten(
            input_type={"input": np.array(in_shape[first:])},
            start_dim=start - first,
            end_dim=nir_end,
        )

    def avg_pool(
        self, name: str, pool: nn.AvgPool2d, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        if not folded:
            raise ValueError(
                f"module '{name}' (AvgPool2d) runs on the time-first input directly; wrap it as "
                "snn.FoldTime(pool)"
            )
        if pool.ceil_mode:
            raise ValueError(f"module '{name}' uses ceil_mode=True, which NIR pooling lacks")
        padding = _pair(pool.padding)
        if padding.any() and not pool.count_include_pad:
            raise ValueError(
                f"module '{name}' pads with count_include_pad=False; NIR's AvgPool2d divides by "
                "the kernel area, so use count_include_pad=True or padding=0"
            )
        kernel = _pair(pool.kernel_size)
        stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        if pool.divisor_override in (None, int(np.prod(kernel))):
            return [("", self.nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding))]
        if pool.divisor_override == 1:
            return [("", self.nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding))]
        raise ValueError(
            f"module '{name}' divides by divisor_override={pool.divisor_override}; NIR has "
            "AvgPool2d (divide by the kernel area) and SumPool2d (divisor_override=1) only"
        )

    def lif(self, name: str, layer: LIF, in_shape: tuple, out_shape: tuple, folded: bool) -> Chain:
        if folded:
            raise ValueError(
                f"LIF layer '{name}' sits inside FoldTime, which would mix time into the "
                "batch; put snn.LIF outside FoldTime"
            )
        shape = _per_sample(out_shape, folded)
        nir = self.nir
        dt, beta, exact = self.graph_dt, _float64(layer.beta, shape), layer.exact
        if layer.dt is not None:  # the physical form's own tau
            tau = _float64(layer.tau, shape)
        else:  # the deep form's, from its beta at the graph's dt
            tau = _nir_tau(name, beta, dt, exact)
        # a layer given r has the gain r (1 - beta); without r, the gain is 1
        r = resistance_from_gain(1.0, beta) if layer.r is None else np.full(shape, float(layer.r))
        fields = dict(tau=tau, r=r, v_leak=np.full(shape, layer.v_rest))
        return self.spiking(name, layer, shape, nir.LIF, nir.LI, fields)

    def cuba_lif(
        self, name: str, layer: CubaLIF, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        if folded:
            raise ValueError(
                f"CubaLIF layer '{name}' sits inside FoldTime, which would mix time into the "
                "batch; put snn.CubaLIF outside FoldTime"
            )
        shape = _per_sample(out_shape, folded)
        dt, exact = self.graph_dt, layer.exact
        alpha, beta = _float64(layer.alpha, shape), _float64(layer.beta, shape)
        if layer.dt is not None:  # the physical form's own time constants
            tau_syn, tau_mem = _float64(layer.tau_syn, shape), _float64(layer.tau, shape)
        else:  # the deep form's, from its decays at the graph's dt
            tau_syn, tau_mem = _nir_tau(name, alpha, dt, exact), _nir_tau(name, beta, dt, exact)
        # the current's gain is w_in (1 - alpha), the membrane's r (1 - beta); 1 when not given
        w_in = (
            resistance_from_gain(1.0, alpha) if layer.w_in is None else np.full(shape, layer.w_in)
        )
        r = resistance_from_gain(1.0, beta) if layer.r is None else np.full(shape, layer.r)
        fields = dict(
            tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.full(shape, layer.v_rest), w_in=w_in
        )
        return self.spiking(name, layer, shape, self.nir.CubaLIF, self.nir.CubaLI, fields)

    def spiking(
        self, name: str, layer: _LIFBase, shape: tuple, spiking: type, leaky: type, fields: dict
    ) -> Chain:
        """The node for a neuron with the NIR ``fields`` of its membrane: ``spiking`` (LIF or
        CubaLIF) with its threshold and reset, or ``leaky`` (LI or CubaLI) + ``Threshold`` for
        ``reset="none"``."""
        dt, exact = self.graph_dt, layer.exact
        threshold = _float64(layer.threshold, shape)
        kind = type(layer).__name__
        if layer.reset == "none":
            return [
                (".li", leaky(**fields, metadata=neuron_metadata(dt, exact))),
                (".threshold", self.nir.Threshold(threshold=threshold)),
            ]
        if layer.reset == "subtract" and self.subtract_reset == "error":
            raise ValueError(
                f"{kind} layer '{name}' uses reset='subtract', which NIR's {spiking.__name__} "
                "cannot express (it resets to v_reset). Build the layer with reset='zero' and "
                "retrain, or pass subtract_reset='keep' (snn.import_nir restores the subtract "
                "reset from the node metadata; other NIR tools will reset to v_reset) or "
                "subtract_reset='zero' (export it as reset-to-v_reset for everyone)"
            )
        keep = layer.reset == "subtract" and self.subtract_reset == "keep"
        node = spiking(
            **fields,
            v_threshold=threshold,
            v_reset=np.full(shape, layer.v_reset),
            metadata=neuron_metadata(dt, exact, subtract_reset=keep),
        )
        return [("", node)]

    def recurrent(
        self, name: str, layer: Recurrent, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        """The neuron's node plus the loop ``neuron -> Affine (weight, bias) -> neuron``; NIR's
        cycle delivers step ``t-1``'s spikes at step ``t``, as :class:`snn.Recurrent` does."""
        neuron, label = layer.neuron, f"{name}.neuron"
        if isinstance(neuron, _ALIFBase):
            raise ValueError(_unsupported_message(label, neuron))
        if folded:
            raise ValueError(
                f"Recurrent layer '{name}' sits inside FoldTime, which would mix time into the "
                "batch; put snn.Recurrent outside FoldTime"
            )
        if neuron.reset == "none":
            raise ValueError(
                f"Recurrent layer '{name}' wraps a neuron with reset='none', which NIR writes as "
                "two nodes (a leaky integrator and a Threshold), so its loop would not be the "
                "neuron -> Affine -> neuron cycle that snn.import_nir reads back; use "
                "reset='zero'"
            )
        export = self.cuba_lif if isinstance(neuron, _CubaLIFBase) else self.lif
        chain = export(label, neuron, in_shape, out_shape, folded)
        weight = _np(layer.weight)
        if layer.bias is None:
            loop = self.nir.Linear(weight=weight)
        else:
            loop = self.nir.Affine(weight=weight, bias=_np(layer.bias))
        return [*chain, (".w_rec", Feedback(loop))]

    def leaky_integrator(
        self, name: str, li: LeakyIntegrator, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        shape = _per_sample(out_shape, folded)
        beta = _float64(li.lif.beta, shape)
        gain = _float64(li.gain, shape)
        dt = self.graph_dt
        meta = neuron_metadata(dt, exact=False)
        if np.all(beta == 1.0):  # the integrator I: v += r dt I
            return [("", self.nir.I(r=gain / dt, metadata=meta))]
        tau = _nir_tau(name, beta, dt, exact=False)
        r = resistance_from_gain(gain, beta)
        v_leak = np.full(shape, li.lif.v_rest)
        return [("", self.nir.LI(tau=tau, r=r, v_leak=v_leak, metadata=meta))]

    def threshold(
        self, name: str, module: Threshold, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        threshold = _float64(module.threshold, _per_sample(out_shape, folded))
        return [("", self.nir.Threshold(threshold=threshold))]

    def scale(
        self, name: str, module: Scale, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> Chain:
        return [("", self.nir.Scale(scale=_float64(module.scale, _per_sample(out_shape, folded))))]


_Export = Callable[[_Exporter, str, Any, tuple, tuple, bool], Chain]

# torch module type -> its exporter, tried in order: the one list of what export_nir maps (its
# docstring and the error for anything else are made from it)
_EXPORTERS: tuple[tuple[type | tuple[type, ...], _Export], ...] = (
    (FoldTime, _Exporter.folded),
    ((nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d), _Exporter.vanish),
    (nn.Linear, _Exporter.linear),
    ((nn.Conv1d, nn.Conv2d), _Exporter.conv),
    (nn.Flatten, _Exporter.flatten_module),
    (nn.AvgPool2d, _Exporter.avg_pool),
    (LIF, _Exporter.lif),
    (CubaLIF, _Exporter.cuba_lif),
    (Recurrent, _Exporter.recurrent),
    (LeakyIntegrator, _Exporter.leaky_integrator),
    (Threshold, _Exporter.threshold),
    (Scale, _Exporter.scale),
)

SUPPORTED_MODULES = ", ".join(
    t.__name__ for types, _ in _EXPORTERS for t in (types if isinstance(types, tuple) else (types,))
)
"""The module types :func:`export_nir` maps, from the table ``_EXPORTERS``."""

_NO_ADAPTIVE_NODE = (
    "NIR has no adaptive-threshold neuron (its LIF and CubaLIF fire at a fixed v_threshold), "
    "so an adaptive threshold cannot be written; export a model of snn.LIF or snn.CubaLIF"
)

# what to do instead, for modules people commonly try to export
_HINTS = {
    "MaxPool2d": "NIR has no max pooling; use nn.AvgPool2d (or divisor_override=1 for "
    "SumPool2d) and retrain",
    "BatchNorm1d": "fold it into the preceding layer first "
    "(torch.nn.utils.fusion.fuse_linear_bn_eval)",
    "BatchNorm2d": "fold it into the preceding convolution first "
    "(torch.nn.utils.fusion.fuse_conv_bn_eval)",
    "LIFCell": "LIFCell runs one step with explicit state; export a model built from "
    "snn.LIF, which runs the whole sequence",
    "ALIF": _NO_ADAPTIVE_NODE,
    "ALIFCell": _NO_ADAPTIVE_NODE,
    "CubaLIFCell": "CubaLIFCell runs one step with explicit state; export a model built from "
    "snn.CubaLIF, which runs the whole sequence",
}


def _unsupported_message(name: str, module: nn.Module) -> str:
    kind = type(module).__name__
    hint = _HINTS.get(kind, "NIR has no primitive for it; export the spiking part only")
    return (
        f"export_nir cannot map module '{name}' of type {kind} to a NIR node: {hint} "
        f"(export_nir maps {SUPPORTED_MODULES})"
    )


def _nir_tau(name: str, beta: np.ndarray, dt: float, exact: bool) -> np.ndarray:
    """NIR's ``tau`` for a decay ``beta``, refusing the values that have no finite positive one."""
    tau = physical_tau(beta, dt, exact)
    if not np.all(np.isfinite(tau) & (tau > 0)):
        raise ValueError(
            f"layer '{name}' has beta values {'outside (0, 1)' if exact else '>= 1'} "
            f"(min {beta.min():.6g}, max {beta.max():.6g}); NIR's LIF needs a finite "
            "positive tau = dt/(1 - beta)"
        )
    return tau


def _device_of(module: nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def export_nir(
    model: nn.Module,
    sample_input: Tensor,
    *,
    dt: float | None = None,
    subtract_reset: str = "error",
) -> nir.NIRGraph:
    r"""Describe a time-first snn model as a ``nir.NIRGraph`` (write it with ``nir.write``).

    Args:
        model: an ``nn.Module`` on any device that maps ``[T, B, ...]`` to ``[T, B, ...]``:
            an ``nn.Sequential`` or a module whose ``forward`` ``torch.fx`` can trace, built from
            {SUPPORTED_MODULES} (:mod:`snn.nir` says what each becomes), and ``a + b`` of two
            branches. It is run once, in eval mode, on ``sample_input`` to learn the shapes; its
            training flags are restored afterwards.
        sample_input: a ``[T, B, ...]`` tensor (``T = B = 1`` is enough); the graph's Input node
            gets its per-sample shape ``sample_input.shape[2:]``.
        dt: the time step the graph is written for. Physical-form layers (``LIF.physical``,
            ``CubaLIF.physical``) carry their own ``dt`` and must all agree with each other and
            with this argument; with none of them it defaults to :data:`DEFAULT_DT` (1.0: one
            step = one time unit). A deep-form layer with decay ``beta`` becomes
            ``tau = dt / (1 - beta)``, ``r = 1 / (1 - beta)`` (a CubaLIF's ``alpha`` likewise
            ``tau_syn`` and ``w_in``).
        subtract_reset: what to do with ``reset="subtract"`` layers, which NIR's LIF and CubaLIF
            cannot express: ``"error"`` (default), ``"keep"`` (plain ``nir.LIF`` + metadata
            ``snn_reset="subtract"`` that only snn reads) or ``"zero"`` (reset to ``v_reset``).

    Returns:
        The graph: ``Input`` -> nodes named after the module paths -> ``Output``, with
        ``metadata={"dt": dt, "source": "snn"}``. Every array is a CPU numpy array; weights keep
        their float32/float64 dtype, neuron parameters are float64.

    Raises ``ValueError`` naming the module for anything NIR cannot express (max pooling,
    batch norm, an ALIF's adaptive threshold, a function applied outside a module, a flatten
    across time or batch, ...).

    Example::

        >>> import torch, snn
        >>> from torch import nn
        >>> net = nn.Sequential(snn.FoldTime(nn.Conv2d(1, 2, 3)), snn.LIF(beta=0.9, reset="zero"),
        ...                     nn.Flatten(2), nn.Linear(2 * 4 * 4, 3, bias=False))
        >>> g = snn.export_nir(net, torch.zeros(1, 1, 1, 6, 6))
        >>> lif = g.nodes["1"]                           # beta 0.9 at dt = 1: tau = r = 10
        >>> lif.tau.shape, round(float(lif.tau[0, 0, 0]), 4), round(float(lif.r[0, 0, 0]), 4)
        ((2, 4, 4), 10.0, 10.0)
        >>> g.edges
        [('input', '0'), ('0', '1'), ('1', '2'), ('2', '3'), ('3', 'output')]
    """
    nir = require_nir()
    if subtract_reset not in _SUBTRACT_CHOICES:
        raise ValueError(
            f"subtract_reset must be one of {_SUBTRACT_CHOICES}, got {subtract_reset!r}"
        )
    if not isinstance(sample_input, Tensor) or sample_input.dim() < 3:
        shape = tuple(sample_input.shape) if isinstance(sample_input, Tensor) else None
        raise ValueError(
            f"sample_input must be a time-first tensor [T, B, ...] with at least one feature "
            f"dim, got {type(sample_input).__name__} of shape {shape}"
        )
    root = nn.Sequential(model) if isinstance(model, _LEAVES) else model
    modes = {m: m.training for m in model.modules()}
    model.eval()  # trace and run what inference runs: no dropout, BatchNorm's running statistics
    try:
        try:
            graph = _Tracer().trace(root)
        except Exception as error:  # fx raises several types for untraceable Python
            raise ValueError(
                f"export_nir could not trace {type(model).__name__}.forward with torch.fx "
                f"({error}); build the model as nn.Sequential of layers, or export the "
                "traceable part"
            ) from error
        recorder = _ShapeRecorder(torch.fx.GraphModule(root, graph))
        with torch.no_grad():
            recorder.run(sample_input.to(_device_of(model)))
    finally:
        for m, mode in modes.items():
            m.training = mode
    shapes = recorder.shapes

    modules = dict(root.named_modules())
    exporter = _Exporter(dt, subtract_reset)
    neurons = [(k, m) for k, m in modules.items() if isinstance(m, (_LIFBase, LeakyIntegrator))]
    exporter.resolve_dt(neurons)

    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array(shapes[_only(graph, "placeholder")][2:])})
    }
    edges: list[tuple[str, str]] = []
    sources: dict[torch.fx.Node, list[str]] = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            if node is not _only(graph, "placeholder"):
                raise ValueError("export_nir supports models with one input tensor")
            sources[node] = ["input"]
        elif node.op == "call_module":
            src = _single_tensor_arg(node)
            module = modules[node.target]
            chain = exporter.convert(node.target, module, shapes[src], shapes[node], False)
            sources[node] = _link(chain, node.target, sources[src], nodes, edges)
        elif node.op in ("call_function", "call_method"):
            sources[node] = _export_function(node, shapes, sources, nodes, edges, exporter)
        elif node.op == "output":
            result = node.args[0]
            if not isinstance(result, torch.fx.Node):
                raise ValueError(
                    "export_nir supports models that return one tensor; this one returns "
                    f"{type(result).__name__}"
                )
            nodes["output"] = nir.Output(output_type={"output": np.array(shapes[result][2:])})
            edges += [(s, "output") for s in sources[result]]
        else:
            raise ValueError(f"export_nir cannot map the fx node {node.format_node()}")
    _check_unique(edges)
    return nir.NIRGraph(
        nodes=nodes, edges=edges, metadata={"dt": exporter.graph_dt, "source": "snn"}
    )


if export_nir.__doc__:  # the list of module types comes from the table (None under python -OO)
    export_nir.__doc__ = export_nir.__doc__.replace("{SUPPORTED_MODULES}", SUPPORTED_MODULES)


def _only(graph: torch.fx.Graph, op: str) -> torch.fx.Node:
    return next(n for n in graph.nodes if n.op == op)


def _single_tensor_arg(node: torch.fx.Node) -> torch.fx.Node:
    if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], torch.fx.Node):
        raise ValueError(
            f"export_nir expects each layer to be called on one tensor; got {node.format_node()}"
        )
    return node.args[0]


def _link(
    chain: Chain,
    base: str,
    sources: list[str],
    nodes: dict[str, Any],
    edges: list[tuple[str, str]],
) -> list[str]:
    """Add a chain of new NIR nodes fed by ``sources``; return the names that carry its output.
    A :class:`Feedback` entry reads the chain's last node so far and feeds its first."""
    first = None
    for suffix, nir_node in chain:
        name = f"{base}{suffix}"
        if name in nodes:
            raise ValueError(f"module '{base}' is called twice; NIR needs one node per call")
        if isinstance(nir_node, Feedback):
            nodes[name] = nir_node.node
            edges.extend([(sources[0], name), (name, first)])
            continue
        nodes[name] = nir_node
        edges.extend((s, name) for s in sources)
        sources, first = [name], first or name
    return sources


def _export_function(
    node: torch.fx.Node,
    shapes: dict[torch.fx.Node, tuple[int, ...]],
    sources: dict[torch.fx.Node, list[str]],
    nodes: dict[str, Any],
    edges: list[tuple[str, str]],
    exporter: _Exporter,
) -> list[str]:
    """The NIR sources of a function call: ``a + b`` of two branches, or ``torch.flatten``."""
    fn = node.target
    if fn in (operator.add, torch.add, "add") and len(node.args) == 2 and not node.kwargs:
        a, b = node.args
        if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node):
            if shapes[a] != shapes[b]:
                raise ValueError(f"{node.format_node()} adds tensors of different shapes")
            return sources[a] + sources[b]  # NIR sums the inputs of a node
    if fn in (torch.flatten, "flatten"):
        args = list(node.args) + [None] * (3 - len(node.args))
        start = node.kwargs.get("start_dim", args[1] if args[1] is not None else 0)
        end = node.kwargs.get("end_dim", args[2] if args[2] is not None else -1)
        src = node.args[0]
        flat = exporter.flatten(node.name, shapes[src], start, end, 2)
        return _link([("", flat)], node.name, sources[src], nodes, edges)
    name = getattr(fn, "__name__", str(fn))
    raise ValueError(
        f"export_nir cannot map the operation `{name}` ({node.format_node()}): NIR graphs are "
        "built from layers; use a module for it (nn.Flatten(2), FoldTime(...)), or move it "
        "out of the exported model"
    )


def _check_unique(edges: list[tuple[str, str]]) -> None:
    seen = set()
    for edge in edges:
        if edge in seen:
            raise ValueError(
                f"the edge {edge} appears twice (a tensor added to itself?); NIR allows one edge "
                "per pair, so scale it with a layer instead"
            )
        seen.add(edge)
