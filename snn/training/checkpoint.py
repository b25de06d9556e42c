"""Checkpoints written atomically, checked by sha256, and read back with errors that name the file.

:func:`save_checkpoint` serializes the state, writes ``SNNCKPT2 <sha256 of the payload>\\n`` and
the payload to a temporary file in the same folder, flushes and fsyncs it, and renames it over the
target with ``os.replace`` (atomic on POSIX and Windows), then fsyncs the folder so the rename
itself survives a power cut. A reader therefore sees the old checkpoint or the new one, never half
of one; a run killed while saving leaves at most a stray ``.tmp`` file, which the next save of the
same name removes. With ``keep_previous=True`` the checkpoint being replaced is first kept as
``<name>.prev.pt`` (see :func:`previous_path`), so a file damaged later (a disk fault, a copy cut
short) still leaves one good state to resume from.

:func:`load_checkpoint` recomputes the sha256: a file whose bytes changed since it was written is
refused with :class:`CheckpointError` naming it, never used silently.

Example::

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.pt"
    >>> save_checkpoint({"step": 3}, path)
    >>> load_checkpoint(path)["step"]
    3
    >>> save_checkpoint({"step": 4}, path, keep_previous=True)
    >>> load_checkpoint(previous_path(path))["step"]
    3
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "previous_path",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 2
_MAGIC = b"SNNCKPT2 "  # then 64 hex digits of sha256(payload), a newline, and the payload
_HEADER = len(_MAGIC) + 64 + 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not what the caller expects."""


def previous_path(path: str | Path) -> Path:
    """Where ``save_checkpoint(..., keep_previous=True)`` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


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


def _keep_as_previous(path: Path) -> None:
    """Make ``previous_path(path)`` a copy of ``path`` without ``path`` ever going missing."""
    prev = previous_path(path)
    tmp = prev.with_name(f".{prev.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)  # the same bytes under a second name: instant, no copy
    except OSError:  # file systems without hard links
        shutil.copyfile(path, tmp)
    os.replace(tmp, prev)


def save_checkpoint(
    state: dict[str, Any],
    path: str | Path,
    *,
    keep_previous: bool = False,
    during_write: Callable[[], None] | None = None,
) -> None:
    """Write ``state`` (anything ``torch.save`` takes) to ``path`` atomically, with a checksum.

    ``keep_previous``: first keep the current ``path`` (if any) as ``previous_path(path)``.
    ``during_write``: called when half the bytes are on disk (crash tests kill the process there).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed while saving
        stale.unlink(missing_ok=True)
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    payload = buf.getbuffer()
    digest = hashlib.sha256(payload).hexdigest().encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + digest + b"\n")
            half = len(payload) // 2
            f.write(payload[:half])
            if during_write is not None:
                f.flush()
                during_write()
            f.write(payload[half:])
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.is_file():
            _keep_as_previous(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_checkpoint(
    path: str | Path, required: tuple[str, ...] = (), map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise :class:`CheckpointError`
    naming ``path`` if it is missing, corrupt (checksum mismatch), unreadable, or lacks one of
    the ``required`` keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise CheckpointError(
            f"checkpoint {str(path)!r} was not written by snn.checkpoint (format version "
            f"{FORMAT_VERSION}): it lacks the checksum header"
        )
    expected, payload = data[len(_MAGIC) : _HEADER - 1], memoryview(data)[_HEADER:]
    actual = hashlib.sha256(payload).hexdigest().encode()
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its sha256 is {actual.decode()[:16]}..., the "
            f"one recorded when it was written is {expected.decode()[:16]}... (a truncated or "
            "damaged file); delete it, or resume from the previous checkpoint"
        )
    try:
        # our own files hold only tensors, numbers, strings and dicts: the safe loader reads them
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for foreign payloads
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'}); "
            "it is corrupt or not a snn checkpoint"
        ) from e
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by snn.checkpoint")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {', '.join(missing)}")
    return state
