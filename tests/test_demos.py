"""The single-neuron demos against the seed scripts, plain-Python loops and closed forms.

The references here are written in the test: the seed's Euler loop in plain floats, its published
figures (71 spikes, first at 1.0 ms, then every 1.4 ms), and the continuous-time LIF period
``tau ln((RI + v_rest - v_reset) / (RI + v_rest - v_th))``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snn.demos import (
    NeuronParams,
    continuous_rate_hz,
    discrete_rate_hz,
    discrete_spike_count,
    input_current,
    simulate,
    simulate_fi,
)
from snn.demos.single_neuron import main  # sets the Agg backend itself

ROOT = Path(__file__).resolve().parents[1]
SEED = dict(tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def seed_loop(current, tau, dt, v_rest, v_reset, v_th, r):
    """The seed scripts' neuron, in plain Python floats: (spike steps, post-reset trace)."""
    v = v_rest
    spikes, trace = [], []
    for i, amps in enumerate(current):
        v += (v_rest - v + r * amps) * dt / tau
        if v >= v_th:
            spikes.append(i)
            v = v_reset
        trace.append(v)
    return spikes, trace


# --- the seed's two runs ---


@pytest.mark.parametrize("device", DEVICES)
def test_constant_current_gives_the_seeds_71_spikes(device):
    current = input_current("constant", 1000, 0.1, current=1.5)
    sim = simulate(NeuronParams(), current, device=device)

    loop_steps, loop_trace = seed_loop([1.5] * 1000, **SEED)
    assert sim.spike_steps(0) == loop_steps
    assert len(loop_steps) == 71
    assert sim.spike_times_ms(0) == [round(1.0 + 1.4 * k, 9) for k in range(71)]
    assert float(sim.firing_rates_hz()[0]) == 710.0
    np.testing.assert_allclose(sim.membrane[:, 0].numpy(), loop_trace, rtol=0, atol=1e-9)


def test_sine_current_is_the_seeds_formula_plus_seeded_noise():
    t = np.arange(1000) * 0.1
    base = 1.5 * (1 + np.sin(2 * math.pi * t / 100.0))
    clean = input_current("sine", 1000, 0.1, current=1.5, noise=0.0)[:, 0].numpy()
    np.testing.assert_allclose(clean, base, rtol=0, atol=1e-12)

    a = input_current("sine", 1000, 0.1, noise=0.2, seed=7)
    b = input_current("sine", 1000, 0.1, noise=0.2, seed=7)
    c = input_current("sine", 1000, 0.1, noise=0.2, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    residual = a[:, 0].numpy() - base
    assert abs(residual.mean()) < 0.03  # 0.2 / sqrt(1000) = 0.006
    assert abs(residual.std() - 0.2) < 0.02


@pytest.mark.parametrize("device", DEVICES)
def test_sine_plus_noise_is_reproducible_and_matches_a_plain_loop(device):
    def run():
        current = input_current("sine", 1000, 0.1, current=1.5, noise=0.2, seed=1234)
        return current, simulate(NeuronParams(), current, device=device)

    current, sim = run()
    _, again = run()
    assert torch.equal(sim.spikes, again.spikes)
    loop_steps, loop_trace = seed_loop(current[:, 0].tolist(), **SEED)
    assert sim.spike_steps(0) == loop_steps
    assert 30 < len(loop_steps) < 100  # it fires, but slower than at a constant 1.5 nA peak
    np.testing.assert_allclose(sim.membrane[:, 0].numpy(), loop_trace, rtol=0, atol=1e-9)


def test_population_neurons_get_independent_noise_and_neuron_0_is_the_single_run():
    single = input_current("sine", 500, 0.1, noise=0.2, seed=5)
    pop = input_current("sine", 500, 0.1, noise=0.2, seed=5, n_neurons=64)
    assert torch.equal(pop[:, :1], single)
    corr = np.corrcoef((pop - pop.mean(1, keepdim=True)).T.numpy())
    assert np.abs(corr[np.triu_indices(64, 1)]).max() < 0.25  # independent draws: ~ 1/sqrt(500)

    sim = simulate(NeuronParams(), pop, record_membrane=False)
    for k in (0, 17, 63):
        assert sim.spike_steps(k) == seed_loop(pop[:, k].tolist(), **SEED)[0]
    assert len({tuple(sim.spike_steps(k)) for k in range(64)}) > 1


# --- the f-I curve ---


def test_closed_forms_at_the_seed_values():
    p = NeuronParams()
    period_ms = 10.0 * math.log((150 - 65 + 70) / (150 - 65 + 50))  # tau ln(155/135)
    assert continuous_rate_hz(1.5, p) == pytest.approx(1000 / period_ms, rel=1e-12)
    assert discrete_rate_hz(1.5, p) == pytest.approx(1000 / 1.4, rel=1e-12)  # the seed's ISI
    assert discrete_spike_count(1.5, 1000, p) == 71
    rheobase = (-50 + 65) / 100
    assert continuous_rate_hz([0.0, rheobase, rheobase - 1e-9], p).tolist() == [0.0, 0.0, 0.0]
    assert discrete_rate_hz([0.0, rheobase], p).tolist() == [0.0, 0.0]
    assert continuous_rate_hz(rheobase + 1e-3, p) > 0


@pytest.mark.parametrize("exact", [False, True])
def test_simulated_fi_curve_matches_the_discrete_map_closed_form(exact):
    p = NeuronParams(exact=exact)
    n_steps = 3000
    currents = np.concatenate([np.linspace(0, 3, 61), [0.1501, 0.16, 0.2, 0.777, 1.234, 4.5]])
    fi = simulate_fi(currents, p, n_steps)
    expected = discrete_spike_count(currents, n_steps, p)
    assert np.abs(fi.spike_counts - expected).max() <= 1
    # the steady rate 1/(n* dt) over the run is within one spike of the count
    steady = discrete_rate_hz(currents, p) * n_steps * p.dt / 1000
    assert np.abs(fi.spike_counts - steady).max() <= 1

    # the closed form against the seed's plain loop (Euler only: it is the seed's update)
    if not exact:
        for amps in (0.2, 0.777, 1.5, 4.5):
            assert discrete_spike_count(amps, 600, p) == len(seed_loop([amps] * 600, **SEED)[0])


def test_fi_curve_approaches_the_continuous_closed_form_as_dt_shrinks():
    currents = np.array([0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
    v_inf = -65.0 + 100.0 * currents
    continuous = 1000 / (10.0 * np.log((v_inf + 70) / (v_inf + 50)))
    errors = []
    for dt in (0.1, 0.02, 0.005):
        p = NeuronParams(dt=dt)
        n_steps = round(60 / dt)
        x = torch.as_tensor(currents).expand(n_steps, currents.size)
        sim = simulate(p, x, record_membrane=False)
        rates = []
        for k in range(currents.size):  # steady rate from the first to the last spike
            steps = sim.spike_steps(k)
            assert len(steps) >= 3
            rates.append(1000 * (len(steps) - 1) / ((steps[-1] - steps[0]) * dt))
        np.testing.assert_allclose(rates, discrete_rate_hz(currents, p), rtol=1e-9)
        errors.append(np.abs(np.array(rates) / continuous - 1).max())
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] > 0.03  # at the seed's dt the step is visible (~7 % at 3 nA)
    assert errors[2] < 0.005
    # and the closed forms themselves converge
    assert np.abs(discrete_rate_hz(currents, NeuronParams(dt=1e-4)) / continuous - 1).max() < 1e-3


# --- the command ---


def _png_ok(path: Path) -> tuple[int, int]:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 500 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # something is drawn
    return image.shape[:2]


def test_command_writes_figures_and_data(tmp_path, capsys):
    argv = ["--input", "sine", "--population", "40", "--fi", "--fi-points", "11",
            "--fi-duration", "200", "--device", "cpu", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    expected = {
        "sine.png", "sine.json", "sine_spikes.csv",
        "population_sine.png", "population_sine.json", "population_sine_spikes.csv",
        "fi_curve.png", "fi_curve.csv",
    }  # fmt: skip
    assert {p.name for p in tmp_path.iterdir()} == expected
    for name in ("sine.png", "population_sine.png", "fi_curve.png"):
        _png_ok(tmp_path / name)

    data = json.loads((tmp_path / "sine.json").read_text())
    current = input_current("sine", 1000, 0.1, noise=0.2, seed=0)[:, 0].tolist()
    loop_steps, _ = seed_loop(current, **SEED)
    assert data["spike_times_ms"] == [round(k * 0.1, 9) for k in loop_steps]
    assert data["n_spikes"] == len(loop_steps)
    assert data["firing_rate_hz"] == pytest.approx(len(loop_steps) / 0.1)
    assert f"firing rate: {len(loop_steps) / 0.1:.1f} Hz" in stdout
    csv_times = (tmp_path / "sine_spikes.csv").read_text().split()[1:]
    assert [float(t) for t in csv_times] == data["spike_times_ms"]

    pop = json.loads((tmp_path / "population_sine.json").read_text())
    assert len(pop["spike_counts"]) == 40 and pop["spike_counts"][0] == len(loop_steps)
    rows = (tmp_path / "fi_curve.csv").read_text().splitlines()
    assert len(rows) == 12 and rows[0].startswith("current_nA,simulated_spikes,discrete_spikes")


def test_the_one_command_prints_the_seeds_numbers(tmp_path):
    """``python -m snn.demos.single_neuron``, as a newcomer types it (run inside tmp_path)."""
    done = subprocess.run(
        [sys.executable, "-m", "snn.demos.single_neuron"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "71 spikes, first at 1 ms" in done.stdout
    assert "firing rate: 710.0 Hz" in done.stdout
    out = tmp_path / "runs" / "single_neuron"
    assert _png_ok(out / "constant.png") == (1125, 1500)  # 10 x 7.5 in at 150 dpi
    assert json.loads((out / "constant.json").read_text())["n_spikes"] == 71


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--dt", "-0.1"], "--dt must be a positive"),
        (["--dt", "0"], "--dt must be a positive"),
        (["--dt", "20"], "larger than --tau"),
        (["--v-th", "-70"], "--v-th -70 mV must lie above --v-reset -70"),
        (["--v-th", "-80"], "must lie above --v-reset"),
        (["--input", "square"], "invalid choice: 'square'"),
        (["--tau", "nan"], "--tau must be a finite number"),
        (["--noise", "-1"], "--noise"),
        (["--duration", "10.05"], "whole number of --dt"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert words in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # stopped before writing anything


def test_cuda_without_a_gpu_says_so_and_stops(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        main(["--device", "cuda", "--out", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA GPU" in err and "--device cpu" in err
    assert not any(tmp_path.iterdir())


# --- the notebook ---


def test_notebook_runs_top_to_bottom():
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "01_single_neuron.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5  # the plots are inline
    text = "".join(o.get("text", "") for o in outputs)
    assert "71 spikes" in text
