"""Notebooks 02 (train MNIST) and 03 (drop snn.LIF into a torch model) run top to bottom.

They execute with nbclient in a fresh python3 kernel, with ``SNN_NOTEBOOK_FAST=1`` so each trains
on a few hundred images; any error fails the test, and the plots must be there.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(name: str, monkeypatch) -> tuple[list, str]:
    monkeypatch.setenv("SNN_NOTEBOOK_FAST", "1")  # the kernel inherits the environment
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    return outputs, text


def images(outputs: list) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.slow
def test_notebook_02_train_mnist(monkeypatch):
    outputs, text = execute("02_train_mnist.ipynb", monkeypatch)
    assert images(outputs) >= 5  # input spikes, loss, raster, firing rates, confusion matrix
    accuracy = float(re.search(r"test accuracy ([\d.]+) %", text).group(1))
    assert accuracy > 50  # a few hundred images, one epoch: well above chance (10 %)
    assert "re-imported network: 500/500 test predictions equal" in text


@pytest.mark.slow
def test_notebook_03_drop_in_lif(monkeypatch):
    outputs, text = execute("03_drop_in_lif.ipynb", monkeypatch)
    assert images(outputs) >= 1
    assert "re-imported vs exported model: 500/500 predictions equal" in text
    assert "largest difference from eager 0" in text  # compiled == eager
    for what in ("spiking CNN test accuracy", "frozen ANN features + LIF head"):
        accuracy = float(re.search(re.escape(what) + r": ([\d.]+) %", text).group(1))
        assert accuracy > 40, what  # 512 images, one epoch: far above chance (10 %)
