"""Fixtures shared by the test files that name them."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def restore_torch_globals():
    """train.main sets the thread count and seeds torch's global generator: undo both."""
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
