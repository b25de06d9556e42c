"""Sequential and permuted sequential MNIST: the pixel sequence against the image, the level
crossings against a hand count, the recurrent models on it, and the smoke config learning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snn.training.config import load_config
from snn.training.encoding import encode, model_io
from snn.training.models import build_model, spiking_layers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402

# train.main sets the thread count and seeds torch's generator (tests/conftest.py undoes both)
pytestmark = pytest.mark.usefixtures("restore_torch_globals")


# ---------------------------------------------------------------------------------------------
# S-MNIST and PS-MNIST: the pixel sequence


def test_pixel_sequences_follow_the_image():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, (3, 28, 28)).astype(np.uint8))
    cfg = load_config(None, ["data.dataset=smnist", "encoding.kind=current"])
    x = encode(images, cfg, torch.Generator())
    assert x.shape == (784, 3, 1)
    # row by row: step 28 r + c is pixel (r, c)
    assert x[28 * 5 + 7, 2, 0].item() == pytest.approx(images[2, 5, 7].item() / 255)
    assert torch.allclose(x[:, :, 0].T, images.reshape(3, -1).float() / 255)

    ps = load_config(None, ["data.dataset=psmnist", "encoding.kind=current"])
    a, b = encode(images, ps, torch.Generator()), encode(images, ps, torch.Generator())
    assert torch.equal(a, b)  # one fixed order
    assert not torch.equal(a, x)
    assert torch.equal(a.sort(0).values, x.sort(0).values)  # the same pixels, reordered
    other = load_config(
        None, ["data.dataset=psmnist", "encoding.kind=current", "data.permutation_seed=1"]
    )
    assert not torch.equal(encode(images, other, torch.Generator()), a)
    # two images that spell out each pixel's index (low byte, high byte) reveal the order: a
    # permutation of the 784 pixels, and the same one for every image of a batch
    index = torch.arange(784)
    spell = torch.stack([index % 256, index // 256]).to(torch.uint8).view(2, 28, 28)
    seq = (encode(torch.cat([spell, images]), ps, torch.Generator())[:, :, 0] * 255).round()
    order = (seq[:, 0] + 256 * seq[:, 1]).long()
    assert sorted(order.tolist()) == list(range(784))
    assert torch.equal(seq[:, 2:].T, images.reshape(3, -1)[:, order].float())


def test_crossings_spike_where_the_intensity_crosses_a_level():
    levels = 4  # thresholds 0.2, 0.4, 0.6, 0.8
    row = [0, 60, 200, 255, 90, 0, 120, 120] + [0] * 20
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 0] = torch.tensor(row, dtype=torch.uint8)
    cfg = load_config(
        None, ["data.dataset=smnist", "encoding.kind=crossings", f"encoding.levels={levels}"]
    )
    x = encode(image, cfg, torch.Generator())
    assert x.shape == (784, 1, 2 * levels) and model_io(cfg).input_shape == (2 * levels,)
    # by hand: the intensity 0 -> .235 -> .784 -> 1 -> .353 -> 0 -> .471 -> .471
    up = {1: [0], 2: [1, 2], 3: [3], 6: [0, 1]}  # step: levels crossed upward
    down = {4: [1, 2, 3], 5: [0], 8: [0, 1]}  # 8: back to 0 after the row's 8 pixels
    for t in range(30):
        assert x[t, 0, :levels].nonzero().flatten().tolist() == up.get(t, []), t
        assert x[t, 0, levels:].nonzero().flatten().tolist() == down.get(t, []), t
    assert x[30:].sum() == 0


@pytest.mark.parametrize("neuron", ["lif", "cuba_lif", "alif"])
def test_rsnn_of_each_neuron_takes_the_sequence(neuron):
    cfg = load_config(
        None,
        ["data.dataset=psmnist", "encoding.kind=current", "model.kind=rsnn",
         "model.hidden=[24, 12]", f"model.neuron.kind={neuron}"],
    )  # fmt: skip
    model = build_model(cfg.model, "leaky", model_io(cfg))
    recurrent = [m for m in model if m.__class__.__name__ == "Recurrent"]
    assert [m.features for m in recurrent] == [24, 12]
    assert type(recurrent[0].neuron).__name__ == {"lif": "LIF", "cuba_lif": "CubaLIF"}.get(
        neuron, "ALIF"
    )
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    x = encode(images, cfg, torch.Generator())
    out = model(x)
    assert out.shape == (784, 3, 10)
    out.mean(0).sum().backward()
    assert recurrent[0].weight.grad is not None and recurrent[0].weight.grad.abs().sum() > 0
    # the recurrent layers count as spiking layers (firing rates, warnings), their neurons do not
    assert list(spiking_layers(model)) == ["2", "4"]


@pytest.mark.slow
def test_smnist_smoke_config_beats_chance_by_far(tmp_path):
    code = train.main(
        [str(ROOT / "configs" / "smnist_smoke.yaml"), f"out_dir={tmp_path}", "log.plots=false"]
    )
    assert code == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (epoch,) = [r for r in map(json.loads, lines) if r["kind"] == "epoch"]
    assert epoch["step"] == 80
    # chance is 10 %, and 500 validation images put a 95 % band of +-2.6 points around it
    assert epoch["val_acc"] >= 0.25, epoch
