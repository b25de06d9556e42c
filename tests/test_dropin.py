"""snn.LIF dropped into ordinary torch models: the README example, a torchvision-style CNN whose
ReLUs become LIF layers, LIF layers after a frozen feature extractor, and torch.compile."""

from __future__ import annotations

import torch
from torch import nn

import snn

# The README's drop-in example, verbatim (keep the two in step).
README_DROP_IN = """
import torch
from torch import nn
import snn

cnn = nn.Sequential(  # an ordinary torch CNN for [B, 1, 28, 28] images
    nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
    nn.Flatten(), nn.Linear(8 * 14 * 14, 10),
)
# each ReLU becomes a LIF layer; every other layer runs over [T, B, ...] through FoldTime
spiking = nn.Sequential(
    *[snn.LIF(beta=0.9) if isinstance(m, nn.ReLU) else snn.FoldTime(m) for m in cnn]
)
x = snn.encode.poisson(torch.rand(4, 1, 28, 28), num_steps=20)  # [T=20, B=4, 1, 28, 28]
logits = spiking(x).mean(0)  # [4, 10]: the readout layer averaged over time
logits.sum().backward()  # surrogate gradients reach the convolution
fast = torch.compile(spiking, fullgraph=True)  # one graph, no breaks
"""


def run_readme_example() -> dict:
    namespace: dict = {}
    exec(compile(README_DROP_IN, "README drop-in example", "exec"), namespace)
    return namespace


def test_readme_drop_in_example_runs_and_spikes():
    torch.manual_seed(0)
    ns = run_readme_example()
    spiking, x, logits = ns["spiking"], ns["x"], ns["logits"]
    assert [type(m).__name__ for m in spiking] == ["FoldTime"] * 2 + ["LIF"] + ["FoldTime"] * 3
    assert logits.shape == (4, 10)
    with torch.no_grad():
        hidden = spiking[:3](x)  # the LIF layer's output: binary spikes, and a fair number
    assert set(hidden.unique().tolist()) <= {0.0, 1.0} and 0.01 < float(hidden.mean()) < 0.9
    conv = spiking[0].module
    assert conv.weight.grad is not None and float(conv.weight.grad.abs().sum()) > 0


def make_spiking_cnn() -> nn.Sequential:
    cnn = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 2),
    )
    return nn.Sequential(
        *[snn.LIF(beta=0.8) if isinstance(m, nn.ReLU) else snn.FoldTime(m) for m in cnn]
    )


def bars(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """12x12 images holding one noisy vertical (label 0) or horizontal (label 1) bar."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    images = torch.rand(n, 1, 12, 12, generator=generator) * 0.3
    where = torch.randint(2, 10, (n,), generator=generator)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, :, where[i]] = 1.0
        else:
            images[i, 0, where[i], :] = 1.0
    return images, labels


def test_spiking_cnn_learns_a_task():
    """The converted CNN trains with surrogate gradients: bar orientation, from chance to > 90 %."""
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    net = make_spiking_cnn()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(40):
        images, labels = bars(32, gen)
        loss = nn.functional.cross_entropy(
            net(snn.encode.poisson(images, 8, generator=gen)).mean(0), labels
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    images, labels = bars(200, gen)
    with torch.no_grad():
        accuracy = net(snn.encode.poisson(images, 8, generator=gen)).mean(0).argmax(1) == labels
    assert float(accuracy.float().mean()) > 0.9


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(2)
    net = make_spiking_cnn()
    x = snn.encode.poisson(torch.rand(3, 1, 12, 12), 10)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")  # fast to build in tests
    eager_out = net(x)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    out = compiled(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, eager_out, rtol=0, atol=0)
    for p, g in zip(net.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


def test_lif_head_after_frozen_feature_extractor():
    """Features from a frozen torch network, computed once per image, drive a trainable LIF head
    at every time step (direct input coding)."""
    torch.manual_seed(3)
    features = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
    )  # fmt: skip
    features.requires_grad_(False).eval()  # frozen: no gradients, BatchNorm's running statistics
    head = nn.Sequential(nn.Linear(36, 16), snn.LIF(beta=0.9), nn.Linear(16, 2), snn.LIF(beta=0.9))
    images = torch.rand(5, 1, 12, 12)
    stats = features[1].running_mean.clone()
    current = features(images).expand(25, -1, -1)  # [T=25, B=5, 36], the same input every step
    spikes = head(current * 4)
    spikes.sum().backward()
    assert spikes.shape == (25, 5, 2)
    assert all(p.grad is None for p in features.parameters())
    assert head[0].weight.grad is not None and float(head[0].weight.grad.abs().sum()) > 0
    assert torch.equal(features[1].running_mean, stats)
