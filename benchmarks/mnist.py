"""Train the MNIST configs and print test accuracy on all 10,000 test images, wall time and device.

    python benchmarks/mnist.py                       # the default config (MLP)
    python benchmarks/mnist.py mnist_mlp mnist_cnn   # several configs, one after another
    python benchmarks/mnist.py mnist_mlp --set train.threads=1 --set train.epochs=8

Each config runs as ``python train.py configs/<name>.yaml log.progress=false ...`` in its own
process (so nothing leaks between runs), in ``runs/bench/``. The wall time counts everything the
user waits for: start-up, data loading, training, validation, the final test and the plots. The
model reported is ``best.pt``, chosen on the validation split; the test set is used once.
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

ROOT = Path(__file__).resolve().parents[1]


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
    device = next(
        line.split(",")[0].split(": ")[1] for line in lines if line.startswith("device: ")
    )
    return {
        "config": name,
        "command": shown,
        "test_acc": test["test_acc"],
        "test_images": test["test_images"],
        "best_epoch": test["best_epoch"],
        "best_val_acc": max(r["val_acc"] for r in epochs),
        "epochs": len(epochs),
        "s_per_epoch": sum(r["seconds"] for r in epochs) / len(epochs),
        "wall_s": wall,
        "device": device,
        "run_dir": str(run_dir),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=["mnist_mlp"], help="names in configs/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override")
    p.add_argument("--out-dir", default=str(ROOT / "runs" / "bench"))
    args = p.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    results = [run(name, args.set, out_dir) for name in args.configs]
    print(
        "\n| config | test accuracy (10k) | best epoch / epochs | val acc | s/epoch | wall |",
        end="",
    )
    print(" device |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['config']} | {100 * r['test_acc']:.2f} % ({r['test_images']} images) "
            f"| {r['best_epoch']} / {r['epochs']} | {100 * r['best_val_acc']:.2f} % "
            f"| {r['s_per_epoch']:.1f} | {r['wall_s'] / 60:.1f} min | {r['device']} |"
        )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for r in results:
        print(f"{r['config']}: {r['command']}  ->  {r['run_dir']}")


if __name__ == "__main__":
    main()
