"""The loss of an output sequence, the readout each loss reads, and the guard against a loss that
is no longer finite.

``ce_membrane`` reads the membrane of a non-spiking :class:`snn.LeakyIntegrator`, reduced over
time to logits; ``ce_rate`` and ``mse_count`` count the spikes of a LIF output layer
(:class:`snn.training.config.LossConfig`).

Example::

    >>> import torch
    >>> from snn.training.config import load_config
    >>> cfg = load_config(None, ["loss.kind=ce_rate"])
    >>> readout_for(cfg)
    'spiking'
    >>> spikes = torch.zeros(4, 1, 10)
    >>> spikes[:, 0, 3] = 1  # class 3 fires at every step
    >>> loss, scores = loss_and_scores(spikes, torch.tensor([3]), cfg)
    >>> scores.argmax(1).tolist(), round(loss.item(), 4)
    ([3], 0.1526)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from snn.training.config import Config
from snn.training.distributed import Dist, summed

if TYPE_CHECKING:
    from snn.training.resume import Progress

__all__ = ["TrainingError", "readout_for", "loss_and_scores", "check_loss_finite"]


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss): the message names the step; checkpoints are kept."""


def readout_for(cfg: Config) -> str:
    """Cross-entropy on membrane reads a non-spiking integrator; the rate losses count spikes."""
    return "leaky" if cfg.loss.kind == "ce_membrane" else "spiking"


def loss_and_scores(out: Tensor, y: Tensor, cfg: Config) -> tuple[Tensor, Tensor]:
    """The loss of the output sequence ``out`` ``[T, B, 10]`` and per-class scores ``[B, 10]``
    whose argmax is the prediction."""
    lc = cfg.loss
    out = out.float()
    if lc.kind == "ce_membrane":
        if lc.reduce == "mean":
            scores = out.mean(0)
        elif lc.reduce == "max":
            scores = out.amax(0)
        else:
            scores = out[-1]
        return F.cross_entropy(scores, y, label_smoothing=lc.label_smoothing), scores
    counts = out.sum(0)
    if lc.kind == "ce_rate":
        return F.cross_entropy(counts, y, label_smoothing=lc.label_smoothing), counts
    steps = out.shape[0]
    target = torch.full_like(counts, lc.incorrect_rate * steps)
    target.scatter_(1, y[:, None], lc.correct_rate * steps)
    return F.mse_loss(counts, target), counts


def check_loss_finite(
    loss: float, progress: Progress, last_path: Path, dist: Dist, device: torch.device
) -> None:
    """Raise :class:`TrainingError` if ``loss`` is not finite on any rank (a collective).

    Called before the optimizer step, so the weights stay finite; all ranks agree, since one
    rank's NaN has reached every rank's averaged gradients. The message names the step being
    taken (``progress.global_step + 1``) and says whether ``last_path`` holds the last good state.
    """
    nonfinite = summed([float(not math.isfinite(loss))], dist, device)[0]
    if not nonfinite:
        return
    value = "non-finite" if math.isfinite(loss) else loss
    where = f" on {nonfinite:.0f} of {dist.world_size} processes" if dist.active else ""
    kept = (
        f"{last_path} holds the last good state"
        if last_path.exists()
        else "no checkpoint had been written yet"
    )
    raise TrainingError(
        f"the loss became {value}{where} at step {progress.global_step + 1} "
        f"(epoch {progress.epoch + 1}); {kept}. "
        "Lower optim.lr or set optim.grad_clip"
    )
