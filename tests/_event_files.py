"""Small files in the real on-disk formats of N-MNIST and SHD, written from the format
descriptions (not by the loaders under test), for tests/test_datasets.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def nmnist_bytes(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> bytes:
    """N-MNIST's 40-bit events (Orchard et al. 2015): byte 0 is x, byte 1 is y, then bit 39 is
    the polarity and bits 38..0 ... the 23-bit timestamp in microseconds, most significant first."""
    assert t.max() < 1 << 23, "timestamps above 2^23 us need overflow events"
    out = np.zeros((len(x), 5), dtype=np.uint8)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = (p.astype(np.uint32) << 7) | ((t >> 16) & 0x7F)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


def random_events(rng: np.random.Generator, n: int, duration_us: int) -> dict[str, np.ndarray]:
    return {
        "x": rng.integers(0, 34, n),
        "y": rng.integers(0, 34, n),
        "p": rng.integers(0, 2, n),
        "t": np.sort(rng.integers(0, duration_us, n)),
    }


def write_nmnist(root: Path, per_digit: dict[str, int], seed: int = 0) -> dict[str, list[dict]]:
    """``root/NMNIST/{Train,Test}/<digit>/<id>.bin``; returns each split's recordings in the order
    the loader lists them (digit folders, then file names, sorted), with their labels."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[dict]] = {}
    for split, count in per_digit.items():
        written[split] = []
        for digit in range(10):
            folder = root / "NMNIST" / split / str(digit)
            folder.mkdir(parents=True)
            for k in range(count):
                ev = random_events(rng, int(rng.integers(150, 400)), 300_000)
                (folder / f"{k:05d}.bin").write_bytes(nmnist_bytes(**ev))
                written[split].append({**ev, "label": digit})
    return written


def write_shd(path: Path, labels: list[int], seed: int = 0) -> list[dict]:
    """An SHD file (Cramer et al. 2020): ``spikes/times`` (seconds) and ``spikes/units`` (0..699)
    as variable-length arrays, ``labels``, and ``extra/{keys,speaker,meta_info}``. Spike times are
    whole milliseconds plus half a millisecond, so that no time sits on a bin edge."""
    import h5py

    rng = np.random.default_rng(seed)
    samples = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(labels),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(labels),), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(len(labels)):
            n = int(rng.integers(100, 300))
            ms = np.sort(rng.integers(0, 900, n))
            unit = rng.integers(0, 700, n)
            times[i] = ((ms + 0.5) / 1000).astype(np.float32)
            units[i] = unit.astype(np.uint16)
            samples.append({"ms": ms, "unit": unit, "label": labels[i]})
        f["labels"] = np.array(labels, dtype=np.uint16)
        keys = [f"{lang}-{d}" for lang in ("english", "german") for d in range(10)]
        f["extra/keys"] = np.array(keys, dtype="S")
        f["extra/speaker"] = rng.integers(0, 12, len(labels)).astype(np.uint16)
        f["extra/meta_info/gender"] = np.array([b"female"] * len(labels))
    return samples
