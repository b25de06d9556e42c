"""MNIST loading: the shipped .gz files, the validation split, batch order, missing data."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.datasets import MNIST

from snn.training.data import (
    FILES,
    DatasetNotFoundError,
    epoch_order,
    load_mnist,
    num_batches,
    prepare_mnist,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
# per-digit label counts of the genuine set (data/MNIST/README.md), a fact independent of our code
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def splits():
    return load_mnist(DATA, download=False)


def test_shipped_gz_files_become_torchvision_layout(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        shutil.copy(DATA / "MNIST" / "raw" / f"{name}.gz", raw)

    def no_download(*args, **kwargs):
        raise AssertionError("torchvision tried to download although the files are here")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", no_download)
    assert prepare_mnist(tmp_path, download=True) == raw
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".gz")) == sorted(FILES)
    assert not list(raw.glob(".*.tmp"))
    test = MNIST(str(tmp_path), train=False, download=True)
    assert torch.bincount(test.targets).tolist() == TEST_COUNTS


def test_splits(splits):
    assert splits.train_images.shape == (55000, 28, 28)
    assert splits.val_images.shape == (5000, 28, 28)
    assert splits.test_images.shape == (10000, 28, 28)
    assert splits.train_images.dtype == torch.uint8
    # train + validation is the whole training set: per-digit counts add up exactly
    both = torch.cat([splits.train_labels, splits.val_labels])
    assert torch.bincount(both).tolist() == TRAIN_COUNTS
    assert torch.bincount(splits.test_labels).tolist() == TEST_COUNTS
    # the mean pixel of the 60k training images, from the dataset's provenance notes
    pixels = torch.cat([splits.train_images, splits.val_images]).double().mean()
    assert abs(float(pixels) - 33.318) < 1e-3


def test_split_is_seeded_and_disjoint(splits):
    again = load_mnist(DATA, val_size=5000, split_seed=0)
    assert torch.equal(again.val_images, splits.val_images)
    other = load_mnist(DATA, val_size=5000, split_seed=1)
    assert not torch.equal(other.val_labels, splits.val_labels)
    # no validation image appears among the training images (compare raw bytes)
    train = {bytes(im.numpy()) for im in splits.train_images}
    val = [bytes(im.numpy()) for im in splits.val_images]
    shared = sum(v in train for v in val)
    # MNIST holds a handful of byte-identical duplicates; a leaking split would share ~thousands
    assert shared <= 5


def test_subsets_take_the_first_images(splits):
    small = load_mnist(DATA, train_subset=100, val_subset=10, test_subset=20)
    assert torch.equal(small.train_images, splits.train_images[:100])
    assert torch.equal(small.val_labels, splits.val_labels[:10])
    assert torch.equal(small.test_labels, splits.test_labels[:20])


def test_epoch_order_is_a_pure_seeded_permutation():
    a = epoch_order(1000, epoch=3, seed=7, batch_size=32)
    assert a.shape == (num_batches(1000, 32), 32) == (31, 32)
    assert len(set(a.flatten().tolist())) == 31 * 32  # no index twice
    assert torch.equal(a, epoch_order(1000, epoch=3, seed=7, batch_size=32))
    assert not torch.equal(a, epoch_order(1000, epoch=4, seed=7, batch_size=32))
    # two ranks get disjoint shards of the same permutation
    r0 = epoch_order(1000, 3, 7, 16, rank=0, world_size=2).flatten()
    r1 = epoch_order(1000, 3, 7, 16, rank=1, world_size=2).flatten()
    assert not set(r0.tolist()) & set(r1.tolist())


def test_missing_data_offline_says_where_files_go(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_mnist(tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in msg
    assert "data.download" in msg


def test_failed_download_is_reported(tmp_path, monkeypatch):
    # a port nothing listens on: the connection is refused at once, as offline
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_mnist(tmp_path, download=True)
    assert "download failed" in str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


def test_corrupt_gz_is_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetNotFoundError, match="train-labels-idx1-ubyte.gz"):
        prepare_mnist(tmp_path, download=False)
    with gzip.open(raw / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + b"\x00" * 20)  # valid gzip, wrong content
    with pytest.raises(DatasetNotFoundError, match="sha256"):
        prepare_mnist(tmp_path, download=False)
    assert not (raw / "train-labels-idx1-ubyte").exists()


def test_unreadable_decompressed_files_are_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 8)  # a header and nothing else
    with pytest.raises(DatasetNotFoundError, match="cannot be read"):
        load_mnist(tmp_path)
