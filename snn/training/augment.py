"""Training-time augmentation of image datasets: random whole-pixel translations.

A shift of a pixel or two along each axis keeps a digit's shape and changes where its strokes
sit, so the network learns the shape rather than the position. It is drawn from the training
loop's spike generator, which is in the checkpoint, so a resumed run shifts its images exactly
as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_shift"]


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """``images`` ``[B, H, W]`` (or ``[B, C, H, W]``), each moved by its own whole-pixel offsets
    drawn uniformly from ``-max_shift..max_shift`` along both axes; pixels moved in from outside
    are 0. ``max_shift=0`` returns ``images`` itself and draws nothing.

    Example:

        >>> x = torch.arange(1, 10, dtype=torch.uint8).view(1, 3, 3)
        >>> y = random_shift(x, 1, torch.Generator().manual_seed(0))
        >>> y.shape, int(y.sum()) <= int(x.sum())
        (torch.Size([1, 3, 3]), True)
    """
    if max_shift == 0:
        return images
    *lead, h, w = images.shape
    b = lead[0]
    device = images.device
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator, device=device)
    rows = torch.arange(h, device=device) + offsets[0][:, None]  # [B, H] rows of the padded image
    cols = torch.arange(w, device=device) + offsets[1][:, None]  # [B, W]
    if images.dim() == 3:
        batch = torch.arange(b, device=device)[:, None, None]
        return padded[batch, rows[:, :, None], cols[:, None, :]]
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
