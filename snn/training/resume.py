"""Continuing a run: what ``last.pt`` holds, writing it, and reading it back into a run.

``last.pt`` holds the model, optimizer and scheduler states, every rank's random states (torch's
global generator, which dropout uses; the Poisson generator; Python's), each rank's running sums
of the epoch in progress, the :class:`Progress` and the config. The batch order is a pure
function of (seed, epoch), so with these a run killed mid-epoch and resumed on CPU ends with
bitwise the same weights as one never stopped. The file is plain tensors, numbers, strings and
dicts (read with torch's ``weights_only`` loader), so it names no class of this package.

A resume must be the same run: the same config (only :data:`RESUME_OVERRIDES`, the keys that say
where things are, may change), the same kind of device and the same number of processes.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from snn.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    previous_path,
    save_checkpoint,
)
from snn.training.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    read_yaml,
)
from snn.training.distributed import Dist, gathered
from snn.training.interrupts import fault_point

__all__ = [
    "RESUME_OVERRIDES",
    "Progress",
    "resumed_config",
    "has_last",
    "resume",
    "save_last",
    "load_resume_state",
]

# keys that may change when a run is resumed: where things are, not what is computed
RESUME_OVERRIDES = ("data.root", "data.download", "device", "log.", "train.threads")


@dataclass
class Progress:
    """Where training stands; with the states in last.pt, all that a resume needs."""

    epoch: int = 0  # the epoch in progress
    step: int = 0  # the next step within that epoch
    global_step: int = 0
    loss_sum: float = 0.0  # running sums of the epoch in progress (this rank's)
    correct: int = 0
    seen: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = -1


def resumed_config(run_dir: Path, overrides: list[str]) -> Config:
    """The config of the run in ``run_dir``, with ``overrides`` of :data:`RESUME_OVERRIDES` only."""
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run folder: it has no config.yaml")
    for o in overrides:
        key = o.partition("=")[0]
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_OVERRIDES):
            raise ConfigError(
                f"{key!r} cannot change on --resume (the run would no longer be the same run); "
                f"only these can: {', '.join(RESUME_OVERRIDES)}"
            )
    if not has_last(run_dir):
        raise CheckpointError(f"{run_dir} has no last.pt to resume from")
    return config_from_dict(apply_overrides(read_yaml(run_dir / "config.yaml"), overrides))


def has_last(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a ``last.pt`` (or the previous one) to resume from."""
    last = run_dir / "last.pt"
    return last.is_file() or previous_path(last).is_file()


def rng_states(gen: torch.Generator) -> dict:
    states = {
        "torch": torch.get_rng_state(),
        "encode": gen.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    gen.set_state(states["encode"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def all_rng_states(gen: torch.Generator, dist: Dist) -> list[dict]:
    """Every rank's random states, in rank order (a collective: all ranks must call it)."""
    mine = rng_states(gen)
    if dist.active:
        mine = {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in mine.items()}
    return gathered(mine, dist)


def save_last(
    path: Path,
    cfg: Config,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    progress: Progress,
    dist: Dist,
    device: torch.device,
) -> None:
    """Write ``last.pt``, keeping the one it replaces as ``last.prev.pt``. A collective: every
    rank contributes its random states and running sums; rank 0 writes."""
    rng = all_rng_states(gen, dist)
    sums = gathered((progress.loss_sum, progress.correct, progress.seen), dist)
    if dist.is_main:
        save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng,
                "rank_sums": sums,
                "device": device.type,
                "progress": dataclasses.asdict(progress),
                "config": config_to_dict(cfg),
            },
            path,
            keep_previous=True,
            during_write=lambda: fault_point("save"),
        )


def load_resume_state(run_dir: Path, device: torch.device) -> dict:
    """last.pt, or, if it is corrupt, last.prev.pt, saying so on stderr; never a damaged file."""
    required = ("model", "optimizer", "scheduler", "rng", "progress")
    last = run_dir / "last.pt"
    try:
        return load_checkpoint(last, required, map_location=device)
    except CheckpointError as e:
        prev = previous_path(last)
        if not prev.is_file():
            raise
        print(
            f"warning: {e}\nwarning: resuming from the previous checkpoint {prev}", file=sys.stderr
        )
        return load_checkpoint(prev, required, map_location=device)


def resume(
    run_dir: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    dist: Dist,
    device: torch.device,
) -> Progress:
    """Load ``run_dir``'s last.pt into the model, optimizer, scheduler and random generators,
    after checking that it is the same run; return where it stood."""
    last_path = run_dir / "last.pt"
    state = load_resume_state(run_dir, device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{last_path} does not fit the model of {run_dir}: {e}") from e
    if state.get("device", device.type) != device.type:
        raise CheckpointError(
            f"{last_path} was written on {state['device']}, this process runs on "
            f"{device.type}; resume with device={state['device']} (the random streams of "
            "the two kinds of device differ)"
        )
    ranks = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
    if len(ranks) != dist.world_size:
        raise CheckpointError(
            f"{last_path} was written by {len(ranks)} process(es), this run has "
            f"{dist.world_size}; resume with --nproc_per_node={len(ranks)} (each rank's "
            "data shard and spikes depend on the number of processes)"
        )
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_states(ranks[dist.rank], gen)
    progress = Progress(**state["progress"])
    if "rank_sums" in state:  # each rank's running sums of the epoch in progress
        progress.loss_sum, progress.correct, progress.seen = state["rank_sums"][dist.rank]
    return progress
