"""Spike encoders: rates within binomial error, reproducibility, latency and delta timing."""

import math

import pytest
import torch

from snn import encode


def test_poisson_rate_matches_probability_within_binomial_error():
    p = torch.tensor([0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
    n = 20000
    spikes = encode.poisson(p, num_steps=n, generator=torch.Generator().manual_seed(1))
    assert spikes.shape == (n, 6)
    rate = spikes.mean(0)
    sd = torch.sqrt(p * (1 - p) / n)
    assert torch.all((rate - p).abs() <= 5 * sd + 1e-12)  # exact for p = 0 and p = 1
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_poisson_gain_and_clamp():
    x = torch.tensor([-1.0, 0.1, 0.4, 3.0])
    n = 20000
    spikes = encode.poisson(x, n, gain=2.0, generator=torch.Generator().manual_seed(2))
    p = torch.clamp(2.0 * x, 0, 1)
    sd = torch.sqrt(p * (1 - p) / n)
    assert torch.all((spikes.mean(0) - p).abs() <= 5 * sd + 1e-12)


def test_poisson_is_reproducible_with_a_generator_and_keeps_dtype():
    x = torch.rand(3, 5, dtype=torch.float64)
    a = encode.poisson(x, 7, generator=torch.Generator().manual_seed(3))
    b = encode.poisson(x, 7, generator=torch.Generator().manual_seed(3))
    c = encode.poisson(x, 7, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float64 and a.shape == (7, 3, 5)


def test_poisson_rejects_bad_input():
    with pytest.raises(ValueError, match="num_steps"):
        encode.poisson(torch.rand(3), 0)
    with pytest.raises(TypeError, match="num_steps"):
        encode.poisson(torch.rand(3), 2.5)
    with pytest.raises(TypeError, match="floating-point"):
        encode.poisson(torch.ones(3, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="NaN"):
        encode.poisson(torch.tensor([0.5, math.nan]), 4)
    # the scan can be switched off; NaN then compares false and never spikes
    assert encode.poisson(torch.tensor([math.nan]), 4, check_input=False).sum() == 0


def test_latency_linear_spike_times():
    x = torch.tensor([1.0, 0.5, 0.0, 0.25])
    spikes = encode.latency(x, num_steps=5)
    assert spikes.shape == (5, 4)
    assert spikes.sum(0).tolist() == [1.0, 1.0, 0.0, 1.0]  # zero never fires
    first = spikes.argmax(0).tolist()
    # round((1 - x) * 4): 1 -> 0, 0.5 -> 2, 0.25 -> 3
    assert [first[0], first[1], first[3]] == [0, 2, 3]


def test_latency_log_follows_rc_charging_time():
    tau, thr = 5.0, 0.2
    x = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    spikes = encode.latency(x, num_steps=100, method="log", tau=tau, threshold=thr)
    expected = [round(tau * math.log(v / (v - thr))) for v in x.tolist()]
    assert spikes.argmax(0).tolist() == expected
    assert spikes.sum(0).tolist() == [1.0, 1.0, 1.0]
    assert expected[0] < expected[1] < expected[2]  # larger input, earlier spike


def test_latency_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encode.latency(torch.tensor([1.5]), 4)


def test_delta_on_and_off_spikes():
    x = torch.tensor([[0.0], [0.5], [0.55], [0.2], [0.2], [0.9]])
    on = encode.delta(x, threshold=0.3)
    assert on.flatten().tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    both = encode.delta(x, threshold=0.3, off_spikes=True)
    assert both.flatten().tolist() == [0.0, 1.0, 0.0, -1.0, 0.0, 1.0]
