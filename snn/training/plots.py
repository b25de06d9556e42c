"""The plots of a training run, written as PNG files into its folder (matplotlib, no display).

* ``curves.png``: loss and accuracy per epoch (train and validation), and the per-step loss;
* ``raster.png``: for a few test digits, the spikes of the last hidden layer and the output layer
  (spike raster, or membrane traces for the leaky-integrator readout);
* ``rates.png``: the mean firing rate of every spiking layer on the test set;
* ``confusion.png``: the test confusion matrix of the model chosen on validation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure  # no pyplot: never switches a notebook's backend
from torch import Tensor, nn

import snn
from snn.training.config import Config
from snn.training.data import Splits
from snn.training.encoding import encode
from snn.training.evaluate import EvalResult
from snn.training.models import spiking_layers

__all__ = ["curves", "raster", "firing_rates", "confusion", "make_all"]


def curves(history: list[dict], path: Path) -> None:
    """Loss per step, and loss and accuracy per epoch, from the records of ``metrics.jsonl``."""
    epochs = [r for r in history if r.get("kind") == "epoch"]
    steps = [r for r in history if r.get("kind") == "train"]
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    ax = axes[0]
    if steps:
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8)
    ax.set(xlabel="step", ylabel="training loss (batch)", title="loss per step")
    ax.set_yscale("log")
    e = [r["epoch"] for r in epochs]
    axes[1].plot(e, [r["train_loss"] for r in epochs], "o-", label="train")
    axes[1].plot(e, [r["val_loss"] for r in epochs], "o-", label="validation")
    axes[1].set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    axes[2].plot(e, [100 * r["train_acc"] for r in epochs], "o-", label="train")
    axes[2].plot(e, [100 * r["val_acc"] for r in epochs], "o-", label="validation")
    axes[2].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy per epoch")
    for ax in axes[1:]:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def raster(
    images: Tensor,
    labels: Tensor,
    hidden_spikes: Tensor,
    output: Tensor,
    output_is_membrane: bool,
    path: Path,
    max_neurons: int = 100,
) -> None:
    """Per digit: the image, the spikes of the last hidden layer and the output (membrane traces
    or spikes). ``images [k, 28, 28]``, ``hidden_spikes [T, k, N]``, ``output [T, k, 10]``."""
    k = len(images)
    fig = Figure(figsize=(12, 2.3 * k))
    axes = fig.subplots(k, 3, squeeze=False)
    for i in range(k):
        image = images[i].float().cpu()
        while image.dim() > 2:  # event frames [T, 2, 34, 34]: the counts summed over T and polarity
            image = image.sum(0)
        square = image.shape[0] == image.shape[1]  # SHD frames [T, 700] are not
        axes[i, 0].imshow(image, cmap="gray", aspect="equal" if square else "auto")
        axes[i, 0].set(xticks=[], yticks=[], title=f"label {int(labels[i])}")
        t, n = torch.nonzero(hidden_spikes[:, i, :max_neurons].cpu(), as_tuple=True)
        axes[i, 1].scatter(t, n, s=2, c="k")
        axes[i, 1].set(
            xlim=(-0.5, hidden_spikes.shape[0] - 0.5),
            ylabel="neuron",
            title=f"last hidden layer (first {min(max_neurons, hidden_spikes.shape[2])})",
        )
        out = output[:, i].float().cpu()
        if output_is_membrane:
            for c in range(out.shape[1]):
                axes[i, 2].plot(out[:, c], lw=2.5 if c == int(labels[i]) else 0.8, label=str(c))
            axes[i, 2].set(ylabel="membrane", title="output membrane (thick: true class)")
        else:
            t, c = torch.nonzero(out, as_tuple=True)
            axes[i, 2].scatter(t, c, s=12, c=["r" if int(j) == int(labels[i]) else "k" for j in c])
            axes[i, 2].set(
                ylim=(-0.5, 9.5), yticks=range(10), ylabel="class", title="output spikes"
            )
        axes[i, 2].set(xlim=(-0.5, out.shape[0] - 0.5))
    for ax in axes[-1, 1:]:
        ax.set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def firing_rates(rates: dict[str, float], path: Path) -> None:
    """A bar per spiking layer: its mean spikes per neuron and step."""
    fig = Figure(figsize=(1.2 * len(rates) + 3, 3.5))
    ax = fig.subplots()
    names = list(rates)
    bars = ax.bar(range(len(names)), [rates[n] for n in names])
    ax.bar_label(bars, fmt="%.3f")
    ax.set_xticks(range(len(names)), [f"layer {n}" for n in names], rotation=30)
    ax.set(ylabel="spikes per neuron per step", title="firing rate on the test set", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def confusion(labels: Tensor, predictions: Tensor, path: Path) -> None:
    """The 10x10 confusion matrix (log-scaled colours, counts written in the cells)."""
    k = max(10, int(labels.max()) + 1, int(predictions.max()) + 1)  # SHD has 20 classes
    cm = torch.zeros(k, k, dtype=torch.long)
    cm.index_put_((labels.cpu(), predictions.cpu()), torch.ones_like(labels.cpu()), accumulate=True)
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    ax.imshow(torch.log1p(cm.float()), cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7)
    acc = float(cm.diag().sum()) / max(1, int(cm.sum()))
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xlabel="predicted",
        ylabel="true",
        title=f"test confusion matrix ({100 * acc:.2f}% correct)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@torch.no_grad()
def make_all(
    run_dir: Path,
    model: nn.Module,
    cfg: Config,
    history: list[dict],
    test: EvalResult,
    data: Splits,
    device: torch.device,
    num_digits: int = 4,
) -> None:
    """All four plots; ``test`` is the result of the model on the test set."""
    run_dir = Path(run_dir)
    curves(history, run_dir / "curves.png")
    firing_rates(test.rates, run_dir / "rates.png")
    confusion(data.test_labels, test.predictions, run_dir / "confusion.png")

    hidden = [m for m in spiking_layers(model).values()]
    # the last hidden layer is the last spiking one, unless the output itself spikes
    leaky = isinstance(model[-1], snn.LeakyIntegrator)
    last_hidden = hidden[-1] if leaky else hidden[-2] if len(hidden) > 1 else hidden[-1]
    seen = {}
    handle = last_hidden.register_forward_hook(lambda m, a, out: seen.update(spikes=out))
    model.eval()
    try:
        gen = torch.Generator(device=device).manual_seed(0)
        images = data.test_images[:num_digits]
        out = model(encode(images, cfg, gen))
    finally:
        handle.remove()
    spikes = seen["spikes"].flatten(2)
    raster(images, data.test_labels[:num_digits], spikes, out, leaky, run_dir / "raster.png")
