"""Train a spiking classifier: on MNIST (its images encoded into Poisson or latency spikes) by
default, or on any ``data.dataset`` (sequential MNIST, Fashion-MNIST, N-MNIST, SHD).

    python train.py                                   # the default config, configs/mnist_mlp.yaml
    python train.py configs/mnist_cnn.yaml optim.lr=5e-4 train.epochs=20
    python train.py configs/smnist_alif.yaml          # sequential MNIST, an adaptive recurrent SNN
    python train.py --resume runs/mnist_mlp-20250101-120000      # continue from its last.pt
    python train.py --eval runs/mnist_mlp-20250101-120000/best.pt  # accuracy on the 10k test set
    torchrun --standalone --nproc_per_node=2 train.py configs/smoke.yaml   # data-parallel

The README ("Train a spiking classifier on MNIST", "Scaling out and surviving faults") describes
the run folder, resuming, several processes, Ctrl-C and the exit codes. This file is the training
run from top to bottom; the machinery it calls is in snn/training/, one concept per module.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from snn.training.augment import random_shift
from snn.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from snn.training.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from snn.training.data import Splits, epoch_order, load_data, num_batches
from snn.training.device import autocast, setup_device
from snn.training.distributed import (
    Dist,
    close_distributed,
    dist_context,
    from_main,
    init_distributed,
    per_rank_batch,
    summed,
)
from snn.training.encoding import encode, encoding_seed, model_io
from snn.training.evaluate import evaluate, firing_rate_warnings
from snn.training.interrupts import EXIT_CODES, Interrupted, StopFlag, exit_code, fault_point
from snn.training.loss import check_loss_finite, loss_and_scores, readout_for
from snn.training.models import build_model
from snn.training.optim import make_optimizer, make_scheduler
from snn.training.resume import Progress, has_last, resume, resumed_config, save_last
from snn.training.rundir import Metrics, new_run_dir

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "mnist_mlp.yaml"


def train(cfg: Config, run_dir: Path, device: torch.device, dist: Dist, data: Splits) -> int:
    """Train in ``run_dir`` (continuing from its last.pt if there is one), then test best.pt."""
    is_main = dist.is_main
    metrics = Metrics(run_dir, is_main, cfg.log.tensorboard)

    # the model, the optimizer, its schedule and the spike generator
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, readout_for(cfg), model_io(cfg)).to(device)
    opt = make_optimizer(cfg, model)
    batch = per_rank_batch(cfg, dist)
    steps_per_epoch = num_batches(len(data.train_labels), batch, dist.world_size)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is larger than the "
            f"{len(data.train_labels)} training images; lower it or enlarge data.train_subset"
        )
    sched = make_scheduler(cfg, opt, cfg.train.epochs * steps_per_epoch)
    gen = torch.Generator(device=device).manual_seed(encoding_seed(cfg.seed, dist.rank))
    progress = Progress()
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if has_last(run_dir):
        progress = resume(run_dir, model, opt, sched, gen, dist, device)
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

    model.train()
    with StopFlag() as stop:
        while progress.epoch < cfg.train.epochs:
            epoch = progress.epoch
            # this rank's batches of the epoch: a function of (seed, epoch) alone
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
                # one step: spikes in, loss out, backward, and the optimizer step
                idx = order[progress.step]
                x, y = data.train_images[idx], data.train_labels[idx]
                x = random_shift(x, cfg.data.shift, gen)  # augmentation; a no-op at shift 0
                with autocast(cfg, device):
                    out = net(encode(x, cfg, gen))  # [T, B, classes]
                loss, scores = loss_and_scores(out, y, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                fault_point("step")
                if cfg.optim.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                loss_value = loss.item()
                check_loss_finite(loss_value, progress, last_path, dist, device)  # before the step
                opt.step()
                sched.step()

                # log
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

                # checkpoint: every checkpoint_every steps, and at once on Ctrl-C
                interrupted = stop.agreed(dist, device)
                if interrupted or (
                    progress.global_step % cfg.train.checkpoint_every == 0
                    and progress.step < steps_per_epoch
                ):
                    save_last(last_path, cfg, model, opt, sched, gen, progress, dist, device)
                if interrupted:
                    bar.close()
                    raise Interrupted(
                        f"interrupted: {last_path} holds step {progress.global_step}; continue "
                        f"with python train.py --resume {run_dir}"
                    )
            bar.close()
            seconds = time.perf_counter() - t0

            # the epoch's end: validate, summarize over all ranks, keep the best model
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
                    state = {"model": model.state_dict(), "config": config_to_dict(cfg)}
                    state.update(epoch=epoch + 1, val_acc=val.accuracy)
                    save_checkpoint(state, best_path)
            progress.epoch += 1
            progress.step, progress.loss_sum, progress.correct, progress.seen = 0, 0.0, 0, 0
            save_last(last_path, cfg, model, opt, sched, gen, progress, dist, device)

    if is_main:
        final_report(cfg, run_dir, device, data, metrics)
    return 0


def final_report(
    cfg: Config, run_dir: Path, device: torch.device, data: Splits, metrics: Metrics
) -> None:
    """Test accuracy of best.pt (the model chosen on validation), then the plots."""
    best = load_checkpoint(run_dir / "best.pt", ("model", "epoch"), map_location=device)
    model = build_model(cfg.model, readout_for(cfg), model_io(cfg)).to(device)
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
        from snn.training import plots  # matplotlib only when plots are asked for

        plots.make_all(run_dir, model, cfg, metrics.history(), test, data, device)
        print(f"plots in {run_dir}")


def run_eval(ckpt: str, overrides: list[str]) -> int:
    """``--eval``: the accuracy of a checkpoint on the whole test set (MNIST's: 10k images)."""
    state = load_checkpoint(ckpt, ("model", "config"))
    cfg = config_from_dict(apply_overrides(state["config"], overrides))
    device = setup_device(cfg)
    data = load_data(cfg, device, full_test=True)
    model = build_model(cfg.model, readout_for(cfg), model_io(cfg)).to(device)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train a spiking classifier on MNIST or another data.dataset.",
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
    p.add_argument("--eval", metavar="CKPT", help="test accuracy of a checkpoint, whole test set")
    p.add_argument("--data-root", metavar="DIR", help="data root (holds MNIST/raw/, NMNIST/, ...)")
    args = p.parse_intermixed_args(argv)
    args.config, args.overrides = None, []
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
        device = setup_device(cfg, dist)
        per_rank_batch(cfg, dist)
        data = load_data(cfg, device)  # fails here, before a run folder exists, if data are missing
        init_distributed(dist, device)
        if run_dir is None:
            # rank 0 names the folder (it holds a timestamp) and tells the others
            run_dir = from_main(new_run_dir(cfg) if dist.is_main else None, dist)
            if dist.is_main:
                save_config(cfg, run_dir / "config.yaml")
        t0 = time.perf_counter()
        code = train(cfg, run_dir, device, dist, data)
        if dist.is_main:
            print(f"done in {time.perf_counter() - t0:.1f} s; outputs in {run_dir}")
        return code
    except tuple(EXIT_CODES) as e:  # expected errors: a message and an exit code, no traceback
        return exit_code(e)
    finally:
        close_distributed()


if __name__ == "__main__":
    sys.exit(main())
