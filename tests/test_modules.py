"""LIF modules as torch modules: Sequential, state, dtypes, pickling, compile, errors."""

import io
import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import snn


def test_drops_into_sequential_and_trains():
    torch.manual_seed(0)
    model = nn.Sequential(
        snn.FoldTime(nn.Linear(6, 8)),
        snn.LIF(beta=0.9),
        snn.FoldTime(nn.Linear(8, 3)),
        snn.LIF(beta=0.9, learn_beta=True, learn_threshold=True, shape=3),
    )
    x = torch.rand(10, 4, 6) * 2
    out = model(x)
    assert out.shape == (10, 4, 3)
    out.sum().backward()
    lif = model[3]
    for p in (model[0].module.weight, lif.beta_logit, lif.threshold):
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0


def test_calls_are_independent_no_hidden_state():
    lif = snn.LIF(beta=0.9)
    x = torch.rand(20, 2, 5)
    a = lif(x)
    b = lif(x)
    assert torch.equal(a, b)
    # twice backward through two separate calls works: no graph shared between calls
    w = nn.Parameter(torch.ones(5))
    for _ in range(2):
        lif(x * w).sum().backward()


def test_streaming_in_chunks_equals_one_run():
    lif = snn.LIF(beta=0.8, reset="zero")
    x = torch.rand(30, 3, 4)
    whole = lif.run(x)
    first = lif.run(x[:12])
    second = lif.run(x[12:], first.state)
    assert torch.equal(torch.cat([first.spikes, second.spikes]), whole.spikes)
    assert torch.equal(second.state, whole.state)


def test_cell_step_by_step_equals_sequence():
    kw = dict(tau=5.0, dt=1.0, v_rest=-1.0, v_reset=-2.0, v_th=0.5, r=2.0)
    lif, cell = snn.LIF.physical(**kw), snn.LIFCell.physical(**kw)
    x = torch.rand(25, 3, 2) * 2
    seq = lif.run(x, record_membrane=True)
    state, spikes, trace = None, [], []
    for x_t in x:
        s, state = cell(x_t, state)
        spikes.append(s)
        trace.append(state)
    assert torch.equal(torch.stack(spikes), seq.spikes)
    torch.testing.assert_close(torch.stack(trace), seq.membrane)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_is_preserved(dtype):
    lif = snn.LIF(beta=0.9, learn_beta=True)  # float32 parameters
    x = torch.rand(5, 2, 3, dtype=dtype, requires_grad=True)
    out = lif.run(x, record_membrane=True)
    assert out.spikes.dtype == out.state.dtype == out.membrane.dtype == dtype
    out.spikes.sum().backward()
    assert x.grad.dtype == dtype and lif.beta_logit.grad.dtype == torch.float32


def test_float64_layer_keeps_float64_parameters():
    lif = snn.LIF(beta=0.99, dtype=torch.float64)
    assert lif.beta.dtype == torch.float64 and lif.beta.item() == 0.99


def test_module_moves_with_to():
    lif = snn.LIF(beta=0.9, shape=4).to(torch.float64)
    assert lif.beta.dtype == torch.float64 and lif.threshold.dtype == torch.float64
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        lif = lif.cuda()
        assert lif(torch.rand(3, 2, 4, device="cuda", dtype=torch.float64)).is_cuda


def round_trip_model() -> nn.Sequential:
    # both spiking layers fire: one input spike lifts the physical layer by r (1 - beta) = 16 mV,
    # from -65 mV past its -50 mV threshold
    return nn.Sequential(
        snn.FoldTime(nn.Linear(4, 4)),
        snn.LIF(beta=0.7, surrogate=snn.surrogate.FastSigmoid(slope=10.0), learn_threshold=True),
        snn.LIF.physical(tau=10.0, dt=1.0, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=160.0),
    )


def test_pickle_and_torch_save_round_trip(tmp_path):
    torch.manual_seed(0)
    model = round_trip_model()
    x = torch.rand(6, 2, 4) * 1.2
    with torch.no_grad():
        model[0].module.weight.copy_(torch.eye(4) + 0.1)
    hidden = model[:2](x)
    out = model(x)
    for spikes in (hidden, out):  # the round trips compare layers that fire
        assert 0.05 < float(spikes.detach().mean()) < 0.8
    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False)
    assert torch.equal(loaded(x), out)
    assert repr(loaded) == repr(model)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(clone(x), out)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = round_trip_model()
    fresh.load_state_dict(torch.load(buffer))
    assert torch.equal(fresh(x), out)
    assert torch.equal(fresh[:2](x), hidden)


def test_surrogates_pickle_and_compare_by_value():
    for name in snn.surrogate.available():
        s = snn.surrogate.get(name)
        assert pickle.loads(pickle.dumps(s)) == s


def test_learnable_beta_stays_in_unit_interval_and_gets_gradients():
    lif = snn.LIF(beta=0.9, shape=5, learn_beta=True)
    torch.testing.assert_close(lif.beta, torch.full((5,), 0.9))
    with torch.no_grad():
        lif.beta_logit.fill_(50.0)
    assert torch.all(lif.beta <= 1) and torch.all(lif.beta > 0.99)
    lif.reset_parameters()
    torch.testing.assert_close(lif.beta, torch.full((5,), 0.9))


def test_physical_tau_is_reported_and_learnable():
    lif = snn.LIF.physical(
        tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0, learn_beta=True
    )
    assert lif.tau.item() == pytest.approx(10.0, rel=1e-4)
    exact = snn.LIF.physical(
        tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=100.0, exact=True
    )
    assert exact.beta.item() == pytest.approx(math.exp(-0.01))
    assert exact.tau.item() == 10.0 and exact.dt == 0.1 and exact.exact  # as given, not rebuilt
    assert snn.LIF(beta=0.9).tau is None and snn.LIF(beta=0.9).dt is None
    assert "tau=10" in repr(lif) and "exact=True" in repr(exact)


def test_extra_repr_names_the_parameters():
    text = repr(snn.LIF(beta=0.5, threshold=2.0, reset="zero", surrogate="triangle"))
    for part in ("beta=0.5", "threshold=2", "reset=zero", "Triangle(width=1.0)"):
        assert part in text
    assert "per-neuron (7,)" in repr(snn.LIF(beta=0.5, shape=7))


def test_compile_fullgraph_has_no_graph_breaks():
    torch._dynamo.reset()
    model = nn.Sequential(
        snn.FoldTime(nn.Linear(5, 6)),
        snn.LIF(beta=0.9, learn_beta=True, shape=6),
        snn.FoldTime(nn.Linear(6, 2)),
        snn.LIF(beta=0.8, reset="zero"),
    )
    x = torch.rand(4, 3, 5) * 2
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    assert torch.equal(out, model(x))
    out.sum().backward()
    assert model[1].beta_logit.grad is not None
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0


def test_compile_inductor_matches_eager():
    torch._dynamo.reset()
    lif = snn.LIF(beta=0.9)
    x = torch.rand(6, 2, 3) * 2
    assert torch.equal(torch.compile(lif, fullgraph=True)(x), lif(x))


# --- bad input: each error names the problem and the expected form ---


def test_one_dimensional_input_is_refused():
    with pytest.raises(ValueError, match=r"time-first input \[T, B, \.\.\.\].*1-D"):
        snn.LIF()(torch.rand(10))


def test_zero_time_steps_are_refused():
    with pytest.raises(ValueError, match="T = 0"):
        snn.LIF()(torch.rand(0, 2, 3))


@pytest.mark.parametrize("beta", [-0.1, 1.5, math.nan])
def test_beta_outside_unit_interval_is_refused(beta):
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        snn.LIF(beta=beta)


def test_per_neuron_beta_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="beta"):
        snn.LIF(beta=torch.tensor([0.5, 1.2]))


def test_dt_larger_than_tau_is_refused():
    with pytest.raises(ValueError, match="dt=2.0 > tau=1.0"):
        snn.LIF.physical(tau=1.0, dt=2.0, v_rest=0.0, v_reset=0.0, v_th=1.0, r=1.0)
    # the exponential discretization is stable for any dt
    snn.LIF.physical(tau=1.0, dt=2.0, v_rest=0.0, v_reset=0.0, v_th=1.0, r=1.0, exact=True)


def test_threshold_must_lie_above_reset():
    with pytest.raises(ValueError, match="v_th=-75.0 must lie above v_reset=-70.0"):
        snn.LIF.physical(tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-75.0, r=1.0)


@pytest.mark.parametrize("r", [0.0, -1.0, math.nan])
def test_membrane_resistance_must_be_positive(r):
    with pytest.raises(ValueError, match="resistance r must be a positive number"):
        snn.LIF.physical(tau=10.0, dt=0.1, v_rest=-65.0, v_reset=-70.0, v_th=-50.0, r=r)
    with pytest.raises(ValueError, match="resistance r must be a positive number"):
        snn.functional.LIFParameters.physical(10.0, 0.1, -65.0, -70.0, -50.0, r)


def test_unknown_surrogate_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown surrogate 'tanh'.*atan"):
        snn.LIF(surrogate="tanh")
    with pytest.raises(TypeError, match="surrogate must be"):
        snn.LIF(surrogate=3)


def test_unknown_reset_and_backend_are_refused():
    with pytest.raises(ValueError, match="reset must be one of"):
        snn.LIF(reset="hard")
    with pytest.raises(ValueError, match="backend must be one of"):
        snn.LIF(backend="cuda")


def test_nan_input_is_refused_when_checking_is_on():
    x = torch.rand(4, 2, 3)
    x[2, 1, 0] = math.nan
    x[0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="1 NaN and 1 Inf"):
        snn.LIF(check_input=True)(x)
    with pytest.raises(ValueError, match="NaN"):
        snn.LIFCell(check_input=True)(x[2])
    snn.LIF()(x)  # off by default: no reduction per call


def test_state_of_the_wrong_shape_is_never_silently_reset():
    lif, cell = snn.LIF(), snn.LIFCell()
    with pytest.raises(ValueError, match="state shape"):
        lif.run(torch.rand(5, 2, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="state shape"):
        cell(torch.rand(2, 3), torch.zeros(3, 3))


def test_lif_cell_takes_any_batch_first_input_of_at_least_one_dim():
    # from rest, one step: h = x (beta times a zero potential, plus x); a spike where h >= 1,
    # then the subtract reset takes the threshold 1 off
    cell = snn.LIFCell(beta=0.9)
    spikes, state = cell(torch.tensor([1.5, 0.2]))  # [B] = 2 single neurons
    assert spikes.tolist() == [1.0, 0.0]
    torch.testing.assert_close(state, torch.tensor([0.5, 0.2]))
    spikes, state = cell(torch.tensor([[1.5, 0.2], [0.7, 1.0]]))  # [B, features]
    assert spikes.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    torch.testing.assert_close(state, torch.tensor([[0.5, 0.2], [0.7, 0.0]]))
    # second step from that state: h = 0.9 * v + x
    spikes, state = cell(torch.tensor([[0.6, 0.0], [0.0, 0.0]]), state)
    assert spikes.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    torch.testing.assert_close(state, torch.tensor([[0.05, 0.18], [0.63, 0.0]]))
    with pytest.raises(ValueError, match=r"\[B, \.\.\.\] \(at least 1-D\)"):
        cell(torch.tensor(1.5))


def test_integer_input_and_wrong_feature_shape_are_refused():
    with pytest.raises(TypeError, match="floating-point"):
        snn.LIF()(torch.ones(3, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="per-neuron parameters of shape"):
        snn.LIF(shape=4)(torch.rand(3, 2, 5))


def test_fold_time_applies_stateless_layers_over_time():
    conv = nn.Conv2d(1, 2, 3)
    x = torch.rand(5, 3, 1, 8, 8)
    y = snn.FoldTime(conv)(x)
    assert y.shape == (5, 3, 2, 6, 6)
    torch.testing.assert_close(y[4, 2], conv(x[4, 2][None])[0])
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        snn.FoldTime(conv)(torch.rand(3))


def test_leaky_integrator_is_the_membrane_without_spikes():
    li = snn.LeakyIntegrator(beta=0.8, gain=2.0)
    x = torch.rand(30, 2, 3, dtype=torch.float64)
    v, expected = torch.zeros(2, 3, dtype=torch.float64), []
    for x_t in x:  # v_t = beta v_{t-1} + gain x_t, no threshold, no reset
        v = 0.8 * v + 2.0 * x_t
        expected.append(v)
    torch.testing.assert_close(li(x), torch.stack(expected))


@pytest.mark.parametrize("exact", [False, True])
def test_physical_tau_inverts_physical_beta_for_numbers_tensors_and_arrays(exact):
    dt, taus = 0.5, [2.0, 5.0, 40.0]
    expected = [math.exp(-dt / t) if exact else 1 - dt / t for t in taus]
    physical_beta, physical_tau = snn.functional.physical_beta, snn.functional.physical_tau
    assert [physical_beta(t, dt, exact) for t in taus] == pytest.approx(expected, rel=1e-15)
    as_tensor = physical_beta(torch.tensor(taus, dtype=torch.float64), dt, exact)
    torch.testing.assert_close(as_tensor, torch.tensor(expected, dtype=torch.float64))
    as_array = physical_beta(np.array(taus), dt, exact)
    np.testing.assert_allclose(as_array, expected, rtol=1e-15)
    assert [physical_tau(b, dt, exact) for b in expected] == pytest.approx(taus, rel=1e-12)
    np.testing.assert_allclose(physical_tau(as_array, dt, exact), taus, rtol=1e-12)
    torch.testing.assert_close(
        physical_tau(as_tensor, dt, exact), torch.tensor(taus, dtype=torch.float64)
    )
    assert physical_tau(1.0, dt, exact) == math.inf  # no leak
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        physical_tau(1.5, dt, exact)
    with pytest.raises(ValueError, match="dt must be a positive time step"):
        physical_tau(0.5, 0.0, exact)
    with pytest.raises(ValueError, match="tau must be a positive time constant"):
        physical_beta(np.array([1.0, -1.0]), dt, exact)


def test_physical_form_takes_per_neuron_tau_and_threshold():
    tau, v_th, r, dt = np.array([5.0, 10.0, 20.0]), np.array([1.0, 1.5, 2.0]), 2.0, 1.0
    lif = snn.LIF.physical(tau, dt, v_rest=0.0, v_reset=0.0, v_th=v_th, r=r, dtype=torch.float64)
    assert lif.dt == dt and not lif.exact
    np.testing.assert_array_equal(lif.tau.numpy(), tau)  # the given tau, not rebuilt from beta
    x = np.random.default_rng(7).uniform(0, 1.5, (200, 3))
    beta, v, expected = 1 - dt / tau, np.zeros(3), np.zeros_like(x)
    for t in range(len(x)):  # Euler steps of tau dv/dt = -v + R I, reset to 0
        v = beta * v + r * (1 - beta) * x[t]
        expected[t] = v >= v_th
        v = np.where(expected[t] > 0, 0.0, v)
    got = lif(torch.tensor(x)[:, None]).squeeze(1).numpy()
    assert expected.sum() > 20
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="must lie above v_reset"):
        snn.LIF.physical(tau, dt, v_rest=0.0, v_reset=1.2, v_th=v_th, r=r)
