"""Train the MNIST configs and print test accuracy on all 10,000 test images, wall time and device.

    python benchmarks/mnist.py                       # the default config (MLP), its own seed
    python benchmarks/mnist.py mnist_mlp mnist_cnn   # several configs, one after another
    python benchmarks/mnist.py mnist_mlp --set train.threads=1 --set train.epochs=8
    python benchmarks/mnist.py --seeds 3             # seeds 0, 1, 2: each one's figures, the mean
    python benchmarks/mnist.py --seeds 3 --check     # exit 1 unless the main job's target is met

Each run is ``python train.py configs/<name>.yaml log.progress=false ...`` in its own process (so
nothing leaks between runs), in ``runs/bench/``. The wall time counts everything the user waits
for: start-up, data loading, training, validation, the final test and the plots. The model
reported is ``best.pt``, chosen on the validation split; the test set is used once per run.

``--check`` holds every config to the main job's target: a mean test accuracy over the seeds of
at least ``--min-mean`` (98.7 %), every seed at least ``--min-seed`` (98.6 %), and every run
within ``--max-wall`` seconds (300). Without ``--check`` nothing is judged and the exit code only
says whether the runs completed, so small configs (``smoke``) can be run the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MIN_MEAN, MIN_SEED, MAX_WALL_S = 98.7, 98.6, 300.0  # the main job: percent, percent, seconds


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(name: str, overrides: list[str], out_dir: Path) -> dict:
    before = set(out_dir.glob(f"{name}-*")) if out_dir.exists() else set()
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        str(ROOT / "configs" / f"{name}.yaml"),
        f"out_dir={out_dir}",
        "log.progress=false",
        *overrides,
    ]
    shown = " ".join(["python train.py", f"configs/{name}.yaml", *cmd[4:]])
    print(f"\n$ {shown}", flush=True)
    t0 = time.perf_counter()
    lines = []
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:  # stream the epoch lines while keeping them
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name}: train.py exited with {proc.returncode}")
    (run_dir,) = set(out_dir.glob(f"{name}-*")) - before
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    (test,) = [r for r in records if r["kind"] == "test"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    device = next(
        line.split(",")[0].split(": ")[1] for line in lines if line.startswith("device: ")
    )
    threads = resolved["train"]["threads"]
    return {
        "config": name,
        "command": shown,
        "seed": resolved["seed"],
        "test_acc": test["test_acc"],
        "test_images": test["test_images"],
        "best_epoch": test["best_epoch"],
        "best_val_acc": max(r["val_acc"] for r in epochs),
        "epochs": len(epochs),
        "s_per_epoch": sum(r["seconds"] for r in epochs) / len(epochs),
        "wall_s": wall,
        # train.threads=null leaves torch's own default (one thread per physical core)
        "threads": "torch default" if threads is None else str(threads),
        "device": device,
        "run_dir": str(run_dir),
    }


def summary(results: list[dict]) -> dict:
    """The mean and the worst of one config's runs (one per seed)."""
    n = len(results)
    return {
        "config": results[0]["config"],
        "runs": n,
        "mean_test": 100 * sum(r["test_acc"] for r in results) / n,
        "min_test": 100 * min(r["test_acc"] for r in results),
        "mean_val": 100 * sum(r["best_val_acc"] for r in results) / n,
        "max_wall_s": max(r["wall_s"] for r in results),
    }


def misses(s: dict, results: list[dict], min_mean: float, min_seed: float, max_wall: float):
    """What ``--check`` reports for one config: every way it falls short of the target."""
    out = []
    if s["mean_test"] < min_mean:
        out.append(f"mean test accuracy {s['mean_test']:.2f} % < {min_mean} %")
    for r in results:
        if 100 * r["test_acc"] < min_seed:
            acc = 100 * r["test_acc"]
            out.append(f"seed {r['seed']}: test accuracy {acc:.2f} % < {min_seed} %")
        if r["wall_s"] > max_wall:
            out.append(f"seed {r['seed']}: wall time {r['wall_s']:.0f} s > {max_wall:g} s")
    return [f"{s['config']}: {m}" for m in out]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=["mnist_mlp"], help="names in configs/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override")
    p.add_argument("--out-dir", default=str(ROOT / "runs" / "bench"))
    p.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="run each config with seed=0..N-1 and print the mean (default: the config's seed)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if any config misses the target")
    p.add_argument(
        "--min-mean",
        type=float,
        default=MIN_MEAN,
        metavar="PCT",
        help=f"--check: the lowest mean test accuracy over the seeds (default {MIN_MEAN})",
    )
    p.add_argument(
        "--min-seed",
        type=float,
        default=MIN_SEED,
        metavar="PCT",
        help=f"--check: the lowest test accuracy of any seed (default {MIN_SEED})",
    )
    p.add_argument(
        "--max-wall",
        type=float,
        default=MAX_WALL_S,
        metavar="SECONDS",
        help=f"--check: the longest wall time of any run (default {MAX_WALL_S:g})",
    )
    args = p.parse_args()
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.seeds is not None and any(s.partition("=")[0].strip() == "seed" for s in args.set):
        p.error("--seeds sets seed=0..N-1 itself; drop --set seed=... or drop --seeds")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    seeds = [None] if args.seeds is None else list(range(args.seeds))
    by_config = {
        name: [run(name, args.set + ([] if s is None else [f"seed={s}"]), out_dir) for s in seeds]
        for name in args.configs
    }
    print(
        "\n| config | seed | test accuracy | best epoch / epochs | val acc | s/epoch | wall "
        "| threads | device |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for results in by_config.values():
        for r in results:
            print(
                f"| {r['config']} | {r['seed']} | {100 * r['test_acc']:.2f} % "
                f"({r['test_images']} images) | {r['best_epoch']} / {r['epochs']} "
                f"| {100 * r['best_val_acc']:.2f} % | {r['s_per_epoch']:.1f} "
                f"| {r['wall_s'] / 60:.1f} min ({r['wall_s']:.0f} s) | {r['threads']} "
                f"| {r['device']} |"
            )
    summaries = {name: summary(results) for name, results in by_config.items()}
    if len(seeds) > 1:
        print()
        for s in summaries.values():
            print(
                f"{s['config']}: mean test {s['mean_test']:.2f} % over {s['runs']} seeds "
                f"(lowest {s['min_test']:.2f} %), mean val {s['mean_val']:.2f} %, "
                f"longest run {s['max_wall_s']:.0f} s"
            )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for results in by_config.values():
        for r in results:
            print(f"{r['config']}: {r['command']}  ->  {r['run_dir']}")
    if not args.check:
        return 0
    found = [
        m
        for name, results in by_config.items()
        for m in misses(summaries[name], results, args.min_mean, args.min_seed, args.max_wall)
    ]
    target = (
        f"mean >= {args.min_mean} %, every seed >= {args.min_seed} %, "
        f"every run <= {args.max_wall:g} s"
    )
    if found:
        print(f"check FAILED (target: {target}):\n  " + "\n  ".join(found))
        return 1
    print(f"check passed ({target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
