"""MNIST for training: the repo's offline copy or torchvision's download, a validation split, and
reproducible batches that can start in the middle of an epoch.

The images stay ``uint8`` tensors (all 70k fit in 55 MB) on the training device; a batch is cast
to ``[0, 1]`` and encoded into spikes there by the training loop (:mod:`snn.training.encoding`),
so no DataLoader worker ever sees spikes and the encoding generator lives in one place (and in
the checkpoint).

Where the files come from, in order:

1. ``<root>/MNIST/raw/*-ubyte``: torchvision's layout, used as it is.
2. ``<root>/MNIST/raw/*-ubyte.gz`` only (the repo ships these in ``data/``): decompressed in
   place. Their gzip bytes differ from the originals, so torchvision's MD5 check would reject
   them and download instead.
3. Neither: torchvision downloads them when ``download`` is true (needs internet).

Otherwise :class:`DatasetNotFoundError` says which files must go where.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from snn.training.config import Config

__all__ = [
    "DatasetNotFoundError",
    "FILES",
    "MNISTSplits",
    "prepare_mnist",
    "load_mnist",
    "load_data",
    "epoch_order",
    "num_batches",
]

# sha256 of the uncompressed files (the standard MNIST set; see data/MNIST/README.md)
FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class DatasetNotFoundError(FileNotFoundError):
    """MNIST is not under the data root and could not be downloaded."""


def _raw(root: str | Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def _missing_message(root: str | Path, why: str) -> str:
    raw = _raw(root)
    names = "\n".join(f"  {raw / name}.gz" for name in FILES)
    return (
        f"MNIST not found under {str(root)!r} ({why}).\n"
        f"Put the four gzip files here (the repo ships them in data/MNIST/raw/):\n{names}\n"
        "or the same names without .gz, decompressed; or set data.download=true (or pass "
        "--data-root to a folder that has them) on a machine with internet access."
    )


def _decompress(gz: Path, dest: Path) -> None:
    """Gunzip ``gz`` to ``dest`` atomically, checking the content against the known sha256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with gzip.open(gz, "rb") as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != FILES[dest.name]:
            raise DatasetNotFoundError(
                f"{gz} does not decompress to the standard MNIST file {dest.name} "
                f"(sha256 {digest.hexdigest()}, expected {FILES[dest.name]}); replace it"
            )
        os.replace(tmp, dest)  # a concurrent run decompressing the same file writes equal bytes
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetNotFoundError(f"cannot decompress {gz}: {e}; replace the file") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def prepare_mnist(root: str | Path, download: bool) -> Path:
    """Make ``<root>/MNIST/raw`` hold the four decompressed files; return that folder.

    Cheap when they are already there, so call it before any other work to fail early.
    """
    raw = _raw(root)
    for name in FILES:
        dest, gz = raw / name, raw / f"{name}.gz"
        if not dest.is_file() and gz.is_file():
            _decompress(gz, dest)
    if all((raw / name).is_file() for name in FILES):
        return raw
    if not download:
        raise DatasetNotFoundError(_missing_message(root, "and data.download is false"))
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=True, download=True)
    except (RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DatasetNotFoundError(_missing_message(root, f"download failed: {first}")) from e
    return raw


@dataclass
class MNISTSplits:
    """uint8 images ``[N, 28, 28]`` and int64 labels ``[N]`` of the three splits."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
    test_images: Tensor
    test_labels: Tensor

    def to(self, device: torch.device | str) -> MNISTSplits:
        """The same splits with every tensor on ``device``."""
        return MNISTSplits(*(t.to(device) for t in self.__dict__.values()))


def load_mnist(
    root: str | Path,
    *,
    download: bool = False,
    val_size: int = 5000,
    split_seed: int = 0,
    train_subset: int | None = None,
    val_subset: int | None = None,
    test_subset: int | None = None,
) -> MNISTSplits:
    """Load MNIST with torchvision and hold ``val_size`` of the 60k training images out.

    The split is a seeded random permutation, so every run with the same ``split_seed`` validates
    on the same images, and no validation image is ever trained on. Subsets take the first ``N``
    of a split (the test subset: of the official test order).
    """
    from torchvision.datasets import MNIST

    raw = prepare_mnist(root, download)
    try:
        train = MNIST(str(root), train=True, download=False)
        test = MNIST(str(root), train=False, download=False)
    except Exception as e:  # truncated or foreign idx files: torchvision raises various types
        raise DatasetNotFoundError(
            f"the MNIST files in {raw} cannot be read ({type(e).__name__}: {e}); delete the "
            "decompressed files (without .gz) so that they are made again from the .gz files"
        ) from e
    order = torch.randperm(len(train.data), generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:val_size], order[val_size:]

    def first(t: Tensor, n: int | None) -> Tensor:
        return t if n is None else t[:n]

    return MNISTSplits(
        first(train.data[train_idx], train_subset),
        first(train.targets[train_idx], train_subset),
        first(train.data[val_idx], val_subset),
        first(train.targets[val_idx], val_subset),
        first(test.data, test_subset),
        first(test.targets, test_subset),
    )


def load_data(cfg: Config, device: torch.device, full_test: bool = False) -> MNISTSplits:
    """The splits ``cfg.data`` describes, on ``device``; ``full_test``: all 10k test images."""
    d = cfg.data
    return load_mnist(
        d.root,
        download=d.download,
        val_size=d.val_size,
        split_seed=d.split_seed,
        train_subset=d.train_subset,
        val_subset=d.val_subset,
        test_subset=None if full_test else d.test_subset,
    ).to(device)


def num_batches(n: int, batch_size: int, world_size: int = 1) -> int:
    """Batches per epoch and process: the last partial batch is dropped when training."""
    return (n // world_size) // batch_size


def epoch_order(
    n: int, epoch: int, seed: int, batch_size: int, rank: int = 0, world_size: int = 1
) -> Tensor:
    """The sample indices of ``epoch`` for process ``rank``, as ``[num_batches, batch_size]``.

    torch's ``DistributedSampler`` (shuffled with ``seed + epoch``, last partial share dropped)
    deals each rank a disjoint shard of one shared permutation; with ``world_size=1`` it is a plain
    shuffle. A pure function of ``(seed, epoch)``, so a resumed run needs only the epoch and the
    step to continue with the very same batches.
    """
    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    shard = torch.tensor(list(sampler), dtype=torch.long)
    nb = num_batches(n, batch_size, world_size)
    return shard[: nb * batch_size].view(nb, batch_size)
