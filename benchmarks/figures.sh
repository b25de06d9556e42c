#!/usr/bin/env bash
# Regenerate every figure the README and docs/ quote, each with its --check (a miss exits non-zero
# at the end, after all of them ran). CPU only; the GPU figures come from benchmarks/gpu_check.sh.
#
#   bash benchmarks/figures.sh            # everything: about 45 minutes on the 2-core VM
#   bash benchmarks/figures.sh speed      # one group: speed | family | mnist | mutants | demos
#
# Run it on a quiet machine: the speed ratios are measured side by side in one run, but other
# jobs on the same cores still distort them. Peers (snnTorch, SpikingJelly, Norse) are compared
# where they are importable (pip install -e ".[bench]").
set -uo pipefail
cd "$(dirname "$0")/.."
groups=("${@:-speed family mnist mutants demos}")
status=0
run() {
    echo "\$ $*"
    "$@" || { echo "MISSED: $*"; status=1; }
}
for group in ${groups[*]}; do
    case "$group" in
        speed) run python benchmarks/lif_speed.py --configs A B C ON --threads 1 --check ;;
        family) run python benchmarks/family_speed.py --threads 1 --check ;;
        mnist) run python benchmarks/mnist.py mnist_mlp --seeds 3 --check ;;
        mutants) run python benchmarks/mutants.py --check ;;
        demos)
            run python -m snn.demos.single_neuron --fi --out docs/figures
            run python -m snn.demos.single_neuron --input sine --population 1000 --out docs/figures
            ;;
        *) echo "unknown group '$group' (speed | family | mnist | mutants | demos)"; exit 2 ;;
    esac
done
exit $status
