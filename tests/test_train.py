"""train.py end to end on the smoke config: outputs, learning, resume after SIGKILL, exit codes.

The README's main-job command is ``python train.py configs/smoke.yaml`` (plus out_dir= here, so
runs land in tmp_path); the first test runs exactly that as a subprocess.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
OLD_RUNS = ROOT / "tests" / "data" / "checkpoint_v2"
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from snn.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from snn.training.config import load_config  # noqa: E402
from snn.training.evaluate import firing_rate_warnings  # noqa: E402
from snn.training.loss import loss_and_scores, readout_for  # noqa: E402
from snn.training.models import build_model, spiking_layers  # noqa: E402
from snn.training.optim import make_optimizer, make_scheduler  # noqa: E402
from snn.training.rundir import Metrics  # noqa: E402

# train.main sets the thread count and seeds torch's generator (tests/conftest.py undoes both)
pytestmark = pytest.mark.usefixtures("restore_torch_globals")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run(out_dir: Path) -> Path:
    runs = [p for p in out_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_readme_command_trains_smoke_end_to_end(tmp_path):
    proc = cli(SMOKE, f"out_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run(tmp_path)
    assert run.name.startswith("smoke-")
    for name in ["config.yaml", "metrics.jsonl", "best.pt", "last.pt"]:
        assert (run / name).is_file(), name
    for name in ["curves.png", "raster.png", "rates.png", "confusion.png"]:
        assert (run / name).stat().st_size > 10_000, name
    steps = records(run, "train")
    epochs = records(run, "epoch")
    assert len(epochs) == 2
    # the loss falls: from chance level (ln 10 = 2.30) at the start to far below it
    assert steps[0]["loss"] > 1.0
    assert epochs[-1]["train_loss"] < 0.6 * steps[0]["loss"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    (test,) = records(run, "test")
    assert test["test_images"] == 1000 and test["test_acc"] > 0.7
    assert "epoch   2/2" in proc.stdout and "test accuracy" in proc.stdout
    assert "samples_s=" in proc.stderr  # the tqdm bar's postfix

    # --eval reports the full 10k test set
    proc = cli("--eval", str(run / "best.pt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "/10000)" in proc.stdout


def test_a_few_hundred_steps_beat_chance_by_far(tmp_path):
    code = train.main(
        [
            SMOKE,
            f"out_dir={tmp_path}",
            "data.train_subset=8192",
            "data.val_subset=1000",
            "data.batch_size=32",
            "train.epochs=1",
            "train.checkpoint_every=1000",
            "log.progress=false",
            "log.plots=false",
        ]
    )
    assert code == 0
    (epoch,) = records(only_run(tmp_path), "epoch")
    assert epoch["step"] == 256
    # chance is 10 %; a linear classifier on pixels reaches ~90 % with this little data
    assert epoch["val_acc"] >= 0.85, epoch


@pytest.mark.parametrize("loss", ["ce_rate", "mse_count"])
def test_spike_count_losses_learn(tmp_path, loss):
    code = train.main(
        [SMOKE, f"out_dir={tmp_path}", f"loss.kind={loss}", "log.progress=false", "log.plots=false"]
    )
    assert code == 0
    epochs = records(only_run(tmp_path), "epoch")
    assert epochs[-1]["val_acc"] > 0.6, epochs
    assert set(epochs[-1]["rates"]) == {"2", "4"}  # hidden and spiking output layer


# killing a run (SIGKILL mid-step, in evaluation, inside a checkpoint write; SIGINT) and resuming
# it bitwise: tests/test_crash_safety.py


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch
):
    # optim.lr is capped at 10, too small to overflow float32, so poison the loss instead: from
    # the 3rd training step on it is NaN (and so are its gradients; an optimizer step taken with
    # them would turn every weight NaN)
    calls = {"n": 0}
    real = train.loss_and_scores

    def nan_from_step_3(out, y, cfg):
        loss, scores = real(out, y, cfg)
        calls["n"] += 1
        return (loss * math.nan if calls["n"] >= 3 else loss), scores

    monkeypatch.setattr(train, "loss_and_scores", nan_from_step_3)
    optimizer_steps = []
    real_make_optimizer = train.make_optimizer

    def counting_optimizer(cfg, model):
        opt = real_make_optimizer(cfg, model)
        opt.register_step_post_hook(lambda *_: optimizer_steps.append(1))
        return opt

    monkeypatch.setattr(train, "make_optimizer", counting_optimizer)
    code = train.main(
        [
            SMOKE,
            f"out_dir={tmp_path}",
            "train.checkpoint_every=1",
            "log.progress=false",
            "log.plots=false",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    m = re.search(r"the loss became (nan|inf|-inf) at step (\d+) \(epoch 1\)", err)
    assert m, err
    bad_step = int(m.group(2))
    assert m.group(1) == "nan" and bad_step == 3
    assert len(optimizer_steps) == 2  # steps 1 and 2; none with the NaN gradients of step 3
    run = only_run(tmp_path)
    assert f"{run / 'last.pt'} holds the last good state" in err
    state = load_checkpoint(run / "last.pt")
    assert state["progress"]["global_step"] == bad_step - 1  # saved after every step before it
    assert all(torch.isfinite(w).all() for k, w in state["model"].items() if "threshold" not in k)


def test_dead_and_saturated_layers_are_warned_about(tmp_path):
    assert firing_rate_warnings({"2": 0.12, "4": 0.5}) == []
    dead, saturated = firing_rate_warnings({"2": 0.0, "4": 1.0})
    assert "layer 2 never fired" in dead and "dead" in dead
    assert "layer 4 fired at every step" in saturated and "saturated" in saturated
    # a real run whose hidden threshold no input can reach: its LIF layer is dead
    args = [SMOKE, f"out_dir={tmp_path}", "data.train_subset=256", "data.val_subset=100"]
    args += ["data.test_subset=100", "train.epochs=1", "model.neuron.threshold=1e6"]
    with pytest.warns(RuntimeWarning, match=r"epoch 1: spiking layer 2 never fired"):
        assert train.main([*args, "log.progress=false", "log.plots=false"]) == 0


def test_config_error_exits_2_before_any_work(tmp_path):
    proc = cli(SMOKE, f"out_dir={tmp_path}", "optim.lr=-1")
    assert proc.returncode == 2
    assert "optim.lr" in proc.stderr and "> 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # no run folder was made


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["model.hiden=[10]"], "did you mean 'model.hidden'"),
        (["loss.kind=hinge"], "allowed values: ce_membrane, ce_rate, mse_count"),
        (["device=cuda:7"] if not torch.cuda.is_available() else ["device=cuda:99"], "cuda"),
        (["train.amp=true", "device=cpu"], "needs a CUDA device"),
        (["data.train_subset=10"], "larger than the 10 training images"),
        (["extra.yaml"], "unexpected argument"),
    ],
)
def test_cli_errors_exit_2(tmp_path, capsys, args, fragment):
    assert train.main([SMOKE, f"out_dir={tmp_path}", *args]) == 2
    assert fragment in capsys.readouterr().err


def test_missing_dataset_exits_2_with_the_place(tmp_path, capsys):
    root = tmp_path / "nodata"
    code = train.main(
        [SMOKE, f"out_dir={tmp_path / 'runs'}", "--data-root", str(root)] + ["data.download=false"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert str(root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in err
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_cli_exit_code(tmp_path):
    proc = cli(
        SMOKE, f"out_dir={tmp_path}", f"data.root={tmp_path / 'none'}", "data.download=false"
    )
    assert proc.returncode == 2
    assert "MNIST not found" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_refuses_to_change_the_run(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    assert train.main(["--resume", str(run)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    (run / "config.yaml").write_text("name: smoke\n")
    assert train.main(["--resume", str(run), "optim.lr=1"]) == 2
    assert "cannot change on --resume" in capsys.readouterr().err
    assert train.main(["--resume", str(run)]) == 2
    assert "no last.pt" in capsys.readouterr().err


def test_a_run_written_before_the_move_to_snn_training_resumes_and_evaluates(tmp_path, capsys):
    """``tests/data/checkpoint_v2`` was written by train.py at commit 8a38093, when the
    checkpoint code was ``snn/checkpoint.py``: ``python train.py configs/smoke.yaml name=v2
    data.train_subset=256 data.val_subset=100 data.test_subset=100 data.batch_size=32
    encoding.num_steps=4 model.hidden=[4] train.epochs=2 train.checkpoint_every=3 log.plots=false
    log.progress=false log.log_every=2``, once to the end (``whole_*``, ``best.pt``) and once
    stopped by SIGINT after step 5 (``stopped/``). Its files hold tensors, numbers, strings and
    dicts only (no class of this package), so the code's new place must not matter."""
    run = tmp_path / "stopped"
    shutil.copytree(OLD_RUNS / "stopped", run)
    where = [f"data.root={ROOT / 'data'}", "device=cpu"]
    assert train.main(["--resume", str(run), *where]) == 0
    assert f"resumed {run} at epoch 1, step 5" in capsys.readouterr().out
    resumed, whole = load_checkpoint(run / "last.pt"), load_checkpoint(OLD_RUNS / "whole_last.pt")
    assert resumed["progress"] == whole["progress"] and whole["progress"]["global_step"] == 16
    # the old code's uninterrupted run: equal bitwise on the machine that wrote it; elsewhere the
    # float rounding of another CPU may differ. Adam steps are ~2e-3, so a resume that lost any
    # state (weights, moments, the Poisson generator) would be off by far more than 2e-5.
    for name, w in whole["model"].items():
        torch.testing.assert_close(resumed["model"][name], w, rtol=0, atol=2e-5, msg=name)
    old_log = [json.loads(line) for line in (OLD_RUNS / "whole_metrics.jsonl").open()]
    for kind in ("train", "epoch", "test"):
        steps = [r["step"] for r in old_log if r["kind"] == kind]
        assert [r["step"] for r in records(run, kind)] == steps, kind

    # --eval of the old best.pt, on all 10k test images
    assert train.main(["--eval", str(OLD_RUNS / "best.pt"), *where]) == 0
    assert "/10000)" in capsys.readouterr().out


def test_checkpoints_are_atomic_and_errors_name_the_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"x": torch.arange(3)}, path)
    save_checkpoint({"x": torch.arange(4)}, path)
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left

    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # as if written in place and killed half-way
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"x": 1}, path)
    with pytest.raises(CheckpointError, match="not written by snn"):
        load_checkpoint(path)
    save_checkpoint({"x": 1}, path)
    with pytest.raises(CheckpointError, match="lacks model"):
        load_checkpoint(path, required=("model",))


def test_schedules_follow_their_closed_form():
    cfg = load_config(None, ["optim.lr=0.01", "optim.warmup=0.1", "optim.final_lr_ratio=0.05"])
    model = torch.nn.Linear(2, 2)
    opt = make_optimizer(cfg, model)
    sched = make_scheduler(cfg, opt, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # one-cycle: peak lr at the end of the warmup, lr/10 at the start, lr*ratio at the end
    assert math.isclose(lrs[0], 0.001, rel_tol=1e-6)
    assert math.isclose(max(lrs), 0.01, rel_tol=1e-6) and lrs.index(max(lrs)) == 9
    assert math.isclose(opt.param_groups[0]["lr"], 0.01 * 0.05, rel_tol=1e-6)

    cfg = load_config(None, ["optim.schedule=cosine", "optim.lr=0.01", "optim.warmup=0.0"])
    opt = make_optimizer(cfg, model)
    sched = make_scheduler(cfg, opt, total_steps=100)
    for step in range(100):
        expect = 0.01 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / 100)))
        assert math.isclose(opt.param_groups[0]["lr"], expect, rel_tol=1e-9)
        opt.step()
        sched.step()


def test_cnn_config_builds_and_learns_a_step():
    cfg = load_config(ROOT / "configs" / "mnist_cnn.yaml")
    torch.manual_seed(0)
    model = build_model(cfg.model, readout_for(cfg))
    x = (torch.rand(4, 2, 1, 28, 28) < 0.3).float()
    y = torch.tensor([3, 7])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    losses = []
    for _ in range(5):
        loss, _ = loss_and_scores(model(x), y, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_metrics_survive_a_line_cut_short(tmp_path):
    m = Metrics(tmp_path, enabled=True, tensorboard=False)
    for step in (10, 20, 30):
        m.log({"kind": "train", "step": step, "loss": 1.0 / step})
    with m.path.open("a") as f:
        f.write('{"kind": "train", "step": 4')  # the process died mid-write
    assert [r["step"] for r in m.history()] == [10, 20, 30]
    m.truncate_after(20)
    assert [r["step"] for r in m.history()] == [10, 20]
    assert m.path.read_text().endswith("\n")


def test_learnable_beta_and_threshold_get_gradients():
    cfg = load_config(
        None,
        ["model.hidden=[16]", "model.neuron.learn_beta=true", "model.neuron.learn_threshold=true"],
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, readout_for(cfg))
    (lif,) = spiking_layers(model).values()
    assert lif.beta_logit.shape == lif.threshold.shape == (16,)  # per neuron in an MLP
    x = (torch.rand(6, 3, 1, 28, 28) < 0.5).float()
    loss, _ = loss_and_scores(model(x), torch.tensor([1, 2, 3]), cfg)
    loss.backward()
    assert lif.beta_logit.grad.abs().sum() > 0 and lif.threshold.grad.abs().sum() > 0

    # conv layers learn one beta and one threshold per layer, as PLIF does
    cfg = load_config(
        None,
        [
            "model.kind=cnn",
            "model.channels=[4]",
            "model.hidden=[8]",
            "model.neuron.learn_beta=true",
            "model.neuron.learn_threshold=true",
        ],
    )
    model = build_model(cfg.model, readout_for(cfg))
    conv_lif, fc_lif = spiking_layers(model).values()
    assert conv_lif.beta_logit.shape == () and fc_lif.beta_logit.shape == (8,)
    loss, _ = loss_and_scores(model(x), torch.tensor([1, 2, 3]), cfg)
    loss.backward()
    assert conv_lif.beta_logit.grad != 0 and conv_lif.threshold.grad != 0
