"""The optimizer (Adam or AdamW) and its learning-rate schedule, stepped once per batch.

Example::

    >>> import torch
    >>> from snn.training.config import load_config
    >>> cfg = load_config(None, ["optim.schedule=cosine", "optim.lr=0.01"])
    >>> opt = make_optimizer(cfg, torch.nn.Linear(2, 2))
    >>> sched = make_scheduler(cfg, opt, total_steps=10)
    >>> type(opt).__name__, opt.param_groups[0]["lr"]
    ('AdamW', 0.01)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snn.training.config import Config

__all__ = ["make_optimizer", "make_scheduler"]


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """``optim.name`` over all of ``model``'s parameters: AdamW (decoupled weight decay) or Adam."""
    oc = cfg.optim
    cls = torch.optim.AdamW if oc.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay)


def make_scheduler(
    cfg: Config, opt: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch. ``cosine``: linear warmup, then a half cosine from ``lr`` down to
    ``lr * final_lr_ratio``; ``onecycle``: torch's OneCycleLR (it also cycles Adam's beta1)."""
    oc = cfg.optim
    if oc.schedule == "onecycle":
        # OneCycleLR divides by the length of each phase, counted as pct_start * total_steps - 1
        # steps and the rest: a warmup of exactly 1 step (or of all of them) divides by zero. A
        # warmup of 1.5 steps or more, ending half a step before the end, never does.
        warmup_steps = min(max(oc.warmup * total_steps, 1.5), total_steps - 0.5)
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=oc.lr,
            total_steps=total_steps,
            pct_start=warmup_steps / total_steps,
            div_factor=10.0,
            final_div_factor=1.0 / (10.0 * oc.final_lr_ratio),
        )
    warmup = int(oc.warmup * total_steps)

    def factor(step: int) -> float:
        if oc.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return oc.final_lr_ratio + (1 - oc.final_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
