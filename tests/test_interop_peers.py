"""NIR files exchanged with the real snnTorch and Norse (the ``interop`` extra).

snn -> file -> peer: ``snn.export_nir`` + ``nir.write``, read back by ``norse.torch.from_nir``
and ``snntorch.import_nir.import_from_nir``, simulated by the peer one step at a time.
peer -> file -> snn: ``snntorch.export_nir.export_to_nir`` / ``norse.torch.to_nir``, read by
``snn.import_nir`` and compared with the peer's own simulation of its model.

Spikes are compared exactly, on inputs that fire (5-80 % of the steps). Where a peer's convention
differs from NIR's text as snn reads it, the test pins the difference: the peer's spikes equal
snn's for a stated change of the graph or of the peer's model, and differ without it. The
conventions were read from the installed peers (snntorch 1.0.0, norse 1.1.0, nirtorch 2.6):

- spikes: snn fires at ``v >= threshold``, both peers at ``v > threshold``.
- dt: Norse simulates at the ``dt`` passed to ``from_nir`` (default 1e-3), snnTorch always at
  1e-4, whatever the file's metadata says; snnTorch folds the Euler gain ``r dt / tau`` into the
  threshold.
- Norse's ``from_nir`` ignores ``r`` (gain ``dt/tau``, with a logged warning) and ``v_reset``
  (resets to 0); its ``to_nir`` writes ``tau = dt / tau_mem_inv`` (``dt * tau_mem``), its current
  input as a jump of gain 1, and ``IAFCell`` adds its input without ``dt``.
- snnTorch's exporter writes a subtract reset as NIR's reset to ``v_reset = 0``; its ``Synaptic``
  (with the default ``reset_delay=True``) holds the membrane at 0 for the step after a spike.

What raises inside the peers' code is a known limitation: an ``xfail(strict=True)`` whose reason
names the function and the error, caught only for that error and message
(``known_peer_failure``), so that it turns into a failure once they fix it (or fail otherwise).
"""

from __future__ import annotations

import contextlib
import logging
import re

import numpy as np
import pytest
import torch
from torch import nn

import snn

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
snntorch = pytest.importorskip("snntorch")
norse = pytest.importorskip("norse.torch")
snntorch_utils = pytest.importorskip("snntorch.utils")
from snntorch.export_nir import export_to_nir  # noqa: E402  (after the importorskip)
from snntorch.import_nir import import_from_nir  # noqa: E402

pytestmark = [  # the nirtorch entry points the peers call
    pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning"
    ),
]

SNNTORCH_DT = 1e-4  # the step snnTorch's exporter writes for and its importer simulates
NORSE_DT = 1e-3  # norse.torch.to_nir's and from_nir's default


# ---------------------------------------------------------------------------------------------
# helpers


class KnownPeerFailure(Exception):
    """A peer's known error, re-raised so that only it satisfies the xfail(raises=...) marks."""


@contextlib.contextmanager
def known_peer_failure(error: type[Exception], message: str):
    """Turn ``error`` matching ``message``, raised inside the block, into KnownPeerFailure.

    Anything else (another error, or an assertion of the test once the peer is fixed) fails the
    test normally, and a block that no longer raises makes the strict xfail fail.
    """
    try:
        yield
    except error as failure:
        if not re.search(message, str(failure)):
            raise
        raise KnownPeerFailure(f"{type(failure).__name__}: {failure}") from failure


def known_limitation(reason: str):
    return pytest.mark.xfail(strict=True, raises=KnownPeerFailure, reason=reason)


def assert_fires(spikes: torch.Tensor, what: str) -> None:
    rate = float(spikes.float().mean())
    assert 0.05 < rate < 0.8, f"{what} fires at {rate:.1%}: the comparison would mean little"


def through_file(graph, tmp_path):
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    return path


def step_by_step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a peer's module (``out, state = module(x_t, state)``) over the time axis of x."""
    state, out = None, []
    with torch.no_grad():
        for x_t in x:
            z, state = module(x_t, state)
            out.append(z)
    return torch.stack(out)


def in_norse(path, x: torch.Tensor, dt: float = NORSE_DT) -> torch.Tensor:
    return step_by_step(norse.from_nir(nir.read(path), dt=dt), x)


def in_snntorch(path, x: torch.Tensor) -> torch.Tensor:
    net = import_from_nir(nir.read(path))
    snntorch_utils.reset(net)  # its neurons keep their state inside (init_hidden=True)
    return step_by_step(net, x)


def snntorch_run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Simulate an snnTorch model whose neurons hold their state (``init_hidden=True``)."""
    snntorch_utils.reset(net)
    with torch.no_grad():
        return torch.stack([net(x_t) for x_t in x])


def in_snn(path_or_graph, x: torch.Tensor, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return snn.import_nir(path_or_graph, **kwargs)(x)


def linear(n_in: int, n_out: int, low: float, high: float, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        layer.weight.uniform_(low, high)
    return layer


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def physical(tau: float, dt: float = SNNTORCH_DT, **kwargs) -> snn.LIF:
    """NIR's LIF as both peers simulate it: r = 1, v_leak = v_reset = 0, threshold 1."""
    fields = dict(v_rest=0.0, v_reset=0.0, v_th=1.0, r=1.0) | kwargs
    return snn.LIF.physical(tau=tau, dt=dt, **fields)


def common_ground_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        linear(8, 16, 0.0, 2.0), physical(2e-3), linear(16, 6, 0.0, 3.0), physical(2e-3, v_th=0.5)
    )


def common_ground_conv() -> nn.Sequential:
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.uniform_(0.0, 2.0)
    return nn.Sequential(
        snn.FoldTime(conv),
        physical(2e-3),
        snn.FoldTime(nn.AvgPool2d(2, divisor_override=1)),  # NIR's SumPool2d
        physical(2e-3, v_th=0.17),  # no sum of spikes lands on it
    )


# ---------------------------------------------------------------------------------------------
# snn -> NIR file -> Norse and snnTorch


@pytest.mark.parametrize(
    "build, shape",
    [(common_ground_mlp, (60, 3, 8)), (common_ground_conv, (25, 2, 1, 8, 8))],
    ids=["mlp", "conv-sumpool"],
)
def test_physical_form_runs_the_same_in_norse_and_snntorch(tmp_path, build, shape):
    """The common ground: physical LIF layers at dt = 1e-4 with r = 1, v_leak = v_reset = 0.

    Norse simulates at the dt it is given, not the file's: equal spikes once ``dt=1e-4`` is
    passed; at its default 1e-3 it runs what snn runs with ``import_nir(dt=1e-3)``. snnTorch
    simulates at its fixed 1e-4 and folds the gain ``r dt/tau`` into the threshold (same spikes).
    """
    model = build()
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
    expected = run(model, x)
    assert_fires(run(model[:2], x), "the first layer")
    assert_fires(expected, "the output layer")
    path = through_file(snn.export_nir(model, x), tmp_path)

    assert torch.equal(in_norse(path, x, dt=SNNTORCH_DT), expected)
    assert torch.equal(in_snntorch(path, x), expected)

    at_norse_default = in_norse(path, x)  # dt = 1e-3
    assert not torch.equal(at_norse_default, expected)
    assert torch.equal(at_norse_default, in_snn(path, x, dt=NORSE_DT))


def test_snntorch_ignores_the_files_dt(tmp_path):
    """snnTorch's importer takes ``beta = 1 - 1e-4/tau`` whatever dt the file was written for:
    a graph for dt = 1e-3 runs in snnTorch as snn runs it with ``import_nir(dt=1e-4)``."""
    torch.manual_seed(3)
    model = nn.Sequential(linear(8, 12, -0.3, 0.6), physical(2e-3, dt=NORSE_DT, r=5.0))
    x = torch.rand(80, 3, 8)
    expected = run(model, x)
    path = through_file(snn.export_nir(model, x), tmp_path)
    got = in_snntorch(path, x)
    assert_fires(expected, "snn at the file's dt")
    assert_fires(got, "snnTorch")
    assert not torch.equal(got, expected)
    assert torch.equal(got, in_snn(path, x, dt=SNNTORCH_DT))
    leaky = next(
        m for m in import_from_nir(nir.read(path)).modules() if isinstance(m, snntorch.Leaky)
    )
    np.testing.assert_allclose(leaky.beta.numpy(), 1 - SNNTORCH_DT / 2e-3, rtol=1e-6)


def test_deep_form_runs_the_same_in_snntorch(tmp_path):
    """The beta form (``tau = dt/(1-beta)``, ``r = 1/(1-beta)``) exported at snnTorch's dt:
    the same spikes (snnTorch's gain ``r dt/tau`` is 1, so its threshold is kept)."""
    torch.manual_seed(4)
    model = nn.Sequential(
        linear(8, 16, -0.1, 0.35),
        snn.LIF(beta=0.9, reset="zero"),
        linear(16, 6, -0.3, 0.5),
        snn.LIF(beta=0.8, reset="zero"),
    )
    x = torch.rand(60, 3, 8)
    expected = run(model, x)
    assert_fires(run(model[:2], x), "the first layer")
    assert_fires(expected, "the output layer")
    path = through_file(snn.export_nir(model, x, dt=SNNTORCH_DT), tmp_path)
    assert torch.equal(in_snntorch(path, x), expected)


def test_norse_ignores_r(tmp_path, caplog):
    """Norse's ``from_nir`` drops ``r`` (with a logged warning): its Euler gain is ``dt/tau``
    (``1 - beta``), not ``r dt/tau`` (1 for the beta form), so its spikes are snn's for the
    graph with ``r = 1``."""
    torch.manual_seed(4)
    model = nn.Sequential(linear(8, 16, -0.5, 0.9), snn.LIF(beta=0.5, reset="zero"))
    x = torch.rand(60, 3, 8)
    expected = run(model, x)
    path = through_file(snn.export_nir(model, x, dt=SNNTORCH_DT), tmp_path)
    with caplog.at_level(logging.WARNING):
        got = in_norse(path, x, dt=SNNTORCH_DT)
    assert "parameter r is expected to be set to 1" in caplog.text
    assert_fires(expected, "snn")
    assert_fires(got, "Norse")
    assert not torch.equal(got, expected)
    unit_r = nir.read(path)
    unit_r.nodes["1"].r = np.ones_like(unit_r.nodes["1"].r)
    assert torch.equal(got, in_snn(unit_r, x))


def test_norse_resets_to_zero_whatever_v_reset_says(tmp_path):
    """Norse honours ``v_leak`` but builds its LIFBox without ``v_reset`` (default 0): its
    spikes are those of the same model with ``v_reset = 0``."""
    torch.manual_seed(5)
    fc = linear(8, 16, 0.0, 2.0)
    model = nn.Sequential(fc, physical(2e-3, v_rest=0.2, v_reset=-0.3))
    x = torch.rand(60, 3, 8)
    expected = run(model, x)
    path = through_file(snn.export_nir(model, x), tmp_path)
    got = in_norse(path, x, dt=SNNTORCH_DT)
    assert_fires(expected, "snn")
    assert not torch.equal(got, expected)
    assert torch.equal(got, run(nn.Sequential(fc, physical(2e-3, v_rest=0.2, v_reset=0.0)), x))


@known_limitation(
    "snntorch.import_nir.import_from_nir raises AssertionError 'v_leak not supported' for a "
    "LIF with v_leak != 0"
)
def test_snntorch_reads_a_resting_potential(tmp_path):
    torch.manual_seed(5)
    model = nn.Sequential(linear(8, 16, 0.0, 2.0), physical(2e-3, v_rest=0.2))
    x = torch.rand(60, 3, 8)
    expected = run(model, x)
    assert_fires(expected, "snn")
    path = through_file(snn.export_nir(model, x), tmp_path)
    with known_peer_failure(AssertionError, "v_leak not supported"):
        got = in_snntorch(path, x)
    assert torch.equal(got, expected)


def test_exactly_at_threshold_snn_fires_and_the_peers_wait(tmp_path):
    """snn fires at ``v >= threshold``, Norse and snnTorch at ``v > threshold``.

    tau = 2 dt, r = 1: beta = 1/2, gain 1/2, so a constant input of 2 puts v exactly on the
    threshold 1 in one step (exact in binary). snn fires at every step; the peers let v reach
    1.5 first and fire every other step.
    """
    model = nn.Sequential(physical(2 * SNNTORCH_DT))
    x = torch.full((8, 1, 1), 2.0)
    path = through_file(snn.export_nir(model, x), tmp_path)
    assert run(model, x).flatten().tolist() == [1.0] * 8
    every_other = [0.0, 1.0] * 4
    assert in_norse(path, x, dt=SNNTORCH_DT).flatten().tolist() == every_other
    assert in_snntorch(path, x).flatten().tolist() == every_other


def test_subtract_reset_is_a_reset_to_v_reset_for_the_peers(tmp_path):
    """``subtract_reset="keep"`` writes a plain NIR LIF (only snn reads the ``snn_reset``
    metadata): both peers run the model with ``reset="zero"``."""
    torch.manual_seed(6)
    fc = linear(8, 16, 0.0, 2.0)
    model = nn.Sequential(fc, physical(2e-3, reset="subtract"))
    x = torch.rand(60, 3, 8)
    expected = run(model, x)
    as_zero = run(nn.Sequential(fc, physical(2e-3, reset="zero")), x)
    assert_fires(expected, "snn")
    assert not torch.equal(as_zero, expected)
    path = through_file(snn.export_nir(model, x, subtract_reset="keep"), tmp_path)
    assert torch.equal(in_snn(path, x), expected)  # snn keeps its subtract reset
    assert torch.equal(in_norse(path, x, dt=SNNTORCH_DT), as_zero)
    assert torch.equal(in_snntorch(path, x), as_zero)


def readout_model() -> nn.Sequential:
    torch.manual_seed(7)
    return nn.Sequential(
        linear(8, 16, 0.0, 2.0),
        physical(2e-3),
        linear(16, 4, -0.5, 0.5),
        snn.LeakyIntegrator(beta=0.975, gain=0.025),  # tau = 4e-3, r = 1 at dt = 1e-4
    )


def test_norse_drops_a_leaky_integrator_readout(tmp_path):
    """Norse's ``from_nir`` maps no ``LI`` node and nirtorch leaves it out: the output is the
    readout's input current, not its membrane."""
    model = readout_model()
    x = torch.rand(40, 3, 8)
    assert_fires(run(model[:2], x), "the hidden layer")
    path = through_file(snn.export_nir(model, x, dt=SNNTORCH_DT), tmp_path)
    got = in_norse(path, x, dt=SNNTORCH_DT)
    np.testing.assert_allclose(got, run(model[:3], x), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, run(model, x))


@known_limitation(
    "snntorch.import_nir.import_from_nir maps no LI node: nirtorch.nir_to_torch raises "
    "ValueError 'Unknown node type <class 'nir.ir.neuron.LI'>, mapping does not exist'"
)
def test_snntorch_reads_a_leaky_integrator_readout(tmp_path):
    model = readout_model()
    x = torch.rand(40, 3, 8)
    assert_fires(run(model[:2], x), "the hidden layer")
    path = through_file(snn.export_nir(model, x, dt=SNNTORCH_DT), tmp_path)
    with known_peer_failure(ValueError, "Unknown node type .*LI'>, mapping does not exist"):
        got = in_snntorch(path, x)
    np.testing.assert_allclose(got, run(model, x), rtol=1e-5, atol=1e-6)


def no_reset_model() -> nn.Sequential:
    torch.manual_seed(8)  # reset="none" is written as NIR's LI + Threshold
    return nn.Sequential(linear(8, 16, 0.0, 0.6), physical(2e-3, reset="none"))


@known_limitation(
    "norse.torch.from_nir maps no LI node; nirtorch.load then raises KeyError '1_li' "
    "(TorchGraph._discover_inputs) for the edge LI -> Threshold"
)
def test_norse_reads_a_layer_without_reset(tmp_path):
    model = no_reset_model()
    x = torch.rand(40, 3, 8)
    assert_fires(run(model, x), "snn")
    path = through_file(snn.export_nir(model, x), tmp_path)
    with known_peer_failure(KeyError, "1_li"):
        got = in_norse(path, x, dt=SNNTORCH_DT)
    assert torch.equal(got, run(model, x))


@known_limitation(
    "snntorch.import_nir.import_from_nir maps no LI node: nirtorch.nir_to_torch raises "
    "ValueError 'Unknown node type <class 'nir.ir.neuron.LI'>' for reset='none' (LI + Threshold)"
)
def test_snntorch_reads_a_layer_without_reset(tmp_path):
    model = no_reset_model()
    x = torch.rand(40, 3, 8)
    assert_fires(run(model, x), "snn")
    path = through_file(snn.export_nir(model, x), tmp_path)
    with known_peer_failure(ValueError, "Unknown node type .*LI'>, mapping does not exist"):
        got = in_snntorch(path, x)
    assert torch.equal(got, run(model, x))


def flatten_model() -> nn.Sequential:
    torch.manual_seed(9)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.uniform_(0.0, 2.0)
    return nn.Sequential(
        snn.FoldTime(conv),
        physical(2e-3),
        nn.Flatten(2),
        linear(256, 5, 0.0, 0.3),
        physical(2e-3),
    )


FLATTEN_REASON = (
    "{peer} maps NIR's Flatten(start_dim=0) (per-sample dims, as snnTorch's exporter writes it "
    "too) to torch.nn.Flatten(0), which folds the batch in: RuntimeError 'mat1 and mat2 shapes "
    "cannot be multiplied (1x512 and 256x5)' in the next Linear"
)
FLATTENED_BATCH = r"mat1 and mat2 shapes cannot be multiplied \(1x512 and 256x5\)"


@known_limitation(FLATTEN_REASON.format(peer="norse.torch.from_nir"))
def test_norse_reads_a_flatten(tmp_path):
    model = flatten_model()
    x = torch.rand(20, 2, 1, 8, 8)
    assert_fires(run(model, x), "snn")
    path = through_file(snn.export_nir(model, x), tmp_path)
    with known_peer_failure(RuntimeError, FLATTENED_BATCH):
        got = in_norse(path, x, dt=SNNTORCH_DT)
    assert torch.equal(got, run(model, x))


@known_limitation(FLATTEN_REASON.format(peer="snntorch.import_nir.import_from_nir"))
def test_snntorch_reads_a_flatten(tmp_path):
    model = flatten_model()
    x = torch.rand(20, 2, 1, 8, 8)
    assert_fires(run(model, x), "snn")
    path = through_file(snn.export_nir(model, x), tmp_path)
    with known_peer_failure(RuntimeError, FLATTENED_BATCH):
        got = in_snntorch(path, x)
    assert torch.equal(got, run(model, x))


# ---------------------------------------------------------------------------------------------
# snnTorch -> NIR file -> snn


def leaky(beta: float, threshold: float, shape, **kwargs):
    """snnTorch's Leaky with per-neuron tensors: scalar ones do not export (see below)."""
    return snntorch.Leaky(
        beta=torch.full(shape, beta),
        threshold=torch.full(shape, threshold),
        init_hidden=True,
        **kwargs,
    )


def snntorch_mlp(**kwargs) -> nn.Sequential:
    torch.manual_seed(10)
    return nn.Sequential(
        linear(8, 16, -0.1, 0.35),
        leaky(0.9, 1.0, (16,), **kwargs),
        linear(16, 6, -0.3, 0.5),
        leaky(0.8, 0.7, (6,), **kwargs),
    )


def test_snntorch_leaky_export_runs_the_same_in_snn(tmp_path):
    """snnTorch writes ``tau = 1e-4/(1-beta)``, ``r = tau/1e-4`` for dt = 1e-4: snn, told that
    dt, runs the same spikes. With a zero reset, snnTorch's delayed reset (``reset_delay=True``,
    the default) gives the same spikes as NIR's immediate one."""
    net = snntorch_mlp(reset_mechanism="zero")
    x = torch.rand(60, 3, 8)
    expected = snntorch_run(net, x)
    assert_fires(snntorch_run(net[:2], x), "the first layer")
    assert_fires(expected, "the output layer")
    path = through_file(export_to_nir(net, x[0, 0]), tmp_path)
    assert torch.equal(in_snn(path, x, dt=SNNTORCH_DT), expected)


def test_snntorch_conv_export_runs_the_same_in_snn(tmp_path):
    torch.manual_seed(11)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.uniform_(0.0, 0.3)
    net = nn.Sequential(
        conv,
        leaky(0.9, 1.0, (4, 8, 8), reset_mechanism="zero"),
        nn.AvgPool2d(2),
        leaky(0.8, 0.3, (4, 4, 4), reset_mechanism="zero"),  # no mean of spikes lands on it
    )
    x = torch.rand(30, 2, 1, 8, 8)
    expected = snntorch_run(net, x)
    assert_fires(snntorch_run(net[:2], x), "the conv layer")
    assert_fires(expected, "the pooled layer")
    path = through_file(export_to_nir(net, x[0, 0]), tmp_path)  # a sample without batch
    assert torch.equal(in_snn(path, x, dt=SNNTORCH_DT), expected)


def test_snntorch_subtract_reset_is_written_as_a_zero_reset(tmp_path):
    """snnTorch's default ``reset_mechanism="subtract"`` is written as NIR's reset to
    ``v_reset = 0``, silently: snn runs the same model with ``reset_mechanism="zero"``."""
    net = snntorch_mlp()  # the default: subtract
    x = torch.rand(60, 3, 8)
    own = snntorch_run(net, x)
    as_zero = snntorch_run(snntorch_mlp(reset_mechanism="zero"), x)
    assert_fires(own, "snnTorch")
    assert not torch.equal(own, as_zero)
    got = in_snn(through_file(export_to_nir(net, x[0, 0]), tmp_path), x, dt=SNNTORCH_DT)
    assert torch.equal(got, as_zero)


def test_snntorch_synaptic_export_runs_in_snn(tmp_path):
    """Synaptic is written as NIR's CubaLIF (``w_in = tau_syn/dt``, so the current's Euler gain
    is 1): snn runs it as snnTorch does with ``reset_delay=False``. snnTorch's default
    ``reset_delay=True`` zero reset also discards the membrane update of the step after a spike,
    so it never fires two steps in a row; NIR's (and snn's) neuron does."""

    def synaptic_net(**kwargs):
        torch.manual_seed(12)
        shape = (16,)
        return nn.Sequential(
            linear(8, 16, -0.05, 0.12),
            snntorch.Synaptic(
                alpha=torch.full(shape, 0.8),
                beta=torch.full(shape, 0.9),
                threshold=torch.ones(shape),
                init_hidden=True,
                reset_mechanism="zero",
                **kwargs,
            ),
        )

    x = torch.rand(60, 3, 8)
    default = synaptic_net()
    immediate = snntorch_run(synaptic_net(reset_delay=False), x)
    got = in_snn(through_file(export_to_nir(default, x[0, 0]), tmp_path), x, dt=SNNTORCH_DT)
    assert_fires(got, "snn")
    assert torch.equal(got, immediate)
    own = snntorch_run(default, x)
    assert_fires(own, "snnTorch")
    assert not (own[1:] * own[:-1]).any()  # never two steps in a row
    assert (got[1:] * got[:-1]).any()


@known_limitation(
    "snntorch.export_nir.export_to_nir writes Leaky(beta=0.9)'s scalar parameters as 0-d "
    "arrays; NIRGraph.infer_types (which export_to_nir calls) raises ValueError 'Type "
    "inference error: type mismatch: 0.output: [[16]] -> 1.input: []'"
)
def test_snntorch_exports_a_leaky_with_scalar_parameters(tmp_path):
    torch.manual_seed(10)
    net = nn.Sequential(
        linear(8, 16, -0.1, 0.35),
        snntorch.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero"),
    )
    x = torch.rand(60, 3, 8)
    assert_fires(snntorch_run(net, x), "snnTorch")
    with known_peer_failure(ValueError, re.escape("0.output: [[16]] -> 1.input: []")):
        graph = export_to_nir(net, x[0, 0])
    path = through_file(graph, tmp_path)
    assert torch.equal(in_snn(path, x, dt=SNNTORCH_DT), snntorch_run(net, x))


@known_limitation(
    "snntorch.export_nir.export_to_nir of Conv2d -> Flatten -> Linear: with a batched sample "
    "NIRGraph.infer_types raises IndexError 'tuple index out of range' (Conv2d); an unbatched "
    "sample makes Flatten fold the channels instead"
)
def test_snntorch_exports_a_conv_flatten_net(tmp_path):
    torch.manual_seed(13)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        leaky(0.9, 1.0, (4, 8, 8), reset_mechanism="zero"),
        nn.Flatten(),
        linear(256, 5, -0.05, 0.1),
        leaky(0.8, 1.0, (5,), reset_mechanism="zero"),
    )
    x = torch.rand(20, 2, 1, 8, 8)
    assert_fires(snntorch_run(net, x), "snnTorch")
    with known_peer_failure(IndexError, "tuple index out of range"):
        graph = export_to_nir(net, x[0, :1])
    path = through_file(graph, tmp_path)
    assert torch.equal(in_snn(path, x, dt=SNNTORCH_DT), snntorch_run(net, x))


def test_snntorch_recurrent_layer_runs_in_snn(tmp_path):
    """RLeaky is written as a LIF <-> Affine cycle, which snn reads as snn.Recurrent (the cycle
    delivers the step before's spikes): it runs snnTorch's spikes with ``reset_delay=False``.
    The default ``reset_delay=True`` zero reset holds the membrane at 0 for the step after a
    spike, as for Synaptic above."""

    def rleaky_net(**kwargs):
        torch.manual_seed(16)
        return nn.Sequential(
            linear(8, 16, 0.0, 0.3),
            snntorch.RLeaky(
                beta=0.9, linear_features=16, init_hidden=True, reset_mechanism="zero", **kwargs
            ),
        )

    x = torch.rand(60, 3, 8)
    default = rleaky_net()
    path = through_file(export_to_nir(default, x[0, 0]), tmp_path)
    assert isinstance(snn.import_nir(path, dt=SNNTORCH_DT)[1], snn.Recurrent)
    got = in_snn(path, x, dt=SNNTORCH_DT)
    assert_fires(got, "snn")
    assert torch.equal(got, snntorch_run(rleaky_net(reset_delay=False), x))
    assert not torch.equal(got, snntorch_run(default, x))


# ---------------------------------------------------------------------------------------------
# Norse -> NIR file -> snn


def lif_box(tau_mem_inv: float, n: int):
    p = norse.LIFBoxParameters(
        tau_mem_inv=torch.full((n,), tau_mem_inv), v_th=torch.ones(n), v_leak=torch.zeros(n)
    )
    return norse.LIFBoxCell(p)


def test_norse_lifbox_export_runs_in_snn_at_dt_squared(tmp_path):
    """``to_nir`` writes ``tau = dt / tau_mem_inv``, i.e. ``dt * tau_mem`` (1e-5 for 10 ms at
    dt = 1e-3), and r = 1: Norse's step ``dt * tau_mem_inv`` is ``dt'/tau`` for ``dt' = dt**2``,
    so snn, told ``dt=dt**2``, runs the same spikes. Norse's own ``from_nir`` (at dt) does not.
    """
    torch.manual_seed(14)
    net = norse.SequentialState(linear(8, 16, 0.0, 2.0), lif_box(100.0, 16))
    x = torch.rand(60, 3, 8)
    expected = step_by_step(net, x)
    assert_fires(expected, "Norse")
    path = through_file(norse.to_nir(net, x[0, 0]), tmp_path)  # a sample without batch
    np.testing.assert_allclose(nir.read(path).nodes["1"].tau, NORSE_DT / 100.0, rtol=1e-6)
    assert torch.equal(in_snn(path, x, dt=NORSE_DT**2), expected)
    assert not torch.equal(in_norse(path, x), expected)


def test_norse_lif_export_runs_in_snn_with_its_current_jump(tmp_path):
    """Norse's LIFCell is written as CubaLIF with w_in = 1, but its current jumps by the whole
    input (``i += x``), where NIR's Euler step adds ``w_in dt/tau_syn`` of it: snn (at
    ``dt**2``, as for LIFBox) runs the same spikes once ``w_in = 1/(dt * tau_syn_inv)``."""
    torch.manual_seed(15)
    n, tau_syn_inv = 16, 200.0
    p = norse.LIFParameters(
        tau_syn_inv=torch.full((n,), tau_syn_inv),
        tau_mem_inv=torch.full((n,), 100.0),
        v_th=torch.ones(n),
        v_leak=torch.zeros(n),
    )
    net = norse.SequentialState(linear(8, n, -0.1, 0.3), norse.LIFCell(p))
    x = torch.rand(60, 3, 8)
    expected = step_by_step(net, x)
    assert_fires(expected, "Norse")
    graph = nir.read(through_file(norse.to_nir(net, x[0, 0]), tmp_path))
    as_written = in_snn(graph, x, dt=NORSE_DT**2)
    assert not torch.equal(as_written, expected)
    graph.nodes["1"].w_in = np.full(n, 1 / (NORSE_DT * tau_syn_inv))
    assert torch.equal(in_snn(graph, x, dt=NORSE_DT**2), expected)


def test_norse_iaf_export_runs_in_snn_at_dt_one(tmp_path):
    """Norse's IAFCell adds its input as is (its dt is unused), NIR's IF adds ``r dt`` of it:
    snn runs the same spikes with ``dt=1``, not with Norse's dt."""
    torch.manual_seed(16)
    n = 16
    p = norse.IAFParameters(v_th=torch.ones(n), v_reset=torch.zeros(n))
    net = norse.SequentialState(linear(8, n, -0.1, 0.2), norse.IAFCell(p))
    x = torch.rand(60, 3, 8)
    expected = step_by_step(net, x)
    assert_fires(expected, "Norse")
    path = through_file(norse.to_nir(net, x[0, 0]), tmp_path)
    assert torch.equal(in_snn(path, x, dt=1.0), expected)
    assert not torch.equal(in_snn(path, x, dt=NORSE_DT), expected)


def test_norse_li_export_runs_in_snn_at_dt_squared(tmp_path):
    """LIBoxCell is written as LI with the same ``tau = dt * tau_mem``: snn's membrane at
    ``dt**2`` equals Norse's to float32 rounding."""
    torch.manual_seed(17)
    n = 6
    p = norse.LIBoxParameters(tau_mem_inv=torch.full((n,), 100.0), v_leak=torch.zeros(n))
    net = norse.SequentialState(linear(8, n, -0.5, 1.0), norse.LIBoxCell(p))
    x = torch.rand(60, 3, 8)
    expected = step_by_step(net, x)
    assert float(expected.abs().max()) > 0.1  # it integrates something
    path = through_file(norse.to_nir(net, x[0, 0]), tmp_path)
    got = in_snn(path, x, dt=NORSE_DT**2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@known_limitation(
    "norse.torch.to_nir writes a LIFBoxCell with its default (scalar) parameters as 0-d "
    "arrays; nir.write raises TypeError 'Scalar datasets don't support chunk/filter options' "
    "(h5py)"
)
def test_norse_default_lifbox_goes_through_a_file(tmp_path):
    torch.manual_seed(14)
    net = norse.SequentialState(linear(8, 16, 0.0, 2.0), norse.LIFBoxCell())
    x = torch.rand(60, 3, 8)
    assert_fires(step_by_step(net, x), "Norse")
    with known_peer_failure(TypeError, "Scalar datasets don't support chunk/filter options"):
        path = through_file(norse.to_nir(net, x[0, 0]), tmp_path)
    assert torch.equal(in_snn(path, x, dt=NORSE_DT**2), step_by_step(net, x))


@known_limitation(
    "norse.torch.to_nir with a batched sample writes the batch into the Input type ([3, 8]); "
    "nir.read then raises ValueError 'Type inference error: type mismatch: input.output: "
    "[[3 8]] -> 0.input: [[8]]'"
)
def test_norse_export_from_a_batched_sample_goes_through_a_file(tmp_path):
    torch.manual_seed(14)
    net = norse.SequentialState(linear(8, 16, 0.0, 2.0), lif_box(100.0, 16))
    x = torch.rand(60, 3, 8)
    assert_fires(step_by_step(net, x), "Norse")
    path = through_file(norse.to_nir(net, x[0]), tmp_path)
    with known_peer_failure(ValueError, re.escape("input.output: [[3 8]] -> 0.input: [[8]]")):
        graph = nir.read(path)
    assert torch.equal(in_snn(graph, x, dt=NORSE_DT**2), step_by_step(net, x))
