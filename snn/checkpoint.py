"""Checkpoints written atomically and read back with errors that name the file.

:func:`save_checkpoint` writes to a temporary file in the same folder, flushes and fsyncs it, and
renames it over the target with ``os.replace`` (atomic on POSIX and Windows), then fsyncs the
folder so the rename itself survives a power cut. A reader therefore sees the old checkpoint or
the new one, never half of one; a run killed while saving leaves at most a stray ``.tmp`` file,
which the next save of the same name removes.

Example::

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.pt"
    >>> save_checkpoint({"step": 3}, path)
    >>> load_checkpoint(path)["step"]
    3
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not what the caller expects."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` (anything ``torch.save`` takes) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed while saving
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_checkpoint(
    path: str | Path, required: tuple[str, ...] = (), map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise :class:`CheckpointError`
    naming ``path`` if it is missing, unreadable, or lacks one of the ``required`` keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        # our own files hold only tensors, numbers, strings and dicts: the safe loader reads them
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'}); "
            "it is corrupt or not a snn checkpoint"
        ) from e
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by snn.checkpoint")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {state['format_version']}, "
            f"this snn reads version {FORMAT_VERSION}"
        )
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {', '.join(missing)}")
    return state
