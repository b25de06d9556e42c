"""Bad input across the public surface gets a clear error that names the problem (and the fix).

The table, input -> (exception, message pattern); every row is one test case:

  snn.LIF / snn.LIFCell
    LIF()(1-D tensor)                       ValueError  time-first input [T, B, ...] ... use LIFCell
    LIF()(int64 tensor)                     TypeError   floating-point input, got torch.int64
    LIF(check_input=True)(NaN)              ValueError  input holds 24 NaN and 0 Inf values
    LIF(check_input=True)(Inf)              ValueError  input holds 0 NaN and 24 Inf values
    LIF(shape=(4,))(features 5)             ValueError  per-neuron parameters of shape (4,)
    LIF().run(x, state of wrong shape)      ValueError  state shape (2, 5) does not match
    LIF(reset="foo")                        ValueError  reset must be one of
    LIF(beta=1.5)                           ValueError  beta must lie in [0, 1]
    LIF(surrogate="foo")                    ValueError  unknown surrogate 'foo'
    LIF(backend="foo")                      ValueError  backend must be one of
    LIFCell()(int32 tensor)                 TypeError   floating-point input, got torch.int32
    LIFCell(check_input=True)(NaN)          ValueError  input holds 6 NaN
    LIFCell()(x, state of wrong shape)      ValueError  state shape (4, 3) does not match
    LIFCell()(0-D tensor)                   ValueError  batch-first input [B, ...] ... x.reshape(1)
    FoldTime(conv)(1-D tensor)              ValueError  time-first input [T, B, ...]
  snn.encode
    poisson(uint8 tensor)                   TypeError   floating-point tensor ... use x.float()
    poisson(x, num_steps=0)                 ValueError  num_steps must be a positive number
    poisson(x, num_steps=-3)                ValueError  num_steps must be a positive number
    poisson(x, num_steps=2.5)               TypeError   num_steps must be an int
    poisson(NaN)                            ValueError  holds NaN or Inf
    poisson(list)                           TypeError   expects a torch.Tensor, got list
    poisson(x, gain=0 / -1 / NaN / Inf)     ValueError  gain must be a finite number > 0
    poisson(x, gain="2")                    TypeError   gain must be a finite number > 0, got str
    latency(x > 1)                          ValueError  inputs in [0, 1]
    latency(Inf)                            ValueError  holds NaN or Inf
    latency(x, num_steps=0)                 ValueError  num_steps must be a positive number
    latency(x, threshold=1 / NaN)           ValueError  threshold must be a number in [0, 1)
    latency(x, method="log", tau=0 / NaN)   ValueError  tau must be a finite number > 0
    delta(int64 tensor)                     TypeError   floating-point tensor
    delta(NaN)                              ValueError  holds NaN or Inf
    delta(x, threshold=0 / NaN)             ValueError  threshold must be a finite number > 0
  config (snn.config / train.py key=value)
    optim.lrr=1                             ConfigError unknown config key 'optim.lrr' (did you mean
    foo.bar=1                               ConfigError unknown config key 'foo'
    optim.lr=-1                             ConfigError 'optim.lr' got -1.0; ... > 0 and <= 10
    optim.lr=11 / .nan / .inf               ConfigError 'optim.lr' got 11.0; ... > 0 and <= 10
    train.py optim.lr=100                   exit 2      'optim.lr' got 100.0; ... <= 10
    data.batch_size=0                       ConfigError 'data.batch_size' ... an integer >= 1
    encoding.num_steps=0                    ConfigError 'encoding.num_steps' ... >= 1
    encoding.kind=rate                      ConfigError allowed values: poisson, latency
    model.hidden=[]                         ConfigError a non-empty list of widths
    train.epochs=two                        ConfigError 'train.epochs' must be int, got 'two'
    device=tpu                              ConfigError auto, cpu, cuda or cuda:N
    override "optim.lr" (no =)              ConfigError is not of the form key=value
    config file that does not exist         ConfigError config file ... does not exist
    batch 63 over 2 torchrun processes      exit 2      must be divisible by the 2 processes
  data, run folder, device
    data.root=<empty folder>                exit 2      MNIST not found under ... .gz
    out_dir under a regular file            exit 2      cannot create the run folder
    device=cuda with no GPU (cuda:99 w/ one) exit 2     cuda:N ... CUDA
    train.amp=true on CPU                   exit 2      needs a CUDA device
  NIR (snn.import_nir)
    .nir file with a Delay node             ValueError  does not support the NIR node type Delay
    import_nir(42)                          TypeError   expects a nir.NIRGraph or a path
    import_nir(path that does not exist)    FileNotFoundError  '<path>' does not exist; ... .nir
    import_nir(a folder)                    IsADirectoryError  '<path>' is a folder
    import_nir(a text file / other HDF5)    ValueError  '<path>' is not a NIR graph
  checkpoints
    --resume, last.pt of another width      exit 2      last.pt does not fit the model
    --eval, best.pt of another width        exit 2      does not fit the model its config describes
    --resume, last.pt of 2 processes        exit 2      written by 2 process(es) ... nproc_per_node
    truncated checkpoint                    CheckpointError  '<path>' is corrupt
    a plain torch.save file                 CheckpointError  not written by snn.checkpoint

Rows that go through ``train.main`` also check that no run folder was left behind half-made.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

import snn
from snn import encode
from snn.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from snn.training.config import ConfigError, apply_overrides, load_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
sys.path.insert(0, str(ROOT))
import train  # noqa: E402


class ExitError(Exception):
    """train.main returned a non-zero code; the message is what it printed to stderr."""


# train.main sets the thread count and seeds torch's generator (tests/conftest.py undoes both)
pytestmark = pytest.mark.usefixtures("restore_torch_globals")


def main(*args: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = train.main(list(args))
    if code != 0:
        raise ExitError(f"exit {code}: {err.getvalue()}")


def x(*shape: int, fill: float = 0.5, dtype=torch.float32) -> torch.Tensor:
    return torch.full(shape, fill).to(dtype)


def cfg(*overrides: str):
    return load_config(None, list(overrides))


def write_nir_with_delay(tmp: Path) -> str:
    path = tmp / "delay.nir"
    nir.write(str(path), nir.NIRGraph.from_list(nir.Delay(delay=np.array([1.0]))))
    return str(path)


def text_file(tmp: Path) -> Path:
    path = tmp / "notes.nir"
    path.write_text("not HDF5")
    return path


def smoke_run_dir(tmp: Path, hidden: int) -> Path:
    """A run folder of the smoke config whose last.pt holds a model of width ``hidden``."""
    run = tmp / "run"
    run.mkdir()
    c = load_config(SMOKE, [f"out_dir={tmp}"])
    train.save_config(c, run / "config.yaml")
    c.model.hidden = [hidden]
    model = train.build_model(c.model, train.readout_for(c))
    state = {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "progress": {}}
    save_checkpoint({**state, "rng": [{}], "config": train.config_to_dict(c)}, run / "last.pt")
    save_checkpoint({"model": model.state_dict(), "config": train.config_to_dict(c)}, run / "b.pt")
    return run


def resume_two_rank_checkpoint(tmp: Path) -> None:
    run = smoke_run_dir(tmp, hidden=128)  # the right width, but written by 2 processes
    state = load_checkpoint(run / "last.pt")
    state["rng"] = [{}, {}]
    save_checkpoint(state, run / "last.pt")
    main("--resume", str(run))


def truncated_checkpoint(tmp: Path) -> None:
    path = tmp / "last.pt"
    save_checkpoint({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    load_checkpoint(path)


def plain_torch_file(tmp: Path) -> None:
    torch.save({"w": 1}, tmp / "x.pt")
    load_checkpoint(tmp / "x.pt")


def run_folder_under_a_file(tmp: Path, monkeypatch=None) -> None:
    (tmp / "file").write_text("")
    main(SMOKE, f"out_dir={tmp / 'file' / 'runs'}", "log.progress=false")


def batch_not_divisible(tmp: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    main(SMOKE, f"out_dir={tmp / 'runs'}", "data.batch_size=63")


GPU = "cuda:99" if torch.cuda.is_available() else "cuda"

# (id, thunk(tmp_path, monkeypatch), exception type, message regex)
CASES = [
    ("LIF 1-D", lambda t, m: snn.LIF()(x(5)), ValueError, r"time-first input \[T, B, \.\.\.\]"),
    (
        "LIF int64",
        lambda t, m: snn.LIF()(x(3, 2, dtype=torch.int64)),
        TypeError,
        r"got torch.int64",
    ),
    (
        "LIF NaN",
        lambda t, m: snn.LIF(check_input=True)(x(3, 2, 4, fill=float("nan"))),
        ValueError,
        r"input holds 24 NaN and 0 Inf values",
    ),
    (
        "LIF Inf",
        lambda t, m: snn.LIF(check_input=True)(x(3, 2, 4, fill=float("inf"))),
        ValueError,
        r"input holds 0 NaN and 24 Inf values",
    ),
    (
        "LIF per-neuron shape",
        lambda t, m: snn.LIF(shape=(4,))(x(3, 2, 5)),
        ValueError,
        r"per-neuron parameters of shape \(4,\)",
    ),
    (
        "LIF.run state",
        lambda t, m: snn.LIF().run(x(3, 2, 4), state=x(2, 5)),
        ValueError,
        r"state shape \(2, 5\) does not match",
    ),
    ("LIF reset", lambda t, m: snn.LIF(reset="foo"), ValueError, r"reset must be one of"),
    ("LIF beta", lambda t, m: snn.LIF(beta=1.5), ValueError, r"beta must lie in \[0, 1\]"),
    (
        "LIF surrogate",
        lambda t, m: snn.LIF(surrogate="foo"),
        ValueError,
        r"unknown surrogate 'foo'",
    ),
    ("LIF backend", lambda t, m: snn.LIF(backend="foo"), ValueError, r"backend must be one of"),
    (
        "LIFCell int32",
        lambda t, m: snn.LIFCell()(x(2, 3, dtype=torch.int32)),
        TypeError,
        r"floating-point input, got torch.int32",
    ),
    (
        "LIFCell NaN",
        lambda t, m: snn.LIFCell(check_input=True)(x(2, 3, fill=float("nan"))),
        ValueError,
        r"input holds 6 NaN",
    ),
    (
        "LIFCell state",
        lambda t, m: snn.LIFCell()(x(2, 3), x(4, 3)),
        ValueError,
        r"state shape \(4, 3\) does not match",
    ),
    (
        "LIFCell 0-D",
        lambda t, m: snn.LIFCell()(torch.tensor(1.5)),
        ValueError,
        r"batch-first input \[B, \.\.\.\] \(at least 1-D\), got a 0-D tensor; .*x\.reshape\(1\)",
    ),
    (
        "FoldTime 1-D",
        lambda t, m: snn.FoldTime(torch.nn.Conv2d(1, 2, 3))(x(5)),
        ValueError,
        r"time-first input \[T, B, \.\.\.\]",
    ),
    (
        "poisson uint8",
        lambda t, m: encode.poisson(x(2, 3, dtype=torch.uint8), 5),
        TypeError,
        r"floating-point tensor, got torch.uint8; use x.float\(\)",
    ),
    ("poisson T=0", lambda t, m: encode.poisson(x(2, 3), 0), ValueError, r"positive .* got 0"),
    ("poisson T<0", lambda t, m: encode.poisson(x(2, 3), -3), ValueError, r"positive .* got -3"),
    ("poisson T float", lambda t, m: encode.poisson(x(2, 3), 2.5), TypeError, r"must be an int"),
    (
        "poisson NaN",
        lambda t, m: encode.poisson(x(2, fill=float("nan")), 5),
        ValueError,
        r"poisson input holds NaN or Inf",
    ),
    ("poisson list", lambda t, m: encode.poisson([0.1], 5), TypeError, r"got list"),
    *[
        (
            f"poisson gain {g}",
            lambda t, m, g=g: encode.poisson(x(2, 3), 5, gain=g),
            ValueError,
            rf"poisson's gain must be a finite number > 0 .*, got {g}",
        )
        for g in (0.0, -1.0, float("nan"), float("inf"))
    ],
    (
        "poisson gain str",
        lambda t, m: encode.poisson(x(2, 3), 5, gain="2"),
        TypeError,
        r"poisson's gain must be a finite number > 0 .*, got str",
    ),
    ("latency > 1", lambda t, m: encode.latency(x(2, fill=2.0), 5), ValueError, r"in \[0, 1\]"),
    (
        "latency Inf",
        lambda t, m: encode.latency(x(2, fill=float("inf")), 5),
        ValueError,
        r"latency input holds NaN or Inf",
    ),
    ("latency T=0", lambda t, m: encode.latency(x(2), 0), ValueError, r"positive .* got 0"),
    *[
        (
            f"latency threshold {thr}",
            lambda t, m, thr=thr: encode.latency(x(2), 5, threshold=thr),
            ValueError,
            rf"latency's threshold must be a number in \[0, 1\), got {thr}",
        )
        for thr in (1.0, float("nan"))
    ],
    *[
        (
            f"latency tau {tau}",
            lambda t, m, tau=tau: encode.latency(x(2), 5, method="log", tau=tau),
            ValueError,
            rf"latency's tau must be a finite number > 0 .*, got {tau}",
        )
        for tau in (0.0, float("nan"))
    ],
    (
        "delta int64",
        lambda t, m: encode.delta(x(3, 2, dtype=torch.int64)),
        TypeError,
        r"delta expects a floating-point tensor",
    ),
    (
        "delta NaN",
        lambda t, m: encode.delta(x(3, 2, fill=float("nan"))),
        ValueError,
        r"delta input holds NaN or Inf",
    ),
    *[
        (
            f"delta threshold {thr}",
            lambda t, m, thr=thr: encode.delta(x(3, 2), threshold=thr),
            ValueError,
            rf"delta's threshold must be a finite number > 0, got {thr}",
        )
        for thr in (0.0, float("nan"))
    ],
    (
        "config unknown key",
        lambda t, m: cfg("optim.lrr=1"),
        ConfigError,
        r"unknown config key 'optim.lrr' \(did you mean 'optim.lr'\?\)",
    ),
    ("config unknown section", lambda t, m: cfg("foo.bar=1"), ConfigError, r"unknown .* 'foo'"),
    (
        "config lr < 0",
        lambda t, m: cfg("optim.lr=-1"),
        ConfigError,
        r"'optim.lr' got -1.0; it must be a finite number > 0 and <= 10",
    ),
    *[
        (
            f"config lr {v}",
            lambda t, m, v=v: cfg(f"optim.lr={v}"),
            ConfigError,
            rf"'optim.lr' got {shown}; it must be a finite number > 0 and <= 10",
        )
        for v, shown in (("11", "11.0"), (".nan", "nan"), (".inf", "inf"))
    ],
    (
        "train.py lr too large",
        lambda t, m: main(SMOKE, f"out_dir={t / 'runs'}", "optim.lr=100"),
        ExitError,
        r"exit 2: .*'optim.lr' got 100.0; it must be a finite number > 0 and <= 10",
    ),
    (
        "config batch 0",
        lambda t, m: cfg("data.batch_size=0"),
        ConfigError,
        r"'data.batch_size' got 0; it must be an integer >= 1",
    ),
    (
        "config num_steps 0",
        lambda t, m: cfg("encoding.num_steps=0"),
        ConfigError,
        r"'encoding.num_steps' got 0; it must be an integer >= 1",
    ),
    (
        "config encoding kind",
        lambda t, m: cfg("encoding.kind=rate"),
        ConfigError,
        r"allowed values: poisson, latency",
    ),
    (
        "config empty hidden",
        lambda t, m: cfg("model.hidden=[]"),
        ConfigError,
        r"a non-empty list of widths",
    ),
    (
        "config wrong type",
        lambda t, m: cfg("train.epochs=two"),
        ConfigError,
        r"'train.epochs' must be int, got 'two'",
    ),
    ("config device", lambda t, m: cfg("device=tpu"), ConfigError, r"auto, cpu, cuda or cuda:N"),
    (
        "override without =",
        lambda t, m: apply_overrides({}, ["optim.lr"]),
        ConfigError,
        r"is not of the form key=value",
    ),
    (
        "config file missing",
        lambda t, m: load_config(t / "nope.yaml"),
        ConfigError,
        r"config file .*nope.yaml' does not exist",
    ),
    (
        "batch not divisible by ranks",
        batch_not_divisible,
        ExitError,
        r"exit 2: .*batch_size=63 is the global batch and must be divisible by the 2 processes",
    ),
    (
        "missing data folder",
        lambda t, m: main(SMOKE, f"out_dir={t / 'runs'}", f"data.root={t}", "data.download=false"),
        ExitError,
        r"exit 2: .*MNIST not found under .*train-images-idx3-ubyte\.gz",
    ),
    (
        "unwritable run folder",
        run_folder_under_a_file,
        ExitError,
        r"exit 2: .*cannot create the run folder .*set out_dir= to a writable folder",
    ),
    (
        "GPU where none",
        lambda t, m: main(SMOKE, f"out_dir={t / 'runs'}", f"device={GPU}"),
        ExitError,
        r"exit 2: .*device='cuda(:99)?' but .*(no CUDA GPU is available|CUDA device\(s\) exist)",
    ),
    (
        "amp on CPU",
        lambda t, m: main(SMOKE, f"out_dir={t / 'runs'}", "device=cpu", "train.amp=true"),
        ExitError,
        r"exit 2: .*train.amp=true \(bf16 autocast\) needs a CUDA device",
    ),
    (
        "NIR Delay node",
        lambda t, m: snn.import_nir(write_nir_with_delay(t)),
        ValueError,
        r"does not support the NIR node type Delay \(node 'delay'\); supported: Affine",
    ),
    (
        "NIR not a graph",
        lambda t, m: snn.import_nir(42),
        TypeError,
        r"expects a nir.NIRGraph or a path to a .nir file, got int",
    ),
    (
        "NIR missing file",
        lambda t, m: snn.import_nir(t / "model.nir"),
        FileNotFoundError,
        r"model.nir' does not exist; import_nir expects a .nir file, as nir.write",
    ),
    (
        "NIR folder",
        lambda t, m: snn.import_nir(str(t)),
        IsADirectoryError,
        r"' is a folder; import_nir expects a .nir file",
    ),
    (
        "NIR not a NIR file",
        lambda t, m: snn.import_nir(text_file(t)),
        ValueError,
        r"notes.nir' is not a NIR graph \(.*\); import_nir expects a .nir file",
    ),
    (
        "resume other width",
        lambda t, m: main("--resume", str(smoke_run_dir(t, hidden=64)), "log.progress=false"),
        ExitError,
        r"exit 2: .*last.pt does not fit the model of .*size mismatch",
    ),
    (
        "eval other width",
        lambda t, m: main("--eval", str(smoke_run_dir(t, hidden=64) / "b.pt"), "model.hidden=[32]"),
        ExitError,
        r"exit 2: .*b.pt does not fit the model its config describes",
    ),
    (
        "resume 2-process run",
        lambda t, m: resume_two_rank_checkpoint(t),
        ExitError,
        r"exit 2: .*written by 2 process\(es\), this run has 1; resume with --nproc_per_node=2",
    ),
    ("truncated checkpoint", lambda t, m: truncated_checkpoint(t), CheckpointError, r"is corrupt"),
    (
        "plain torch.save file",
        lambda t, m: plain_torch_file(t),
        CheckpointError,
        r"x.pt' was not written by snn.checkpoint",
    ),
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("thunk,kind,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(tmp_path, monkeypatch, thunk, kind, pattern):
    before = set(tmp_path.rglob("*"))
    with pytest.raises(kind) as info:
        thunk(tmp_path, monkeypatch)
    assert re.search(pattern, str(info.value), re.S), str(info.value)
    if kind is ExitError:
        assert "Traceback" not in str(info.value)
        made = set(tmp_path.rglob("*")) - before
        # nothing half-made: no run folder beyond what the case itself prepared
        assert not [p for p in made if p.name.startswith("smoke-")], made
