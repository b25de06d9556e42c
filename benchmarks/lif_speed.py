"""Time and memory of a LIF layer against the ANN floor, snn's reference loop and the peers.

Configurations (issue 6; ON and the thread counts, issue 16):

* **A**: 784-1000-10, two Linear->LIF layers, T=25, batch 128: forward, cross-entropy on spike
  counts, backward, Adam step.
* **B**: Linear(512->2048)->LIF, T=100, batch 32: forward and backward of the spike sum; peak
  tensor memory from the torch profiler, also for three other losses (``mean()``, a weighted
  ``sum(0)``, a weighted sum), each against the floor with the same loss.
* **C**: the LIF alone on currents [500, 16, 4096]: forward, a weighted sum of the spikes,
  backward to the input.
* **ON**: the Open Neuromorphic benchmark's shape on CPU: Linear(4096->4096)->LIF, T=500,
  batch 16, forward and backward of the spike sum.
* **GPU** (only when CUDA is available): the LIF alone on [500, 16, 16384].

A, B, C and ON also time snn's other neurons in the LIF's place: CubaLIF and ALIF, which the
native kernel runs as it runs the LIF and which are held to the same targets, and in B and ON a
recurrent LIF (``snn.Recurrent``, timed but not held to the floor: its ``[N, N]`` product per step
is work the floor does not do). B's memory by loss is measured for each neuron held.

On CPU, A, B and C also time snn's default on threads the native kernel starts and joins itself
(``snn fused, own threads``, its runner where torch has no OpenMP) beside its default, torch's
own OpenMP team: the choice of runner, measured side by side.

A, B and C run with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000`` so that glibc
keeps freed pages and page faults do not swamp the neuron's own cost. With glibc's defaults the
same network, run alone in a process of its own, took a median of 0 page faults a step in some
processes and 3,100 to 12,500 in others (A's LIF and ALIF networks, 2026-12-01), so the faults
decided which row looked slow. ON's steps take seconds (on the 2-core VM, idle, at 2 threads:
the floor 1.8 s, Norse 27 s), so it runs 1 iteration with no warmup per round by default. The
floor is the same network without the neuron's time loop: ReLU for A, B and ON, and for C one
``sigmoid`` forward and backward over the same tensor. Each configuration runs in fresh
processes, one per round; within a round the rows alternate iteration by iteration so that load
from other processes hits them alike. A row's figure for a round is the median of its
iterations; the table shows the median, min and max over rounds, and the ratio to the floor (the
median over rounds of the ratio measured within each round). "page faults" is the median over
rounds of a row's median minor page faults per step: a step that maps fresh pages (glibc handed
back freed memory) pays a few milliseconds for it, whichever row the allocation order picks.

Every configuration runs at torch's default thread count (all cores), and again at each count
given with ``--threads``; every table and row says its thread count. ``--check`` exits non-zero
when snn's default, CubaLIF or ALIF misses a target at any thread count: A <= 1.05x the floor,
B <= 1.10x, B's peak tensor memory <= 1.1x the floor's for every loss, C <= 1.5x, and in every
configuration below every peer that ran.

Peers (snnTorch, SpikingJelly, Norse) are timed when importable: ``pip install -e .[bench]``, or a
separate venv with ``PYTHONPATH`` pointing at this repository. Usage::

    python benchmarks/lif_speed.py                     # A, B, C, ON (GPU too with CUDA)
    python benchmarks/lif_speed.py --threads 1 --check # also at 1 thread; fail on a missed target
    python benchmarks/lif_speed.py --quick             # 1 round of 3 iterations, a smoke run
    python benchmarks/lif_speed.py --configs B --rounds 5 --iters 30
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

CONFIGS = ("A", "B", "C", "ON", "GPU")
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
# the configurations run with MALLOC_ENV. Not ON: with freed pages never returned, its profiled
# peers' runs grew past 24 GB and the kernel killed the worker (page faults are negligible
# against its 9 s steps anyway). Not GPU: its tensors live in the device's memory.
KEPT_PAGES_CONFIGS = ("A", "B", "C")
PEERS = ("snntorch", "spikingjelly", "norse")
# snn's rows: the default (native on CPU), the eager executor, the plain autograd loop
SNN_BACKENDS = ("fused", "eager", "reference")
SNN_DEFAULT = "snn fused"
OWN_THREADS = "snn fused, own threads"  # the native kernel on its own threads, to compare
# iterations per round where --iters is not given: C runs a second a step, ON (two 805-GFLOP
# matrix products a step) several
DEFAULT_ITERS = {"A": 20, "B": 20, "C": 8, "ON": 1, "GPU": 20}
# the targets --check holds snn's default to (x the floor), at every thread count
TARGETS = {"A": 1.05, "B": 1.10, "C": 1.5}
MEMORY_TARGET = 1.1  # B: peak tensor memory, x the floor's with the same loss


# ------------------------------------------------------------------------------------------------
# Rows: each builder returns a zero-argument step function, or raises ImportError.


def _snn_lif(backend: str):
    """snn's LIF layer with one backend ("fused", the default, is native on CPU, eager on GPU)."""
    import snn

    return snn.LIF(beta=0.9, backend=backend)


def _snn_default():
    return _snn_lif("fused")


def _peer_lif(name: str):
    """A peer's LIF layer as a module mapping [T, B, N] currents to spikes; beta = 0.9,
    threshold 1, subtract (soft) reset, arctan surrogate where the peer has one."""
    import torch

    if name == "snntorch":
        import snntorch
        from snntorch import surrogate

        class SnnTorchLIF(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lif = snntorch.Leaky(beta=0.9, spike_grad=surrogate.atan())

            def forward(self, x):
                mem = self.lif.init_leaky()
                out = []
                for x_t in x.unbind(0):
                    spk, mem = self.lif(x_t, mem)
                    out.append(spk)
                return torch.stack(out)

        return SnnTorchLIF()
    if name == "spikingjelly":
        from spikingjelly.activation_based import functional, neuron, surrogate

        class SpikingJellyLIF(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                # decay_input=False, v_reset=None: v <- v (1 - 1/tau) + x, soft reset
                self.lif = neuron.LIFNode(
                    tau=10.0, decay_input=False, v_reset=None,
                    surrogate_function=surrogate.ATan(), step_mode="m",
                )  # fmt: skip

            def forward(self, x):
                functional.reset_net(self.lif)
                return self.lif(x)

        return SpikingJellyLIF()
    if name == "norse":
        import norse.torch as norse

        class NorseLIF(torch.nn.Module):
            """Norse's sequence LIF (with its synaptic current), its own time loop."""

            def __init__(self) -> None:
                super().__init__()
                self.lif = norse.LIF()

            def forward(self, x):
                return self.lif(x)[0]

        return NorseLIF()
    raise ValueError(name)


def _norse_box_loop():
    """Norse's LIFBoxCell (a LIF without synaptic current) in our own unbind loop."""
    import norse.torch as norse
    import torch

    cell = norse.LIFBoxCell()

    def run(x):
        state, out = None, []
        for x_t in x.unbind(0):
            spk, state = cell(x_t, state)
            out.append(spk)
        return torch.stack(out)

    return run


def _on_own_threads(step: Callable) -> Callable:
    """``step`` with snn's native kernel on threads it starts and joins for each call, instead of
    torch's OpenMP team (what it falls back to where torch has no OpenMP): the choice, measured."""
    import snn

    def run():
        with snn.kernels.native._own_threads():
            step()

    return run


def _snn_family(kind: str, n: int):
    """snn's other neurons, as a module mapping [T, B, n] currents to spikes."""
    import snn

    if kind == "CubaLIF":
        return snn.CubaLIF(alpha=0.8, beta=0.9)
    if kind == "ALIF":
        return snn.ALIF(beta=0.9)
    if kind == "Recurrent":
        return snn.Recurrent(snn.LIF(beta=0.9), n)
    raise ValueError(kind)


FAMILY = ("CubaLIF", "ALIF", "Recurrent")
# the family members run by the native kernel as the LIF is, held to its targets (issue 16):
# in every configuration beside it, each against the floor and the peers. snn.Recurrent is timed
# in B and ON but not held to them: its [N, N] product per step is work the floor does not do.
FEED_FORWARD_FAMILY = ("CubaLIF", "ALIF")
HELD_ROWS = (SNN_DEFAULT, *(f"snn {kind}" for kind in FEED_FORWARD_FAMILY))


def rows_for(config: str, device: str) -> tuple[list[tuple[str, Callable]], list[str]]:
    """The (name, step) rows of a configuration, and notes on rows that could not be built."""
    import torch

    import snn

    notes: list[str] = []
    rows: list[tuple[str, Callable]] = []
    gen = torch.Generator().manual_seed(0)
    why = snn.kernels.native.unavailable_reason(torch.zeros(1, device=device), snn.surrogate.ATan())
    # the threads the native kernel runs on, compared: torch's OpenMP team or its own
    compare_threads = why is None and snn.kernels.native._uses_openmp()
    if why is None:
        runner = "torch's OpenMP threads" if compare_threads else "threads of its own"
        notes.append(f"snn fused ran the native C kernel (snn.kernels.native), on {runner}")
        if compare_threads:
            notes.append(f"{OWN_THREADS}: the same kernel on threads it starts and joins per call")
    else:
        notes.append(f"snn fused ran the eager executor: the native kernel cannot, as {why}")

    def add(name: str, build: Callable[[], Callable]) -> None:
        try:
            rows.append((name, build()))
        except ImportError as err:
            notes.append(
                f"{name}: not importable here ({err.name or err}); pip install -e .[bench]"
            )

    if config == "A":
        T, B, sizes = 25, 128, (784, 1000, 10)
        x = (torch.rand(T, B, sizes[0], generator=gen) < 0.2).float().to(device)
        labels = torch.randint(0, sizes[2], (B,), generator=gen).to(device)
        base = [torch.nn.Linear(sizes[i], sizes[i + 1]).to(device) for i in range(2)]

        def linears():
            layers = [torch.nn.Linear(lin.in_features, lin.out_features) for lin in base]
            for new, old in zip(layers, base, strict=True):
                new.load_state_dict(old.state_dict())
            return [lin.to(device) for lin in layers]

        def train_step(forward, params):
            opt = torch.optim.Adam(params, lr=1e-3)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(forward(), labels)
                loss.backward()
                opt.step()

            return step

        def floor():
            l1, l2 = linears()

            def forward():
                h = torch.relu(l1(x.reshape(T * B, -1)))
                return torch.relu(l2(h)).reshape(T, B, -1).sum(0)

            return train_step(forward, [*l1.parameters(), *l2.parameters()])

        def snn_net(make_lif):
            def build():
                l1, l2 = linears()
                n1, n2 = make_lif(), make_lif()
                n1.to(device), n2.to(device)
                params = [*l1.parameters(), *l2.parameters()]
                return train_step(lambda: n2(l2(n1(l1(x)))).sum(0), params)

            return build

        add("ANN floor (ReLU)", floor)
        for backend in SNN_BACKENDS:
            add(f"snn {backend}", snn_net(lambda backend=backend: _snn_lif(backend)))
        if compare_threads:
            add(OWN_THREADS, lambda: _on_own_threads(snn_net(_snn_default)()))
        for kind in FEED_FORWARD_FAMILY:
            add(f"snn {kind}", snn_net(lambda kind=kind: _snn_family(kind, 0)))
        for peer in PEERS:
            add(peer, snn_net(lambda peer=peer: _peer_lif(peer)))
        return rows, notes

    if config in ("B", "ON"):
        T, B, n_in, n_out = (100, 32, 512, 2048) if config == "B" else (500, 16, 4096, 4096)
        x = torch.rand(T, B, n_in, generator=gen).to(device)
        base = torch.nn.Linear(n_in, n_out)

        def layer(make_neuron):
            def build():
                lin = torch.nn.Linear(n_in, n_out)
                lin.load_state_dict(base.state_dict())
                lin.to(device)
                neuron = make_neuron().to(device)

                def step():
                    neuron(lin(x)).sum().backward()

                return step

            return build

        add("ANN floor (ReLU)", layer(lambda: torch.nn.ReLU()))
        # ON's step is mostly its matrix products: snn's default only, beside the peers
        for backend in SNN_BACKENDS if config == "B" else ("fused",):
            add(f"snn {backend}", layer(lambda backend=backend: _snn_lif(backend)))
        if compare_threads and config == "B":
            add(OWN_THREADS, lambda: _on_own_threads(layer(_snn_default)()))
        for kind in FAMILY:
            add(f"snn {kind}", layer(lambda kind=kind: _snn_family(kind, n_out)))
        for peer in PEERS:
            add(peer, layer(lambda peer=peer: _peer_lif(peer)))
        return rows, notes

    # C and GPU: the neuron alone
    T, B, N = (500, 16, 4096) if config == "C" else (500, 16, 16384)
    x = (torch.rand(T, B, N, generator=gen) * 0.6).to(device).requires_grad_()
    w = torch.randn(T, B, N, generator=gen).to(device)

    def alone(make):
        def build():
            run = make()

            def step():
                x.grad = None
                (w * run(x)).sum().backward()

            return step

        return build

    add("elementwise floor (sigmoid)", alone(lambda: torch.sigmoid))
    for backend in SNN_BACKENDS if device == "cpu" else ("fused",):
        add(f"snn {backend}", alone(lambda backend=backend: _snn_lif(backend).to(device)))
    if compare_threads:
        add(OWN_THREADS, lambda: _on_own_threads(alone(_snn_default)()))
    if config == "C":
        for kind in FEED_FORWARD_FAMILY:
            add(f"snn {kind}", alone(lambda kind=kind: _snn_family(kind, N)))
    for peer in ("snntorch", "spikingjelly"):
        add(peer, alone(lambda peer=peer: _peer_lif(peer).to(device)))
    if config == "C":
        add("norse LIFBoxCell, own loop", alone(_norse_box_loop))
    return rows, notes


# B's losses for the memory check: a loss on mean() (autograd writes its gradient out), on a
# weighted sum over time (a gradient with stride 0 over time) and a weighted sum (written out)
B_LOSSES = ("mean()", "(w_step * spikes.sum(0)).sum()", "(w * spikes).sum()")


def b_memory_cases(device: str) -> list[tuple[str, dict[str, Callable]]]:
    """(loss, {row: step}) for each of B's losses: Linear(512->2048) then ReLU (the floor, first),
    or one of the neurons held to the targets (``HELD_ROWS``)."""
    import torch

    T, B, n_in, n_out = 100, 32, 512, 2048
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(T, B, n_in, generator=gen).to(device)
    w = torch.randn(T, B, n_out, generator=gen).to(device)
    losses = {
        B_LOSSES[0]: lambda s: s.mean(),
        B_LOSSES[1]: lambda s: (w[0] * s.sum(0)).sum(),
        B_LOSSES[2]: lambda s: (w * s).sum(),
    }
    neurons = {
        "floor (ReLU)": torch.nn.ReLU,
        SNN_DEFAULT: _snn_default,
        **{
            f"snn {kind}": lambda kind=kind: _snn_family(kind, n_out)
            for kind in FEED_FORWARD_FAMILY
        },
    }
    cases = []
    for name, loss in losses.items():
        steps = {}
        for row, make in neurons.items():
            lin = torch.nn.Linear(n_in, n_out).to(device)
            neuron = make().to(device)
            steps[row] = lambda lin=lin, neuron=neuron, loss=loss: loss(neuron(lin(x))).backward()
        cases.append((name, steps))
    return cases


# ------------------------------------------------------------------------------------------------
# Measuring, inside one worker process.


def peak_tensor_memory(step: Callable, device: str) -> float:
    """Peak of the tensor memory allocated during one ``step`` (MB), from the torch profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    want = 1 if device == "cuda" else 0  # the trace's device type: 0 CPU, 1 CUDA
    memory = [
        e for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == want
    ]
    memory.sort(key=lambda e: float(e["ts"]))
    current = peak = 0
    made = set()  # frees of tensors made before the step (an old .grad) do not count
    for event in memory:
        size, addr = event["args"]["Bytes"], event["args"]["Addr"]
        if size > 0:
            made.add(addr)
        elif addr not in made:
            continue
        else:
            made.discard(addr)
        current += size
        peak = max(peak, current)
    return peak / 1e6


def worker(config: str, iters: int, warmup: int, memory: bool, threads: int | None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    device = "cuda" if config == "GPU" else "cpu"
    warnings.filterwarnings("ignore")  # peers' deprecation chatter
    rows, notes = rows_for(config, device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    live = []
    for name, step in rows:
        try:
            started = time.perf_counter()
            for _ in range(warmup):
                step()
            sync()
            live.append((name, step, time.perf_counter() - started))
        except Exception as err:  # noqa: BLE001 - report any row that cannot run, keep the rest
            notes.append(f"{name}: failed ({type(err).__name__}: {str(err).splitlines()[0]})")
    times: dict[str, list[float]] = {name: [] for name, _, _ in live}
    faults: dict[str, list[int]] = {name: [] for name, _, _ in live}
    for _ in range(iters):
        for name, step, _ in live:
            sync()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - started)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    peaks = {name: peak_tensor_memory(step, device) for name, step, _ in live} if memory else {}
    loss_peaks = {}
    if memory and config == "B":
        for loss, steps in b_memory_cases(device):
            for step in steps.values():
                step()  # warm: parameters' .grad exist before the measured step
            loss_peaks[loss] = {row: peak_tensor_memory(s, device) for row, s in steps.items()}
    return {
        "config": config,
        "rows": [name for name, _, _ in live],
        "ms": {name: statistics.median(t) * 1e3 for name, t in times.items()},
        "faults": {name: statistics.median(f) for name, f in faults.items()},
        "warmup_s": {name: w for name, _, w in live},
        "peak_mb": peaks,
        "loss_peak_mb": loss_peaks,
        "notes": notes,
        "threads": torch.get_num_threads(),
        "iters": iters,
        "torch": torch.__version__,
    }


# ------------------------------------------------------------------------------------------------
# The driver: one fresh process per configuration, thread count and round.


def run_rounds(config: str, threads: int | None, args: argparse.Namespace) -> list[dict]:
    env = dict(os.environ)
    if config in KEPT_PAGES_CONFIGS:
        env.update(MALLOC_ENV)
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    iters = args.iters or DEFAULT_ITERS[config]
    warmup = args.warmup if args.warmup is not None else (0 if config == "ON" else 2)
    results = []
    for r in range(args.rounds):
        cmd = [
            sys.executable, __file__, "--worker", config, "--iters", str(iters),
            "--warmup", str(warmup),
        ]  # fmt: skip
        if threads:
            cmd += ["--threads", str(threads)]
        if r == 0 and not args.no_memory:
            cmd.append("--memory")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"the {config} worker failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def ratios(results: list[dict]) -> dict[str, float]:
    """Each row's time over the floor's: the median over rounds of the ratio within a round."""
    floor = results[0]["rows"][0]
    return {
        name: statistics.median(r["ms"][name] / r["ms"][floor] for r in results if name in r["ms"])
        for name in results[0]["rows"]
    }


def report(config: str, results: list[dict]) -> str:
    first = results[0]
    threads = first["threads"]
    ratio = ratios(results)
    lines = [
        f"\n### {config} at {threads} threads  (torch {first['torch']}, {len(results)} rounds x "
        f"{first['iters']} iterations, median per round)",
        "",
        "| | threads | median ms | min | max | x floor | peak tensor memory | page faults |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in first["rows"]:
        per_round = [r["ms"][name] for r in results if name in r["ms"]]
        peak = first["peak_mb"].get(name)
        mem = f"{peak:.0f} MB" if peak is not None else "-"
        faults = statistics.median(r["faults"][name] for r in results if name in r["faults"])
        lines.append(
            f"| {name} | {threads} | {statistics.median(per_round):.1f} | {min(per_round):.1f} | "
            f"{max(per_round):.1f} | {ratio[name]:.2f} | {mem} | {faults:.0f} |"
        )
    if first["loss_peak_mb"]:
        columns = list(next(iter(first["loss_peak_mb"].values())))
        lines += [
            "",
            f"B's peak tensor memory by loss, MB ({threads} threads; x the floor's):",
            "",
            "| loss | threads | " + " | ".join(columns) + " |",
            "| --- | --- |" + " --- |" * len(columns),
        ]
        for loss, peaks in first["loss_peak_mb"].items():
            floor_mb = peaks[columns[0]]
            cells = [f"{floor_mb:.0f}"]
            cells += [f"{peaks[row]:.0f} ({peaks[row] / floor_mb:.2f}x)" for row in columns[1:]]
            lines.append(f"| `{loss}` | {threads} | " + " | ".join(cells) + " |")
    for note in first["notes"]:
        lines.append(f"\n- {note}")
    return "\n".join(lines)


def missed_targets(config: str, results: list[dict]) -> list[str]:
    """What snn's default and the feed-forward family members (``HELD_ROWS``) miss of the
    targets in this run (see the module docstring)."""
    first = results[0]
    where = f"{config} at {first['threads']} threads"
    if SNN_DEFAULT not in first["rows"]:
        return [f"{where}: the row {SNN_DEFAULT!r} did not run"]
    ratio = ratios(results)
    missed = []
    floor = first["rows"][0]
    for row in HELD_ROWS:
        if row not in ratio:
            if config != "GPU":  # every CPU configuration runs them
                missed.append(f"{where}: the row {row!r} did not run")
            continue
        ours = ratio[row]
        if config in TARGETS and ours > TARGETS[config]:
            missed.append(f"{where}: {row} {ours:.2f}x the floor, target <= {TARGETS[config]}x")
        for peer in first["rows"]:
            if peer.startswith(PEERS) and ratio[peer] <= ours:
                missed.append(
                    f"{where}: {row} {ours:.2f}x the floor, not below {peer}'s {ratio[peer]:.2f}x"
                )
    peaks = dict(first["loss_peak_mb"])  # B's only
    if config == "B" and first["peak_mb"]:
        peaks["sum() (the timed step)"] = {
            row: first["peak_mb"][row] for row in (floor, *HELD_ROWS) if row in first["peak_mb"]
        }
    for loss, by_row in peaks.items():
        floor_mb = next(iter(by_row.values()))
        for row, mb in list(by_row.items())[1:]:
            if mb > MEMORY_TARGET * floor_mb:
                missed.append(
                    f"{where}: {row}'s peak tensor memory {mb:.0f} MB for `{loss}`, "
                    f"{mb / floor_mb:.2f}x the floor's {floor_mb:.0f} MB, "
                    f"target <= {MEMORY_TARGET}x"
                )
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS),
                        choices=CONFIGS)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per config")
    parser.add_argument(
        "--iters", type=int, default=None,
        help="timed iterations per round (default: "
        + ", ".join(f"{c} {n}" for c, n in DEFAULT_ITERS.items()) + ")",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed iterations first (default: 2; ON 0)"
    )
    parser.add_argument(
        "--threads", type=int, nargs="*", default=[],
        help="thread counts to measure besides torch's default (all cores)",
    )  # fmt: skip
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 iterations")
    parser.add_argument("--no-memory", action="store_true", help="skip the profiler's memory run")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        threads = args.threads[0] if args.threads else None
        result = worker(args.worker, args.iters, args.warmup, args.memory, threads)
        print(json.dumps(result))
        return
    if args.quick:
        args.rounds, args.iters, args.warmup = 1, 3, 1

    import torch

    default_threads = torch.get_num_threads()
    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"torch's default {default_threads} threads"
    )
    for peer in PEERS:
        try:
            __import__(peer)
            print(f"{peer} {importlib.metadata.version(peer)}")
        except ImportError:
            print(f"{peer}: not installed (pip install -e .[bench]); its rows are skipped")
    thread_counts = [None, *(t for t in dict.fromkeys(args.threads) if t != default_threads)]
    missed = []
    for config in args.configs:
        if config == "GPU" and not torch.cuda.is_available():
            print("\n### GPU\n\nskipped: CUDA is not available on this machine")
            continue
        for threads in thread_counts:
            started = time.perf_counter()
            results = run_rounds(config, threads, args)
            print(report(config, results))
            missed += missed_targets(config, results)
            took = time.perf_counter() - started
            print(f"\n({config} at {results[0]['threads']} threads took {took:.0f} s)", flush=True)
    if args.check:
        print("\n## Targets\n")
        print("\n".join(f"- MISSED {m}" for m in missed) or "- all met")
        if missed:
            sys.exit(1)


if __name__ == "__main__":
    main()
