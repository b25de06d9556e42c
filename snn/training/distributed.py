"""Data-parallel training under ``torchrun``: which process this is, joining the process group,
each rank's share of the batch, and the few collectives the loop needs.

``data.batch_size`` stays the global batch: each of the N ranks takes ``batch_size / N`` images,
a disjoint shard of the same permutation (:func:`snn.training.data.epoch_order`), so the averaged
gradient is that of the same global batch. Backend: nccl on CUDA (one GPU per rank,
``cuda:LOCAL_RANK``), gloo on CPU. Only rank 0 prints, logs and writes checkpoints.

Without ``torchrun`` there is one process, and the collectives return their input::

    >>> one = Dist()
    >>> one.active, summed([1.0, 2.0], one, "cpu"), gathered("state", one)
    (False, [1.0, 2.0], ['state'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as td

from snn.training.config import Config, ConfigError

__all__ = [
    "Dist",
    "dist_context",
    "init_distributed",
    "close_distributed",
    "per_rank_batch",
    "summed",
    "gathered",
    "from_main",
]


@dataclass
class Dist:
    """Which process this is. Logging, progress bars and checkpoints happen on rank 0 only."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that prints, logs and writes checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether more than one process trains (``world_size > 1``)."""
        return self.world_size > 1


def dist_context() -> Dist:
    """The rank and world size torchrun gave this process (one process without torchrun)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world > 1:
        return Dist(int(env["RANK"]), world, int(env.get("LOCAL_RANK", env["RANK"])))
    return Dist()


def init_distributed(dist: Dist, device: torch.device) -> None:
    """Join the process group: nccl for CUDA devices, gloo for CPU."""
    if not dist.active or td.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    td.init_process_group("nccl" if device.type == "cuda" else "gloo")


def close_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def per_rank_batch(cfg: Config, dist: Dist) -> int:
    """Each rank's share of the global ``data.batch_size``; an error unless it divides evenly."""
    if cfg.data.batch_size % dist.world_size:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is the global batch and must be divisible by "
            f"the {dist.world_size} processes; use a multiple of {dist.world_size}"
        )
    return cfg.data.batch_size // dist.world_size


def summed(values: list[float], dist: Dist, device: torch.device | str) -> list[float]:
    """``values`` summed over ranks (float64, so counts stay exact)."""
    if not dist.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def gathered(value: Any, dist: Dist) -> list[Any]:
    """Every rank's ``value``, in rank order (a collective: all ranks must call it)."""
    if not dist.active:
        return [value]
    out: list[Any] = [None] * dist.world_size
    td.all_gather_object(out, value)
    return out


def from_main(value: Any, dist: Dist) -> Any:
    """Rank 0's ``value`` on every rank (a collective: all ranks must call it)."""
    box = [value]
    if dist.active:
        td.broadcast_object_list(box, src=0)
    return box[0]
