"""What export and import share: the map between NIR's neuron fields and snn's parameters.

The table in :mod:`snn.nir` in code: ``tau`` and ``beta`` convert through
:func:`snn.functional.physical_beta` and :func:`snn.functional.physical_tau`; the resistance ``r``
and snn's input gain through :func:`gain_from_resistance` and :func:`resistance_from_gain`; NIR's
``v_leak`` is snn's ``v_rest``. The time step and discretization snn simulated travel in each
neuron node's metadata (:func:`neuron_metadata`, read back by :func:`written_dt` and
:func:`written_exact`). Also here: :func:`require_nir`, which imports ``nir`` on first use so
that ``import snn`` works without it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "require_nir",
    "gain_from_resistance",
    "resistance_from_gain",
    "neuron_metadata",
    "written_dt",
    "written_exact",
    "written_subtract_reset",
]

# keys of a neuron node's metadata; other NIR tools ignore them
_DT = "dt"
_DISCRETIZATION = "discretization"
_RESET = "snn_reset"


def require_nir() -> ModuleType:
    """The ``nir`` package, imported on first use, so that ``import snn`` works without it."""
    try:
        import nir
    except ImportError as error:  # pragma: no cover - exercised in a subprocess test
        raise ImportError(
            "snn.export_nir and snn.import_nir need the `nir` package: pip install nir "
            "(or pip install 'snn[nir]')"
        ) from error
    return nir


def gain_from_resistance(r: Any, beta: Any) -> np.ndarray:
    """snn's input gain ``r (1 - beta)`` for NIR's resistance ``r`` (one step of ``R I / tau``)."""
    return np.asarray(r, dtype=np.float64) * (1.0 - np.asarray(beta, dtype=np.float64))


def resistance_from_gain(gain: Any, beta: Any) -> np.ndarray:
    """NIR's resistance ``gain / (1 - beta)``: the inverse of :func:`gain_from_resistance`."""
    return np.asarray(gain, dtype=np.float64) / (1.0 - np.asarray(beta, dtype=np.float64))


def neuron_metadata(dt: float, exact: bool, subtract_reset: bool = False) -> dict[str, Any]:
    """The metadata of a neuron node: the ``dt`` and discretization it was written for, and
    with ``subtract_reset`` the reset that NIR's LIF cannot express (only snn reads it).

    >>> neuron_metadata(0.5, exact=False)
    {'dt': 0.5, 'discretization': 'euler'}
    """
    meta: dict[str, Any] = {_DT: dt, _DISCRETIZATION: "exact" if exact else "euler"}
    if subtract_reset:
        meta[_RESET] = "subtract"
    return meta


def written_dt(node: Any) -> float | None:
    """The ``dt`` a node's metadata says it was written for, or ``None``."""
    return (node.metadata or {}).get(_DT)


def written_exact(node: Any) -> bool:
    """Whether a node's metadata says it was written for the exact (exponential) step."""
    return (node.metadata or {}).get(_DISCRETIZATION) == "exact"


def written_subtract_reset(node: Any) -> bool:
    """Whether a node's metadata says snn wrote it from a ``reset="subtract"`` layer."""
    return (node.metadata or {}).get(_RESET) == "subtract"
