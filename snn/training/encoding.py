"""How each dataset's samples become the network's input ``[T, B, ...]``, on the training device,
and the seed of each process's spike generator.

This module is the one place that knows it: :func:`encode` picks the adapter of
``data.dataset``'s family, and :func:`model_io` tells the model the shape it will be fed.

* Images (``mnist``, ``fashion_mnist``), uint8 ``[B, 28, 28]`` -> spikes ``[T, B, 1, 28, 28]``:
  ``encoding.kind`` ``poisson`` (:func:`snn.encode.poisson`, random, drawn from a generator the
  caller owns, so its state can go into the checkpoint) or ``latency``
  (:func:`snn.encode.latency`, one spike per pixel, a deterministic function of the image).
* Pixel sequences (``smnist``, ``psmnist``), the same images read one pixel per step, row by row
  (``psmnist``: in a fixed order drawn from ``data.permutation_seed``), ``[784, B, F]``:
  ``current`` (the intensity itself, ``F = 1``) or ``crossings`` (spikes where the intensity
  crosses one of ``encoding.levels`` thresholds, up and down on separate channels,
  ``F = 2 * levels``).
* Events (``nmnist``, ``shd``), binned into frames of event counts when they were loaded
  (:mod:`snn.training.events`), ``[B, T, ...]`` -> ``[T, B, 2, 34, 34]`` or ``[T, B, 700]``.

Example::

    >>> import torch
    >>> from snn.training.config import load_config
    >>> cfg = load_config(None, ["encoding.num_steps=8"])
    >>> images = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    >>> encode(images, cfg, torch.Generator().manual_seed(encoding_seed(0, rank=0))).shape
    torch.Size([8, 2, 1, 28, 28])
    >>> cfg = load_config(None, ["data.dataset=psmnist", "encoding.kind=crossings"])
    >>> encode(images, cfg, torch.Generator()).shape, model_io(cfg)
    (torch.Size([784, 2, 80]), ModelIO(input_shape=(80,), num_classes=10))
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import Tensor

import snn
from snn.training.config import Config
from snn.training.data import NUM_CLASSES

__all__ = ["ModelIO", "MNIST_IO", "encode", "model_io", "pixel_order", "encoding_seed"]

PIXELS = 28 * 28


class ModelIO(NamedTuple):
    """What a model is fed at each step (``input_shape``, without ``T`` and ``B``) and how many
    classes it tells apart."""

    input_shape: tuple[int, ...]
    num_classes: int


MNIST_IO = ModelIO((1, 28, 28), 10)


def model_io(cfg: Config) -> ModelIO:
    """The input shape per step and the number of classes of ``cfg``'s dataset and encoding."""
    dataset, kind = cfg.data.dataset, cfg.encoding.kind
    shape = {
        "mnist": (1, 28, 28),
        "fashion_mnist": (1, 28, 28),
        "smnist": (2 * cfg.encoding.levels,) if kind == "crossings" else (1,),
        "psmnist": (2 * cfg.encoding.levels,) if kind == "crossings" else (1,),
        "nmnist": (2, 34, 34),
        "shd": (700,),
    }[dataset]
    return ModelIO(shape, NUM_CLASSES[dataset])


@functools.lru_cache(maxsize=8)
def pixel_order(permutation_seed: int | None, device: torch.device) -> Tensor:
    """The order in which a pixel sequence visits the 784 pixels: row by row for ``None``, else
    a permutation drawn from ``permutation_seed`` (the same on every machine: a CPU generator)."""
    if permutation_seed is None:
        return torch.arange(PIXELS, device=device)
    gen = torch.Generator().manual_seed(permutation_seed)
    return torch.randperm(PIXELS, generator=gen).to(device)


def _images(images: Tensor, cfg: Config, generator: torch.Generator) -> Tensor:
    x = images.float().div_(255).unsqueeze(1)
    if cfg.encoding.kind == "latency":
        return snn.encode.latency(x, cfg.encoding.num_steps)
    return snn.encode.poisson(x, cfg.encoding.num_steps, cfg.encoding.gain, generator=generator)


def _pixel_sequence(images: Tensor, cfg: Config) -> Tensor:
    seed = cfg.data.permutation_seed if cfg.data.dataset == "psmnist" else None
    x = images.flatten(1)[:, pixel_order(seed, images.device)]
    x = x.float().div_(255).T.unsqueeze(-1)  # [784, B, 1]
    if cfg.encoding.kind == "current":
        return x
    levels = torch.arange(1, cfg.encoding.levels + 1, device=x.device) / (cfg.encoding.levels + 1)
    # whether each level is reached flips by exactly 1 where the intensity crosses it
    flips = snn.encode.delta((x >= levels).float(), threshold=1.0, off_spikes=True)
    return torch.cat([flips.clamp(min=0), (-flips).clamp(min=0)], dim=-1)  # [784, B, 2 levels]


def encode(samples: Tensor, cfg: Config, generator: torch.Generator) -> Tensor:
    """A batch of stored samples -> the network's input ``[T, B, ...]`` on their device."""
    dataset = cfg.data.dataset
    if dataset in ("smnist", "psmnist"):
        return _pixel_sequence(samples, cfg)
    if dataset in ("nmnist", "shd"):
        return samples.float().transpose(0, 1)  # [B, T, ...] counts -> [T, B, ...]
    return _images(samples, cfg, generator)


def encoding_seed(seed: int, rank: int) -> int:
    """Seed of the Poisson generator; distinct per rank so that ranks never share spikes."""
    return seed * 1_000_003 + 7919 * (rank + 1)
