"""random_shift, the training-time translation of images, against a shift written here."""

import pytest
import torch

from snn.training.augment import random_shift
from snn.training.config import ConfigError, load_config


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` moved down by ``dy`` and right by ``dx`` pixels, zeros moved in: a plain loop."""
    h, w = image.shape[-2:]
    out = torch.zeros_like(image)
    for r in range(h):
        for c in range(w):
            if 0 <= r - dy < h and 0 <= c - dx < w:
                out[..., r, c] = image[..., r - dy, c - dx]
    return out


@pytest.mark.parametrize("shape", [(200, 7, 6), (200, 2, 7, 6)])
def test_every_image_is_one_of_the_allowed_translations_and_all_occur(shape):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, shape, dtype=torch.uint8, generator=g)  # no zero pixel
    out = random_shift(images, 2, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    seen = set()
    for image, moved in zip(images, out, strict=True):
        # with no zero pixel in the image, exactly one offset can give the output
        (match,) = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(shifted(image, dy, dx), moved)
        ]
        seen.add(match)
    assert len(seen) == 25  # 200 draws from 25 equally likely offsets: all appear


def test_seeded_and_a_no_op_at_zero():
    images = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)
    a = random_shift(images, 1, torch.Generator().manual_seed(3))
    b = random_shift(images, 1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert random_shift(images, 0, g) is images
    assert torch.equal(g.get_state(), state)  # shift 0 draws nothing: the spikes stay as before


def test_shift_is_refused_for_datasets_that_are_not_images():
    with pytest.raises(ConfigError, match="data.shift=1 moves images"):
        load_config(None, ["data.dataset=smnist", "encoding.kind=current", "data.shift=1"])
