"""The device a run trains on, checked before any work starts, and its mixed-precision context."""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager

import torch

from snn.training.config import Config, ConfigError
from snn.training.distributed import Dist

__all__ = ["resolve_device", "setup_device", "autocast"]


def resolve_device(name: str, dist: Dist | None = None) -> torch.device:
    """``device`` of the config as a torch device: ``auto`` is CUDA if there is one; under
    torchrun each rank takes ``cuda:LOCAL_RANK``. A device that is not there is a ConfigError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if dist is not None and dist.active and name == "cuda":
        name = f"cuda:{dist.local_rank}"  # one GPU per rank on each node
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name!r} but no CUDA GPU is available here; use device=cpu or device=auto"
            )
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return torch.device(name)


def setup_device(cfg: Config, dist: Dist | None = None) -> torch.device:
    """The run's device, after the checks that need the machine (a GPU for ``train.amp``, the
    tensorboard package for ``log.tensorboard``); sets the CPU thread count."""
    device = resolve_device(cfg.device, dist)
    if cfg.train.amp and device.type != "cuda":
        raise ConfigError(f"train.amp=true (bf16 autocast) needs a CUDA device, not {device}")
    if cfg.log.tensorboard:
        try:
            importlib.import_module("torch.utils.tensorboard")
        except ImportError:
            raise ConfigError(
                "log.tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from None
    if device.type == "cpu" and cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    return device


def autocast(cfg: Config, device: torch.device) -> AbstractContextManager:
    """bf16 autocast with ``train.amp``, else a context that changes nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.amp)
