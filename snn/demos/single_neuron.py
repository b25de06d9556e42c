"""The single-neuron demo command: the seed's LIF plots from snn's own LIF layer, on CPU or GPU.

::

    python -m snn.demos.single_neuron                     # constant 1.5 nA: 71 spikes, 710 Hz
    python -m snn.demos.single_neuron --input sine        # sine plus noise, seeded
    python -m snn.demos.single_neuron --input sine --population 1000 --fi --out docs/figures

Writes, into ``--out`` (default ``runs/single_neuron``):

* ``<input>.png``: membrane potential with the threshold, spike times, input current;
  ``<input>.json`` (parameters, spike times in ms, firing rate in Hz) and
  ``<input>_spikes.csv`` (one spike time per row);
* with ``--population N``: ``population_<input>.png`` (raster, population rate, rate histogram),
  ``population_<input>.json`` (per-neuron counts and rates) and ``population_<input>_spikes.csv``;
* with ``--fi``: ``fi_curve.png`` and ``fi_curve.csv`` (simulated, discrete-map and continuous
  rates).

``--show`` opens the figures in windows instead (add ``--out`` to save them as well). Bad
arguments stop with a message and exit code 2. Run ``--help`` for every parameter.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from snn.demos.fi_curve import (
    continuous_rate_hz,
    discrete_rate_hz,
    discrete_spike_count,
    simulate_fi,
)
from snn.demos.plots import DPI, plot_fi_curve, plot_population, plot_single
from snn.demos.simulate import INPUT_KINDS, NeuronParams, input_current, simulate

__all__ = ["build_parser", "main"]

DEFAULT_OUT = Path("runs/single_neuron")
SEED_NOISE = {"constant": 0.0, "sine": 0.2}  # nA, the seed scripts' noise per input kind


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m snn.demos.single_neuron``; its defaults are the seed's."""
    d = NeuronParams()
    ap = argparse.ArgumentParser(
        prog="python -m snn.demos.single_neuron",
        description="Simulate the seed's leaky integrate-and-fire neuron with snn.LIF and plot "
        "its membrane potential, spike times and firing rate (optionally a population and the "
        "f-I curve). Units: ms, mV, MOhm, nA.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--input",
        default="constant",
        choices=INPUT_KINDS,
        help="constant current, or current*(1 + sin(2 pi t/period)) plus noise",
    )
    ap.add_argument("--current", type=float, default=1.5, help="current I (nA)")
    ap.add_argument(
        "--noise",
        type=float,
        default=None,
        help="std of the Gaussian noise added per step (nA); default 0 for constant, 0.2 for sine",
    )
    ap.add_argument("--period", type=float, default=100.0, help="period of the sine input (ms)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise (drawn on the CPU)")
    ap.add_argument("--duration", type=float, default=100.0, help="simulated time (ms)")
    ap.add_argument("--dt", type=float, default=d.dt, help="time step (ms)")
    ap.add_argument("--tau", type=float, default=d.tau, help="membrane time constant (ms)")
    ap.add_argument("--v-rest", type=float, default=d.v_rest, help="resting potential (mV)")
    ap.add_argument("--v-reset", type=float, default=d.v_reset, help="reset potential (mV)")
    ap.add_argument("--v-th", type=float, default=d.v_th, help="threshold (mV)")
    ap.add_argument("--r", type=float, default=d.r, help="membrane resistance (MOhm)")
    ap.add_argument(
        "--exact",
        action="store_true",
        help="exact exponential decay exp(-dt/tau) instead of the seed's Euler step",
    )
    ap.add_argument(
        "--population",
        type=int,
        default=0,
        metavar="N",
        help="also run N neurons with independent noise in one batched run",
    )
    ap.add_argument("--fi", action="store_true", help="also draw the f-I curve")
    ap.add_argument("--fi-max", type=float, default=3.0, help="largest current of the f-I curve")
    ap.add_argument("--fi-points", type=int, default=61, help="simulated currents, 0..fi-max")
    ap.add_argument(
        "--fi-duration", type=float, default=1000.0, help="simulated time per f-I point (ms)"
    )
    ap.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="auto = cuda when a GPU is visible, else cpu",
    )
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"folder for PNGs, JSON and CSV (default {DEFAULT_OUT} unless --show)",
    )
    ap.add_argument("--show", action="store_true", help="open the figures in windows")
    return ap


def _steps(parser: argparse.ArgumentParser, flag: str, duration: float, dt: float) -> int:
    n = round(duration / dt)
    if n < 1 or abs(n * dt - duration) > 1e-9 * max(1.0, duration):
        parser.error(
            f"{flag} {duration:g} ms is not a whole number of --dt {dt:g} ms steps; "
            f"pick a {flag} that is a multiple of --dt"
        )
    return n


def _validate(parser: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Stop with exit code 2 and a message naming the flag for every impossible setting."""
    for flag in (
        "current",
        "noise",
        "period",
        "duration",
        "dt",
        "tau",
        "v_rest",
        "v_reset",
        "v_th",
        "r",
        "fi_max",
        "fi_duration",
    ):
        value = getattr(a, flag)
        if value is not None and not math.isfinite(value):
            parser.error(f"--{flag.replace('_', '-')} must be a finite number, got {value}")
    if a.dt <= 0:
        parser.error(f"--dt must be a positive time step in ms, got {a.dt:g}")
    if a.tau <= 0:
        parser.error(f"--tau must be a positive time constant in ms, got {a.tau:g}")
    if a.dt > a.tau and not a.exact:
        parser.error(
            f"--dt {a.dt:g} ms is larger than --tau {a.tau:g} ms: the Euler step overshoots "
            "(beta = 1 - dt/tau < 0). Use a smaller --dt, or --exact for the exponential step"
        )
    if a.v_th <= a.v_reset:
        parser.error(
            f"--v-th {a.v_th:g} mV must lie above --v-reset {a.v_reset:g} mV, or a spike could "
            "not lower the potential"
        )
    if a.r <= 0:
        parser.error(f"--r must be a positive resistance in MOhm, got {a.r:g}")
    if a.noise is not None and a.noise < 0:
        parser.error(f"--noise is a standard deviation and must be >= 0 nA, got {a.noise:g}")
    if a.period <= 0:
        parser.error(f"--period must be positive (ms), got {a.period:g}")
    if a.duration <= 0:
        parser.error(f"--duration must be positive (ms), got {a.duration:g}")
    if a.population < 0:
        parser.error(f"--population must be a number of neurons >= 0, got {a.population}")
    if a.fi_points < 2 or a.fi_max <= 0 or a.fi_duration <= 0:
        parser.error("--fi-points must be >= 2, --fi-max and --fi-duration positive")
    if a.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            "--device cuda: torch sees no CUDA GPU (torch.cuda.is_available() is False; "
            f"torch {torch.__version__}, built for CUDA {torch.version.cuda}). "
            "Use --device cpu, or --device auto to pick whatever is there"
        )


class _Output:
    """Where figures and data go: a folder (``--out``), windows (``--show``), or both."""

    def __init__(self, folder: Path | None, show: bool) -> None:
        import matplotlib.pyplot as plt

        self.folder, self.show, self.plt = folder, show, plt
        self.written: list[Path] = []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def figure(self, fig, name: str) -> None:
        if self.folder is not None:
            fig.savefig(self.folder / name, dpi=DPI)
            self.written.append(self.folder / name)
        if not self.show:
            self.plt.close(fig)

    def json(self, name: str, data: dict) -> None:
        if self.folder is not None:
            (self.folder / name).write_text(json.dumps(data, indent=2) + "\n")
            self.written.append(self.folder / name)

    def csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence]) -> None:
        if self.folder is not None:
            with (self.folder / name).open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(rows)
            self.written.append(self.folder / name)


class _Run(NamedTuple):
    """The settings every part of the demo shares, from the parsed arguments."""

    args: argparse.Namespace
    params: NeuronParams
    n_steps: int
    noise: float
    device: str
    dtype: torch.dtype

    def current(self, n_neurons: int = 1) -> torch.Tensor:
        a = self.args
        return input_current(
            a.input,
            self.n_steps,
            a.dt,
            current=a.current,
            noise=self.noise,
            period=a.period,
            seed=a.seed,
            n_neurons=n_neurons,
        )

    def info(self) -> dict:
        a = self.args
        return {
            "input": a.input,
            "current_nA": a.current,
            "noise_nA": self.noise,
            "period_ms": a.period if a.input == "sine" else None,
            "seed": a.seed,
            "duration_ms": a.duration,
            "params": self.params.as_dict(),
            "device": self.device,
            "dtype": a.dtype,
        }


def _single(run: _Run, out: _Output) -> None:
    """The seed's plots and numbers for one neuron."""
    a = run.args
    sim = simulate(run.params, run.current(), device=run.device, dtype=run.dtype)
    times = sim.spike_times_ms(0)
    rate = float(sim.firing_rates_hz()[0])
    isi = np.diff(times)
    print(
        f"LIF neuron on {run.device} ({a.dtype}), {'exact' if a.exact else 'Euler'} steps: "
        f"tau={a.tau:g} ms, dt={a.dt:g} ms, v_rest={a.v_rest:g}, v_reset={a.v_reset:g}, "
        f"v_th={a.v_th:g} mV, R={a.r:g} MOhm"
    )
    what = f"{a.current:g} nA" if a.input == "constant" else f"{a.current:g} (1 + sin) nA"
    print(f"input: {a.input} {what}, noise {run.noise:g} nA (seed {a.seed}), {a.duration:g} ms")
    first = f", first at {times[0]:g} ms" if times else ""
    mean_isi = f", mean ISI {isi.mean():.3f} ms" if len(isi) else ""
    print(f"{len(times)} spikes{first}{mean_isi}")
    print(f"firing rate: {rate:.1f} Hz")
    out.figure(plot_single(sim, noisy=run.noise > 0 or a.input == "sine"), f"{a.input}.png")
    summary = {"n_spikes": len(times), "firing_rate_hz": rate, "spike_times_ms": times}
    out.json(f"{a.input}.json", {**run.info(), **summary})
    out.csv(f"{a.input}_spikes.csv", ["spike_time_ms"], ([t] for t in times))


def _population(run: _Run, out: _Output, n: int) -> None:
    """The same cell, ``n`` neurons with independent noise, in one batched run."""
    a = run.args
    if run.noise == 0:
        print("note: with --noise 0 every neuron of the population gets the same input")
    current = run.current(n)
    if run.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    pop = simulate(run.params, current, device=run.device, dtype=run.dtype, record_membrane=False)
    elapsed = time.perf_counter() - start  # simulate() ends by copying to the CPU: synced
    rates = pop.firing_rates_hz().numpy()
    print(
        f"population: {n} neurons x {run.n_steps} steps on {run.device} in {elapsed:.3f} s; "
        f"rate {rates.mean():.1f} +- {rates.std():.1f} Hz (mean +- std over neurons), "
        f"{int(pop.spike_counts().sum())} spikes"
    )
    kind = "Constant" if a.input == "constant" else "Sine-Plus-Noise"
    title = f"Spike Raster of {n:,} LIF Neurons, {kind} Input (noise {run.noise:g} nA)"
    out.figure(plot_population(pop, title=title), f"population_{a.input}.png")
    summary = {
        "n_neurons": n,
        "mean_firing_rate_hz": float(rates.mean()),
        "std_firing_rate_hz": float(rates.std()),
        "simulate_seconds": elapsed,
        "spike_counts": pop.spike_counts().tolist(),
    }
    out.json(f"population_{a.input}.json", {**run.info(), **summary})
    steps, neurons = pop.spikes.nonzero(as_tuple=True)
    rows = ((int(k), round(int(s) * a.dt, 9)) for s, k in zip(steps, neurons, strict=True))
    out.csv(f"population_{a.input}_spikes.csv", ["neuron", "spike_time_ms"], rows)


def _fi_curve(run: _Run, out: _Output, n_steps: int) -> None:
    """Constant currents 0..fi-max in one batched run, beside both closed forms."""
    a, p = run.args, run.params
    currents = np.linspace(0.0, a.fi_max, a.fi_points)
    fi = simulate_fi(currents, p, n_steps, device=run.device, dtype=run.dtype)
    cont = continuous_rate_hz(currents, p)
    disc = discrete_rate_hz(currents, p)
    expected = discrete_spike_count(currents, n_steps, p)
    worst = int(np.abs(fi.spike_counts - expected).max())
    k = int(np.argmin(np.abs(currents - a.current)))
    print(
        f"f-I curve: {a.fi_points} currents 0..{a.fi_max:g} nA, {a.fi_duration:g} ms each, "
        f"rheobase {p.rheobase:g} nA; simulated spike counts vs the discrete-map closed form: "
        f"largest difference {worst}"
    )
    print(
        f"  at {currents[k]:g} nA: simulated {fi.rates_hz[k]:.1f} Hz, discrete map "
        f"{disc[k]:.1f} Hz, continuous time {cont[k]:.1f} Hz "
        f"(discrete - continuous at dt={a.dt:g} ms: {disc[k] - cont[k]:+.1f} Hz)"
    )
    out.figure(plot_fi_curve(fi), "fi_curve.png")
    header = [
        "current_nA",
        "simulated_spikes",
        "discrete_spikes",
        "simulated_rate_hz",
        "discrete_rate_hz",
        "continuous_rate_hz",
    ]
    columns = (currents.round(9), fi.spike_counts, expected, fi.rates_hz, disc, cont)
    rows = ([c.item() for c in row] for row in zip(*columns, strict=True))
    out.csv("fi_curve.csv", header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the demo, return 0; bad arguments raise
    ``SystemExit(2)`` with a message on stderr."""
    parser = build_parser()
    a = parser.parse_args(argv)
    _validate(parser, a)
    n_steps = _steps(parser, "--duration", a.duration, a.dt)
    fi_steps = _steps(parser, "--fi-duration", a.fi_duration, a.dt) if a.fi else 0
    if not a.show:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
    out = _Output(a.out if (a.out is not None or a.show) else DEFAULT_OUT, a.show)
    run = _Run(
        args=a,
        params=NeuronParams(a.tau, a.dt, a.v_rest, a.v_reset, a.v_th, a.r, a.exact),
        n_steps=n_steps,
        noise=SEED_NOISE[a.input] if a.noise is None else a.noise,
        device=("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device,
        dtype=getattr(torch, a.dtype),
    )
    _single(run, out)
    if a.population > 0:
        _population(run, out, a.population)
    if a.fi:
        _fi_curve(run, out, fi_steps)
    if out.written:
        print("wrote " + ", ".join(str(p) for p in out.written))
    if a.show:
        out.plt.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
