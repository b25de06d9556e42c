"""The default recipe's features do what the README says, checked against closed forms.

* dropout: one mask per sample, kept at every time step (README: "one mask per sample, kept
  over time"), inside the model the config builds;
* label smoothing: the smoothed cross-entropy ``-(1 - e) log p_y - (e / K) sum_k log p_k``;
* ``loss.reduce``: the logits are the mean, the max or the last of the readout's membrane.
"""

from __future__ import annotations

import math

import pytest
import torch

from snn.training.config import load_config
from snn.training.loss import loss_and_scores
from snn.training.models import TimeDropout, build_model


def test_time_dropout_draws_one_mask_per_sample_for_all_steps():
    p, steps, batch, n = 0.4, 6, 64, 500
    torch.manual_seed(0)
    out = TimeDropout(p).train()(torch.ones(steps, batch, n))
    assert torch.equal(out, out[:1].expand_as(out))  # the same mask at every step
    kept = out[0] != 0
    assert torch.equal(out[0][kept], torch.full_like(out[0][kept], 1 / (1 - p)))  # rescaled
    # the dropped fraction: within 5 binomial sigmas of p
    dropped = 1 - float(kept.float().mean())
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / (batch * n))
    assert not torch.equal(kept[0], kept[1])  # samples get masks of their own
    assert torch.equal(TimeDropout(p).eval()(out), out)  # off in evaluation


def test_the_configured_model_drops_the_same_hidden_neurons_at_every_step():
    cfg = load_config(None, ["model.hidden=[200]", "model.dropout=0.4"])
    torch.manual_seed(1)
    model = build_model(cfg.model, "leaky").train()
    (drop,) = [m for m in model.modules() if isinstance(m, TimeDropout)]
    seen = {}
    drop.register_forward_hook(lambda mod, args, out: seen.update(x=args[0], y=out))
    x = (torch.rand(8, 16, 1, 28, 28) < 0.7).float()
    with torch.no_grad():
        model(x)
    spikes, out = seen["x"], seen["y"]
    assert 0.05 < float(spikes.mean()) < 0.8
    fired = spikes != 0
    ratio = out / spikes.clamp(min=1)  # the mask wherever a spike passed
    highest = torch.where(fired, ratio, -math.inf).amax(0)
    lowest = torch.where(fired, ratio, math.inf).amin(0)
    some = fired.any(0)
    assert torch.equal(highest[some], lowest[some])  # one mask per (sample, neuron), all steps
    assert set(ratio[fired].unique().tolist()) == {0.0, torch.tensor(1 / 0.6).item()}


def log_softmax(z: torch.Tensor) -> torch.Tensor:
    z = z.double()
    return z - z.exp().sum(1, keepdim=True).log()


@pytest.mark.parametrize("kind", ["ce_membrane", "ce_rate"])
def test_label_smoothing_is_the_smoothed_cross_entropy(kind):
    e, k = 0.1, 10
    cfg = load_config(None, [f"loss.kind={kind}", f"loss.label_smoothing={e}"])
    torch.manual_seed(2)
    out = torch.randn(5, 4, k)
    y = torch.tensor([3, 0, 9, 3])
    loss, _ = loss_and_scores(out, y, cfg)
    z = out.mean(0) if kind == "ce_membrane" else out.sum(0)
    logp = log_softmax(z)
    want = (-(1 - e) * logp[torch.arange(4), y] - (e / k) * logp.sum(1)).mean()
    assert abs(float(loss) - float(want)) < 1e-6
    unsmoothed, _ = loss_and_scores(out, y, load_config(None, [f"loss.kind={kind}"]))
    assert abs(float(loss) - float(unsmoothed)) > 1e-3  # the smoothing changed the loss


@pytest.mark.parametrize("reduce", ["mean", "max", "last"])
def test_the_membrane_reduction_over_time(reduce):
    cfg = load_config(None, [f"loss.reduce={reduce}", "loss.label_smoothing=0"])
    # three classes whose mean, max and last membrane each pick a different winner
    out = torch.tensor(
        [
            [[0.0, 0.0, 1.0]],
            [[0.0, 3.0, 1.0]],
            [[2.0, 0.0, 1.0]],
            [[2.0, 0.0, -2.0]],
        ]
    )
    logits = {"mean": out.mean(0), "max": out.max(0).values, "last": out[-1]}[reduce]
    assert logits.argmax(1).tolist() == [{"mean": 0, "max": 1, "last": 0}[reduce]]
    y = torch.tensor([2])
    loss, scores = loss_and_scores(out, y, cfg)
    assert torch.equal(scores, logits)
    assert abs(float(loss) + float(log_softmax(logits)[0, 2])) < 1e-6
