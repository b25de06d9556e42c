"""The event datasets, N-MNIST and the Spiking Heidelberg Digits, read by tonic and binned into
frames of event counts with tonic's ``ToFrame``, once, when they are loaded.

tonic is an optional extra (``pip install 'snn[neuromorphic]'``); without it these datasets
say so by name. Where the files belong, under ``data.root``:

* N-MNIST (Orchard et al. 2015): ``NMNIST/Train/<digit>/*.bin`` and ``NMNIST/Test/<digit>/*.bin``,
  one recording per file, each event 40 bits: x, y (one byte each), polarity (1 bit) and a
  23-bit timestamp in microseconds. Frames ``[T, 2, 34, 34]``.
* SHD (Cramer et al. 2020): ``SHD/shd_train.h5`` and ``SHD/shd_test.h5`` (HDF5: ``spikes/times``
  in seconds, ``spikes/units`` in 0..699, ``labels``, ``extra/...``). Frames ``[T, 700]``.

tonic's own presence check also wants the downloaded zip archives kept beside the extracted
files; here the extracted files suffice. ``encoding.kind`` picks the bins: ``time_bins`` (equal
spans of each recording, tonic's ``n_time_bins``; or, with ``encoding.bin_ms``, bins of that width
from t = 0, tonic's ``time_window``) or ``event_bins`` (equal numbers of events, tonic's
``n_event_bins``). tonic's time bins have a whole number of microseconds each and the last
event of a recording falls after the last bin, so a recording's frames hold all its events but
a few at its very end. The frames are stored as uint8 counts (int16 where a count exceeds 255):
60k N-MNIST recordings at T = 10 take 1.4 GB.

Binning reads every recording once (for N-MNIST, 70k files), so each split's
frames are cached beside the data, in ``<folder>/.snn-frames/`` (written atomically: a killed run
leaves no half file). A cache file is used only when everything that made it is unchanged: the
dataset, the binning (``encoding.kind``, ``num_steps``, ``bin_ms``), the recordings the split
holds, each source file's size and modification time, and tonic's version; anything else bins
afresh. ``data.cache_frames=false`` turns the cache off; a cache that cannot be written (a
read-only folder) or read (a damaged file) is reported with a warning and the frames are binned.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from snn.training.config import Config
from snn.training.data import DatasetNotFoundError, Splits, split_indices

__all__ = ["EXTRA", "MissingExtraError", "import_tonic", "frame_transform", "load_events"]

EXTRA = "neuromorphic"  # the pyproject.toml extra that installs tonic


class MissingExtraError(DatasetNotFoundError):
    """A dataset needs an optional package that is not installed."""


def import_tonic(dataset: str):
    """The tonic module, or :class:`MissingExtraError` naming the extra that installs it."""
    try:
        import tonic
    except ImportError as e:
        raise MissingExtraError(
            f"data.dataset={dataset} is read with tonic, which is not installed ({e}). Install "
            f"the extra: pip install 'snn[{EXTRA}]' (in a checkout: pip install -e '.[{EXTRA}]')"
        ) from e
    return tonic


def frame_transform(cfg: Config, sensor_size: tuple[int, int, int]):
    """tonic's ``ToFrame`` for ``cfg.encoding``: ``num_steps`` frames per recording."""
    tonic = import_tonic(cfg.data.dataset)
    e, steps = cfg.encoding, cfg.encoding.num_steps
    if e.kind == "event_bins":
        return tonic.transforms.ToFrame(sensor_size=sensor_size, n_event_bins=steps)
    if e.bin_ms is None:
        return tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=steps)
    window = e.bin_ms * 1000  # tonic's timestamps are microseconds
    return tonic.transforms.ToFrame(
        sensor_size=sensor_size, time_window=window, start_time=0, end_time=steps * window
    )


def _missing(dataset: str, where: Path, what: str, download: bool, why: str = "") -> str:
    fix = (
        "set data.download=true on a machine with internet access, or pass --data-root to a "
        "folder that holds them"
        if not download
        else "or pass --data-root to a folder that holds them"
    )
    return f"{dataset} not found{why}: put {what} in {where}; {fix}"


def _tonic_dataset(cfg: Config, train: bool, download: bool):
    """tonic's dataset of one split, present when its extracted files are."""
    tonic = import_tonic(cfg.data.dataset)
    root = Path(cfg.data.root)
    if cfg.data.dataset == "nmnist":
        folder = root / "NMNIST"
        what = "the recordings as Train/<digit>/*.bin and Test/<digit>/*.bin"

        class NMNIST(tonic.datasets.NMNIST):
            def _check_exists(self) -> bool:
                return any(Path(self.location_on_system, self.folder_name).glob("*/*.bin"))

            def download(self) -> None:
                _download(super().download, cfg.data.dataset, folder, what, download)

        return NMNIST(str(root), train=train)

    folder = root / "SHD"
    name = "shd_train.h5" if train else "shd_test.h5"
    what = "shd_train.h5 and shd_test.h5"

    class SHD(tonic.datasets.SHD):
        def _check_exists(self) -> bool:
            return Path(self.location_on_system, name).is_file()

        def download(self) -> None:
            _download(super().download, cfg.data.dataset, folder, what, download)

    try:
        return SHD(str(root), train=train)
    except DatasetNotFoundError:
        raise
    except (OSError, KeyError) as e:  # h5py: not HDF5, truncated, or without SHD's keys
        raise DatasetNotFoundError(
            f"{folder / name} cannot be read as an SHD file ({type(e).__name__}: {e}); replace it"
        ) from e


def _download(fetch, dataset: str, folder: Path, what: str, allowed: bool) -> None:
    if not allowed:
        raise DatasetNotFoundError(_missing(dataset, folder, what, False))
    try:
        fetch()
    except (RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f" (download failed: {first})"
        raise DatasetNotFoundError(_missing(dataset, folder, what, True, why)) from e


CACHE_FOLDER = ".snn-frames"
_CACHE_FORMAT = 1  # bump when the stored layout or the binning code changes


def _sources(ds, indices: torch.Tensor, dataset: str) -> list[Path]:
    if dataset == "nmnist":  # one file per recording
        return [Path(ds.data[i]) for i in indices.tolist()]
    return [Path(ds.location_on_system, ds.data_filename)]


def _cache_path(ds, indices: torch.Tensor, cfg: Config, split: str) -> Path:
    """The cache file of one split: its name hashes everything its frames depend on."""
    import tonic

    e, dataset = cfg.encoding, cfg.data.dataset
    sources = _sources(ds, indices, dataset)
    made_of = {
        "format": _CACHE_FORMAT,
        "tonic": tonic.__version__,
        "dataset": dataset,
        "binning": [e.kind, e.num_steps, e.bin_ms],
        "indices": hashlib.sha256(indices.numpy().astype(np.int64).tobytes()).hexdigest(),
        "sources": [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sources],
    }
    key = hashlib.sha256(json.dumps(made_of).encode()).hexdigest()[:20]
    folder = Path(cfg.data.root) / ("NMNIST" if dataset == "nmnist" else "SHD") / CACHE_FOLDER
    return folder / f"{split}-{key}.pt"


def _cached_frames(ds, indices: torch.Tensor, cfg: Config, split: str) -> tuple[torch.Tensor, ...]:
    """:func:`_frames`, through the cache file of the split (see the module docstring)."""
    if not cfg.data.cache_frames:
        return _frames(ds, indices, cfg, split)
    path = _cache_path(ds, indices, cfg, split)
    if path.is_file():
        try:
            stored = torch.load(path, weights_only=True)
            return stored["frames"], stored["labels"]
        except Exception as err:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            warnings.warn(
                f"the frame cache {path} cannot be read ({type(err).__name__}: {err}); binning "
                "the recordings again and replacing it",
                RuntimeWarning,
                stacklevel=2,
            )
    frames, labels = _frames(ds, indices, cfg, split)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"frames": frames, "labels": labels}, partial)
        os.replace(partial, path)  # atomic: readers see the whole file or none
    except OSError as err:
        partial.unlink(missing_ok=True)
        warnings.warn(
            f"the frame cache {path} cannot be written ({err}); the frames will be binned again "
            "next time (set data.cache_frames=false to skip the cache)",
            RuntimeWarning,
            stacklevel=2,
        )
    return frames, labels


def _frames(ds, indices: torch.Tensor, cfg: Config, split: str) -> tuple[torch.Tensor, ...]:
    """Frames ``[N, T, ...]`` and labels ``[N]`` of the recordings ``indices`` of ``ds``."""
    dataset, frames, labels = cfg.data.dataset, [], []
    for i in tqdm(
        indices.tolist(),
        desc=f"binning {dataset} {split}",
        disable=not cfg.log.progress,
        leave=False,
    ):
        try:
            counts, label = ds[i]
        except Exception as e:  # a truncated or foreign file: numpy/h5py raise various types
            source = (
                ds.data[i] if dataset == "nmnist" else Path(ds.location_on_system, ds.data_filename)
            )
            raise DatasetNotFoundError(
                f"{source} cannot be read as {dataset} recording {i} ({type(e).__name__}: {e}); "
                "replace the file"
            ) from e
        frames.append(counts.reshape(cfg.encoding.num_steps, *_FRAME[dataset]))
        labels.append(int(label))
    stacked = (
        np.stack(frames) if frames else np.zeros((0, cfg.encoding.num_steps, *_FRAME[dataset]))
    )
    dtype = torch.uint8 if stacked.max(initial=0) <= 255 else torch.int16
    return torch.from_numpy(stacked.astype(np.int16)).to(dtype), torch.tensor(labels)


_FRAME = {"nmnist": (2, 34, 34), "shd": (700,)}
_SENSOR = {"nmnist": (34, 34, 2), "shd": (700, 1, 1)}  # tonic's (x, y, polarity) sizes


def load_events(
    cfg: Config,
    *,
    download: bool,
    val_size: int,
    split_seed: int,
    train_subset: int | None,
    val_subset: int | None,
    test_subset: int | None,
) -> Splits:
    """The binned splits of ``cfg.data.dataset`` (``nmnist`` or ``shd``); the validation split is
    held out of the training recordings as :func:`snn.training.data.split_indices` does, and only
    the recordings a split uses are read."""
    transform = frame_transform(cfg, _SENSOR[cfg.data.dataset])
    train = _tonic_dataset(cfg, train=True, download=download)
    test = _tonic_dataset(cfg, train=False, download=download)
    train.transform = test.transform = transform
    train_idx, val_idx = split_indices(len(train), val_size, split_seed, train_subset, val_subset)
    test_idx = torch.arange(len(test))[:test_subset]
    return Splits(
        *_cached_frames(train, train_idx, cfg, "train"),
        *_cached_frames(train, val_idx, cfg, "validation"),
        *_cached_frames(test, test_idx, cfg, "test"),
    )
