"""The run folder, ``<out_dir>/<name>-<timestamp>/``, and the metrics log it holds.

A run writes ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON record per line:
``train`` every ``log.log_every`` steps, ``epoch``, and the final ``test``), ``last.pt``,
``best.pt`` and the plots; with ``log.tensorboard=true`` also TensorBoard events.

Example::

    >>> import tempfile, pathlib
    >>> metrics = Metrics(pathlib.Path(tempfile.mkdtemp()), enabled=True, tensorboard=False)
    >>> metrics.log({"kind": "train", "step": 8, "loss": 2.1})
    >>> metrics.history()
    [{'kind': 'train', 'step': 8, 'loss': 2.1}]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from snn.training.config import Config, ConfigError

__all__ = ["new_run_dir", "Metrics"]


def new_run_dir(cfg: Config) -> Path:
    """Create ``<out_dir>/<name>-<timestamp>`` (``-1``, ``-2``, ... if that exists already)."""
    base = Path(cfg.out_dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, i = base, 1
    while run_dir.exists():
        run_dir, i = Path(f"{base}-{i}"), i + 1
    try:
        run_dir.mkdir(parents=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create the run folder {str(run_dir)!r} ({e.strerror}); "
            "set out_dir= to a writable folder"
        ) from None
    return run_dir


class Metrics:
    """Appends JSON records to ``metrics.jsonl`` (rank 0 only), and to TensorBoard if asked."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """On resume: drop records written after the checkpoint, which will be written again."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [json.dumps(r) for r in self.history() if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)

    def log(self, record: dict) -> None:
        """Append ``record`` as one JSON line (and its numbers to TensorBoard, if enabled)."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record.get("step", 0))

    def history(self) -> list[dict]:
        """The records so far; a line cut short by a killed process is skipped."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out
