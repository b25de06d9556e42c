"""The modules an imported NIR graph is built from, where snn has no layer of its own.

:class:`Threshold` and :class:`Scale` are NIR's stateless ``Threshold`` and ``Scale`` nodes;
:class:`NIRGraphModule` runs a graph that is not a simple chain. Everything else an import builds
is an ``nn`` or snn layer (:mod:`snn.nir.importer`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from snn import surrogate as _surrogate

__all__ = ["Threshold", "Scale", "NIRGraphModule"]


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
