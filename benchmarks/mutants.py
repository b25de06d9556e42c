"""Plant plausible bugs, one at a time, in a copy of the tree and check that the tests catch each.

    python benchmarks/mutants.py             # every mutant; a table of caught / SURVIVED
    python benchmarks/mutants.py --check     # the same, exit 1 if any mutant survives
    python benchmarks/mutants.py --list      # the mutants and the tests each one runs
    python benchmarks/mutants.py -k dropout  # only the mutants whose name contains "dropout"

Each mutant replaces one exact piece of source (which must occur exactly once, so that a stale
mutant is an error rather than a silent no-op) in a fresh copy of the working tree, then runs the
tests that guard that code. A mutant is caught when those tests fail; it survives when they pass.
The copy has its own native-kernel cache, so a mutated C kernel is built anew.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "runs", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


KERNEL_TESTS = ("tests/test_grid.py", "tests/test_fused.py")
GRID = ("tests/test_grid.py",)
CLOSED_FORMS = ("tests/test_lif_closed_form.py", "tests/test_grid.py")
SURROGATE_TESTS = ("tests/test_grid.py", "tests/test_gradients.py")
RECIPE = ("tests/test_recipe_features.py",)
FAMILY_NATIVE = ("tests/test_family_native.py",)

MUTANTS = [
    # --- the native kernel: tile offsets, chunk boundaries ---
    Mutant(
        "native backward: every tile recomputed from the first tile's initial state",
        "snn/kernels/csrc/lif_kernel.h",
        "NAME(chunk_start)(v, v0, starts, c, n, a, m, v_rest);",
        "NAME(chunk_start)(v, v0, starts, c, n, i0, m, v_rest);",
        KERNEL_TESTS,
    ),
    Mutant(
        "native: a start from rest at 0 instead of v_rest",
        "snn/kernels/csrc/lif_kernel.h",
        "for (int64_t i = 0; i < m; i++) s[i] = rest;",
        "for (int64_t i = 0; i < m; i++) s[i] = 0;",
        KERNEL_TESTS,
    ),
    Mutant(
        "native: a single-valued parameter's row read at the tile's offset",
        "snn/kernels/csrc/lif_kernel.h",
        "((per_neuron >> (k)) & 1 ? a : 0)",
        "((per_neuron >> (k)) & 1 ? a : a)",
        KERNEL_TESTS,
    ),
    Mutant(
        "native LIF backward: the loop that stores no parameter gradient, even when asked for",
        "snn/kernels/csrc/lif_kernel.h",
        "grads ? NAME(backward_lif) : NAME(backward_lif_fixed)",
        "NAME(backward_lif_fixed)",
        KERNEL_TESTS,
    ),
    Mutant(
        "native: a per-neuron parameter read without the tile's offset",
        "snn/kernels/csrc/lif_kernel.h",
        "((per_neuron >> (k)) & 1 ? a : 0)",
        "((per_neuron >> (k)) & 1 ? 0 : 0)",
        (*KERNEL_TESTS, *FAMILY_NATIVE),
    ),
    Mutant(
        "native forward: the chunk-start potential saved one step late",
        "snn/kernels/csrc/lif_kernel.h",
        "if (t > 0 && t % chunk == 0)",
        "if (t > 1 && t % chunk == 1)",
        KERNEL_TESTS,
    ),
    Mutant(
        "native forward: chunk starts saved without the tile's offset",
        "snn/kernels/csrc/lif_kernel.h",
        "memcpy(starts + (t / chunk - 1) * n + a, v,",
        "memcpy(starts + (t / chunk - 1) * n, v,",
        KERNEL_TESTS,
    ),
    Mutant(
        "native surrogate: atan's pi alpha / 2 passed as pi alpha",
        "snn/kernels/native.py",
        "return 0, s.alpha / 2, math.pi * s.alpha / 2",
        "return 0, s.alpha / 2, math.pi * s.alpha",
        KERNEL_TESTS,
    ),
    Mutant(
        "native surrogate: fast_sigmoid's slope halved",
        "snn/kernels/native.py",
        "return 1, 0.0, s.slope",
        "return 1, 0.0, 0.5 * s.slope",
        KERNEL_TESTS,
    ),
    # --- the native kernel's family variants (CubaLIF, ALIF) ---
    Mutant(
        "native ALIF: the threshold's path to the spike gradient (1 - rho) dropped",
        "snn/kernels/csrc/lif_kernel.h",
        "const REAL grad_s = adaptive ? FMA(omr[i], da[i], gs[i]) : gs[i];",
        "const REAL grad_s = gs[i];",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native ALIF: dL/drho's term without the spike (a_{t-1} - s_t read as a_{t-1})",
        "snn/kernels/csrc/lif_kernel.h",
        "rterm[i] = da[i] * (a_prev[i] - s);",
        "rterm[i] = da[i] * a_prev[i];",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native CubaLIF: the variant without gains drops the current, not passing it on",
        "snn/kernels/csrc/lif_kernel.h",
        "drive = unit ? *cur : q->g_cur[i] * *cur;",
        "drive = unit ? drive : q->g_cur[i] * *cur;",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native ALIF: the variant without an input gain run for a gain that is not 1",
        "snn/kernels/csrc/lif_kernel.h",
        "if (variant == 2 && !param[P_G_IN]) return 1;",
        "if (variant == 2) return 1;",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native family: a lone gain of 1 pointed at a row never filled with ones",
        "snn/kernels/csrc/lif_kernel.h",
        "    for (int i = 0; i < TILE; i++) rows[k][i] = 1;\n",
        "",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native CubaLIF: without parameter gradients, the recomputed current never advanced",
        "snn/kernels/csrc/lif_kernel.h",
        "if (current) ck[grads ? TILE + i : i] = cur;",
        "if (current && grads) ck[TILE + i] = cur;",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native ALIF: an adaptation from rest started at v_rest, not 0",
        "snn/kernels/csrc/lif_kernel.h",
        "if (adaptive) NAME(start_at)(ad, p->state0[S_A], a, m, 0);",
        "if (adaptive) NAME(start_at)(ad, p->state0[S_A], a, m, v_rest);",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native CubaLIF: backward recomputes a current from rest from v_rest, not 0",
        "snn/kernels/csrc/lif_kernel.h",
        "if (current) NAME(chunk_start)(cur_at, p->state0[S_I], p->starts[S_I], c, n, a, m, 0);",
        "if (current) NAME(chunk_start)(cur_at, p->state0[S_I], p->starts[S_I], c, n, a, m, "
        "v_rest);",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native ALIF: a per-neuron 1 - rho computed in the kernel but read as a single value",
        "snn/kernels/csrc/lif_kernel.h",
        "    *per_neuron |= (int64_t)1 << P_ONE_MINUS_RHO;\n",
        "",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native CubaLIF: dL/di carried back without alpha",
        "snn/kernels/csrc/lif_kernel.h",
        "di[i] = alpha[i] * grad_c;",
        "di[i] = grad_c;",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native CubaLIF: the current's chunk start saved without the tile's offset",
        "snn/kernels/csrc/lif_kernel.h",
        "memcpy(p->starts[S_I] + (t / chunk - 1) * n + a, cur, row);",
        "memcpy(p->starts[S_I] + (t / chunk - 1) * n, cur, row);",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native ALIF: the adaptation updated before the threshold reads it",
        "snn/kernels/csrc/lif_kernel.h",
        "const REAL theta = adaptive ? q->v_th[i] + q->adapt[i] * *ad : q->v_th[i];",
        "if (adaptive) *ad = q->rho[i] * *ad;\n"
        "    const REAL theta = adaptive ? q->v_th[i] + q->adapt[i] * *ad : q->v_th[i];",
        FAMILY_NATIVE,
    ),
    Mutant(
        "native ALIF: 1 - rho computed from rho rounded to the input's type",
        "snn/kernels/family.py",
        'given["one_minus_rho"] = 1 - rho',
        'given["one_minus_rho"] = 1 - as_tensor_like(rho, x)',
        FAMILY_NATIVE,
    ),
    # --- the eager executor's chunks ---
    Mutant(
        "eager backward: a chunk recomputed from the previous chunk's start",
        "snn/kernels/fused.py",
        "        v = v0 if c == 0 else starts[c - 1]",
        "        v = v0 if c == 0 else starts[c - 2]",
        KERNEL_TESTS,
    ),
    # --- the recurrent layer ---
    Mutant(
        "recurrent: dW pairs each step's gradient with its own spikes, not the previous step's",
        "snn/kernels/family.py",
        "grad_weight = grad_x[1:].reshape(-1, n).T @ spikes[:-1].reshape(-1, n)",
        "grad_weight = grad_x[1:].reshape(-1, n).T @ spikes[1:].reshape(-1, n)",
        ("tests/test_recurrent.py",),
    ),
    # --- the step itself (the reference executor and every executor's contract) ---
    Mutant(
        "reset: subtract computed as the zero reset",
        "snn/functional.py",
        "        return h - r * (v_th - p.v_reset)\n",
        "        return h - r * (h - p.v_reset)\n",
        GRID,
    ),
    Mutant(
        "reset: detach_reset ignored",
        "snn/functional.py",
        "    r = s.detach() if p.detach_reset else s\n",
        "    r = s\n",
        GRID,
    ),
    Mutant(
        "step: v_rest dropped from the leak",
        "snn/functional.py",
        "    leak = p.beta * v if p.v_rest == 0 else p.v_rest + p.beta * (v - p.v_rest)",
        "    leak = p.beta * v",
        CLOSED_FORMS,
    ),
    Mutant(
        "sequence: the input gain dropped",
        "snn/functional.py",
        "    current = x if _is_one(p.gain) else p.gain * x",
        "    current = x",
        CLOSED_FORMS,
    ),
    # --- a wrong constant in each surrogate ---
    Mutant(
        "surrogate atan: pi alpha / 2 read as pi alpha",
        "snn/surrogate.py",
        "(1 + (math.pi * self.alpha / 2 * u) ** 2)",
        "(1 + (math.pi * self.alpha * u) ** 2)",
        SURROGATE_TESTS,
    ),
    Mutant(
        "surrogate fast_sigmoid: half the slope",
        "snn/surrogate.py",
        "1 / (1 + self.slope * u.abs()) ** 2",
        "1 / (1 + 0.5 * self.slope * u.abs()) ** 2",
        SURROGATE_TESTS,
    ),
    Mutant(
        "surrogate sigmoid: the slope factor dropped",
        "snn/surrogate.py",
        "return self.slope * sig * (1 - sig)",
        "return sig * (1 - sig)",
        SURROGATE_TESTS,
    ),
    Mutant(
        "surrogate triangle: twice the width inside the clamp",
        "snn/surrogate.py",
        "torch.clamp(1 - u.abs() / self.width, min=0) / self.width",
        "torch.clamp(1 - u.abs() / (2 * self.width), min=0) / self.width",
        SURROGATE_TESTS,
    ),
    Mutant(
        "surrogate rectangular: the window twice as wide",
        "snn/surrogate.py",
        "(u.abs() < self.width / 2)",
        "(u.abs() < self.width)",
        SURROGATE_TESTS,
    ),
    Mutant(
        "surrogate straight_through: half the gradient",
        "snn/surrogate.py",
        "        return torch.ones_like(u)\n",
        "        return 0.5 * torch.ones_like(u)\n",
        SURROGATE_TESTS,
    ),
    # --- the training recipe ---
    Mutant(
        "dropout: a new mask at every time step",
        "snn/training/models.py",
        "torch.empty_like(x[0]).bernoulli_",
        "torch.empty_like(x).bernoulli_",
        RECIPE,
    ),
    Mutant(
        "loss: label smoothing ignored for ce_membrane",
        "snn/training/loss.py",
        "return F.cross_entropy(scores, y, label_smoothing=lc.label_smoothing), scores",
        "return F.cross_entropy(scores, y), scores",
        RECIPE,
    ),
    Mutant(
        "loss: reduce=max read as the mean",
        "snn/training/loss.py",
        "            scores = out.amax(0)",
        "            scores = out.mean(0)",
        RECIPE,
    ),
    Mutant(
        "resume: torch's generator (dropout masks) not restored",
        "snn/training/resume.py",
        '    torch.set_rng_state(states["torch"])',
        "    pass",
        ("tests/test_crash_safety.py",),
    ),
]


def copy_tree(dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(
            f"mutant {mutant.name!r}: its source text occurs {count} times in {mutant.path} "
            "(expected exactly once); the code changed, so update the mutant"
        )
    path.write_text(text.replace(mutant.old, mutant.new))


def run_tests(mutant: Mutant, tree: Path, cache: Path) -> tuple[bool, float, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), SNN_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode not in (0, 1):  # 2-5: interrupted, internal or usage error, no tests
        raise SystemExit(f"mutant {mutant.name!r}: pytest exited {proc.returncode}: {last}")
    return proc.returncode == 1, seconds, last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any mutant survives")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("-k", default="", help="only mutants whose name contains this text")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.path}; tests: {' '.join(m.tests)}")
        return 0
    if not chosen:
        raise SystemExit(f"no mutant's name contains {args.k!r}; see --list")
    survivors = []
    with tempfile.TemporaryDirectory(prefix="snn-mutants-") as tmp:
        for i, mutant in enumerate(chosen, 1):
            tree = Path(tmp) / f"tree{i}"
            copy_tree(tree)
            apply(mutant, tree)
            caught, seconds, last = run_tests(mutant, tree, Path(tmp) / f"cache{i}")
            verdict = "caught" if caught else "SURVIVED"
            print(f"[{i}/{len(chosen)}] {verdict:8s} {seconds:6.1f} s  {mutant.name}  ({last})")
            if not caught:
                survivors.append(mutant.name)
            shutil.rmtree(tree)
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutants caught")
    for name in survivors:
        print(f"  survived: {name}")
    return 1 if args.check and survivors else 0


if __name__ == "__main__":
    sys.exit(main())
