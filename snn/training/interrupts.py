"""How a run ends early: Ctrl-C (SIGINT) or SIGTERM, the exit code of each expected error, and the
test hook that pauses a run at a chosen point.

A first SIGINT/SIGTERM sets :class:`StopFlag`; the loop finishes the step, writes ``last.pt`` and
raises :class:`Interrupted` (exit code 130); a second one raises ``KeyboardInterrupt`` at once.
Exit codes (:func:`exit_code`): 0 done, 2 bad config / missing dataset / unusable checkpoint
(reported before any training starts), 130 interrupted (checkpoint written), 1 anything else
(such as a diverged loss).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as td

from snn.training.checkpoint import CheckpointError
from snn.training.config import ConfigError
from snn.training.data import DatasetNotFoundError
from snn.training.distributed import Dist
from snn.training.loss import TrainingError

__all__ = ["Interrupted", "StopFlag", "EXIT_CODES", "exit_code", "fault_point"]


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; last.pt holds the state after the step that was running."""


class StopFlag:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:  # a second Ctrl-C: the user does not want to wait for the step
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def agreed(self, dist: Dist, device: torch.device) -> bool:
        """Whether any rank was interrupted, so that all ranks stop after the same step."""
        if not dist.active:
            return self.set
        flag = torch.tensor([float(self.set)], device=device)
        td.all_reduce(flag)
        return bool(flag.item())


# the errors a run expects, and the exit code of each; anything else is a bug (a traceback, 1)
EXIT_CODES: dict[type[Exception], int] = {
    ConfigError: 2,
    DatasetNotFoundError: 2,
    CheckpointError: 2,
    TrainingError: 1,
    Interrupted: 130,
}


def exit_code(error: Exception) -> int:
    """Print ``error`` to stderr (an interrupt as it is, the others as ``error: ...``) and return
    its exit code from :data:`EXIT_CODES`."""
    print(error if isinstance(error, Interrupted) else f"error: {error}", file=sys.stderr)
    return next(EXIT_CODES[c] for c in type(error).__mro__ if c in EXIT_CODES)


def fault_point(name: str) -> None:
    """A test hook: with ``SNN_TEST_PAUSE=<name>:<n>`` in the environment, the n-th time this
    point is reached the process touches ``$SNN_TEST_PAUSE_FILE`` and sleeps
    ``$SNN_TEST_PAUSE_SECONDS`` (default 600), so that a crash test can signal it exactly there.
    Points: ``step`` (after backward, before the optimizer step), ``eval`` (inside evaluation),
    ``save`` (last.pt half written). Unset, it costs one dict lookup."""
    spec = os.environ.get("SNN_TEST_PAUSE")
    if not spec or spec.partition(":")[0] != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(spec.partition(":")[2] or 1):
        Path(os.environ["SNN_TEST_PAUSE_FILE"]).touch()
        time.sleep(float(os.environ.get("SNN_TEST_PAUSE_SECONDS", "600")))


_FAULT_COUNTS: dict[str, int] = {}
