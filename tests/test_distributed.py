"""Data-parallel training under torchrun (2 CPU processes, gloo) equals one process.

Both runs use the same global batch (``data.batch_size=64``: 32 per rank under torchrun) and the
deterministic latency encoding, so the spikes are a function of the image alone. Then the only
difference is the order of float additions (gloo averages the two ranks' gradients, one process
sums the whole batch at once), a few ulps per step, which Adam enlarges only where a gradient is
nearly zero: the weights agree to float tolerance, not bitwise. With Poisson encoding they would
differ by design: each rank draws its own spikes (``snn.training.encoding.encoding_seed``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import snn

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from snn.training.checkpoint import load_checkpoint  # noqa: E402
from snn.training.config import config_from_dict, load_config  # noqa: E402
from snn.training.encoding import encoding_seed  # noqa: E402
from snn.training.loss import readout_for  # noqa: E402
from snn.training.models import build_model  # noqa: E402

ARGS = [
    SMOKE,
    "encoding.kind=latency",
    "data.train_subset=512",
    "data.val_subset=200",
    "data.test_subset=200",
    "data.batch_size=64",
    "train.epochs=1",  # 8 steps
    "train.checkpoint_every=3",
    "log.progress=false",
    "log.plots=false",
]


# train.main sets the thread count and seeds torch's generator (tests/conftest.py undoes both)
pytestmark = pytest.mark.usefixtures("restore_torch_globals")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(
    nproc: int, *args: str, interrupt_at: str | None = None, script: Path = ROOT / "train.py"
) -> tuple[int, str, str]:
    """Run ``script`` (train.py) under torchrun; with ``interrupt_at`` (a ``fault_point``),
    press Ctrl-C (SIGINT to torchrun) while the ranks pause there. Exit code, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    marker = Path(args[-1].partition("=")[2] + ".paused")
    if interrupt_at:
        env.update(SNN_TEST_PAUSE=interrupt_at, SNN_TEST_PAUSE_FILE=str(marker))
        env["SNN_TEST_PAUSE_SECONDS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    cmd += ["--nnodes=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(
        [*cmd, str(script), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if interrupt_at:
            deadline = time.monotonic() + 90
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def only_run(out_dir: Path) -> Path:
    (run,) = [p for p in out_dir.iterdir() if p.is_dir()]
    return run


def test_two_gloo_processes_match_one_process(tmp_path):
    # Ctrl-C at step 5: torchrun passes SIGTERM to both ranks, which agree to stop after the
    # step, gather both generator states into last.pt and exit; a torchrun --resume finishes.
    code, out, err = torchrun(2, *ARGS, f"out_dir={tmp_path / 'ddp'}", interrupt_at="step:5")
    assert code != 0
    run = only_run(tmp_path / "ddp")
    stopped = load_checkpoint(run / "last.pt")
    assert stopped["progress"]["global_step"] == 5, out[-2000:] + err[-3000:]
    assert len(stopped["rng"]) == 2  # one generator state per rank
    code, out, err = torchrun(2, "--resume", str(run), "log.progress=false")
    assert code == 0, out[-2000:] + err[-3000:]
    assert out.count("epoch   1/1") == 1  # rank 0 alone prints
    assert "2 processes" in out and "resumed" in out
    assert train.main([*ARGS, f"out_dir={tmp_path / 'one'}"]) == 0

    ddp = load_checkpoint(run / "last.pt")
    one = load_checkpoint(only_run(tmp_path / "one") / "last.pt")
    assert ddp["progress"]["global_step"] == one["progress"]["global_step"] == 8
    assert len(ddp["rng"]) == 2 and len(one["rng"]) == 1  # one generator state per rank
    start = build_model(config_from_dict(one["config"]).model, readout_for(load_config(SMOKE)))
    # Adam divides by sqrt(v): on weights whose gradient is near zero (border pixels that
    # rarely spike) a rounding difference in the gradient becomes a visible fraction of a step.
    # Bound: 1 % of one Adam step (lr = 2e-3), and almost every weight within 1e-6.
    for name, w in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], w, rtol=0, atol=2e-5, msg=name)
        if w.is_floating_point() and w.numel() > 100:
            off = int(((ddp["model"][name] - w).abs() > 1e-6).sum())
            assert off <= w.numel() // 1000, (name, off)
    # and training did move the weights far beyond that tolerance
    moved = max(
        float((one["model"][n] - p).abs().max())
        for n, p in start.state_dict().items()
        if p.is_floating_point()
    )
    assert moved > 1e-3
    # the epoch summary is summed over ranks (rank 0's half alone would differ)
    (e_ddp,) = [r for r in map(json.loads, (run / "metrics.jsonl").open()) if r["kind"] == "epoch"]
    (e_one,) = [
        r
        for r in map(json.loads, (only_run(tmp_path / "one") / "metrics.jsonl").open())
        if r["kind"] == "epoch"
    ]
    assert abs(e_ddp["train_loss"] - e_one["train_loss"]) < 1e-5
    assert abs(e_ddp["train_acc"] - e_one["train_acc"]) <= 1 / 512


def test_global_batch_must_split_evenly_over_ranks(tmp_path, monkeypatch, capsys):
    # checked before the process group is joined, so torchrun's variables alone reach it
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert train.main([*ARGS, "data.batch_size=63", f"out_dir={tmp_path}"]) == 2
    assert "must be divisible by the 2 processes" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_each_rank_draws_its_own_poisson_spikes():
    seeds = {encoding_seed(0, r) for r in range(8)}
    assert len(seeds) == 8
    x = torch.full((4, 1, 28, 28), 0.5)
    a, b = (
        snn.encode.poisson(x, 8, generator=torch.Generator().manual_seed(s))
        for s in (encoding_seed(0, 0), encoding_seed(0, 1))
    )
    assert not torch.equal(a, b)


NAN_ON_RANK_1 = """
import math, os, sys
sys.path.insert(0, {root!r})
import train

real = train.loss_and_scores
calls = [0]


def nan_on_rank_1_from_step_3(out, y, cfg):
    loss, scores = real(out, y, cfg)
    calls[0] += 1
    if os.environ["RANK"] == "1" and calls[0] >= 3:
        loss = loss * math.nan
    return loss, scores


train.loss_and_scores = nan_on_rank_1_from_step_3
sys.exit(train.main())
"""


def test_a_nan_on_one_rank_stops_every_rank_at_that_step(tmp_path):
    """Rank 1's loss turns NaN at step 3. Its NaN reaches both ranks' averaged gradients, so both
    must stop before the optimizer step, with the message, not with a hung collective."""
    script = tmp_path / "nan_train.py"
    script.write_text(NAN_ON_RANK_1.format(root=str(ROOT)))
    t0 = time.monotonic()
    run_args = [*ARGS, "train.checkpoint_every=2", f"out_dir={tmp_path / 'run'}"]
    code, out, err = torchrun(2, *run_args, script=script)
    assert code == 1, out[-2000:] + err[-3000:]
    assert time.monotonic() - t0 < 100  # no rank waited for a collective timeout
    assert "the loss became nan on 1 of 2 processes at step 3" in err
    assert "the loss became non-finite on 1 of 2 processes at step 3" in err
    last = load_checkpoint(only_run(tmp_path / "run") / "last.pt")
    assert last["progress"]["global_step"] == 2
    weights = [w for name, w in last["model"].items() if name.endswith(("weight", "bias"))]
    assert len(weights) == 4 and all(bool(torch.isfinite(w).all()) for w in weights)
