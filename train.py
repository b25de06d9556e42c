"""Train a spiking classifier on Poisson-encoded MNIST.

    python train.py                                  # the default config, configs/mnist_mlp.yaml
    python train.py configs/mnist_cnn.yaml optim.lr=5e-4 train.epochs=20
    python train.py --resume runs/mnist_mlp-20250101-120000      # continue from its last.pt
    python train.py --eval runs/mnist_mlp-20250101-120000/best.pt  # accuracy on the 10k test set

Each run writes ``runs/<name>-<timestamp>/``: ``config.yaml`` (the resolved config),
``metrics.jsonl``, ``last.pt`` (everything needed to continue, written every
``train.checkpoint_every`` steps and at each epoch end), ``best.pt`` (the weights with the best
validation accuracy) and plots. The test set is touched once, at the end, with ``best.pt``.

One step: a batch of images in [0, 1] is Poisson-encoded on the training device into
``[T, B, 1, 28, 28]`` spikes, the network returns ``[T, B, 10]`` (output membrane or spikes),
the loss reduces it over time, and Adam/AdamW steps under the learning-rate schedule.

Determinism: the batch order is a pure function of (seed, epoch); the Poisson spikes come from one
seeded generator; dropout uses torch's global generator. All of their states, with the model,
optimizer and scheduler, are in ``last.pt``, so on CPU a run killed mid-epoch and resumed ends
with bitwise the same weights as one never stopped. Evaluation uses its own generator and
touches none of these states.

Several processes (data-parallel, DistributedDataParallel)::

    torchrun --standalone --nproc_per_node=2 train.py configs/smoke.yaml

``data.batch_size`` stays the global batch: each of the N ranks takes ``batch_size / N`` images
(an error if N does not divide it), a disjoint shard of the same permutation, so rank r of step k
sees every N-th image of the single-process batch k and the averaged gradient is that of the same
global batch. Backend: nccl on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``), gloo on CPU. Only
rank 0 prints, logs and writes checkpoints; the epoch's training loss and accuracy are summed over
ranks. Per-rank seeding: rank r's Poisson generator is seeded with ``encoding_seed(seed, r)``, so
ranks never draw the same spikes; the N generator states are gathered into ``last.pt`` and a run
resumes only with the same N. Dropout masks and BatchNorm statistics are per rank, so with dropout
or the CNN N processes are statistically, not bitwise, equal to one.

Interrupts: Ctrl-C (SIGINT, or SIGTERM) finishes the current step, writes ``last.pt`` and exits
with code 130; ``--resume`` continues. ``last.pt`` carries a sha256; the one it replaced is kept as
``last.prev.pt``, and a resume from a corrupt ``last.pt`` says so and falls back to it.

Exit codes: 0 done, 2 bad config / missing dataset / unusable checkpoint (reported before any
training starts), 130 interrupted (checkpoint written), 1 anything else (such as a diverged loss).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as td
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

import snn
from snn.checkpoint import CheckpointError, load_checkpoint, previous_path, save_checkpoint
from snn.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    read_yaml,
    save_config,
)
from snn.data import DatasetNotFoundError, MNISTSplits, epoch_order, load_mnist, num_batches
from snn.models import build_model, spiking_layers

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "mnist_mlp.yaml"
EVAL_SEED = 12345  # evaluation draws its Poisson spikes from its own generator, seeded with this
# keys that may change when a run is resumed: where things are, not what is computed
RESUME_OVERRIDES = ("data.root", "data.download", "device", "log.", "train.threads")


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss): the message names the step; checkpoints are kept."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; last.pt holds the state after the step that was running."""


# ---------------------------------------------------------------------------------------------
# process context: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE


@dataclass
class Dist:
    """Which process this is. Logging, progress bars and checkpoints happen on rank 0 only."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def dist_context() -> Dist:
    """The rank and world size torchrun gave this process (one process without torchrun)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world > 1:
        return Dist(int(env["RANK"]), world, int(env.get("LOCAL_RANK", env["RANK"])))
    return Dist()


def init_distributed(dist: Dist, device: torch.device) -> None:
    """Join the process group: nccl for CUDA devices, gloo for CPU."""
    if not dist.active or td.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    td.init_process_group("nccl" if device.type == "cuda" else "gloo")


def encoding_seed(seed: int, rank: int) -> int:
    """Seed of the Poisson generator; distinct per rank so that ranks never share spikes."""
    return seed * 1_000_003 + 7919 * (rank + 1)


def resolve_device(name: str, dist: Dist | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if dist is not None and dist.active and name == "cuda":
        name = f"cuda:{dist.local_rank}"  # one GPU per rank on each node
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name!r} but no CUDA GPU is available here; use device=cpu or device=auto"
            )
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# loss and readout


def readout_for(cfg: Config) -> str:
    """Cross-entropy on membrane reads a non-spiking integrator; the rate losses count spikes."""
    return "leaky" if cfg.loss.kind == "ce_membrane" else "spiking"


def loss_and_scores(out: Tensor, y: Tensor, cfg: Config) -> tuple[Tensor, Tensor]:
    """The loss of the output sequence ``out`` ``[T, B, 10]`` and per-class scores ``[B, 10]``
    whose argmax is the prediction."""
    lc = cfg.loss
    out = out.float()
    if lc.kind == "ce_membrane":
        if lc.reduce == "mean":
            scores = out.mean(0)
        elif lc.reduce == "max":
            scores = out.amax(0)
        else:
            scores = out[-1]
        return F.cross_entropy(scores, y, label_smoothing=lc.label_smoothing), scores
    counts = out.sum(0)
    if lc.kind == "ce_rate":
        return F.cross_entropy(counts, y, label_smoothing=lc.label_smoothing), counts
    steps = out.shape[0]
    target = torch.full_like(counts, lc.incorrect_rate * steps)
    target.scatter_(1, y[:, None], lc.correct_rate * steps)
    return F.mse_loss(counts, target), counts


def encode(images: Tensor, cfg: Config, generator: torch.Generator) -> Tensor:
    """uint8 images ``[B, 28, 28]`` -> spikes ``[T, B, 1, 28, 28]`` on their device."""
    x = images.float().div_(255).unsqueeze(1)
    if cfg.encoding.kind == "latency":
        return snn.encode.latency(x, cfg.encoding.num_steps)
    return snn.encode.poisson(x, cfg.encoding.num_steps, cfg.encoding.gain, generator=generator)


def firing_rate_warnings(rates: dict[str, float]) -> list[str]:
    """Messages for spiking layers whose mean firing rate is stuck at 0 (dead) or 1 (saturated):
    both pass no gradient through the surrogate's narrow peak, so training silently stalls."""
    out = []
    for name, rate in rates.items():
        if rate <= 0.0:
            out.append(
                f"spiking layer {name} never fired on the validation set (dead neurons): lower "
                "model.neuron.threshold, raise encoding.gain or check the weight init / lr"
            )
        elif rate >= 1.0:
            out.append(
                f"spiking layer {name} fired at every step on the validation set (saturated): "
                "raise model.neuron.threshold or lower optim.lr"
            )
    return out


def fault_point(name: str) -> None:
    """A test hook: with ``SNN_TEST_PAUSE=<name>:<n>`` in the environment, the n-th time this
    point is reached the process touches ``$SNN_TEST_PAUSE_FILE`` and sleeps
    ``$SNN_TEST_PAUSE_SECONDS`` (default 600), so that a crash test can signal it exactly there.
    Points: ``step`` (after backward, before the optimizer step), ``eval`` (inside evaluation),
    ``save`` (last.pt half written). Unset, it costs one dict lookup."""
    spec = os.environ.get("SNN_TEST_PAUSE")
    if not spec or spec.partition(":")[0] != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(spec.partition(":")[2] or 1):
        Path(os.environ["SNN_TEST_PAUSE_FILE"]).touch()
        time.sleep(float(os.environ.get("SNN_TEST_PAUSE_SECONDS", "600")))


_FAULT_COUNTS: dict[str, int] = {}


# ---------------------------------------------------------------------------------------------
# optimizer and schedule


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    oc = cfg.optim
    cls = torch.optim.AdamW if oc.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay)


def make_scheduler(
    cfg: Config, opt: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch. ``cosine``: linear warmup, then a half cosine from ``lr`` down to
    ``lr * final_lr_ratio``; ``onecycle``: torch's OneCycleLR (it also cycles Adam's beta1)."""
    oc = cfg.optim
    if oc.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=oc.lr,
            total_steps=total_steps,
            pct_start=max(oc.warmup, 1.0 / total_steps),
            div_factor=10.0,
            final_div_factor=1.0 / (10.0 * oc.final_lr_ratio),
        )
    warmup = int(oc.warmup * total_steps)

    def factor(step: int) -> float:
        if oc.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return oc.final_lr_ratio + (1 - oc.final_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ---------------------------------------------------------------------------------------------
# evaluation


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    predictions: Tensor  # [N]
    rates: dict[str, float]  # mean spikes per neuron and step, by layer


@torch.no_grad()
def evaluate(
    model: nn.Module, images: Tensor, labels: Tensor, cfg: Config, device: torch.device
) -> EvalResult:
    """Loss, accuracy and firing rates on a split, with a fixed, private Poisson generator."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(EVAL_SEED)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, args, out):
            sums[name] = sums.get(name, 0.0) + float(out.float().sum())
            counts[name] = counts.get(name, 0) + out.numel()

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in spiking_layers(model).items()]
    total_loss, preds = 0.0, []
    try:
        for i in range(0, len(images), cfg.data.eval_batch_size):
            x, y = (
                images[i : i + cfg.data.eval_batch_size],
                labels[i : i + cfg.data.eval_batch_size],
            )
            with autocast(cfg, device):
                out = model(encode(x, cfg, gen))
            fault_point("eval")
            loss, scores = loss_and_scores(out, y, cfg)
            total_loss += float(loss) * len(y)
            preds.append(scores.argmax(1))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    predictions = torch.cat(preds)
    return EvalResult(
        loss=total_loss / len(labels),
        accuracy=float((predictions == labels).float().mean()),
        predictions=predictions.cpu(),
        rates={n: sums[n] / counts[n] for n in sums},
    )


def autocast(cfg: Config, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.amp)


# ---------------------------------------------------------------------------------------------
# run folder, metrics, checkpoints


class Metrics:
    """Appends JSON records to ``metrics.jsonl`` (rank 0 only), and to TensorBoard if asked."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """On resume: drop records written after the checkpoint, which will be written again."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [json.dumps(r) for r in self.history() if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record.get("step", 0))

    def history(self) -> list[dict]:
        """The records so far; a line cut short by a killed process is skipped."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


def new_run_dir(cfg: Config) -> Path:
    base = Path(cfg.out_dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, i = base, 1
    while run_dir.exists():
        run_dir, i = Path(f"{base}-{i}"), i + 1
    try:
        run_dir.mkdir(parents=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create the run folder {str(run_dir)!r} ({e.strerror}); "
            "set out_dir= to a writable folder"
        ) from None
    return run_dir


def rng_states(gen: torch.Generator) -> dict:
    states = {
        "torch": torch.get_rng_state(),
        "encode": gen.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    gen.set_state(states["encode"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def all_rng_states(gen: torch.Generator, dist: Dist) -> list[dict]:
    """Every rank's random states, in rank order (a collective: all ranks must call it)."""
    mine = rng_states(gen)
    if not dist.active:
        return [mine]
    mine = {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in mine.items()}
    gathered: list = [None] * dist.world_size
    td.all_gather_object(gathered, mine)
    return gathered


def load_resume_state(run_dir: Path, device: torch.device) -> dict:
    """last.pt, or, if it is corrupt, last.prev.pt, saying so on stderr; never a damaged file."""
    required = ("model", "optimizer", "scheduler", "rng", "progress")
    last = run_dir / "last.pt"
    try:
        return load_checkpoint(last, required, map_location=device)
    except CheckpointError as e:
        prev = previous_path(last)
        if not prev.is_file():
            raise
        print(
            f"warning: {e}\nwarning: resuming from the previous checkpoint {prev}", file=sys.stderr
        )
        return load_checkpoint(prev, required, map_location=device)


class StopFlag:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:  # a second Ctrl-C: the user does not want to wait for the step
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def agreed(self, dist: Dist, device: torch.device) -> bool:
        """Whether any rank was interrupted, so that all ranks stop after the same step."""
        if not dist.active:
            return self.set
        flag = torch.tensor([float(self.set)], device=device)
        td.all_reduce(flag)
        return bool(flag.item())


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class Progress:
    """Where training stands; with the states in last.pt, all that a resume needs."""

    epoch: int = 0  # the epoch in progress
    step: int = 0  # the next step within that epoch
    global_step: int = 0
    loss_sum: float = 0.0  # running sums of the epoch in progress (this rank's)
    correct: int = 0
    seen: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = -1


def per_rank_batch(cfg: Config, dist: Dist) -> int:
    if cfg.data.batch_size % dist.world_size:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is the global batch and must be divisible by "
            f"the {dist.world_size} processes; use a multiple of {dist.world_size}"
        )
    return cfg.data.batch_size // dist.world_size


def summed(values: list[float], dist: Dist, device: torch.device) -> list[float]:
    """``values`` summed over ranks (float64, so counts stay exact)."""
    if not dist.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def train(cfg: Config, run_dir: Path, device: torch.device, dist: Dist, data: MNISTSplits) -> int:
    is_main = dist.is_main
    metrics = Metrics(run_dir, is_main, cfg.log.tensorboard)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, readout_for(cfg)).to(device)
    opt = make_optimizer(cfg, model)
    batch = per_rank_batch(cfg, dist)
    steps_per_epoch = num_batches(len(data.train_labels), batch, dist.world_size)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is larger than the "
            f"{len(data.train_labels)} training images; lower it or enlarge data.train_subset"
        )
    total_steps = cfg.train.epochs * steps_per_epoch
    sched = make_scheduler(cfg, opt, total_steps)
    gen = torch.Generator(device=device).manual_seed(encoding_seed(cfg.seed, dist.rank))
    progress = Progress()

    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if last_path.exists() or previous_path(last_path).exists():
        state = load_resume_state(run_dir, device)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{last_path} does not fit the model of {run_dir}: {e}") from e
        if state.get("device", device.type) != device.type:
            raise CheckpointError(
                f"{last_path} was written on {state['device']}, this process runs on "
                f"{device.type}; resume with device={state['device']} (the random streams of "
                "the two kinds of device differ)"
            )
        ranks = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        if len(ranks) != dist.world_size:
            raise CheckpointError(
                f"{last_path} was written by {len(ranks)} process(es), this run has "
                f"{dist.world_size}; resume with --nproc_per_node={len(ranks)} (each rank's "
                "data shard and spikes depend on the number of processes)"
            )
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_states(ranks[dist.rank], gen)
        progress = Progress(**state["progress"])
        if "rank_sums" in state:  # each rank's running sums of the epoch in progress
            progress.loss_sum, progress.correct, progress.seen = state["rank_sums"][dist.rank]
        metrics.truncate_after(progress.global_step)
        if is_main:
            print(f"resumed {run_dir} at epoch {progress.epoch + 1}, step {progress.step}")
    if is_main:
        params = sum(p.numel() for p in model.parameters())
        where = f", {dist.world_size} processes" if dist.active else ""
        print(f"run folder: {run_dir}\ndevice: {device}{where}, {params:,} parameters")
        print(model)
    # DDP broadcasts rank 0's weights at construction and averages gradients in backward
    net = nn.parallel.DistributedDataParallel(model) if dist.active else model

    def save_last() -> None:
        rng = all_rng_states(gen, dist)
        sums = [(progress.loss_sum, progress.correct, progress.seen)]
        if dist.active:
            sums = [None] * dist.world_size
            td.all_gather_object(sums, (progress.loss_sum, progress.correct, progress.seen))
        if is_main:
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": rng,
                    "rank_sums": sums,
                    "device": device.type,
                    "progress": progress.__dict__,
                    "config": config_to_dict(cfg),
                },
                last_path,
                keep_previous=True,
                during_write=lambda: fault_point("save"),
            )

    model.train()
    with StopFlag() as stop:
        while progress.epoch < cfg.train.epochs:
            epoch = progress.epoch
            order = epoch_order(
                len(data.train_labels), epoch, cfg.seed, batch, dist.rank, dist.world_size
            ).to(device)
            bar = tqdm(
                total=steps_per_epoch,
                initial=progress.step,
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                disable=not (is_main and cfg.log.progress),
                dynamic_ncols=True,
                leave=False,
            )
            t0, samples = time.perf_counter(), 0
            while progress.step < steps_per_epoch:
                idx = order[progress.step]
                x, y = data.train_images[idx], data.train_labels[idx]
                with autocast(cfg, device):
                    out = net(encode(x, cfg, gen))
                loss, scores = loss_and_scores(out, y, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                fault_point("step")
                if cfg.optim.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                loss_value = loss.item()
                # before opt.step, so the weights stay finite; all ranks agree, since one rank's
                # NaN has reached every rank's averaged gradients
                nonfinite = summed([float(not math.isfinite(loss_value))], dist, device)[0]
                if nonfinite:
                    value = "non-finite" if math.isfinite(loss_value) else loss_value
                    where = ""
                    if dist.active:
                        where = f" on {nonfinite:.0f} of {dist.world_size} processes"
                    kept = (
                        f"{last_path} holds the last good state"
                        if last_path.exists()
                        else "no checkpoint had been written yet"
                    )
                    raise TrainingError(
                        f"the loss became {value}{where} at step {progress.global_step + 1} "
                        f"(epoch {epoch + 1}); {kept}. Lower optim.lr or set optim.grad_clip"
                    )
                opt.step()
                sched.step()

                correct = int((scores.argmax(1) == y).sum())
                progress.step += 1
                progress.global_step += 1
                progress.loss_sum += loss_value * len(y)
                progress.correct += correct
                progress.seen += len(y)
                samples += len(y) * dist.world_size
                rate = samples / (time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss_value:.4f}", acc=f"{correct / len(y):.3f}", samples_s=f"{rate:.0f}"
                )
                if progress.global_step % cfg.log.log_every == 0:
                    metrics.log(
                        {
                            "kind": "train",
                            "step": progress.global_step,
                            "epoch": epoch + progress.step / steps_per_epoch,
                            "loss": loss_value,  # rank 0's share of the batch
                            "acc": correct / len(y),
                            "lr": sched.get_last_lr()[0],
                            "samples_per_s": rate,
                        }
                    )
                interrupted = stop.agreed(dist, device)
                if interrupted or (
                    progress.global_step % cfg.train.checkpoint_every == 0
                    and progress.step < steps_per_epoch
                ):
                    save_last()
                if interrupted:
                    bar.close()
                    raise Interrupted(
                        f"interrupted: {last_path} holds step {progress.global_step}; continue "
                        f"with python train.py --resume {run_dir}"
                    )
            bar.close()
            seconds = time.perf_counter() - t0

            val = evaluate(model, data.val_images, data.val_labels, cfg, device)
            loss_sum, correct_sum, seen_sum = summed(
                [progress.loss_sum, progress.correct, progress.seen], dist, device
            )
            train_loss = loss_sum / max(1, seen_sum)
            train_acc = correct_sum / max(1, seen_sum)
            is_best = val.accuracy > progress.best_val_acc
            record = {
                "kind": "epoch",
                "step": progress.global_step,
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val.loss,
                "val_acc": val.accuracy,
                "lr": sched.get_last_lr()[0],
                "seconds": seconds,
                "samples_per_s": samples / seconds,
                "rates": val.rates,
            }
            metrics.log(record)
            if is_main:
                print(
                    f"epoch {epoch + 1:>3}/{cfg.train.epochs}  train loss {train_loss:.4f} "
                    f"acc {100 * train_acc:.2f}%  val loss {val.loss:.4f} acc "
                    f"{100 * val.accuracy:.2f}%  lr {record['lr']:.2e}  {seconds:.1f} s "
                    f"({record['samples_per_s']:.0f} samples/s)" + ("  *best" if is_best else ""),
                    flush=True,
                )
                for message in firing_rate_warnings(val.rates):
                    warnings.warn(f"epoch {epoch + 1}: {message}", RuntimeWarning, stacklevel=1)
            if is_best:
                progress.best_val_acc, progress.best_epoch = val.accuracy, epoch + 1
                if is_main:
                    save_checkpoint(
                        {
                            "model": model.state_dict(),
                            "config": config_to_dict(cfg),
                            "epoch": epoch + 1,
                            "val_acc": val.accuracy,
                        },
                        best_path,
                    )
            progress.epoch += 1
            progress.step, progress.loss_sum, progress.correct, progress.seen = 0, 0.0, 0, 0
            save_last()

    if is_main:
        final_report(cfg, run_dir, device, data, metrics)
    return 0


def final_report(
    cfg: Config, run_dir: Path, device: torch.device, data: MNISTSplits, metrics: Metrics
) -> None:
    """Test accuracy of best.pt (the model chosen on validation), then the plots."""
    best = load_checkpoint(run_dir / "best.pt", ("model", "epoch"), map_location=device)
    model = build_model(cfg.model, readout_for(cfg)).to(device)
    model.load_state_dict(best["model"])
    test = evaluate(model, data.test_images, data.test_labels, cfg, device)
    n = len(data.test_labels)
    metrics.log(
        {
            "kind": "test",
            "step": 1 << 62,  # after all training records: a resume drops it, then writes it anew
            "best_epoch": best["epoch"],
            "test_loss": test.loss,
            "test_acc": test.accuracy,
            "test_images": n,
            "rates": test.rates,
        }
    )
    print(
        f"test accuracy {100 * test.accuracy:.2f}% on {n} images "
        f"(best.pt from epoch {best['epoch']}, val acc {100 * best['val_acc']:.2f}%)",
        flush=True,
    )
    if cfg.log.plots:
        from snn import plots

        plots.make_all(run_dir, model, cfg, metrics.history(), test, data, device, encode_fn=encode)
        print(f"plots in {run_dir}")


# ---------------------------------------------------------------------------------------------
# command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train a spiking classifier on Poisson-encoded MNIST.",
        epilog="Examples: python train.py | python train.py configs/smoke.yaml train.epochs=2 | "
        "python train.py --resume runs/<dir> | python train.py --eval runs/<dir>/best.pt",
    )
    p.add_argument(
        "args",
        nargs="*",
        metavar="[CONFIG.yaml] [key=value ...]",
        help=f"a config file (default {DEFAULT_CONFIG.relative_to(ROOT)}) and dotted overrides",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    p.add_argument("--eval", metavar="CKPT", help="test accuracy of a checkpoint on all 10k images")
    p.add_argument("--data-root", metavar="DIR", help="MNIST root (holds MNIST/raw/)")
    args = p.parse_intermixed_args(argv)
    args.config = None
    args.overrides = []
    for a in args.args:
        if "=" not in a and args.config is None:
            args.config = a
        elif "=" not in a:
            raise ConfigError(f"unexpected argument {a!r}: give one config file, then key=value")
        else:
            args.overrides.append(a)
    if args.resume and args.eval:
        raise ConfigError("--resume and --eval cannot be combined")
    if args.data_root:
        args.overrides.append(f"data.root={args.data_root}")
    return args


def resumed_config(run_dir: Path, overrides: list[str]) -> Config:
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run folder: it has no config.yaml")
    for o in overrides:
        key = o.partition("=")[0]
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_OVERRIDES):
            raise ConfigError(
                f"{key!r} cannot change on --resume (the run would no longer be the same run); "
                f"only these can: {', '.join(RESUME_OVERRIDES)}"
            )
    if not any(p.is_file() for p in (run_dir / "last.pt", previous_path(run_dir / "last.pt"))):
        raise CheckpointError(f"{run_dir} has no last.pt to resume from")
    return config_from_dict(apply_overrides(read_yaml(run_dir / "config.yaml"), overrides))


def setup(cfg: Config, dist: Dist | None = None) -> torch.device:
    device = resolve_device(cfg.device, dist)
    if cfg.train.amp and device.type != "cuda":
        raise ConfigError(f"train.amp=true (bf16 autocast) needs a CUDA device, not {device}")
    if cfg.log.tensorboard:
        try:
            importlib.import_module("torch.utils.tensorboard")
        except ImportError:
            raise ConfigError(
                "log.tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from None
    if device.type == "cpu" and cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    return device


def load_data(cfg: Config, device: torch.device, full_test: bool = False) -> MNISTSplits:
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


def run_eval(ckpt: str, overrides: list[str]) -> int:
    state = load_checkpoint(ckpt, ("model", "config"))
    cfg = config_from_dict(apply_overrides(state["config"], overrides))
    device = setup(cfg)
    data = load_data(cfg, device, full_test=True)
    model = build_model(cfg.model, readout_for(cfg)).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt} does not fit the model its config describes: {e}") from e
    t0 = time.perf_counter()
    test = evaluate(model, data.test_images, data.test_labels, cfg, device)
    n = len(data.test_labels)
    print(
        f"test accuracy {100 * test.accuracy:.2f}% ({round(test.accuracy * n)}/{n}), "
        f"loss {test.loss:.4f}, {time.perf_counter() - t0:.1f} s on {device}; "
        "firing rates " + ", ".join(f"{k} {v:.3f}" for k, v in test.rates.items())
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.eval:
            return run_eval(args.eval, args.overrides)
        dist = dist_context()
        if args.resume:
            run_dir = Path(args.resume)
            cfg = resumed_config(run_dir, args.overrides)
        else:
            path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
            cfg = load_config(path, args.overrides)
            run_dir = None
        device = setup(cfg, dist)
        per_rank_batch(cfg, dist)
        data = load_data(cfg, device)  # fails here, before a run folder exists, if MNIST is missing
        init_distributed(dist, device)
        if run_dir is None:
            # rank 0 names the folder (it holds a timestamp) and tells the others
            box = [new_run_dir(cfg) if dist.is_main else None]
            if dist.active:
                td.broadcast_object_list(box, src=0)
            run_dir = box[0]
            if dist.is_main:
                save_config(cfg, run_dir / "config.yaml")
        t0 = time.perf_counter()
        code = train(cfg, run_dir, device, dist, data)
        if dist.is_main:
            print(f"done in {time.perf_counter() - t0:.1f} s; outputs in {run_dir}")
        return code
    except (ConfigError, DatasetNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(e, file=sys.stderr)
        return 130
    finally:
        if td.is_available() and td.is_initialized():
            td.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
