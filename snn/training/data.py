"""The datasets for training (``data.dataset``), a validation split, and reproducible batches that
can start in the middle of an epoch.

* ``mnist``, ``smnist``, ``psmnist``: MNIST (the repo's offline copy or torchvision's download);
  the sequential variants differ only in how :mod:`snn.training.encoding` feeds the pixels.
* ``fashion_mnist``: torchvision's Fashion-MNIST, in ``<root>/FashionMNIST/raw/``.
* ``nmnist``, ``shd``: event recordings read by tonic and binned into frames
  (:mod:`snn.training.events`).

The samples stay ``uint8`` tensors on the training device (all 70k MNIST images fit in 55 MB); a
batch is turned into the network's input there by the training loop
(:mod:`snn.training.encoding`), so no DataLoader worker ever sees spikes and the encoding
generator lives in one place (and in the checkpoint).

Where the idx files of MNIST and Fashion-MNIST come from, in order:

1. ``<root>/<MNIST or FashionMNIST>/raw/*-ubyte``: torchvision's layout, used as it is.
2. ``<root>/.../raw/*-ubyte.gz`` only (the repo ships MNIST's in ``data/``): decompressed in
   place. The shipped gzip bytes differ from the originals, so torchvision's MD5 check would
   reject them and download instead.
3. Neither: torchvision downloads them when ``download`` is true (needs internet).

Otherwise :class:`DatasetNotFoundError` says which files must go where.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from snn.training.config import Config, ConfigError

__all__ = [
    "DatasetNotFoundError",
    "FILES",
    "NUM_CLASSES",
    "Splits",
    "prepare_mnist",
    "prepare_fashion_mnist",
    "load_mnist",
    "load_fashion_mnist",
    "split_indices",
    "load_data",
    "epoch_order",
    "num_batches",
]

# the classes of each data.dataset value
NUM_CLASSES = {
    "mnist": 10,
    "smnist": 10,
    "psmnist": 10,
    "fashion_mnist": 10,
    "nmnist": 10,
    "shd": 20,  # ten digits, spoken in English and in German
}

# sha256 of the uncompressed files (the standard MNIST set; see data/MNIST/README.md)
FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not under the data root, could not be downloaded, or cannot be read."""


def _raw(root: str | Path, folder: str = "MNIST") -> Path:
    return Path(root) / folder / "raw"


def _missing_message(root: str | Path, why: str, folder: str = "MNIST") -> str:
    raw = _raw(root, folder)
    names = "\n".join(f"  {raw / name}.gz" for name in FILES)
    where = " (the repo ships them in data/MNIST/raw/)" if folder == "MNIST" else ""
    title = {"MNIST": "MNIST", "FashionMNIST": "Fashion-MNIST"}[folder]
    return (
        f"{title} not found under {str(root)!r} ({why}).\n"
        f"Put the four gzip files here{where}:\n{names}\n"
        "or the same names without .gz, decompressed; or set data.download=true (or pass "
        "--data-root to a folder that has them) on a machine with internet access."
    )


def _decompress(gz: Path, dest: Path, sha256: str | None = None) -> None:
    """Gunzip ``gz`` to ``dest`` atomically, checking the content against ``sha256`` if known."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with gzip.open(gz, "rb") as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DatasetNotFoundError(
                f"{gz} does not decompress to the standard MNIST file {dest.name} "
                f"(sha256 {digest.hexdigest()}, expected {sha256}); replace it"
            )
        os.replace(tmp, dest)  # a concurrent run decompressing the same file writes equal bytes
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetNotFoundError(f"cannot decompress {gz}: {e}; replace the file") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _prepare_idx(root: str | Path, download: bool, folder: str, known: bool) -> Path:
    """Make ``<root>/<folder>/raw`` hold the four decompressed idx files; return that folder.
    ``known``: check them against MNIST's sha256 (:data:`FILES`)."""
    from torchvision import datasets

    raw = _raw(root, folder)
    for name in FILES:
        dest, gz = raw / name, raw / f"{name}.gz"
        if not dest.is_file() and gz.is_file():
            _decompress(gz, dest, FILES[name] if known else None)
    if all((raw / name).is_file() for name in FILES):
        return raw
    if not download:
        raise DatasetNotFoundError(_missing_message(root, "and data.download is false", folder))
    try:
        getattr(datasets, folder)(str(root), train=True, download=True)
    except (RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f"download failed: {first}"
        raise DatasetNotFoundError(_missing_message(root, why, folder)) from e
    return raw


def prepare_mnist(root: str | Path, download: bool) -> Path:
    """Make ``<root>/MNIST/raw`` hold the four decompressed files; return that folder.

    Cheap when they are already there, so call it before any other work to fail early.
    """
    return _prepare_idx(root, download, "MNIST", known=True)


def prepare_fashion_mnist(root: str | Path, download: bool) -> Path:
    """Make ``<root>/FashionMNIST/raw`` hold Fashion-MNIST's four decompressed idx files (the
    same names as MNIST's); return that folder."""
    return _prepare_idx(root, download, "FashionMNIST", known=False)


def _check_idx(path: Path) -> None:
    """An idx file's header and length agree (torchvision's reader names no file when not)."""
    data = path.read_bytes()
    ndim = data[3] if len(data) >= 4 else 0
    ok = len(data) >= 4 + 4 * ndim and data[:3] == b"\x00\x00\x08" and ndim in (1, 3)
    if ok:
        dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        ok = len(data) == 4 + 4 * ndim + math.prod(dims)
    if not ok:
        raise DatasetNotFoundError(
            f"{path} cannot be read: it is not a complete idx file of uint8 images or labels "
            "(truncated or foreign); delete it so that it is made again from its .gz, or replace "
            "the .gz"
        )


@dataclass
class Splits:
    """The samples (``*_images``) and int64 labels ``[N]`` of the three splits, as stored: uint8
    images ``[N, 28, 28]``, or for the event datasets binned event counts ``[N, T, ...]``."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
    test_images: Tensor
    test_labels: Tensor

    def to(self, device: torch.device | str) -> Splits:
        """The same splits with every tensor on ``device``."""
        return Splits(*(t.to(device) for t in self.__dict__.values()))


def split_indices(
    n: int,
    val_size: int,
    split_seed: int,
    train_subset: int | None = None,
    val_subset: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The training and validation indices into ``n`` training samples.

    The split is a seeded random permutation, so every run with the same ``split_seed`` validates
    on the same samples, and no validation sample is ever trained on. Subsets take the first
    ``N`` of a split.
    """
    if not 0 < val_size < n:
        raise ConfigError(
            f"data.val_size={val_size} must leave training samples: the training set has {n}; "
            f"hold out about a tenth (data.val_size={max(1, n // 10)})"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    return train_idx[:train_subset], val_idx[:val_subset]


def _load_idx(
    folder: str,
    root: str | Path,
    download: bool,
    val_size: int,
    split_seed: int,
    train_subset: int | None,
    val_subset: int | None,
    test_subset: int | None,
) -> Splits:
    from torchvision import datasets

    raw = _prepare_idx(root, download, folder, known=folder == "MNIST")
    for name in FILES:
        _check_idx(raw / name)
    try:
        train = getattr(datasets, folder)(str(root), train=True, download=False)
        test = getattr(datasets, folder)(str(root), train=False, download=False)
    except Exception as e:  # foreign idx files: torchvision raises various types
        raise DatasetNotFoundError(
            f"the {folder} files in {raw} cannot be read ({type(e).__name__}: {e}); delete the "
            "decompressed files (without .gz) so that they are made again from the .gz files"
        ) from e
    train_idx, val_idx = split_indices(
        len(train.data), val_size, split_seed, train_subset, val_subset
    )
    return Splits(
        train.data[train_idx],
        train.targets[train_idx],
        train.data[val_idx],
        train.targets[val_idx],
        test.data[:test_subset],
        test.targets[:test_subset],
    )


def load_mnist(
    root: str | Path,
    *,
    download: bool = False,
    val_size: int = 5000,
    split_seed: int = 0,
    train_subset: int | None = None,
    val_subset: int | None = None,
    test_subset: int | None = None,
) -> Splits:
    """Load MNIST with torchvision and hold ``val_size`` of the 60k training images out
    (:func:`split_indices`). The test subset takes the first ``N`` of the official test order."""
    return _load_idx(
        "MNIST", root, download, val_size, split_seed, train_subset, val_subset, test_subset
    )


def load_fashion_mnist(
    root: str | Path,
    *,
    download: bool = False,
    val_size: int = 5000,
    split_seed: int = 0,
    train_subset: int | None = None,
    val_subset: int | None = None,
    test_subset: int | None = None,
) -> Splits:
    """Load Fashion-MNIST (60k training, 10k test images of ten kinds of clothing, 28x28) with
    torchvision, split as :func:`load_mnist` splits MNIST."""
    return _load_idx(
        "FashionMNIST", root, download, val_size, split_seed, train_subset, val_subset, test_subset
    )


def load_data(cfg: Config, device: torch.device, full_test: bool = False) -> Splits:
    """The splits ``cfg.data`` describes, on ``device``; ``full_test``: the whole test set."""
    d = cfg.data
    args = dict(
        download=d.download,
        val_size=d.val_size,
        split_seed=d.split_seed,
        train_subset=d.train_subset,
        val_subset=d.val_subset,
        test_subset=None if full_test else d.test_subset,
    )
    if d.dataset in ("nmnist", "shd"):
        from snn.training import events  # tonic only for the event datasets

        return events.load_events(cfg, **args).to(device)
    if d.dataset == "fashion_mnist":
        return load_fashion_mnist(d.root, **args).to(device)
    return load_mnist(d.root, **args).to(device)  # mnist, smnist, psmnist: the same images


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
