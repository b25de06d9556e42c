"""The datasets beyond MNIST: files written here in each dataset's real on-disk format (N-MNIST's
40-bit event files in its folder layout, SHD's HDF5, Fashion-MNIST's idx gz files) are read
through the real loaders (tonic, torchvision) and checked against what was written; the pixel
missing and corrupt data; a few training steps each.
Nothing here downloads anything. The pixel sequences of S-MNIST: tests/test_sequences.py."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _event_files import write_nmnist, write_shd

from snn.training.config import ConfigError, load_config
from snn.training.data import DatasetNotFoundError, load_data
from snn.training.encoding import encode, model_io

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402

needs_tonic = pytest.mark.skipif(
    importlib.util.find_spec("tonic") is None,
    reason="tonic, the neuromorphic extra: pip install -e '.[neuromorphic]'",
)

CPU = torch.device("cpu")


# train.main sets the thread count and seeds torch's generator (tests/conftest.py undoes both)
pytestmark = pytest.mark.usefixtures("restore_torch_globals")


def config(root: Path, dataset: str, *overrides: str):
    return load_config(
        None, [f"data.dataset={dataset}", f"data.root={root}", "data.download=false", *overrides]
    )


def records(out_dir: Path, kind: str) -> list[dict]:
    (run,) = [p for p in out_dir.iterdir() if p.is_dir()]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def by_content(frames: torch.Tensor) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for f in frames:
        key = f.numpy().tobytes()
        out[key] = out.get(key, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# N-MNIST


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmnist")
    return root, write_nmnist(root, {"Train": 4, "Test": 2})


def nmnist_histogram(rec: dict, steps: int, bin_us: int) -> np.ndarray:
    """Frames [T, 2, 34, 34] of one recording: events counted by (t // bin_us, p, y, x)."""
    out = np.zeros((steps, 2, 34, 34), dtype=np.int64)
    bins = rec["t"] // bin_us
    keep = bins < steps
    np.add.at(out, (bins[keep], rec["p"][keep], rec["y"][keep], rec["x"][keep]), 1)
    return out


@needs_tonic
def test_nmnist_event_files_load_through_tonic(nmnist_root):
    root, written = nmnist_root
    steps, bin_ms = 6, 50  # 6 x 50 ms = the 300 ms of each recording
    cfg = config(
        root,
        "nmnist",
        "encoding.kind=time_bins",
        f"encoding.num_steps={steps}",
        f"encoding.bin_ms={bin_ms}",
        "data.val_size=8",
    )
    data = load_data(cfg, CPU)
    assert data.train_images.shape == (32, steps, 2, 34, 34)
    assert data.val_images.shape == (8, steps, 2, 34, 34)
    assert data.test_images.shape == (20, steps, 2, 34, 34)
    assert data.train_images.dtype == torch.uint8
    # the test split in the loader's order (digit folders, then files): frames and labels exact
    expected = [nmnist_histogram(r, steps, bin_ms * 1000) for r in written["Test"]]
    assert np.array_equal(data.test_images.numpy(), np.stack(expected))
    assert data.test_labels.tolist() == [r["label"] for r in written["Test"]]
    # every event lands in a frame: each recording is shorter than 6 x 50 ms
    counts = data.test_images.flatten(1).sum(1).tolist()
    assert counts == [len(r["t"]) for r in written["Test"]]
    # train + validation are the training recordings, each once, with their labels
    train = [nmnist_histogram(r, steps, bin_ms * 1000) for r in written["Train"]]
    assert by_content(torch.cat([data.train_images, data.val_images])) == by_content(
        torch.from_numpy(np.stack(train)).to(torch.uint8)
    )
    labels = torch.cat([data.train_labels, data.val_labels])
    assert torch.bincount(labels).tolist() == [4] * 10
    # the encoding hands the frames to the network time-first
    cfg_io = model_io(cfg)
    assert cfg_io.input_shape == (2, 34, 34) and cfg_io.num_classes == 10
    x = encode(data.test_images[:3], cfg, torch.Generator())
    assert x.shape == (steps, 3, 2, 34, 34) and x.dtype == torch.float32
    assert torch.equal(x[:, 1], data.test_images[1].float())


@needs_tonic
def test_nmnist_time_and_event_bins(nmnist_root):
    root, written = nmnist_root
    steps = 5
    subset = ("data.val_size=1", "data.train_subset=1")
    cfg = config(root, "nmnist", "encoding.kind=event_bins", f"encoding.num_steps={steps}", *subset)
    data = load_data(cfg, CPU)
    for frames, rec in zip(data.test_images, written["Test"], strict=True):
        # equal numbers of events per frame: n // T each (tonic drops the remainder)
        assert frames.flatten(1).sum(1).tolist() == [len(rec["t"]) // steps] * steps
    cfg = config(root, "nmnist", "encoding.kind=time_bins", f"encoding.num_steps={steps}", *subset)
    data = load_data(cfg, CPU)
    for frames, rec in zip(data.test_images, written["Test"], strict=True):
        # T equal spans of whole microseconds from the first event: what falls inside is counted
        t = rec["t"]
        width = (t[-1] - t[0]) // steps
        edges = t[0] + width * np.arange(steps + 1)
        per_bin = np.histogram(t[t < edges[-1]], bins=edges)[0]
        assert frames.flatten(1).sum(1).tolist() == per_bin.tolist()
        assert sum(per_bin) >= len(t) - 5  # all but the last few events


# ---------------------------------------------------------------------------------------------
# SHD


@pytest.fixture(scope="module")
def shd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shd")
    train = write_shd(root / "SHD" / "shd_train.h5", [i % 20 for i in range(60)], seed=0)
    test = write_shd(root / "SHD" / "shd_test.h5", [(3 * i) % 20 for i in range(20)], seed=1)
    return root, train, test


@needs_tonic
def test_shd_hdf5_loads_through_tonic(shd_root):
    root, _, test = shd_root
    steps, bin_ms = 90, 10  # 90 x 10 ms = the 900 ms of each recording
    cfg = config(
        root,
        "shd",
        "encoding.kind=time_bins",
        f"encoding.num_steps={steps}",
        f"encoding.bin_ms={bin_ms}",
        "data.val_size=10",
    )
    data = load_data(cfg, CPU)
    assert data.train_images.shape == (50, steps, 700)
    assert data.val_images.shape == (10, steps, 700)
    assert data.test_images.shape == (20, steps, 700)
    assert data.test_labels.tolist() == [s["label"] for s in test]
    for frames, s in zip(data.test_images, test, strict=True):
        expected = np.zeros((steps, 700), dtype=np.int64)
        np.add.at(expected, (s["ms"] // bin_ms, s["unit"]), 1)
        assert np.array_equal(frames.numpy(), expected)
    assert data.test_images.flatten(1).sum(1).tolist() == [len(s["ms"]) for s in test]
    assert model_io(cfg).input_shape == (700,) and model_io(cfg).num_classes == 20
    assert encode(data.test_images[:2], cfg, torch.Generator()).shape == (steps, 2, 700)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """An idx file (big-endian: 0, 0, type 0x08 = uint8, ndim; then each dimension as 4 bytes),
    gzip-compressed."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_root(tmp_path, monkeypatch):
    import torchvision

    def no_download(*args, **kwargs):
        raise AssertionError("torchvision tried to download although the files are here")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", no_download)
    rng = np.random.default_rng(0)
    raw = tmp_path / "FashionMNIST" / "raw"
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (40, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(40) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(12) * 7) % 10,
    }
    arrays = {name: a.astype(np.uint8) for name, a in arrays.items()}
    for name, a in arrays.items():
        write_idx_gz(raw / f"{name}.gz", a)
    return tmp_path, arrays


def test_fashion_mnist_idx_gz_files_load_through_torchvision(fashion_root):
    root, arrays = fashion_root
    cfg = config(root, "fashion_mnist", "data.val_size=10")
    data = load_data(cfg, CPU)
    assert data.train_images.shape == (30, 28, 28) and data.val_images.shape == (10, 28, 28)
    assert np.array_equal(data.test_images.numpy(), arrays["t10k-images-idx3-ubyte"])
    assert data.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    both = torch.cat([data.train_images, data.val_images])
    assert by_content(both) == by_content(torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert model_io(cfg).input_shape == (1, 28, 28)
    x = encode(data.test_images[:2], cfg, torch.Generator().manual_seed(0))
    assert x.shape == (cfg.encoding.num_steps, 2, 1, 28, 28)


# ---------------------------------------------------------------------------------------------
# errors: no tonic, no data, corrupt files, wrong combinations


def test_missing_tonic_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)  # import tonic raises ImportError
    for dataset in ("nmnist", "shd"):
        cfg = config(tmp_path, dataset, "encoding.kind=time_bins")
        with pytest.raises(DatasetNotFoundError) as info:
            load_data(cfg, CPU)
        assert "pip install 'snn[neuromorphic]'" in str(info.value), info.value
        assert f"data.dataset={dataset}" in str(info.value)


@pytest.mark.parametrize(
    "dataset, place",
    [
        pytest.param("nmnist", "NMNIST", marks=needs_tonic),
        pytest.param("shd", "SHD", marks=needs_tonic),
        ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte.gz"),
    ],
)
def test_missing_data_offline_names_the_folder(tmp_path, capsys, dataset, place):
    root = tmp_path / "nodata"
    kind = "poisson" if dataset == "fashion_mnist" else "time_bins"
    args = [f"data.dataset={dataset}", f"encoding.kind={kind}", "data.download=false"]
    if dataset != "fashion_mnist":
        args.append("data.shift=0")  # the default recipe shifts images; events cannot be shifted
    code = train.main([f"out_dir={tmp_path / 'runs'}", "--data-root", str(root), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert str(root / place) in err and "data.download=true" in err, err
    assert "cannot be read" not in err  # missing, not corrupt
    assert not (tmp_path / "runs").exists()


@needs_tonic
@pytest.mark.parametrize("dataset, folder", [("nmnist", "NMNIST"), ("shd", "SHD")])
def test_failed_download_is_reported(tmp_path, monkeypatch, dataset, folder):
    import tonic

    # a port nothing listens on: the connection is refused at once, as offline
    monkeypatch.setattr(tonic.datasets.NMNIST, "train_url", "http://127.0.0.1:9/train.zip")
    monkeypatch.setattr(tonic.datasets.SHD, "base_url", "http://127.0.0.1:9/")
    cfg = config(tmp_path, dataset, "encoding.kind=time_bins", "data.download=true")
    with pytest.raises(DatasetNotFoundError) as info:
        load_data(cfg, CPU)
    assert "download failed" in str(info.value) and str(tmp_path / folder) in str(info.value)


SPLIT_FIELDS = ("train_images", "train_labels", "val_images", "val_labels", "test_images")


@needs_tonic
def test_binned_frames_are_cached_until_what_made_them_changes(tmp_path, nmnist_root, monkeypatch):
    import shutil

    import tonic

    root = tmp_path / "n"
    shutil.copytree(
        nmnist_root[0] / "NMNIST", root / "NMNIST", ignore=shutil.ignore_patterns(".snn-frames")
    )
    bins = ("encoding.kind=time_bins", "encoding.num_steps=6", "encoding.bin_ms=50")
    first = load_data(config(root, "nmnist", *bins, "data.val_size=8"), CPU)
    assert len(list((root / "NMNIST" / ".snn-frames").glob("*.pt"))) == 3  # one file per split
    assert not list((root / "NMNIST" / ".snn-frames").glob("*.partial"))

    opened = []
    read = tonic.datasets.NMNIST.__getitem__
    monkeypatch.setattr(
        tonic.datasets.NMNIST, "__getitem__", lambda self, i: opened.append(i) or read(self, i)
    )
    again = load_data(config(root, "nmnist", *bins, "data.val_size=8"), CPU)
    assert opened == []  # every split from the cache, no recording read
    for name in SPLIT_FIELDS:
        assert torch.equal(getattr(again, name), getattr(first, name)), name

    # other bins, or another validation split, are binned afresh
    other = load_data(config(root, "nmnist", "encoding.kind=time_bins", "encoding.num_steps=3",
                             "encoding.bin_ms=100", "data.val_size=8"), CPU)  # fmt: skip
    assert other.test_images.shape[1] == 3 and len(opened) == 60  # all 40 + 20 recordings
    assert torch.equal(other.test_images.sum(1), first.test_images.sum(1))
    load_data(config(root, "nmnist", *bins, "data.val_size=4"), CPU)
    assert len(opened) == 100  # train and validation again; the test split from its cache

    # a recording rewritten (each of its events twice) is read again, with its new events
    changed = root / "NMNIST" / "Test" / "3" / "00001.bin"
    changed.write_bytes(changed.read_bytes() * 2)
    opened.clear()
    new = load_data(config(root, "nmnist", *bins, "data.val_size=8"), CPU)
    assert len(opened) == 20  # the test split only
    added = new.test_images.long().sum() - first.test_images.long().sum()
    assert added == len(changed.read_bytes()) // 2 // 5  # 5 bytes an event

    # a damaged cache file is reported and rebuilt; data.cache_frames=false writes none
    for path in (root / "NMNIST" / ".snn-frames").glob("*.pt"):
        path.write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        rebuilt = load_data(config(root, "nmnist", *bins, "data.val_size=8"), CPU)
    assert torch.equal(rebuilt.test_images, new.test_images)
    shutil.rmtree(root / "NMNIST" / ".snn-frames")
    load_data(config(root, "nmnist", *bins, "data.val_size=8", "data.cache_frames=false"), CPU)
    assert not (root / "NMNIST" / ".snn-frames").exists()


@needs_tonic
def test_corrupt_files_are_named(tmp_path, nmnist_root, shd_root):
    import shutil

    # N-MNIST: a file cut in the middle of an event
    root = tmp_path / "n"
    shutil.copytree(nmnist_root[0] / "NMNIST", root / "NMNIST")
    bad = root / "NMNIST" / "Test" / "3" / "00001.bin"
    bad.write_bytes(bad.read_bytes()[:-2])
    cfg = config(root, "nmnist", "encoding.kind=time_bins", "data.val_size=1")
    with pytest.raises(DatasetNotFoundError, match=str(bad)):
        load_data(cfg, CPU)
    # SHD: not an HDF5 file at all
    root = tmp_path / "s"
    shutil.copytree(shd_root[0] / "SHD", root / "SHD")
    (root / "SHD" / "shd_test.h5").write_bytes(b"not an hdf5 file")
    cfg = config(root, "shd", "encoding.kind=time_bins", "data.val_size=1")
    with pytest.raises(DatasetNotFoundError, match=str(root / "SHD" / "shd_test.h5")):
        load_data(cfg, CPU)
    # Fashion-MNIST: a truncated idx file inside a valid gzip
    raw = tmp_path / "f" / "FashionMNIST" / "raw"
    shapes = {"train-images-idx3-ubyte": (5, 28, 28), "train-labels-idx1-ubyte": (5,)}
    shapes.update({"t10k-images-idx3-ubyte": (3, 28, 28), "t10k-labels-idx1-ubyte": (3,)})
    for name, shape in shapes.items():
        write_idx_gz(raw / f"{name}.gz", np.zeros(shape))
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    with pytest.raises(DatasetNotFoundError, match="t10k-images-idx3-ubyte cannot be read"):
        load_data(config(tmp_path / "f", "fashion_mnist", "data.val_size=1"), CPU)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["data.dataset=smnist"], "set encoding.kind to one of: current, crossings"),
        (["data.dataset=nmnist"], "set encoding.kind to one of: time_bins, event_bins"),
        (["data.dataset=mnist", "encoding.kind=time_bins"], "one of: poisson, latency"),
        (["data.dataset=shd", "encoding.kind=time_bins", "model.kind=cnn"], "needs images"),
        (["data.dataset=nmnist", "encoding.kind=event_bins", "encoding.bin_ms=5"], "bin_ms"),
        (
            [
                "data.dataset=nmnist",
                "encoding.kind=time_bins",
                "model.kind=cnn",
                "model.channels=[4,4,4,4,4,4]",
            ],
            "34x34 image, so at most 5",
        ),
        (["encoding.levels=0"], "1..255"),
        (["model.neuron.kind=izhikevich"], "lif, cuba_lif, alif"),
        (["model.neuron.rho=1.5"], "[0, 1]"),
    ],
)
def test_impossible_combinations_are_named(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, overrides)


@needs_tonic
def test_a_validation_split_larger_than_the_dataset_is_named(shd_root):
    cfg = config(shd_root[0], "shd", "encoding.kind=time_bins")  # val_size 5000 of 60
    with pytest.raises(ConfigError, match=r"data.val_size=5000 .* has 60"):
        load_data(cfg, CPU)


# ---------------------------------------------------------------------------------------------
# a few training steps on each


@needs_tonic
def test_nmnist_cnn_trains_a_few_steps(tmp_path, nmnist_root):
    code = train.main(
        [
            str(ROOT / "configs" / "nmnist_cnn.yaml"),
            f"out_dir={tmp_path}",
            f"data.root={nmnist_root[0]}",
            "data.val_size=8",
            "data.batch_size=8",
            "data.eval_batch_size=16",
            "model.channels=[4, 8]",
            "model.hidden=[32]",
            "log.plots=false",
            "train.epochs=1",
            "train.threads=1",
            "optim.schedule=cosine",
            "log.progress=false",
        ]
    )
    assert code == 0
    (epoch,) = records(tmp_path, "epoch")
    assert epoch["step"] == 4
    (test,) = records(tmp_path, "test")
    assert test["test_images"] == 20


@needs_tonic
def test_shd_rsnn_trains_a_few_steps(tmp_path, shd_root):
    code = train.main(
        [
            str(ROOT / "configs" / "shd_rsnn.yaml"),
            f"out_dir={tmp_path}",
            f"data.root={shd_root[0]}",
            "data.val_size=12",
            "data.batch_size=16",
            "encoding.num_steps=20",
            "model.hidden=[32]",
            "train.epochs=1",
            "train.threads=1",
            "optim.schedule=cosine",
            "log.progress=false",
        ]
    )
    assert code == 0
    (epoch,) = records(tmp_path, "epoch")
    assert epoch["step"] == 3 and set(epoch["rates"]) == {"2"}  # the recurrent ALIF layer
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (run / "confusion.png").stat().st_size > 10_000  # 20 classes
