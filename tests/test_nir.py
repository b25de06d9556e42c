"""NIR export and import: round trips through files, closed-form spike times, other libraries'
graphs, the trained MNIST MLP, and the errors for what NIR cannot express.

References here are independent of snn: closed forms of the LIF ODE and its Euler map, and plain
numpy loops that follow NIR's equations as snnTorch and Norse discretize them.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

import snn

ROOT = Path(__file__).resolve().parents[1]


def write_and_read(graph: nir.NIRGraph, tmp_path: Path) -> nir.NIRGraph:
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    return nir.read(path)


def round_trip(model: nn.Module, x: torch.Tensor, tmp_path: Path, **kwargs) -> nn.Module:
    """snn -> NIR file -> snn; asserts identical output on ``x`` and returns the import."""
    graph = write_and_read(snn.export_nir(model, x, **kwargs), tmp_path)
    again = snn.import_nir(graph, dtype=x.dtype)
    with torch.no_grad():
        expected, got = model(x), again(x)
    assert torch.equal(got, expected)
    return again


# ---------------------------------------------------------------------------------------------
# round trips


def test_round_trip_physical_form(tmp_path):
    torch.manual_seed(0)
    euler = snn.LIF.physical(tau=10.0, dt=0.5, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0)
    exact = snn.LIF.physical(tau=4.0, dt=0.5, v_rest=0.0, v_reset=-0.5, v_th=1.0, r=3.0, exact=True)
    model = nn.Sequential(nn.Linear(20, 30), euler, nn.Linear(30, 10), exact)
    with torch.no_grad():
        model[0].weight.uniform_(0.0, 0.05)  # currents of ~0.1-0.4 nA: R I reaches threshold
        model[2].weight.normal_(0.5, 0.3)
    x = torch.rand(200, 3, 20)
    graph = snn.export_nir(model, x)
    with torch.no_grad():
        assert 0.02 < float(model(x).mean()) < 0.5 and float(model[:2](x).mean()) > 0.02

    lif = graph.nodes["1"]
    # NIR's fields are the physical parameters (tau comes back from the float32 beta)
    np.testing.assert_allclose(lif.tau, np.full(30, 10.0), rtol=1e-5)
    assert np.all(lif.r == 100.0) and np.all(lif.v_leak == -65.0)
    assert np.all(lif.v_threshold == -50.0) and np.all(lif.v_reset == -70.0)
    assert lif.metadata == {"dt": 0.5, "discretization": "euler"}
    np.testing.assert_allclose(graph.nodes["3"].tau, np.full(10, 4.0), rtol=1e-5)
    assert graph.nodes["3"].metadata["discretization"] == "exact"

    again = round_trip(model, x, tmp_path)
    assert again[1].tau is not None and again[3]._exact  # still the physical form


def test_round_trip_deep_form_per_neuron(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Linear(16, 32),
        snn.LIF(beta=0.9, reset="zero", shape=32, learn_beta=True, learn_threshold=True),
        nn.Linear(32, 12, bias=False),
        snn.LIF(beta=0.8, threshold=torch.linspace(0.5, 1.5, 12), reset="subtract", shape=12),
        nn.Linear(12, 5),
        snn.LIF(beta=torch.linspace(0.3, 0.95, 5), reset="none", shape=5),
    )
    with torch.no_grad():  # per-neuron values, as training leaves them
        model[1].beta_logit.normal_(1.5, 1.0)
        model[1].threshold.uniform_(0.5, 1.5)
        for m in (model[0], model[2], model[4]):
            m.weight.mul_(3.0)
    x = torch.rand(60, 4, 16)
    graph = snn.export_nir(model, x, dt=0.5, subtract_reset="keep")

    beta = model[1].beta.detach().double().numpy()
    lif = graph.nodes["1"]
    np.testing.assert_allclose(lif.tau, 0.5 / (1 - beta), rtol=1e-12)
    np.testing.assert_allclose(lif.r * 0.5 / lif.tau, 1.0, rtol=1e-12)  # Euler gain r dt/tau = 1
    assert graph.nodes["3"].metadata["snn_reset"] == "subtract"
    assert [type(graph.nodes[k]).__name__ for k in ("5.li", "5.threshold")] == ["LI", "Threshold"]

    with torch.no_grad():  # every spiking layer fires, so the comparison means something
        assert min(float(model[: k + 1](x).mean()) for k in (1, 3, 5)) > 0.02
    again = round_trip(model, x, tmp_path, dt=0.5, subtract_reset="keep")
    assert again[3].reset == "subtract"
    # float64 models round-trip too
    model64 = model.double()
    round_trip(model64, x.double(), tmp_path, dt=0.5, subtract_reset="keep")


def test_round_trip_conv_net(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(
        snn.FoldTime(nn.Conv2d(2, 6, 3, padding=1)),
        snn.LIF(beta=0.8, reset="zero"),
        snn.FoldTime(nn.AvgPool2d(2)),
        snn.FoldTime(
            nn.Sequential(
                nn.Conv2d(6, 8, 3, stride=2, bias=False),
                nn.AvgPool2d(2, divisor_override=1),  # NIR's SumPool2d
            )
        ),
        snn.LIF(beta=0.9, threshold=2.0, reset="zero", shape=(8, 1, 1), learn_threshold=True),
        nn.Flatten(2),
        nn.Linear(8 * 1 * 1, 10),
        snn.LIF(beta=0.5, reset="zero"),
    )
    with torch.no_grad():
        model[4].threshold.uniform_(0.5, 2.0)
    x = (torch.rand(30, 3, 2, 12, 12) < 0.4).float()
    graph = snn.export_nir(model, x)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert kinds == [
        "Input", "Conv2d", "LIF", "AvgPool2d", "Conv2d", "SumPool2d", "LIF", "Flatten", "Affine",
        "LIF", "Output",
    ]  # fmt: skip
    assert graph.nodes["1"].tau.shape == (6, 12, 12)
    assert graph.nodes["5"].start_dim == 0  # NIR counts per-sample dims
    with torch.no_grad():
        assert 0.01 < float(model[:5](x).mean()) < 0.9
    round_trip(model, x, tmp_path)

    # a grouped convolution is written as the equal dense kernel (nir's shape check needs it)
    grouped = snn.FoldTime(nn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=2))
    x = torch.randn(3, 2, 4, 9, 9)
    conv = snn.import_nir(snn.export_nir(grouped, x))
    with torch.no_grad():
        torch.testing.assert_close(conv(x), grouped(x), rtol=1e-5, atol=1e-5)


class TwoPaths(nn.Module):
    """y = LIF(A x + B x): NIR expresses the sum as two edges into the LIF node."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Linear(6, 4, bias=False)
        self.lif = snn.LIF(beta=0.7, reset="zero")

    def forward(self, x):
        return self.lif(self.a(x) + self.b(x))


def test_branches_become_summed_edges(tmp_path):
    torch.manual_seed(3)
    model = TwoPaths()
    x = torch.rand(40, 2, 6) * 2
    graph = snn.export_nir(model, x)
    assert sorted(e for e in graph.edges if e[1] == "lif") == [("a", "lif"), ("b", "lif")]
    again = round_trip(model, x, tmp_path)
    assert isinstance(again, snn.nir.NIRGraphModule)
    assert float(model(x).detach().mean()) > 0.05


# ---------------------------------------------------------------------------------------------
# closed-form spike times of a hand-built graph


def first_grid_crossings(
    v0: float, v_inf: float, theta: float, v_reset: float, log_beta: float, steps: int
) -> list[int]:
    """Step indices (0-based) at which ``v_n - v_inf = (v_start - v_inf) beta^n`` reaches
    ``theta``, restarting from ``v_reset`` after each spike."""
    times, start, v_start = [], 0, v0
    while True:
        n = math.log((v_inf - theta) / (v_inf - v_start)) / log_beta
        assert abs(n - round(n)) > 1e-6, "parameters too close to a tie; pick others"
        t = start + math.ceil(n) - 1
        if t >= steps:
            return times
        times.append(t)
        start, v_start = t + 1, v_reset


@pytest.mark.parametrize("exact", [False, True])
def test_hand_built_lif_matches_closed_form_spike_times(exact):
    tau = np.array([10.0, 20.0, 5.0])  # ms
    r = np.array([2.0, 1.0, 4.0])  # MOhm
    v_threshold = np.array([-50.0, -55.0, -52.0])  # mV
    current = np.array([10.0, 15.0, 6.0])  # nA, held constant
    v_leak, v_reset, dt, steps = -65.0, -70.0, 0.1, 2000
    graph = nir.NIRGraph.from_list(
        nir.LIF(
            tau=tau, r=r, v_leak=np.full(3, v_leak), v_threshold=v_threshold,
            v_reset=np.full(3, v_reset),
        )
    )  # fmt: skip
    net = snn.import_nir(graph, dt=dt, exact=exact, dtype=torch.float64)
    spikes = net(torch.tensor(current).expand(steps, 1, 3).contiguous())[:, 0]

    for i in range(3):
        v_inf = v_leak + r[i] * current[i]
        # Euler: v_n - v_inf = (1 - dt/tau)^n (v_0 - v_inf); exact: the ODE's e^{-n dt/tau}
        log_beta = -dt / tau[i] if exact else math.log(1 - dt / tau[i])
        expected = first_grid_crossings(v_leak, v_inf, v_threshold[i], v_reset, log_beta, steps)
        got = torch.nonzero(spikes[:, i]).flatten().tolist()
        assert got == expected and len(expected) >= 3
    if exact:  # the ODE's first spike at t* = tau ln((v_inf - v_leak)/(v_inf - v_th))
        v_inf = v_leak + r * current
        t_star = tau * np.log((v_inf - v_leak) / (v_inf - v_threshold))
        first = [torch.nonzero(spikes[:, i])[0].item() for i in range(3)]
        np.testing.assert_array_less(np.array(first) * dt, t_star)  # fires in the step after t*
        np.testing.assert_array_less(t_star, (np.array(first) + 1) * dt + 1e-12)


# ---------------------------------------------------------------------------------------------
# graphs as other libraries write them


def lif_loop(x, beta, gain, theta, v_leak=0.0, v_reset=0.0):
    """NIR's LIF, one Euler step per row of ``x`` ([T, N]), reset to v_reset."""
    v = np.full(x.shape[1], v_leak, dtype=np.float64)
    out = np.zeros_like(x)
    for t in range(len(x)):
        v = v_leak + beta * (v - v_leak) + gain * x[t]
        out[t] = v >= theta
        v = np.where(out[t] > 0, v_reset, v)
    return out


def test_snntorch_style_graph():
    """snnTorch writes Leaky/Synaptic as LIF/CubaLIF with 0-d parameters for dt = 1e-4:
    tau = dt/(1-beta), r = tau/dt, w_in = tau_syn/dt; its Flatten counts per-sample dims."""
    rng = np.random.default_rng(4)
    dt, beta, alpha = 1e-4, 0.9, 0.8
    w1 = rng.normal(0.3, 0.6, (5, 6)).astype(np.float32)
    b1 = rng.normal(0, 0.2, 5).astype(np.float32)
    w2 = rng.normal(0, 0.8, (3, 5)).astype(np.float32)
    tau_mem, tau_syn = np.array(dt / (1 - beta)), np.array(dt / (1 - alpha))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 3])}),
        "flat": nir.Flatten(input_type=None, start_dim=0),
        "fc1": nir.Affine(weight=w1, bias=b1),
        "lif1": nir.LIF(
            tau=tau_mem, r=tau_mem / dt, v_leak=np.array(0.0), v_threshold=np.array(1.0)
        ),
        "fc2": nir.Linear(weight=w2),
        "syn": nir.CubaLIF(
            tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.array(0.0),
            v_threshold=np.array(1.0), w_in=tau_syn / dt,
        ),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }  # fmt: skip
    order = list(nodes)
    graph = nir.NIRGraph(nodes, list(zip(order, order[1:], strict=False)), type_check=False)
    net = snn.import_nir(graph, dt=dt, dtype=torch.float64)
    assert isinstance(net, nn.Sequential)

    x = (rng.random((50, 1, 2, 3)) < 0.5).astype(np.float64)
    h1 = lif_loop(x.reshape(50, 6) @ w1.T.astype(np.float64) + b1, beta, 1.0, 1.0)
    syn_in = h1 @ w2.T.astype(np.float64)
    current = np.zeros(3)
    mem, expected = np.zeros(3), np.zeros((50, 3))
    for t in range(50):  # snnTorch's Synaptic: current first, then the membrane uses it
        current = alpha * current + syn_in[t]
        mem = beta * mem + current
        expected[t] = mem >= 1.0
        mem = np.where(expected[t] > 0, 0.0, mem)
    got = net(torch.tensor(x)).squeeze(1).detach().numpy()
    assert h1.mean() > 0.05 and expected.mean() > 0.05
    np.testing.assert_array_equal(got, expected)


def test_norse_style_graph():
    """Norse writes LIFBox/LIBox/IAF with tau = 1/tau_mem_inv, r = 1, for dt = 1e-3 (seconds):
    its Euler step is v += dt/tau ((v_leak - v) + I)."""
    rng = np.random.default_rng(5)
    dt, n = 1e-3, 4
    tau = np.array([0.01, 0.02, 0.005, 0.05])
    w = rng.normal(0.5, 0.5, (n, n))
    graph = nir.NIRGraph.from_list(
        nir.LIF(
            tau=tau, r=np.ones(n), v_leak=np.full(n, 0.1), v_threshold=np.full(n, 0.6),
            v_reset=np.zeros(n),
        ),
        nir.Linear(weight=w),
        nir.IF(r=np.full(n, 100.0), v_threshold=np.ones(n), v_reset=np.full(n, -0.2)),
        nir.Linear(weight=np.eye(n)),
        nir.LI(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n)),
    )  # fmt: skip
    net = snn.import_nir(graph, dt=dt, dtype=torch.float64)
    x = rng.uniform(0, 3, (300, n))

    v = np.full(n, 0.1)
    s1 = np.zeros_like(x)
    for t in range(len(x)):
        v = v + dt / tau * ((0.1 - v) + x[t])
        s1[t] = v >= 0.6
        v = np.where(s1[t] > 0, 0.0, v)
    u = np.zeros(n)
    s2 = np.zeros_like(x)
    for t, i_t in enumerate(s1 @ w.T):
        u = u + 100.0 * dt * i_t
        s2[t] = u >= 1.0
        u = np.where(s2[t] > 0, -0.2, u)
    m = np.zeros(n)
    readout = np.zeros_like(x)
    for t in range(len(x)):
        m = m + dt / 0.02 * (-m + s2[t])
        readout[t] = m
    got = net(torch.tensor(x)[:, None]).squeeze(1).detach().numpy()
    assert s1.mean() > 0.02 and s2.mean() > 0.01
    np.testing.assert_allclose(got, readout, rtol=1e-12, atol=1e-12)


def test_per_neuron_resistance_imports_as_scale():
    dt = 1.0
    tau, r = np.array([4.0, 4.0, 8.0]), np.array([1.0, 2.0, 3.0])
    graph = nir.NIRGraph.from_list(
        nir.LIF(tau=tau, r=r, v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    )
    net = snn.import_nir(graph, dt=dt, dtype=torch.float64)
    x = np.random.default_rng(6).uniform(0, 1, (80, 3))
    expected = lif_loop(x, 1 - dt / tau, r * dt / tau, 1.0)
    np.testing.assert_array_equal(
        net(torch.tensor(x)[:, None]).squeeze(1).detach().numpy(), expected
    )
    assert expected.sum() > 10


# ---------------------------------------------------------------------------------------------
# the trained MNIST MLP


def test_trained_mnist_mlp_round_trip_keeps_test_predictions(tmp_path):
    sys.path.insert(0, str(ROOT))
    import train
    from snn.training.checkpoint import load_checkpoint
    from snn.training.config import config_from_dict
    from snn.training.models import build_model

    overrides = [f"out_dir={tmp_path}", "log.progress=false", "log.plots=false"]
    assert train.main([str(ROOT / "configs" / "smoke.yaml"), *overrides]) == 0
    (run,) = tmp_path.iterdir()
    state = load_checkpoint(run / "best.pt", ("model", "config"))
    cfg = config_from_dict(state["config"])
    model = build_model(cfg.model, train.readout_for(cfg))
    model.load_state_dict(state["model"])
    data = train.load_data(cfg, torch.device("cpu"))

    sample = torch.zeros(1, 1, 1, 28, 28)
    with pytest.raises(ValueError, match="reset='subtract'"):
        snn.export_nir(model, sample)
    graph = write_and_read(snn.export_nir(model, sample, subtract_reset="keep"), tmp_path)
    again = snn.import_nir(graph)

    cpu = torch.device("cpu")
    before = train.evaluate(model, data.test_images, data.test_labels, cfg, cpu)
    after = train.evaluate(again, data.test_images, data.test_labels, cfg, cpu)
    assert before.accuracy > 0.7  # it learned
    assert torch.equal(after.predictions, before.predictions)
    assert after.loss == before.loss


# ---------------------------------------------------------------------------------------------
# errors that name the problem


@pytest.mark.parametrize(
    "model, match",
    [
        (nn.Sequential(nn.Linear(4, 4), snn.LIF(beta=0.9)), "reset='subtract'"),
        (nn.Sequential(snn.FoldTime(nn.MaxPool2d(2))), "MaxPool2d.*AvgPool2d"),
        (nn.Sequential(snn.FoldTime(nn.BatchNorm2d(1))), "BatchNorm2d.*fuse_conv_bn_eval"),
        (nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "type ReLU"),
        (nn.Sequential(nn.Flatten()), "mixes time or batch"),
        (nn.Sequential(snn.FoldTime(snn.LIF(beta=0.9, reset="zero"))), "inside FoldTime"),
    ],
)
def test_export_errors_name_the_module(model, match):
    x = torch.zeros(2, 1, 1, 4, 4) if "Pool" in repr(model) or "Batch" in repr(model) else None
    with pytest.raises(ValueError, match=match):
        snn.export_nir(model, torch.zeros(2, 1, 4) if x is None else x)


class SumsOverTime(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lif = snn.LIF(beta=0.9, reset="zero")

    def forward(self, x):
        return self.lif(x).sum(0)


def test_export_errors_for_functions_and_bad_input():
    with pytest.raises(ValueError, match="`sum`"):
        snn.export_nir(SumsOverTime(), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match=r"time-first tensor \[T, B, ...\]"):
        snn.export_nir(nn.Linear(3, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="subtract_reset must be one of"):
        snn.export_nir(nn.Linear(3, 3), torch.zeros(1, 1, 3), subtract_reset="drop")
    physical = nn.Sequential(
        snn.LIF.physical(tau=5.0, dt=0.5, v_rest=0.0, v_reset=0.0, v_th=1.0, r=1.0)
    )
    with pytest.raises(ValueError, match="built with dt=0.5"):
        snn.export_nir(physical, torch.zeros(1, 1, 3), dt=1.0)


def test_import_errors_name_the_node():
    delay = nir.NIRGraph.from_list(nir.Delay(delay=np.ones(3)))
    with pytest.raises(ValueError, match="node type Delay"):
        snn.import_nir(delay, dt=1.0)
    lif = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    with pytest.raises(ValueError, match="pass import_nir\\(graph, dt=...\\)"):
        snn.import_nir(nir.NIRGraph.from_list(lif))
    with pytest.raises(ValueError, match="Euler step overshoots"):
        snn.import_nir(nir.NIRGraph.from_list(lif), dt=2.0)
    leaky = nir.LIF(
        tau=np.ones(2), r=np.ones(2), v_leak=np.array([0.0, 1.0]), v_threshold=np.full(2, 2.0)
    )
    with pytest.raises(ValueError, match="per-neuron v_leak"):
        snn.import_nir(nir.NIRGraph.from_list(leaky), dt=0.1)
    recurrent = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "lif": nir.LIF(
                tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)
            ),
            "rec": nir.Linear(weight=np.eye(2)),
            "gain": nir.Scale(scale=np.ones(2)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[
            ("input", "lif"), ("lif", "rec"), ("rec", "gain"), ("gain", "lif"), ("lif", "output"),
        ],
    )  # fmt: skip
    with pytest.raises(ValueError, match="the cycle lif -> rec -> gain -> lif"):
        snn.import_nir(recurrent, dt=0.1)  # a loop through more than one node
    with pytest.raises(TypeError, match="nir.NIRGraph or a path"):
        snn.import_nir({"nodes": {}})


# ---------------------------------------------------------------------------------------------
# devices and the optional dependency


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_export_from_any_device_gives_cpu_numpy(device):
    model = nn.Sequential(nn.Linear(3, 2), snn.LIF(beta=0.9, reset="zero", learn_beta=True))
    model = model.to(device=device, dtype=torch.float64).train()
    graph = snn.export_nir(model, torch.zeros(1, 1, 3, device=device, dtype=torch.float64))
    assert model.training and model[1].training  # training flags restored
    for node in graph.nodes.values():
        for value in vars(node).values():
            assert not isinstance(value, torch.Tensor)
    assert graph.nodes["0"].weight.dtype == np.float64
    assert isinstance(graph.nodes["1"].tau, np.ndarray)


def test_snn_imports_without_nir():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["nir"] = None  # as if nir were not installed
        import snn, torch
        try:
            snn.export_nir(torch.nn.Linear(2, 2), torch.zeros(1, 1, 2))
        except ImportError as error:
            print(error)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install nir" in out.stdout


def test_subtract_reset_zero_exports_a_reset_to_v_reset(tmp_path):
    torch.manual_seed(5)

    def net(reset: str) -> nn.Sequential:
        torch.manual_seed(5)
        return nn.Sequential(nn.Linear(8, 6), snn.LIF(beta=0.8, threshold=0.6, reset=reset))

    model, zero_model = net("subtract"), net("zero")
    x = torch.rand(30, 3, 8) * 2
    graph = write_and_read(snn.export_nir(model, x, subtract_reset="zero"), tmp_path)
    again = snn.import_nir(graph)
    assert again[1].reset == "zero"
    with torch.no_grad():
        spikes, zero_spikes, original = again(x), zero_model(x), model(x)
    assert 0.05 < float(original.mean()) < 0.8
    assert torch.equal(spikes, zero_spikes)  # the layer now resets to v_reset, for everyone
    assert not torch.equal(spikes, original)  # which changes the model
