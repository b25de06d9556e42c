"""NIR for the LIF family: CubaLIF both ways, recurrent cycles as snn.Recurrent, ALIF refused.

The reference for the imports is an Euler loop of NIR's equations written here in float64
(``tau_syn di/dt = -i + w_in x``, ``tau_mem dv/dt = (v_leak - v) + r i``, a spike when
``v > v_threshold``, then ``v = v_reset``; the membrane takes the current of the same step, and a
recurrent edge delivers the step before's spikes). File round trips are compared bit for bit.
Every comparison runs on inputs that fire at 5-80 % of the steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import snn

nir = pytest.importorskip("nir")

DT = 1e-4  # the Braille model's step (seconds), as snnTorch writes its graphs


def assert_fires(spikes, what: str) -> None:
    rate = float(np.asarray(spikes, dtype=np.float64).mean())
    assert 0.05 < rate < 0.8, f"{what} fires at {rate:.1%}: the comparison would mean little"


def through_file(graph, tmp_path, **kwargs) -> nn.Module:
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    return snn.import_nir(path, **kwargs)


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def uniform(low: float, high: float, n: int, seed: int) -> torch.Tensor:
    return torch.linspace(low, high, n)[
        torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    ]


# ---------------------------------------------------------------------------------------------
# CubaLIF: export -> file -> import


def cuba_layers(n: int):
    """(id, CubaLIF layer, export keywords, input weight scale): each form, with per-neuron
    parameters; the scale keeps each layer firing at 5-80 % of the steps."""
    alpha, beta = uniform(0.6, 0.9, n, 1), uniform(0.8, 0.95, n, 2)
    threshold = uniform(0.8, 1.2, n, 3)
    deep = dict(alpha=alpha, beta=beta, threshold=threshold, shape=n)
    physical = dict(
        tau_syn=np.linspace(1.5, 4.0, n), tau_mem=8.0, dt=0.5, v_th=threshold, r=2.0, w_in=1.5,
        shape=n,
    )  # fmt: skip
    return [
        ("deep", snn.CubaLIF(**deep, reset="zero"), {}, 0.3),
        ("deep-subtract-keep", snn.CubaLIF(**deep), {"subtract_reset": "keep"}, 0.25),
        ("deep-r-w_in", snn.CubaLIF(**deep, reset="zero", r=3.0, w_in=2.0), {"dt": 0.5}, 1.0),
        ("physical", snn.CubaLIF.physical(**physical, v_rest=0.1, v_reset=-0.2), {}, 3.0),
        (
            "physical-exact",
            snn.CubaLIF.physical(**physical, v_rest=0.0, v_reset=0.0, exact=True),
            {},
            3.0,
        ),
    ]


@pytest.mark.parametrize("case", range(5), ids=[c[0] for c in cuba_layers(2)])
def test_cuba_lif_round_trip_through_a_file(case, tmp_path):
    torch.manual_seed(20 + case)
    n = 40
    _, cuba, kwargs, scale = cuba_layers(n)[case]
    model = nn.Sequential(nn.Linear(6, n), cuba)
    with torch.no_grad():
        model[0].weight.uniform_(-0.1 * scale, 0.5 * scale)
    x = torch.rand(80, 3, 6)
    graph = snn.export_nir(model, x[:1, :1], **kwargs)
    node = graph.nodes["1"]
    assert isinstance(node, nir.CubaLIF)
    again = through_file(graph, tmp_path)
    assert isinstance(again[1], snn.CubaLIF)
    expected = run(model, x)
    assert_fires(expected, "the CubaLIF")
    assert torch.equal(run(again, x), expected)


def test_cuba_lif_export_writes_nirs_fields():
    """The physical form's own constants, and the deep form's from its decays at the graph's dt:
    ``tau = dt/(1 - decay)``, and ``w_in``, ``r`` that make both Euler gains 1."""
    n, dt = 3, 0.5
    tau_syn = np.array([1.5, 2.0, 4.0])
    physical = snn.CubaLIF.physical(
        tau_syn, 8.0, dt=dt, v_rest=0.1, v_reset=-0.2, v_th=1.0, r=2.0, w_in=1.5, shape=n
    )
    node = snn.export_nir(nn.Sequential(physical), torch.zeros(1, 1, n)).nodes["0"]
    np.testing.assert_allclose(node.tau_syn, tau_syn, rtol=1e-15)
    np.testing.assert_allclose(node.tau_mem, np.full(n, 8.0), rtol=1e-15)
    np.testing.assert_allclose(node.r, np.full(n, 2.0))
    np.testing.assert_allclose(node.w_in, np.full(n, 1.5))
    np.testing.assert_allclose(node.v_leak, np.full(n, 0.1))
    np.testing.assert_allclose(node.v_reset, np.full(n, -0.2))
    assert node.metadata == {"dt": dt, "discretization": "euler"}

    deep = snn.CubaLIF(alpha=0.75, beta=0.875, threshold=1.5, reset="zero", dtype=torch.float64)
    node = snn.export_nir(nn.Sequential(deep), torch.zeros(1, 1, n), dt=dt).nodes["0"]
    np.testing.assert_allclose(node.tau_syn, np.full(n, dt / 0.25), rtol=1e-14)
    np.testing.assert_allclose(node.tau_mem, np.full(n, dt / 0.125), rtol=1e-14)
    np.testing.assert_allclose(node.w_in, np.full(n, 4.0), rtol=1e-14)
    np.testing.assert_allclose(node.r, np.full(n, 8.0), rtol=1e-14)
    np.testing.assert_allclose(node.v_threshold, np.full(n, 1.5))


def test_cuba_lif_import_forms():
    """Gains of 1 give the deep form, a uniform r and w_in the physical form (Euler or exact,
    as the metadata or ``exact=`` says), per-neuron gains a Scale before a deep CubaLIF."""

    def graph(tau_syn, r, w_in, **metadata):
        n = 4
        tau_mem = np.full(n, 10 * DT)
        node = nir.CubaLIF(
            tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.zeros(n), v_threshold=np.ones(n),
            v_reset=np.zeros(n), w_in=w_in, metadata=metadata,
        )  # fmt: skip
        return nir.NIRGraph.from_list(node)

    tau_syn = np.array([2, 4, 5, 8]) * DT
    deep = snn.import_nir(graph(tau_syn, np.full(4, 10.0), tau_syn / DT), dt=DT)
    assert isinstance(deep[0], snn.CubaLIF) and deep[0].dt is None
    torch.testing.assert_close(deep[0].alpha, torch.tensor([0.5, 0.75, 0.8, 0.875]))

    physical = snn.import_nir(graph(tau_syn, np.full(4, 2.0), np.full(4, 1.5)), dt=DT)[0]
    assert isinstance(physical, snn.CubaLIF) and physical.dt == DT and not physical.exact
    assert (physical.r, physical.w_in) == (2.0, 1.5)
    exact = snn.import_nir(graph(tau_syn, np.full(4, 2.0), np.full(4, 1.5)), dt=DT, exact=True)[0]
    assert exact.exact
    torch.testing.assert_close(exact.alpha, torch.exp(-DT / torch.tensor(tau_syn)).float())
    from_metadata = snn.import_nir(
        graph(tau_syn, np.full(4, 2.0), np.full(4, 1.5), dt=DT, discretization="exact")
    )[0]
    assert from_metadata.exact and from_metadata.dt == DT

    scaled = snn.import_nir(graph(tau_syn, np.array([1.0, 2, 3, 4]), np.full(4, 1.5)), dt=DT)
    assert isinstance(scaled[0], nn.Sequential) and isinstance(scaled[0].neuron, snn.CubaLIF)


def test_cuba_lif_without_reset_round_trips_as_cuba_li_and_threshold(tmp_path):
    torch.manual_seed(25)
    model = nn.Sequential(nn.Linear(5, 20), snn.CubaLIF(0.7, 0.9, reset="none"))
    x = torch.rand(40, 2, 5)
    graph = snn.export_nir(model, x[:1, :1])
    assert [type(graph.nodes[k]).__name__ for k in ("1.li", "1.threshold")] == [
        "CubaLI",
        "Threshold",
    ]
    expected = run(model, x)
    assert_fires(expected, "the CubaLIF without reset")
    assert torch.equal(run(through_file(graph, tmp_path), x), expected)


# ---------------------------------------------------------------------------------------------
# Recurrent: export -> file -> import


def recurrent_layers(n: int):
    """(id, Recurrent layer, input weight scale), with per-neuron parameters."""
    beta, threshold = uniform(0.8, 0.95, n, 4), uniform(0.8, 1.2, n, 5)
    cuba = snn.CubaLIF(uniform(0.6, 0.85, n, 6), beta, threshold, reset="zero", shape=n)
    physical = snn.CubaLIF.physical(
        np.linspace(3 * DT, 8 * DT, n), 15 * DT, DT, v_rest=0.0, v_reset=0.0, v_th=threshold,
        r=1.5, w_in=2.0, shape=n,
    )  # fmt: skip
    return [
        ("LIF", snn.Recurrent(snn.LIF(beta, threshold, reset="zero", shape=n), n), 1.0),
        ("CubaLIF-no-bias", snn.Recurrent(cuba, n, bias=False), 1.0),
        ("CubaLIF-physical", snn.Recurrent(physical, n), 3.0),
    ]


@pytest.mark.parametrize("case", range(3), ids=[c[0] for c in recurrent_layers(2)])
def test_recurrent_round_trip_through_a_file(case, tmp_path):
    torch.manual_seed(30 + case)
    n = 30
    _, layer, scale = recurrent_layers(n)[case]
    model = nn.Sequential(nn.Linear(8, n), layer)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.4)
        model[0].weight.uniform_(-0.1 * scale, 0.4 * scale)
    x = torch.rand(100, 3, 8)
    graph = snn.export_nir(model, x[:1, :1])
    loop = graph.nodes["1.w_rec"]
    assert isinstance(loop, nir.Affine if layer.bias is not None else nir.Linear)
    assert {("1", "1.w_rec"), ("1.w_rec", "1"), ("0", "1"), ("1", "output")} <= set(graph.edges)
    again = through_file(graph, tmp_path)
    assert isinstance(again[1], snn.Recurrent)
    assert type(again[1].neuron) is type(layer.neuron)
    assert torch.equal(again[1].weight, layer.weight)
    expected = run(model, x)
    assert_fires(expected, "the recurrent layer")
    assert (run(layer, run(model[0], x)) != run(layer.neuron, run(model[0], x))).any()
    assert torch.equal(run(again, x), expected)


# ---------------------------------------------------------------------------------------------
# The Braille-shaped graph: input(12) -> Affine -> CubaLIF(38) (+ recurrent Affine) -> Affine
# -> CubaLIF(7), against the Euler loop


def cuba_fields(n: int, style: str, rng) -> dict:
    """NIR CubaLIF fields for ``n`` neurons: snnTorch-style (``w_in = tau_syn/dt``,
    ``r = tau_mem/dt``, so both gains are 1), uniform physical gains, or per-neuron gains."""
    tau_syn = rng.uniform(4, 8, n) * DT  # alpha 0.75 .. 0.875
    tau_mem = rng.uniform(10, 20, n) * DT  # beta 0.9 .. 0.95
    fields = dict(
        tau_syn=tau_syn, tau_mem=tau_mem, v_leak=np.zeros(n), v_threshold=rng.uniform(0.8, 1.2, n),
        v_reset=np.zeros(n),
    )  # fmt: skip
    if style == "snntorch":
        return {**fields, "w_in": tau_syn / DT, "r": tau_mem / DT}
    if style == "physical":  # one r and w_in per layer; a resting potential to leak to
        return {**fields, "w_in": np.full(n, 3.0), "r": np.full(n, 5.0), "v_leak": np.full(n, 0.1)}
    return {**fields, "w_in": rng.uniform(2, 4, n), "r": rng.uniform(4, 6, n)}


# (hidden, output) weight scales per style, which keep both layers firing at 5-80 % of the steps:
# snnTorch-style gains are 1 per step, the physical ones w_in dt/tau_syn and r dt/tau_mem
BRAILLE_SCALES = {"snntorch": (0.05, 0.05), "physical": (0.5, 0.35), "per-neuron-gains": (0.5, 0.5)}


def braille_graph(style: str, rng, scales: tuple[float, float] | None = None):
    n_in, n_hidden, n_out = 12, 38, 7
    hidden_scale, out_scale = scales or BRAILLE_SCALES[style]
    w1 = rng.normal(0.25, 0.35, (n_hidden, n_in)) * hidden_scale
    w_rec = rng.normal(0.0, 0.25, (n_hidden, n_hidden)) * hidden_scale
    w2 = rng.normal(0.12, 0.25, (n_out, n_hidden)) * out_scale
    b1 = rng.normal(0, 0.05, n_hidden) * hidden_scale
    b_rec = rng.normal(0, 0.05, n_hidden) * hidden_scale
    b2 = rng.normal(0, 0.05, n_out) * out_scale
    params = {
        "w1": w1, "b1": b1, "w_rec": w_rec, "b_rec": b_rec, "w2": w2, "b2": b2,
        "lif1": cuba_fields(n_hidden, style, rng), "lif2": cuba_fields(n_out, style, rng),
    }  # fmt: skip
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=params["w1"], bias=params["b1"]),
        "lif1": nir.CubaLIF(**params["lif1"]),
        "lif1.w_rec": nir.Affine(weight=params["w_rec"], bias=params["b_rec"]),
        "fc2": nir.Affine(weight=params["w2"], bias=params["b2"]),
        "lif2": nir.CubaLIF(**params["lif2"]),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [
        ("input", "fc1"), ("fc1", "lif1"), ("lif1", "lif1.w_rec"), ("lif1.w_rec", "lif1"),
        ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output"),
    ]  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges), params


def euler_braille(x: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """NIR's equations by Euler steps of DT in float64; x is [T, B, 12]."""

    def neuron(f, drive, i, v):
        i = i + DT / f["tau_syn"] * (-i + f["w_in"] * drive)
        v = v + DT / f["tau_mem"] * ((f["v_leak"] - v) + f["r"] * i)
        s = (v > f["v_threshold"]).astype(np.float64)
        return s, i, np.where(s > 0, f["v_reset"], v)

    steps, batch = x.shape[:2]
    n_hidden, n_out = len(p["b1"]), len(p["b2"])
    i1, v1, s1 = (
        np.zeros((batch, n_hidden)),
        np.zeros((batch, n_hidden)),
        np.zeros((batch, n_hidden)),
    )
    v1 += p["lif1"]["v_leak"]
    i2, v2 = np.zeros((batch, n_out)), np.zeros((batch, n_out)) + p["lif2"]["v_leak"]
    hidden, out = np.zeros((steps, batch, n_hidden)), np.zeros((steps, batch, n_out))
    for t in range(steps):
        recurrent = s1 @ p["w_rec"].T + p["b_rec"]  # the spikes of step t-1 (none before t=0)
        s1, i1, v1 = neuron(p["lif1"], x[t] @ p["w1"].T + p["b1"] + recurrent, i1, v1)
        s2, i2, v2 = neuron(p["lif2"], s1 @ p["w2"].T + p["b2"], i2, v2)
        hidden[t], out[t] = s1, s2
    return hidden, out


@pytest.mark.parametrize("style", ["snntorch", "physical", "per-neuron-gains"])
def test_braille_shaped_graph_equals_the_euler_loop(style, tmp_path):
    rng = np.random.default_rng({"snntorch": 40, "physical": 41, "per-neuron-gains": 42}[style])
    graph, params = braille_graph(style, rng)
    net = through_file(graph, tmp_path, dt=DT, dtype=torch.float64)
    assert isinstance(net, nn.Sequential) and list(net._modules) == ["fc1", "lif1", "fc2", "lif2"]
    recurrent = net.lif1 if style != "per-neuron-gains" else net.lif1.recurrent
    assert isinstance(recurrent, snn.Recurrent)

    x = (rng.random((300, 2, 12)) < 0.3).astype(np.float64)  # Braille's inputs are events
    hidden_expected, expected = euler_braille(x, params)
    hidden = net[:2](torch.tensor(x)).detach().numpy()
    got = net(torch.tensor(x)).detach().numpy()
    assert_fires(hidden_expected, "the hidden layer")
    assert_fires(expected, "the output layer")
    np.testing.assert_array_equal(hidden, hidden_expected)
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------------------------
# what NIR cannot express, and the cycles import_nir does not read


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(4, 3), snn.ALIF()),
        nn.Sequential(nn.Linear(4, 3), snn.Recurrent(snn.ALIF(), 3)),
    ],
    ids=["ALIF", "Recurrent(ALIF)"],
)
def test_alif_export_is_refused_by_name(model):
    with pytest.raises(ValueError, match="of type ALIF .*NIR has no adaptive-threshold neuron"):
        snn.export_nir(model, torch.zeros(1, 1, 4))


def test_recurrent_with_no_reset_is_refused():
    model = nn.Sequential(snn.Recurrent(snn.LIF(reset="none"), 3))
    with pytest.raises(ValueError, match="reset='none'.*use reset='zero'"):
        snn.export_nir(model, torch.zeros(1, 1, 3))


def lif_node(n: int):
    return nir.LIF(tau=np.ones(n), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))


def graph_of(nodes: dict, edges: list):
    n = 2
    nodes = {"input": nir.Input(input_type={"input": np.array([n])}), **nodes}
    nodes["output"] = nir.Output(output_type={"output": np.array([n])})
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_a_longer_cycle_is_refused_naming_its_nodes():
    graph = graph_of(
        {"a": lif_node(2), "w": nir.Linear(weight=np.eye(2)), "b": lif_node(2),
         "back": nir.Linear(weight=np.eye(2))},
        [("input", "a"), ("a", "w"), ("w", "b"), ("b", "back"), ("back", "a"), ("b", "output")],
    )  # fmt: skip
    with pytest.raises(ValueError, match="the cycle a -> w -> b -> back -> a; .*snn.Recurrent"):
        snn.import_nir(graph, dt=0.1)


def test_a_loop_into_a_non_spiking_node_is_refused():
    li = nir.LI(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2))
    graph = graph_of(
        {"li": li, "w": nir.Linear(weight=np.eye(2))},
        [("input", "li"), ("li", "w"), ("w", "li"), ("li", "output")],
    )
    with pytest.raises(ValueError, match="node 'li' \\(LI\\) is in the recurrent loop li -> w"):
        snn.import_nir(graph, dt=0.1)


def test_two_loops_into_one_neuron_are_refused():
    graph = graph_of(
        {"a": lif_node(2), "w1": nir.Linear(weight=np.eye(2)), "w2": nir.Linear(weight=np.eye(2))},
        [("input", "a"), ("a", "w1"), ("w1", "a"), ("a", "w2"), ("w2", "a"), ("a", "output")],
    )
    with pytest.raises(ValueError, match="two recurrent loops, through 'w1' and 'w2'"):
        snn.import_nir(graph, dt=0.1)


def test_a_non_square_loop_is_refused():
    graph = graph_of(
        {"a": lif_node(2), "w": nir.Linear(weight=np.ones((2, 3)))},
        [("input", "a"), ("a", "w"), ("w", "a"), ("a", "output")],
    )
    with pytest.raises(ValueError, match="weight of shape \\(2, 3\\); .*square"):
        snn.import_nir(graph, dt=0.1)


def test_a_loop_around_an_if_neuron_with_per_neuron_r():
    """NIR's IF, ``dv/dt = r I``, in a loop: per-neuron ``r`` becomes a Scale in front of the
    Recurrent layer, folded into the loop's rows; against the Euler loop ``v += r dt I``."""
    rng = np.random.default_rng(43)
    n, dt = 10, 0.1
    r = rng.uniform(1.0, 3.0, n)
    w_rec, b_rec = rng.normal(0, 0.6, (n, n)), rng.normal(0, 0.1, n)
    graph = graph_of(
        {"if": nir.IF(r=r, v_threshold=np.ones(n), v_reset=np.zeros(n)),
         "w": nir.Affine(weight=w_rec, bias=b_rec)},
        [("input", "if"), ("if", "w"), ("w", "if"), ("if", "output")],
    )  # fmt: skip
    net = snn.import_nir(graph, dt=dt, dtype=torch.float64)
    assert isinstance(net[0].recurrent, snn.Recurrent)
    x = rng.uniform(0.0, 1.2, (200, 2, n))
    v, s, expected = np.zeros((2, n)), np.zeros((2, n)), np.zeros_like(x)
    for t in range(len(x)):
        v = v + r * dt * (x[t] + s @ w_rec.T + b_rec)
        s = (v > 1.0).astype(np.float64)
        v = np.where(s > 0, 0.0, v)
        expected[t] = s
    assert_fires(expected, "the IF loop")
    np.testing.assert_array_equal(run(net, torch.tensor(x)).numpy(), expected)
