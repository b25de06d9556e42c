"""Images to spikes on the training device, and the seed of each process's spike generator.

``encoding.kind`` picks the code: ``poisson`` (:func:`snn.encode.poisson`, random, drawn from a
generator the caller owns, so its state can go into the checkpoint) or ``latency``
(:func:`snn.encode.latency`, one spike per pixel, a deterministic function of the image).

Example::

    >>> import torch
    >>> from snn.training.config import load_config
    >>> cfg = load_config(None, ["encoding.num_steps=8"])
    >>> images = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    >>> encode(images, cfg, torch.Generator().manual_seed(encoding_seed(0, rank=0))).shape
    torch.Size([8, 2, 1, 28, 28])
"""

from __future__ import annotations

import torch
from torch import Tensor

import snn
from snn.training.config import Config

__all__ = ["encode", "encoding_seed"]


def encode(images: Tensor, cfg: Config, generator: torch.Generator) -> Tensor:
    """uint8 images ``[B, 28, 28]`` -> spikes ``[T, B, 1, 28, 28]`` on their device."""
    x = images.float().div_(255).unsqueeze(1)
    if cfg.encoding.kind == "latency":
        return snn.encode.latency(x, cfg.encoding.num_steps)
    return snn.encode.poisson(x, cfg.encoding.num_steps, cfg.encoding.gain, generator=generator)


def encoding_seed(seed: int, rank: int) -> int:
    """Seed of the Poisson generator; distinct per rank so that ranks never share spikes."""
    return seed * 1_000_003 + 7919 * (rank + 1)
