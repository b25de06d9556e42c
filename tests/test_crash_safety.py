"""A real training run killed at chosen points resumes to bitwise the same result on CPU.

Each case starts ``train.py`` as a subprocess with the test hook ``SNN_TEST_PAUSE=<point>:<n>`` (see
``snn.training.interrupts.fault_point``): the n-th time the run reaches the point it touches a
marker file and sleeps, and the test SIGKILLs it there. The points: in the middle of a training step
(after backward, before the optimizer step), inside evaluation, and with ``last.pt``'s temporary
file half written. The n are drawn from a seeded generator, so a failure names a reproducible case.
Then ``--resume`` finishes the run, and its weights, optimizer state, progress and logs must equal
those of a run never stopped, bit for bit, with dropout on (the default recipe's). SIGINT
instead finishes the step, saves and exits 130.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from snn.training.checkpoint import CheckpointError, load_checkpoint, previous_path  # noqa: E402

ARGS = [
    str(ROOT / "configs" / "smoke.yaml"),
    "data.train_subset=512",  # 8 steps of 64 per epoch
    "data.val_subset=200",
    "data.test_subset=200",
    "train.epochs=2",
    "train.checkpoint_every=3",
    "model.dropout=0.3",  # dropout on: its masks come from torch's generator, saved in last.pt
    "log.plots=false",
    "log.progress=false",
]
STEPS = 16
PICK = random.Random(2026)  # the kill points; fixed, so a failure is reproducible


# train.main sets the thread count and seeds torch's generator (tests/conftest.py undoes both)
pytestmark = pytest.mark.usefixtures("restore_torch_globals")


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The uninterrupted reference run."""
    out = tmp_path_factory.mktemp("whole")
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    assert train.main([*ARGS, f"out_dir={out}"]) == 0
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    return only_run(out)


def only_run(out_dir: Path) -> Path:
    (run,) = [p for p in out_dir.iterdir() if p.is_dir()]
    return run


def records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def run_until_paused(out: Path, point: str, sig: int, pause_s: float = 600) -> tuple[Path, int]:
    """Start train.py, wait until it pauses at ``point``, send ``sig``; the run folder and the
    exit code."""
    marker = out.parent / f"{out.name}.paused"
    env = dict(os.environ, SNN_TEST_PAUSE=point, SNN_TEST_PAUSE_FILE=str(marker))
    env["SNN_TEST_PAUSE_SECONDS"] = str(pause_s)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *ARGS, f"out_dir={out}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), f"the run never reached {point}: {proc.stderr.read()[-2000:]}"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_until_paused.stderr = err
    return only_run(out), proc.returncode


def assert_same_run(run: Path, whole: Path) -> None:
    a, b = load_checkpoint(run / "last.pt"), load_checkpoint(whole / "last.pt")
    assert a["progress"] == b["progress"]
    assert a["progress"]["global_step"] == STEPS
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sb:
        assert all(torch.equal(sa[i][k], sb[i][k]) for k in sb[i]), i
    for k in b["rng"][0]:
        if isinstance(b["rng"][0][k], torch.Tensor):
            assert torch.equal(a["rng"][0][k], b["rng"][0][k]), k
    best_a, best_b = load_checkpoint(run / "best.pt"), load_checkpoint(whole / "best.pt")
    assert all(torch.equal(best_a["model"][k], best_b["model"][k]) for k in best_b["model"])
    # the logs agree too: nothing lost, nothing written twice
    for kind, key in (("train", "loss"), ("epoch", "val_loss"), ("test", "test_acc")):
        ra, rb = records(run, kind), records(whole, kind)
        assert [r["step"] for r in ra] == [r["step"] for r in rb], kind
        assert [r[key] for r in ra] == [r[key] for r in rb], kind
    assert not list(run.glob(".*.tmp"))  # the half-written file of a killed save is gone


# a run killed before its first checkpoint (step 3) has nothing to resume: start after it
CASES = [
    f"step:{PICK.randint(4, STEPS - 1)}",  # mid-step
    "eval:1",  # validation after epoch 1
    f"save:{PICK.randint(2, 5)}",  # last.pt's temporary file half written (not the first save)
]


@pytest.mark.parametrize("point", CASES)
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, whole, point):
    run, code = run_until_paused(tmp_path / "killed", point, signal.SIGKILL)
    assert code == -signal.SIGKILL
    if point.startswith("save"):
        assert list(run.glob(".last.pt.*.tmp")), "the kill did not land inside the write"
    assert train.main(["--resume", str(run), "log.progress=false"]) == 0
    assert_same_run(run, whole)


def test_a_corrupt_last_checkpoint_is_named_and_the_previous_one_used(tmp_path, whole, capsys):
    run, code = run_until_paused(tmp_path / "killed", "step:11", signal.SIGKILL)
    assert code == -signal.SIGKILL
    last = run / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # as if a copy or a disk cut it short
    assert train.main(["--resume", str(run), "log.progress=false"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint '{last}' is corrupt" in err
    assert f"resuming from the previous checkpoint {previous_path(last)}" in err
    assert_same_run(run, whole)

    # a flipped byte (same length) is caught by the checksum, not passed to torch.load
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"'{last}' is corrupt: its sha256"):
        load_checkpoint(last)
    # with no good checkpoint left, resume refuses (exit 2) and names the file
    previous_path(last).write_bytes(b"")
    assert train.main(["--resume", str(run), "log.progress=false"]) == 2
    assert str(previous_path(last)) in capsys.readouterr().err


def test_sigint_finishes_the_step_saves_and_exits_130(tmp_path, whole):
    # the run pauses 1 s inside step 5; Ctrl-C arrives then; the step still completes
    run, code = run_until_paused(tmp_path / "stopped", "step:5", signal.SIGINT, pause_s=1)
    assert code == 130, run_until_paused.stderr[-2000:]
    assert "interrupted" in run_until_paused.stderr
    assert "Traceback" not in run_until_paused.stderr
    assert load_checkpoint(run / "last.pt")["progress"]["global_step"] == 5
    assert train.main(["--resume", str(run), "log.progress=false"]) == 0
    assert_same_run(run, whole)
