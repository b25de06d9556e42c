"""Spike times of the LIF against closed forms and plain loops (not against snn itself)."""

import math

import numpy as np
import pytest
import torch
from _backends import ALL_BACKENDS
from _reference import discrete_lif_loop, euler_lif_loop, zero_reset_spike_steps

import snn

BACKENDS = ALL_BACKENDS

SEED = dict(tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0)


def spike_steps(spikes: torch.Tensor) -> list[int]:
    return spikes.flatten().nonzero().flatten().tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_neuron_fires_71_times(backend):
    lif = snn.LIF.physical(**SEED, backend=backend, dtype=torch.float64)
    current = torch.full((1000, 1, 1), 1.5, dtype=torch.float64)  # 100 ms of 1.5 nA
    out = lif.run(current, record_membrane=True)

    seed_spikes, seed_trace = euler_lif_loop(np.full(1000, 1.5), **SEED)
    assert len(seed_spikes) == 71
    assert spike_steps(out.spikes) == seed_spikes
    # first spike at 1.0 ms, then every 1.4 ms (the seed's numbers)
    times = [round(i * SEED["dt"], 6) for i in seed_spikes]
    assert times == [round(1.0 + 1.4 * k, 6) for k in range(71)]
    np.testing.assert_allclose(out.membrane.flatten().numpy(), seed_trace, rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exact", [False, True])
def test_physical_zero_reset_matches_closed_form(backend, exact):
    tau, dt = 20.0, 0.5
    beta = math.exp(-dt / tau) if exact else 1 - dt / tau
    for current in [0.1, 0.35, 0.8, 2.0]:  # nA; 0.1 is below rheobase (R I = 10 mV < 15 mV)
        lif = snn.LIF.physical(
            tau=tau,
            dt=dt,
            v_rest=-65.0,
            v_reset=-70.0,
            v_th=-50.0,
            r=100.0,
            exact=exact,
            backend=backend,
            dtype=torch.float64,
        )
        spikes = lif(torch.full((400, 1, 1), current, dtype=torch.float64))
        drive = 100.0 * (1 - beta) * current
        expected = zero_reset_spike_steps(beta, drive, -65.0, -70.0, -50.0, 400)
        assert spike_steps(spikes) == expected, current


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_deep_form_matches_plain_loop(backend, reset):
    for beta, x in [(0.9, 0.15), (0.5, 0.6), (0.95, 0.07), (0.0, 1.2), (1.0, 0.3)]:
        lif = snn.LIF(beta=beta, reset=reset, backend=backend, dtype=torch.float64)
        spikes = lif(torch.full((200, 1, 1), x, dtype=torch.float64))
        assert spike_steps(spikes) == discrete_lif_loop(np.full(200, x), beta, 1.0, reset), beta


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_physical_form_matches_plain_loop_for_every_reset(backend, reset):
    beta = 1 - 0.1 / 10.0
    lif = snn.LIF.physical(**SEED, reset=reset, backend=backend, dtype=torch.float64)
    spikes = lif(torch.full((1000, 1, 1), 1.5, dtype=torch.float64))
    expected = discrete_lif_loop(
        np.full(1000, 1.5), beta, -50.0, reset, v_rest=-65.0, v_reset=-70.0, gain=100 * (1 - beta)
    )
    assert spike_steps(spikes) == expected


def test_constant_input_deep_form_zero_reset_closed_form():
    beta, x = 0.8, 0.3  # v_inf = 1.5: first spike when 1.5 (1 - 0.8^n) >= 1
    lif = snn.LIF(beta=beta, reset="zero", dtype=torch.float64)
    spikes = lif(torch.full((60, 1, 1), x, dtype=torch.float64))
    n = math.ceil(math.log(1 - 1 / 1.5) / math.log(beta))  # = 5 steps to threshold
    assert spike_steps(spikes) == list(range(n - 1, 60, n))


def test_random_input_matches_plain_loop_per_neuron():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 4, 3, generator=gen, dtype=torch.float64) * 0.6
    beta = torch.tensor([0.7, 0.9, 0.99], dtype=torch.float64)
    threshold = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    for reset in ["subtract", "zero", "none"]:
        lif = snn.LIF(beta=beta, threshold=threshold, shape=3, reset=reset, dtype=torch.float64)
        spikes = lif(x)
        for b in range(4):
            for n in range(3):
                expected = discrete_lif_loop(
                    x[:, b, n].numpy(), float(beta[n]), float(threshold[n]), reset
                )
                assert spike_steps(spikes[:, b, n]) == expected
