"""Stateless layers over time-first sequences, by folding time into the batch."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["FoldTime"]


class FoldTime(nn.Module):
    """Apply a stateless ``module`` (Conv2d, BatchNorm, pooling, Linear, ...) to ``[T, B, ...]``.

    The input is reshaped to ``[T * B, ...]``, passed through ``module`` once (one big batch, not
    a Python loop over time), and reshaped back to ``[T, B, ...]``. BatchNorm therefore pools its
    statistics over time and batch together.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> conv = FoldTime(nn.Conv2d(1, 8, 3))
        >>> conv(torch.zeros(25, 4, 1, 28, 28)).shape
        torch.Size([25, 4, 8, 26, 26])
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(
                f"FoldTime expects a time-first input [T, B, ...], got shape {tuple(x.shape)}"
            )
        t, b = x.shape[:2]
        y = self.module(x.reshape(t * b, *x.shape[2:]))
        return y.reshape(t, b, *y.shape[1:])
