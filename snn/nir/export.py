r"""Export snn models to NIR, and build torch modules from NIR graphs written by any library.

`NIR <https://neuroir.org>`_ (the Neuromorphic Intermediate Representation; Pedersen et al.,
*Nature Communications* 15, 8122, 2024) describes a spiking network as a graph of continuous-time
primitives. snnTorch, Norse, SpikingJelly, Sinabs, Lava and several chips read and write it.
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

**What maps.** ``nn.Linear`` <-> ``Affine`` (``Linear`` without bias); ``FoldTime(nn.Conv1d /
Conv2d)`` <-> ``Conv1d / Conv2d``; ``nn.Flatten`` (start dim >= 2 on ``[T, B, ...]``) and
``torch.flatten`` <-> ``Flatten`` (NIR dims count from the first per-sample dim);
``FoldTime(nn.AvgPool2d)`` <-> ``AvgPool2d``, and with ``divisor_override=1`` <-> ``SumPool2d``;
``snn.LIF`` <-> ``LIF`` (or ``LI`` + ``Threshold``); ``a + b`` of two branches becomes two edges
into one node (NIR sums a node's inputs). ``FoldTime`` is unwrapped; ``nn.Sequential`` and plain
``forward`` methods are traced with ``torch.fx``; ``nn.Identity`` and dropout vanish (export is in
eval mode). Import also reads ``LI``, ``I``, ``IF``, ``CubaLIF``, ``CubaLI``, ``Scale``,
``Threshold`` and nested graphs. Anything else (``MaxPool2d``, ``BatchNorm``, ``ReLU``,
``Delay``, recurrent cycles) is a ``ValueError`` that names it.

Example (a round trip through a file)::

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

import math
import operator
import os
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx
from torch import Tensor, nn

from snn import surrogate as _surrogate
from snn.fold import FoldTime
from snn.neurons import LIF, LeakyIntegrator, LIFCell

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = [
    "export_nir",
    "import_nir",
    "Threshold",
    "Scale",
    "NIRGraphModule",
    "DEFAULT_DT",
]

DEFAULT_DT = 1.0
"""The time step written for deep-learning-form layers when no physical layer fixes one."""

_SUBTRACT_CHOICES = ("error", "keep", "zero")
# a NIR gain r * (1 - beta) this close to 1 is the deep-learning form (gain exactly 1)
_UNIT_GAIN_RTOL = 1e-6


def _nir():
    """Import ``nir`` on first use, so that ``import snn`` works without it."""
    try:
        import nir
    except ImportError as error:  # pragma: no cover - exercised in a subprocess test
        raise ImportError(
            "snn.export_nir and snn.import_nir need the `nir` package: pip install nir "
            "(or pip install 'snn[nir]')"
        ) from error
    return nir


# --------------------------------------------------------------------------------------------
# modules that NIR primitives without an snn.LIF counterpart import to
# --------------------------------------------------------------------------------------------


class Threshold(nn.Module):
    r"""NIR's ``Threshold``: ``z = H(x - threshold)`` elementwise, ``H(0) = 1``.

    Stateless, any shape; the backward pass uses ``surrogate`` (:mod:`snn.surrogate`), so an
    imported graph stays trainable.

    Example::

        >>> Threshold(torch.tensor([0.5, 2.0]))(torch.tensor([[1.0, 1.0]])).tolist()
        [[1.0, 0.0]]
    """

    def __init__(
        self, threshold: float | Tensor, surrogate: str | _surrogate.Surrogate = "atan"
    ) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold).clone())
        self.surrogate = _surrogate.get(surrogate)

    def forward(self, x: Tensor) -> Tensor:
        return _surrogate.spike(x - self.threshold.to(x.dtype), self.surrogate)


class Scale(nn.Module):
    """NIR's ``Scale``: ``y = x * scale`` elementwise (``scale`` broadcasts over ``[T, B]``).

    Example::

        >>> Scale(torch.tensor([2.0, -1.0]))(torch.ones(1, 1, 2)).tolist()
        [[[2.0, -1.0]]]
    """

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale.to(x.dtype)


class NIRGraphModule(nn.Module):
    """Runs an imported NIR graph that is not a simple chain (branches, merges, several outputs).

    Each node's input is the sum of the outputs of the nodes with an edge into it (NIR's rule);
    nodes run in a topological order fixed at construction. ``forward(x)`` takes the single graph
    input ``[T, B, ...]`` and returns the output tensor, or a dict ``{output name: tensor}`` when
    the graph has several outputs. :func:`import_nir` builds it; chains become ``nn.Sequential``.

    Example::

        >>> ex = NIRGraphModule(
        ...     {"a": nn.Identity(), "b": Scale(torch.tensor(2.0))},
        ...     inputs={"a": ["input"], "b": ["input"], "output": ["a", "b"]},
        ...     order=["a", "b"], input_name="input", output_names=["output"])
        >>> ex(torch.ones(1, 1, 1)).item()
        3.0
    """

    def __init__(
        self,
        modules: dict[str, nn.Module],
        inputs: dict[str, list[str]],
        order: list[str],
        input_name: str,
        output_names: list[str],
    ) -> None:
        super().__init__()
        keys = _module_keys(modules)
        self.nodes = nn.ModuleDict({keys[k]: m for k, m in modules.items()})
        self.node_names = list(order)
        self.inputs = {k: list(v) for k, v in inputs.items()}
        self.input_name = input_name
        self.output_names = list(output_names)

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        values: dict[str, Tensor] = {self.input_name: x}
        for name in self.node_names:
            values[name] = self.nodes[_module_key(name)](self._gather(name, values))
        outs = {name: self._gather(name, values) for name in self.output_names}
        return outs[self.output_names[0]] if len(outs) == 1 else outs

    def _gather(self, name: str, values: dict[str, Tensor]) -> Tensor:
        sources = self.inputs[name]
        total = values[sources[0]]
        for source in sources[1:]:
            total = total + values[source]
        return total


def _module_key(name: str) -> str:
    # nn.Module names may not contain "." (NIR names from nirtorch do)
    return name.replace(".", "_") or "_"


def _module_keys(names: Iterable[str]) -> dict[str, str]:
    keys = {name: _module_key(name) for name in names}
    if len(set(keys.values())) < len(keys):
        clash = sorted(k for k in keys if list(keys.values()).count(keys[k]) > 1)
        raise ValueError(
            f"the NIR node names {clash} collide as torch module names ('.' becomes '_'); "
            "rename the nodes"
        )
    return keys


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


_LEAVES = (LIF, LIFCell, FoldTime, LeakyIntegrator, Threshold, Scale)


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
    def __init__(self, dt: float | None, subtract_reset: str) -> None:
        self.nir = _nir()
        self.requested_dt = dt
        self.subtract_reset = subtract_reset
        self.graph_dt: float | None = None

    def resolve_dt(self, lif_layers: Iterable[tuple[str, LIF | LeakyIntegrator]]) -> None:
        physical = {name: layer.dt for name, layer in lif_layers if getattr(layer, "dt", None)}
        dts = set(physical.values())
        if len(dts) > 1:
            raise ValueError(
                f"the physical-form LIF layers use different time steps {physical}; a NIR graph "
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

    # -- one module -> a chain of (suffix, nir node) ------------------------------------------

    def convert(
        self, name: str, module: nn.Module, in_shape: tuple, out_shape: tuple, folded: bool
    ) -> list[tuple[str, Any]]:
        nir = self.nir
        first = 1 if folded else 2  # dims before the per-sample shape: [T*B] or [T, B]
        if isinstance(module, FoldTime):
            return self.convert_folded(name, module.module, in_shape)
        if isinstance(module, (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)):
            return []
        if isinstance(module, nn.Linear):
            if len(in_shape) - first != 1:
                raise ValueError(
                    f"module '{name}' (Linear) sees per-sample shape {in_shape[first:]}; NIR's "
                    "Affine takes a vector, so flatten first (nn.Flatten(2) on [T, B, ...])"
                )
            weight = _np(module.weight)
            if module.bias is None:
                return [("", nir.Linear(weight=weight))]
            return [("", nir.Affine(weight=weight, bias=_np(module.bias)))]
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
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
                return [("", nir.Conv2d(input_shape=spatial, **common))]
            padding = common["padding"]
            common["padding"] = padding if isinstance(padding, str) else padding[0]
            return [("", nir.Conv1d(input_shape=spatial[0], **common))]
        if isinstance(module, nn.Flatten):
            return [("", self.flatten(name, in_shape, module.start_dim, module.end_dim, first))]
        if isinstance(module, nn.AvgPool2d):
            return [("", self.avg_pool(name, module, folded))]
        if isinstance(module, LIF):
            if folded:
                raise ValueError(
                    f"LIF layer '{name}' sits inside FoldTime, which would mix time into the "
                    "batch; put snn.LIF outside FoldTime"
                )
            return self.lif(name, module, out_shape[first:])
        if isinstance(module, LeakyIntegrator):
            return self.leaky_integrator(name, module, out_shape[first:])
        if isinstance(module, Threshold):
            thr = _float64(module.threshold, out_shape[first:])
            return [("", nir.Threshold(threshold=thr))]
        if isinstance(module, Scale):
            return [("", nir.Scale(scale=_float64(module.scale, out_shape[first:])))]
        raise ValueError(self.unsupported_message(name, module))

    def convert_folded(self, name: str, inner: nn.Module, in_shape: tuple) -> list:
        """FoldTime(inner): inner runs on [T*B, ...]; a Sequential is converted layer by layer."""
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

    def flatten(self, name: str, in_shape: tuple, start: int, end: int, first: int) -> Any:
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

    def avg_pool(self, name: str, pool: nn.AvgPool2d, folded: bool) -> Any:
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
            return self.nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding)
        if pool.divisor_override == 1:
            return self.nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding)
        raise ValueError(
            f"module '{name}' divides by divisor_override={pool.divisor_override}; NIR has "
            "AvgPool2d (divide by the kernel area) and SumPool2d (divisor_override=1) only"
        )

    def neuron(self, name: str, layer: LIF, shape: tuple) -> tuple[dict, dict]:
        """NIR's ``tau, r, v_leak`` (per neuron) and the node metadata for an snn.LIF."""
        dt = self.graph_dt
        beta = _float64(layer.beta, shape)
        exact = layer.exact
        if layer.r is not None:  # physical form (or a deep form given r): gain r (1 - beta)
            r = np.full(shape, float(layer.r))
        else:  # deep-learning form: gain 1
            r = 1.0 / (1.0 - beta)
        fields = dict(
            tau=(
                _float64(layer.tau, shape)
                if layer.dt is not None
                else self.tau_from_beta(name, beta, dt, exact)
            ),
            r=r,
            v_leak=np.full(shape, layer.v_rest),
        )
        return fields, {"dt": dt, "discretization": "exact" if exact else "euler"}

    def lif(self, name: str, layer: LIF, shape: tuple) -> list[tuple[str, Any]]:
        nir = self.nir
        fields, meta = self.neuron(name, layer, shape)
        threshold = _float64(layer.threshold, shape)
        if layer.reset == "none":
            return [
                (".li", nir.LI(**fields, metadata=meta)),
                (".threshold", nir.Threshold(threshold=threshold)),
            ]
        if layer.reset == "subtract":
            if self.subtract_reset == "error":
                raise ValueError(
                    f"LIF layer '{name}' uses reset='subtract', which NIR's LIF cannot express "
                    "(it resets to v_reset). Build the layer with reset='zero' and retrain, or "
                    "pass subtract_reset='keep' (snn.import_nir restores the subtract reset "
                    "from the node metadata; other NIR tools will reset to v_reset) or "
                    "subtract_reset='zero' (export it as reset-to-v_reset for everyone)"
                )
            if self.subtract_reset == "keep":
                meta["snn_reset"] = "subtract"
        v_reset = np.full(shape, layer.v_reset)
        node = nir.LIF(**fields, v_threshold=threshold, v_reset=v_reset, metadata=meta)
        return [("", node)]

    def leaky_integrator(self, name: str, li: LeakyIntegrator, shape: tuple) -> list:
        beta = _float64(li.lif.beta, shape)
        gain = _float64(li.gain, shape)
        dt = self.graph_dt
        meta = {"dt": dt, "discretization": "euler"}
        if np.all(beta == 1.0):  # the integrator I: v += r dt I
            return [("", self.nir.I(r=gain / dt, metadata=meta))]
        tau = self.tau_from_beta(name, beta, dt, exact=False)
        r = gain / (1.0 - beta)
        v_leak = np.full(shape, li.lif.v_rest)
        return [("", self.nir.LI(tau=tau, r=r, v_leak=v_leak, metadata=meta))]

    @staticmethod
    def tau_from_beta(name: str, beta: np.ndarray, dt: float, exact: bool) -> np.ndarray:
        if np.any(beta >= 1.0) or (exact and np.any(beta <= 0.0)):
            raise ValueError(
                f"layer '{name}' has beta values {'outside (0, 1)' if exact else '>= 1'} "
                f"(min {beta.min():.6g}, max {beta.max():.6g}); NIR's LIF needs a finite "
                "positive tau = dt/(1 - beta)"
            )
        return -dt / np.log(beta) if exact else dt / (1.0 - beta)

    @staticmethod
    def unsupported_message(name: str, module: nn.Module) -> str:
        kind = type(module).__name__
        hints = {
            "MaxPool2d": "NIR has no max pooling; use nn.AvgPool2d (or divisor_override=1 for "
            "SumPool2d) and retrain",
            "BatchNorm1d": "fold it into the preceding layer first "
            "(torch.nn.utils.fusion.fuse_linear_bn_eval)",
            "BatchNorm2d": "fold it into the preceding convolution first "
            "(torch.nn.utils.fusion.fuse_conv_bn_eval)",
            "LIFCell": "LIFCell runs one step with explicit state; export a model built from "
            "snn.LIF, which runs the whole sequence",
        }
        hint = hints.get(kind, "NIR has no primitive for it; export the spiking part only")
        return f"export_nir cannot map module '{name}' of type {kind} to a NIR node: {hint}"


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
            the layers listed in :mod:`snn.nir`. It is run once, in eval mode, on
            ``sample_input`` to learn the shapes; its training flags are restored afterwards.
        sample_input: a ``[T, B, ...]`` tensor (``T = B = 1`` is enough); the graph's Input node
            gets its per-sample shape ``sample_input.shape[2:]``.
        dt: the time step the graph is written for. Physical-form layers (``LIF.physical``)
            carry their own ``dt`` and must all agree with each other and with this argument;
            with none of them it defaults to :data:`DEFAULT_DT` (1.0: one step = one time unit).
            A deep-form layer with decay ``beta`` becomes ``tau = dt / (1 - beta)``,
            ``r = 1 / (1 - beta)``.
        subtract_reset: what to do with ``reset="subtract"`` layers, which NIR's LIF cannot
            express: ``"error"`` (default), ``"keep"`` (plain ``nir.LIF`` + metadata
            ``snn_reset="subtract"`` that only snn reads) or ``"zero"`` (reset to ``v_reset``).

    Returns:
        The graph: ``Input`` -> nodes named after the module paths -> ``Output``, with
        ``metadata={"dt": dt, "source": "snn"}``. Every array is a CPU numpy array; weights keep
        their float32/float64 dtype, neuron parameters are float64.

    Raises ``ValueError`` naming the module for anything NIR cannot express (max pooling,
    batch norm, a function applied outside a module, a flatten across time or batch, ...).

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
    nir = _nir()
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
    neurons = [(k, m) for k, m in modules.items() if isinstance(m, (LIF, LeakyIntegrator))]
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


def _only(graph: torch.fx.Graph, op: str) -> torch.fx.Node:
    return next(n for n in graph.nodes if n.op == op)


def _single_tensor_arg(node: torch.fx.Node) -> torch.fx.Node:
    if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], torch.fx.Node):
        raise ValueError(
            f"export_nir expects each layer to be called on one tensor; got {node.format_node()}"
        )
    return node.args[0]


def _link(chain, base: str, sources: list[str], nodes: dict, edges: list) -> list[str]:
    """Add a chain of new NIR nodes fed by ``sources``; return the names that carry its output."""
    for suffix, nir_node in chain:
        name = f"{base}{suffix}"
        if name in nodes:
            raise ValueError(f"module '{base}' is called twice; NIR needs one node per call")
        nodes[name] = nir_node
        edges.extend((s, name) for s in sources)
        sources = [name]
    return sources


def _export_function(node, shapes, sources, nodes, edges, exporter) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


class _Importer:
    def __init__(self, dt: float | None, exact: bool | None, dtype: torch.dtype) -> None:
        self.nir = _nir()
        self.dt = dt
        self.exact = exact
        self.dtype = dtype

    def tensor(self, a: Any, shape: tuple[int, ...] | None = None) -> Tensor:
        a = np.asarray(a, dtype=np.float64)
        if shape is not None:
            a = np.broadcast_to(a, shape) if shape else a.reshape(())
        return torch.tensor(a, dtype=self.dtype)  # a copy: broadcast views are read-only

    def node_dt(self, name: str, node: Any) -> float:
        dt = self.dt if self.dt is not None else (node.metadata or {}).get("dt")
        if dt is None:
            raise ValueError(
                f"node '{name}' ({type(node).__name__}) is a continuous-time neuron and the graph "
                "does not say which dt it was written for; pass import_nir(graph, dt=...) "
                "(snnTorch writes its graphs for dt=1e-4, Norse for dt=1e-3)"
            )
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive time step, got dt={dt}")
        return dt

    def node_exact(self, node: Any) -> bool:
        if self.exact is not None:
            return self.exact
        return (node.metadata or {}).get("discretization") == "exact"

    def convert(self, name: str, node: Any) -> nn.Module:
        nir = self.nir
        if isinstance(node, nir.Affine):
            return self.linear(name, node.weight, node.bias)
        if isinstance(node, nir.Linear):
            return self.linear(name, node.weight, None)
        if isinstance(node, nir.Conv2d):
            return self.conv(node, nn.Conv2d, 2)
        if isinstance(node, nir.Conv1d):
            return self.conv(node, nn.Conv1d, 1)
        if isinstance(node, nir.Flatten):
            start, end = int(node.start_dim), int(node.end_dim)
            return nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end)
        if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            kernel, stride, padding = (
                tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,)))
                for a in (node.kernel_size, node.stride, node.padding)
            )
            divisor = 1 if isinstance(node, nir.SumPool2d) else None
            return FoldTime(nn.AvgPool2d(kernel, stride, padding, divisor_override=divisor))
        if isinstance(node, nir.Scale):
            return Scale(self.tensor(node.scale))
        if isinstance(node, nir.Threshold):
            return Threshold(self.tensor(node.threshold))
        if isinstance(node, nir.LIF):
            return self.lif(
                name, node, node.tau, node.r, node.v_leak, node.v_threshold, node.v_reset
            )
        if isinstance(node, nir.IF):
            return self.integrate_and_fire(name, node)
        if isinstance(node, nir.LI):
            return self.leaky_integrator(name, node, node.tau, node.r, node.v_leak)
        if isinstance(node, nir.I):
            gain = _compact(np.asarray(node.r, dtype=np.float64) * self.node_dt(name, node))
            shape = _param_shape(gain)
            return LeakyIntegrator(
                1.0, self.value(gain, shape), shape=shape or None, dtype=self.dtype
            )
        if isinstance(node, nir.CubaLIF):
            synapse = self.synapse(name, node)
            return nn.Sequential(
                OrderedDict(
                    synapse=synapse,
                    neuron=self.lif(
                        name,
                        node,
                        node.tau_mem,
                        node.r,
                        node.v_leak,
                        node.v_threshold,
                        node.v_reset,
                    ),
                )
            )
        if isinstance(node, nir.CubaLI):
            synapse = self.synapse(name, node)
            return nn.Sequential(
                OrderedDict(
                    synapse=synapse,
                    neuron=self.leaky_integrator(name, node, node.tau_mem, node.r, node.v_leak),
                )
            )
        if isinstance(node, nir.NIRGraph):
            return _build(node, self)
        raise ValueError(
            f"import_nir does not support the NIR node type {type(node).__name__} (node "
            f"'{name}'); supported: Affine, Linear, Conv1d, Conv2d, Flatten, AvgPool2d, "
            "SumPool2d, Scale, Threshold, LIF, IF, LI, I, CubaLIF, CubaLI and nested NIRGraph"
        )

    def linear(self, name: str, weight: np.ndarray, bias: np.ndarray | None) -> nn.Module:
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise ValueError(f"node '{name}' has a {weight.ndim}-D weight; only 2-D is supported")
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=self.dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(weight))
            if bias is not None:
                layer.bias.copy_(torch.tensor(np.broadcast_to(bias, (weight.shape[0],))))
        return layer

    def conv(self, node: Any, cls: type, ndim: int) -> nn.Module:
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

    def decay(self, name: str, node: Any, tau: Any) -> tuple[np.ndarray, float, bool]:
        dt, exact = self.node_dt(name, node), self.node_exact(node)
        tau = np.asarray(tau, dtype=np.float64)
        if not np.all(np.isfinite(tau) & (tau > 0)):
            raise ValueError(f"node '{name}' has non-positive or non-finite tau values: {tau}")
        if exact:
            return _compact(np.exp(-dt / tau)), dt, True
        if np.any(dt > tau):
            raise ValueError(
                f"node '{name}': dt={dt} exceeds tau (min {tau.min():.6g}), where the Euler step "
                "overshoots (beta = 1 - dt/tau < 0); pass a smaller dt, or exact=True"
            )
        return _compact(1.0 - dt / tau), dt, False

    def value(self, a: np.ndarray, shape: tuple[int, ...]) -> Tensor | float:
        """A per-neuron tensor of ``shape``, or a float when every neuron shares the value."""
        return float(a.flat[0]) if not shape else self.tensor(a, shape)

    def lif(self, name, node, tau, r, v_leak, v_threshold, v_reset) -> nn.Module:
        beta, dt, exact = self.decay(name, node, tau)
        r = _compact(r)
        gain = _compact(r * (1.0 - beta))
        threshold = _compact(v_threshold)
        shape = _param_shape(beta, gain, threshold, r)
        reset = "subtract" if (node.metadata or {}).get("snn_reset") == "subtract" else "zero"
        kwargs = dict(
            v_rest=_uniform(name, "v_leak", v_leak),
            v_reset=_uniform(name, "v_reset", v_reset),
            reset=reset,
            shape=shape or None,
            dtype=self.dtype,
        )
        beta_t, threshold_t = self.value(beta, shape), self.value(threshold, shape)
        try:
            if np.allclose(gain, 1.0, rtol=_UNIT_GAIN_RTOL, atol=0.0):
                return LIF(beta_t, threshold_t, **kwargs)  # deep-learning form, gain exactly 1
            if r.ndim == 0:
                layer = LIF(beta_t, threshold_t, r=float(r), **kwargs)
                layer._dt, layer._exact = dt, exact  # the physical form, as LIF.physical marks it
                return layer
            lif = LIF(beta_t, threshold_t, **kwargs)
            return nn.Sequential(OrderedDict(gain=Scale(self.tensor(gain, shape)), lif=lif))
        except ValueError as error:
            raise ValueError(f"node '{name}' ({type(node).__name__}): {error}") from error

    def integrate_and_fire(self, name: str, node: Any) -> nn.Module:
        gain = _compact(np.asarray(node.r, dtype=np.float64) * self.node_dt(name, node))
        threshold = _compact(node.v_threshold)
        shape = _param_shape(gain, threshold)
        try:
            lif = LIF(
                1.0,  # no leak; Euler and exact steps of dv/dt = R I agree: v += R dt I
                self.value(threshold, shape),
                reset="zero",
                v_reset=_uniform(name, "v_reset", node.v_reset),
                shape=shape or None,
                dtype=self.dtype,
            )
        except ValueError as error:
            raise ValueError(f"node '{name}' (IF): {error}") from error
        if np.allclose(gain, 1.0, rtol=_UNIT_GAIN_RTOL, atol=0.0):
            return lif
        return nn.Sequential(OrderedDict(gain=Scale(self.tensor(gain, shape)), lif=lif))

    def leaky_integrator(self, name, node, tau, r, v_leak) -> nn.Module:
        beta, _, _ = self.decay(name, node, tau)
        gain = _compact(np.asarray(r, dtype=np.float64) * (1.0 - beta))
        shape = _param_shape(beta, gain)
        return LeakyIntegrator(
            self.value(beta, shape),
            self.value(gain, shape),
            _uniform(name, "v_leak", v_leak),
            shape=shape or None,
            dtype=self.dtype,
        )

    def synapse(self, name: str, node: Any) -> nn.Module:
        # tau_syn dI/dt = -I + w_in S, the current updated before the membrane uses it (as in
        # snnTorch's Synaptic; Norse's CubaLIF feeds the membrane the previous step's current)
        return self.leaky_integrator(name, node, node.tau_syn, node.w_in, np.zeros(()))


def _compact(a: Any) -> np.ndarray:
    """float64 ``a``, as a 0-d array when all its entries are equal."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1)[:1].reshape(()) if a.size and np.all(a == a.flat[0]) else a


def _param_shape(*arrays: Any) -> tuple[int, ...]:
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    return () if int(np.prod(shape)) == 1 else tuple(int(s) for s in shape)


def _uniform(name: str, field: str, value: Any) -> float:
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0 or not np.all(a == a.flat[0]):
        raise ValueError(
            f"node '{name}' has per-neuron {field} values; snn.LIF takes one {field} per layer"
        )
    return float(a.flat[0])


def _topological_order(graph: Any) -> tuple[list[str], dict[str, list[str]]]:
    inputs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        inputs[dst].append(src)
    order, done, visiting = [], set(), set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise ValueError(
                f"the NIR graph has a cycle through node '{name}' (a recurrent layer such as "
                "snnTorch's RLeaky/RSynaptic); import_nir supports feed-forward graphs only"
            )
        visiting.add(name)
        for src in inputs[name]:
            visit(src)
        visiting.discard(name)
        done.add(name)
        order.append(name)

    for name in graph.nodes:
        visit(name)
    return order, inputs


def _build(graph: Any, importer: _Importer) -> nn.Module:
    nir = importer.nir
    order, inputs = _topological_order(graph)
    input_names = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    output_names = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(input_names) != 1 or not output_names:
        raise ValueError(
            f"import_nir needs a graph with one Input node and at least one Output node; this one "
            f"has inputs {input_names} and outputs {output_names}"
        )
    compute = [k for k in order if k not in input_names and k not in output_names]
    modules = {k: importer.convert(k, graph.nodes[k]) for k in compute}
    for k in compute + output_names:
        if not inputs[k]:
            raise ValueError(f"node '{k}' has no incoming edge")

    chain, current = [], input_names[0]
    consumers = {k: [d for s, d in graph.edges if s == k] for k in graph.nodes}
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
    nir = _nir()
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
    and gain ``r dt``. ``CubaLIF`` is a synaptic :class:`LeakyIntegrator` (``tau_syn``, gain
    ``w_in dt/tau_syn``) followed by the LIF; ``LI``/``I``/``CubaLI`` return membrane potentials.

    Args:
        graph: a ``nir.NIRGraph``, or the path of a ``.nir`` file written by ``nir.write``
            (from this library's :func:`export_nir` or another's).
        dt: the simulation step, in the graph's time unit. Defaults to the ``dt`` snn stored in
            each neuron node's metadata; other libraries' graphs need it (snnTorch writes its
            graphs for ``dt=1e-4``, Norse for ``dt=1e-3``).
        exact: exponential instead of Euler steps; defaults to the node metadata, else Euler
            (what snnTorch and Norse simulate).
        dtype: parameter dtype (default ``torch.get_default_dtype()``).

    Returns:
        ``nn.Sequential`` for a chain ``Input -> ... -> Output`` (module names are the node
        names with ``.`` replaced by ``_``), else a :class:`NIRGraphModule`.

    Raises ``ValueError`` naming the node for unsupported node types (``Delay``), recurrent
    cycles, a missing ``dt``, per-neuron ``v_leak``/``v_reset``, or ``dt > tau`` with Euler;
    ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a file that
    does not hold a NIR graph, both naming the path.

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
    nir = _nir()
    if isinstance(graph, (str, os.PathLike)):
        graph = _read_graph(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(
            "import_nir expects a nir.NIRGraph or a path to a .nir file, "
            f"got {type(graph).__name__}"
        )
    importer = _Importer(dt, exact, dtype or torch.get_default_dtype())
    return _build(graph, importer)
