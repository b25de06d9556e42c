"""The Open Neuromorphic benchmark's shape on one GPU: snn against SpikingJelly and Norse.

Linear(N -> N) -> LIF, batch 16, T = 500, forward and backward of the spike sum, at N = 4,096
and 16,384 neurons, in float32 and under bf16 autocast; the time per step (median of the
iterations, after warm-up) and the peak memory torch allocated during one step. In the same
process, one row after another on the same GPU:

* snn's LIF with ``backend="fused"`` (the Triton kernels on CUDA) and ``backend="eager"``;
* SpikingJelly's multi-step ``LIFNode`` with every backend it has that runs (``cupy``,
  ``triton``, ``torch``), soft reset, arctan surrogate;
* Norse's ``LIF`` under ``torch.compile`` ("Norse (compiled)"), and plain;
* the rest of snn's family on the same shape (``backend="fused"``, the Triton kernels on CUDA):
  ``CubaLIF``, ``ALIF``, and ``Recurrent`` around a LIF and an ALIF (``Linear -> Recurrent``:
  one ``[B, N] x [N, N]`` product and one step kernel per step), with the recurrent LIF also
  through snn's plain autograd loop (``backend="reference"``). The summary gives each one's
  time over the LIF's (issue 12 asks CubaLIF and ALIF for at most 1.2x).

A peer that cannot be imported is reported as missing, never guessed. ``--check`` exits 1 unless
the issue's targets hold at 16,384 neurons (measured first, its verdict printed before the
smaller size runs): snn fp32 at or below SpikingJelly's fastest fp32,
snn bf16 at most 0.6x snn fp32, snn's peak memory at most 0.6x SpikingJelly's (a target whose
peer did not run fails: it is unmeasured). ``--dry-run`` runs the same code on the CPU with tiny
sizes, to check the script without a GPU; its figures mean nothing.

    python benchmarks/gpu_speed.py                  # on a CUDA machine
    python benchmarks/gpu_speed.py --check --json runs/gpu_speed.json
    python benchmarks/gpu_speed.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH, STEPS = 16, 500
NEURONS = (4096, 16384)
BETA, TAU = 0.9, 10.0  # the same decay: SpikingJelly's 1 - 1/tau with decay_input=False
_default_block: list[int] = []  # the kernels' own BLOCK, kept before a row changes it


def snn_layer(backend: str, block: int | None = None) -> Callable[[int], torch.nn.Module]:
    """snn's LIF; ``block`` sets the Triton kernels' neurons per program (default: the
    module's ``BLOCK``)."""

    def build(n: int) -> torch.nn.Module:
        import snn
        from snn.kernels import triton_lif

        if not _default_block:
            _default_block.append(triton_lif.BLOCK)
        triton_lif.BLOCK = block or _default_block[0]
        return snn.LIF(beta=BETA, backend=backend)

    return build


def snn_family_layer(kind: str, backend: str = "fused") -> Callable[[int], torch.nn.Module]:
    """snn's CubaLIF, ALIF, or a Recurrent layer around a LIF (``"recurrent lif"``) or an ALIF
    (``"recurrent alif"``), with snn's default parameters but the LIF's beta."""

    def build(n: int) -> torch.nn.Module:
        import snn

        if kind == "cuba_lif":
            return snn.CubaLIF(beta=BETA, backend=backend)
        if kind == "alif":
            return snn.ALIF(beta=BETA, backend=backend)
        neuron = snn.ALIF(beta=BETA) if kind == "recurrent alif" else snn.LIF(beta=BETA)
        return snn.Recurrent(neuron, n, backend=backend)

    return build


def spikingjelly_layer(backend: str) -> Callable[[int], torch.nn.Module]:
    def build(n: int) -> torch.nn.Module:
        from spikingjelly.activation_based import functional, neuron, surrogate

        class SpikingJellyLIF(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                # decay_input=False, v_reset=None: v <- v (1 - 1/tau) + x, soft reset
                self.lif = neuron.LIFNode(
                    tau=TAU, decay_input=False, v_reset=None, backend=backend,
                    surrogate_function=surrogate.ATan(), step_mode="m",
                )  # fmt: skip

            def forward(self, x):
                functional.reset_net(self.lif)
                return self.lif(x)

        return SpikingJellyLIF()

    return build


def norse_layer(compiled: bool) -> Callable[[int], torch.nn.Module]:
    def build(n: int) -> torch.nn.Module:
        import norse.torch as norse

        class NorseLIF(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lif = norse.LIF()

            def forward(self, x):
                return self.lif(x)[0]

        module = NorseLIF()
        return torch.compile(module) if compiled else module

    return build


ROWS: list[tuple[str, Callable[[int], torch.nn.Module]]] = [
    ("snn fused", snn_layer("fused")),
    ("snn eager", snn_layer("eager")),
    ("spikingjelly cupy", spikingjelly_layer("cupy")),
    ("spikingjelly triton", spikingjelly_layer("triton")),
    ("spikingjelly torch", spikingjelly_layer("torch")),
    ("norse compiled", norse_layer(True)),
    ("norse", norse_layer(False)),
    ("snn cuba_lif fused", snn_family_layer("cuba_lif")),
    ("snn alif fused", snn_family_layer("alif")),
    ("snn recurrent lif fused", snn_family_layer("recurrent lif")),
    ("snn recurrent alif fused", snn_family_layer("recurrent alif")),
    ("snn recurrent lif reference", snn_family_layer("recurrent lif", "reference")),
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(build, n: int, steps: int, batch: int, bf16: bool, iters: int, device) -> dict:
    """Time forward + backward of Linear(n -> n) -> layer on the spike sum; peak memory."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(n, n).to(device)
    layer = build(n).to(device)
    x = torch.rand(steps, batch, n, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            spikes = layer(linear(x))
        spikes.float().sum().backward()
        linear.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up: kernels compiled, allocator primed
        step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
    return {"time_s": statistics.median(times), "peak_bytes": peak}


def missed_targets(results: list[dict], n: int) -> list[str]:
    def get(name: str, bf16: bool) -> dict | None:
        for r in results:
            if r["row"] == name and r["neurons"] == n and r["bf16"] == bf16 and "time_s" in r:
                return r
        return None

    missed = []
    ours, ours_bf16 = get("snn fused", False), get("snn fused", True)
    jelly = [r for r in results if r["row"].startswith("spikingjelly") and "time_s" in r]
    jelly = [r for r in jelly if r["neurons"] == n and not r["bf16"]]
    if ours is None:
        return [f"snn fused fp32 at {n} neurons did not run"]
    if not jelly:
        missed.append("no SpikingJelly backend ran: the time and memory targets are unmeasured")
    else:
        fastest = min(jelly, key=lambda r: r["time_s"])
        if ours["time_s"] > fastest["time_s"]:
            missed.append(
                f"fp32 time {ours['time_s']:.4f} s > {fastest['row']}'s {fastest['time_s']:.4f} s"
            )
        least = min(r["peak_bytes"] for r in jelly)
        if not ours["peak_bytes"] <= 0.6 * least:
            missed.append(f"peak memory {ours['peak_bytes'] / 1e9:.2f} GB > 0.6x {least / 1e9:.2f}")
    if ours_bf16 is None:
        missed.append("snn fused bf16 did not run")
    elif ours_bf16["time_s"] > 0.6 * ours["time_s"]:
        missed.append(f"bf16 time {ours_bf16['time_s']:.4f} s > 0.6x fp32 {ours['time_s']:.4f} s")
    return missed


def family_ratios(results: list[dict], n: int) -> list[str]:
    """Each family row's time over snn's LIF (``snn fused``) at ``n`` neurons, fp32."""
    times = {r["row"]: r["time_s"] for r in results
             if r["neurons"] == n and not r["bf16"] and "time_s" in r}  # fmt: skip
    if "snn fused" not in times:
        return []
    return [f"{row[4:]} {times[row] / times['snn fused']:.2f}x" for row in times
            if row.startswith(("snn cuba", "snn alif", "snn recurrent"))]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per row")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script")
    ap.add_argument(
        "--blocks",
        default="",
        metavar="B1,B2",
        help="also time snn fused with these Triton block sizes (neurons per program)",
    )
    args = ap.parse_args()
    rows = list(ROWS)
    for k, block in enumerate(int(b) for b in args.blocks.split(",") if b.strip()):
        rows.insert(1 + k, (f"snn fused block {block}", snn_layer("fused", block)))
    if args.dry_run:
        device, sizes, steps, batch, iters = torch.device("cpu"), (64, 96), 10, 2, 1
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: nothing measured (use --dry-run to check the script)")
            return 1
        device, sizes, steps, batch, iters = torch.device("cuda"), NEURONS, STEPS, BATCH, args.iters
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    print(f"device: {name}; Linear(N->N) -> LIF, batch {batch}, T={steps}, fwd+bwd of the sum")
    print(f"{'row':28} {'N':>6} {'dtype':>5} {'time (s)':>10} {'peak (GB)':>10}")
    results = []
    # the targets' size first, its verdict printed as soon as it is measured: a run cut short
    # (gpu_check.sh gives this script a fixed share of its time) still says it
    sizes = sorted(sizes, reverse=True)
    for n in sizes:
        for bf16 in (False, True):
            for row, build in rows:
                record = {"row": row, "neurons": n, "bf16": bf16}
                try:
                    record |= measure(build, n, steps, batch, bf16, iters, device)
                    shown = f"{record['time_s']:10.4f} {record['peak_bytes'] / 1e9:10.2f}"
                except ImportError as err:
                    record["missing"] = str(err)
                    shown = f"  not installed ({err.name or err})"
                except Exception as err:  # noqa: BLE001 - a peer backend that fails is reported
                    record["error"] = f"{type(err).__name__}: {err}"
                    shown = f"  failed: {record['error'][:80]}"
                    if row.startswith("snn"):
                        traceback.print_exc()
                print(f"{row:28} {n:6} {'bf16' if bf16 else 'fp32':>5} {shown}", flush=True)
                results.append(record)
                if args.json:  # after every row: a run cut short keeps what it measured
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps({"device": name, "results": results}))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        print(f"time over the LIF's at {n} neurons, fp32:", ", ".join(family_ratios(results, n)))
        if n == sizes[0]:
            missed = missed_targets(results, n)
            print("targets at", n, "neurons:", "met" if not missed else "; ".join(missed))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "results": results}, indent=1))
    return 1 if args.check and missed and not args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
