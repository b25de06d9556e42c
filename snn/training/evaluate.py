"""Loss, accuracy and firing rates of a model on a split, and the warnings that rates call for.

Evaluation draws its Poisson spikes from a private generator seeded with :data:`EVAL_SEED`, so
it touches none of the training run's random states (a resumed run stays bitwise the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from snn.training.config import Config
from snn.training.device import autocast
from snn.training.encoding import encode
from snn.training.interrupts import fault_point
from snn.training.loss import loss_and_scores
from snn.training.models import spiking_layers

__all__ = ["EVAL_SEED", "EvalResult", "evaluate", "firing_rate_warnings"]

EVAL_SEED = 12345  # evaluation draws its Poisson spikes from its own generator, seeded with this


@dataclass
class EvalResult:
    """The mean loss, accuracy (a fraction), predictions and per-layer firing rates of a split."""

    loss: float
    accuracy: float
    predictions: Tensor  # [N]
    rates: dict[str, float]  # mean spikes per neuron and step, by layer


@torch.no_grad()
def evaluate(
    model: nn.Module, images: Tensor, labels: Tensor, cfg: Config, device: torch.device
) -> EvalResult:
    """Loss, accuracy and firing rates on a split, with a fixed, private Poisson generator."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(EVAL_SEED)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, args, out):
            sums[name] = sums.get(name, 0.0) + float(out.float().sum())
            counts[name] = counts.get(name, 0) + out.numel()

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in spiking_layers(model).items()]
    total_loss, preds = 0.0, []
    try:
        for i in range(0, len(images), cfg.data.eval_batch_size):
            x, y = (
                images[i : i + cfg.data.eval_batch_size],
                labels[i : i + cfg.data.eval_batch_size],
            )
            with autocast(cfg, device):
                out = model(encode(x, cfg, gen))
            fault_point("eval")
            loss, scores = loss_and_scores(out, y, cfg)
            total_loss += float(loss) * len(y)
            preds.append(scores.argmax(1))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    predictions = torch.cat(preds)
    return EvalResult(
        loss=total_loss / len(labels),
        accuracy=float((predictions == labels).float().mean()),
        predictions=predictions.cpu(),
        rates={n: sums[n] / counts[n] for n in sums},
    )


def firing_rate_warnings(rates: dict[str, float]) -> list[str]:
    """Messages for spiking layers whose mean firing rate is stuck at 0 (dead) or 1 (saturated):
    both pass no gradient through the surrogate's narrow peak, so training silently stalls."""
    out = []
    for name, rate in rates.items():
        if rate <= 0.0:
            out.append(
                f"spiking layer {name} never fired on the validation set (dead neurons): lower "
                "model.neuron.threshold, raise encoding.gain or check the weight init / lr"
            )
        elif rate >= 1.0:
            out.append(
                f"spiking layer {name} fired at every step on the validation set (saturated): "
                "raise model.neuron.threshold or lower optim.lr"
            )
    return out
