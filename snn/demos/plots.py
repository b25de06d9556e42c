"""Figures for the single-neuron demos: membrane trace and spikes, population raster, f-I curve.

Every function returns a ``matplotlib.figure.Figure`` made with pyplot (so it shows inline in a
notebook and in a window with ``--show``); the command saves them with :data:`DPI`. pyplot is
imported inside the functions so that importing :mod:`snn.demos` never picks a backend.
"""

from __future__ import annotations

import numpy as np

from snn.demos.fi_curve import FICurve, continuous_rate_hz, discrete_rate_hz
from snn.demos.simulate import Simulation

__all__ = ["DPI", "plot_fi_curve", "plot_population", "plot_single"]

DPI = 150
TRACE_COLOR = "tab:blue"
SPIKE_COLOR = "tab:red"


def plot_single(sim: Simulation, *, noisy: bool = False, neuron: int = 0):
    """The seed's two plots, stacked on one time axis, plus the input current.

    Membrane potential with the threshold as a red dashed line ("Leaky Integrate-and-Fire
    Neuron", with spikes as red dots and "... with Noisy Input" when ``noisy``), the spike times
    as an event plot ("Spike Times"), and the input current.
    """
    import matplotlib.pyplot as plt

    if sim.membrane is None:
        raise ValueError(
            "plot_single needs the membrane trace: simulate(..., record_membrane=True)"
        )
    p = sim.params
    t = sim.time_ms.numpy()
    v = sim.membrane[:, neuron].numpy()
    spikes = np.asarray(sim.spike_times_ms(neuron))
    rate = float(sim.firing_rates_hz()[neuron])

    fig, (ax_v, ax_s, ax_i) = plt.subplots(
        3,
        1,
        figsize=(10, 7.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 0.9, 1.3]},
        layout="constrained",
    )
    ax_v.plot(t, v, color=TRACE_COLOR, lw=1.0, label="membrane potential $v$ (after reset)")
    ax_v.axhline(p.v_th, color=SPIKE_COLOR, ls="--", lw=1.2, label=f"threshold {p.v_th:g} mV")
    if noisy:
        ax_v.plot(
            spikes,
            np.full_like(spikes, p.v_th),
            "o",
            color=SPIKE_COLOR,
            ms=4,
            label=f"spikes ({len(spikes)}, {rate:.1f} Hz)",
        )
    else:
        ax_v.plot([], [], " ", label=f"{len(spikes)} spikes, {rate:.1f} Hz")
    title = "Leaky Integrate-and-Fire Neuron" + (" with Noisy Input" if noisy else "")
    ax_v.set_title(title)
    ax_v.set_ylabel("membrane potential (mV)")
    ax_v.legend(loc="lower right", fontsize=9, framealpha=0.9)
    ax_v.grid(alpha=0.3)
    # room below v_reset for the legend, so it never covers the trace
    low = min(float(v.min()), p.v_reset)
    ax_v.set_ylim(low - 0.45 * (p.v_th - low), p.v_th + 0.12 * (p.v_th - low))

    ax_s.eventplot([spikes], colors="black", lineoffsets=0.5, linelengths=0.8)
    ax_s.set_title("Spike Times")
    ax_s.set_ylim(0, 1)
    ax_s.set_yticks([])
    ax_s.set_ylabel("neuron")

    current = sim.current[:, neuron].numpy()
    ax_i.plot(t, current, color="tab:green", lw=0.8)
    low, high = min(0.0, float(current.min())), max(0.0, float(current.max()))
    pad = 0.1 * (high - low) or 1.0
    ax_i.set_ylim(low - pad, high + pad)  # from zero, so a constant current reads as one
    ax_i.set_title("Input Current")
    ax_i.set_ylabel("current (nA)")
    ax_i.set_xlabel("time (ms)")
    ax_i.set_xlim(0, sim.duration_ms)
    ax_i.grid(alpha=0.3)
    return fig


def plot_population(sim: Simulation, *, bin_ms: float = 1.0, title: str = ""):
    """Raster of every neuron, the population rate over time, and the distribution of rates."""
    import matplotlib.pyplot as plt

    n = sim.n_neurons
    steps, neurons = sim.spikes.nonzero(as_tuple=True)
    times = steps.numpy() * sim.params.dt
    rates = sim.firing_rates_hz().numpy()

    fig = plt.figure(figsize=(10, 8), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1], width_ratios=[2, 1])
    ax_r = fig.add_subplot(grid[0, :])
    ax_p = fig.add_subplot(grid[1, 0], sharex=ax_r)
    ax_h = fig.add_subplot(grid[1, 1])

    ax_r.scatter(
        times, neurons.numpy(), s=1.0, c="black", marker="s", linewidths=0, rasterized=True
    )
    ax_r.set_xlim(0, sim.duration_ms)
    ax_r.set_ylim(-0.5, n - 0.5)
    ax_r.set_ylabel("neuron index")
    ax_r.set_title(title or f"Spike Raster of {n:,} LIF Neurons")

    edges = np.arange(0.0, sim.duration_ms + bin_ms / 2, bin_ms)
    counts, _ = np.histogram(times, bins=edges)
    pop_rate = counts / (n * bin_ms / 1000.0)
    ax_p.stairs(
        pop_rate, edges, fill=True, color="tab:blue", alpha=0.8, label=f"{bin_ms:g} ms bins"
    )
    ax_p.axhline(
        rates.mean(), color=SPIKE_COLOR, ls="--", lw=1, label=f"mean {rates.mean():.1f} Hz"
    )
    ax_p.set_xlabel("time (ms)")
    ax_p.set_ylabel("population rate (Hz)")
    ax_p.set_title("Population Firing Rate")
    ax_p.legend(fontsize=9, loc="upper right")
    ax_p.grid(alpha=0.3)

    counts = sim.spike_counts().numpy()
    # one bin per spike count: rates are whole counts over the simulated time
    step = max(1, int(np.ceil((counts.max() - counts.min() + 1) / 40)))
    bin_edges = np.arange(counts.min() - 0.5, counts.max() + step, step) / (sim.duration_ms / 1e3)
    ax_h.hist(rates, bins=bin_edges, color="tab:gray")
    ax_h.axvline(rates.mean(), color=SPIKE_COLOR, ls="--", lw=1)
    ax_h.set_xlabel("firing rate (Hz)")
    ax_h.set_ylabel("neurons")
    ax_h.set_title("Firing Rates Across Neurons")
    ax_h.grid(alpha=0.3)
    return fig


def plot_fi_curve(fi: FICurve, *, n_fine: int = 2000):
    """Simulated rates beside the continuous-time and the discrete-map closed forms, and their
    difference at this ``dt``."""
    import matplotlib.pyplot as plt

    p = fi.params
    fine = np.linspace(float(fi.currents.min()), float(fi.currents.max()), n_fine)
    cont = continuous_rate_hz(fine, p)
    disc = discrete_rate_hz(fine, p)
    method = "exact exp" if p.exact else "Euler"

    fig, (ax, ax_d) = plt.subplots(
        2,
        1,
        figsize=(9, 7.5),
        sharex=True,
        gridspec_kw={"height_ratios": [2.2, 1]},
        layout="constrained",
    )
    ax.plot(
        fine,
        cont,
        color="black",
        lw=1.5,
        label=r"continuous time: $1/(\tau\,\ln\frac{RI + "
        r"v_{rest} - v_{reset}}{RI + v_{rest} - v_{th}})$",
    )
    ax.plot(
        fine, disc, color="tab:orange", lw=1.2, label=f"{method} map, closed form: $1/(n^* dt)$"
    )
    ax.plot(
        fi.currents,
        fi.rates_hz,
        "o",
        ms=4,
        mfc="none",
        color="tab:blue",
        label=f"simulated snn.LIF: spikes / {fi.duration_ms:g} ms",
    )
    ax.axvline(p.rheobase, color="gray", ls=":", lw=1, label=f"rheobase {p.rheobase:g} nA")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(
        f"f-I Curve of the LIF Neuron (tau = {p.tau:g} ms, dt = {p.dt:g} ms, R = {p.r:g} MOhm)"
    )
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)

    ax_d.plot(fine, disc - cont, color="tab:orange", lw=1.2, label=f"{method} map - continuous")
    ax_d.plot(
        fi.currents,
        fi.rates_hz - continuous_rate_hz(fi.currents, p),
        "o",
        ms=4,
        mfc="none",
        color="tab:blue",
        label="simulated - continuous",
    )
    ax_d.axhline(0, color="black", lw=0.8)
    ax_d.set_xlabel("input current I (nA)")
    ax_d.set_ylabel("difference (Hz)")
    ax_d.set_title(f"Discretization Error at dt = {p.dt:g} ms")
    ax_d.legend(loc="lower left", fontsize=9)
    ax_d.grid(alpha=0.3)
    ax_d.set_xlim(fine[0], fine[-1])
    return fig
