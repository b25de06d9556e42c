#!/usr/bin/env bash
# snn on one GPU, in one run that prints every figure (issue 13). Budget: under 8 minutes, by
# construction: the wheels' install and each stage run under `timeout` with their own share of
# 440 s (at most what the steps before them left), and `timeout -k 10` kills a stage 10 s after
# asking it to stop, so the script ends within about 440 + 4 x 10 s whatever a stage does (the
# CUDA check before them takes seconds); a stage cut short
# says so and fails the run (its rows printed so far stand; gpu_speed.py writes its JSON after
# every row).
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on a CUDA machine
#
# 1. the CUDA tests: tests/test_cuda.py and tests/test_triton.py (the Triton kernels on CUDA);
# 2. the Open Neuromorphic shape (Linear -> LIF, batch 16, T=500, fwd+bwd) at 4,096 and 16,384
#    neurons, fp32 and bf16, time and peak memory, snn against SpikingJelly (every backend it
#    has) and Norse (compiled), in one process, then snn's CubaLIF, ALIF and Recurrent rows on
#    the same shape (benchmarks/gpu_speed.py --check);
# 3. mnist_cnn widened for the GPU, the model chosen on validation, held to the issue's
#    targets: >= 99.5 % test accuracy within 10 minutes (benchmarks/mnist.py --check).
#
# Peers the GPU machine lacks travel as wheels in benchmarks/wheels/, installed from there with
# pip --no-index (nothing is fetched). Fill the folder on a machine with internet and the GPU
# machine's Python version and platform, for example:
#
#   pip download --dest benchmarks/wheels --only-binary=:all: \
#       --python-version 3.11 --platform manylinux2014_x86_64 \
#       spikingjelly norse cupy-cuda12x
#
# (spikingjelly's CuPy backend needs cupy-cuda12x for CUDA 12; leave out what is installed).
#
# Never run on a GPU as written: the mnist widths and epochs below are a first guess, to be
# tuned on the first run so that the whole script stays under 8 minutes.
set -u -o pipefail
cd "$(dirname "$0")/.."
here=benchmarks
status=0
started=$(date +%s)
budget=440  # seconds for the wheels and the three stages, counted from the start
elapsed() { echo "[$(($(date +%s) - started)) s] $*"; }
# run "$@" for at most $1 seconds, or what is left of the budget if that is less
stage() {
    local share=$1 left
    shift
    left=$((budget - ($(date +%s) - started)))
    ((share > left)) && share=$left
    if ((share <= 0)); then
        echo "no time left in the budget: skipped $*"
        return 1
    fi
    timeout -k 10 "$share" "$@"
    local rc=$?
    ((rc == 124 || rc == 137)) && echo "cut short after $share s: $*"
    return $rc
}

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch: nothing to check here" >&2
    exit 2
fi
python -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"

if compgen -G "$here/wheels/*.whl" > /dev/null; then
    elapsed "installing the wheels in $here/wheels"
    stage 60 python -m pip install --no-index --find-links "$here/wheels" "$here"/wheels/*.whl \
        || echo "some wheels did not install; their rows will say not installed"
fi

elapsed "1. CUDA tests"
stage 120 python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_triton.py \
    || status=1

elapsed "2. Open Neuromorphic shape"
mkdir -p runs
stage 170 python "$here/gpu_speed.py" --check --blocks 256,512,1024 --json runs/gpu_speed.json \
    || status=1

elapsed "3. mnist_cnn, GPU width"
stage 150 python "$here/mnist.py" mnist_cnn --out-dir runs/gpu_mnist \
    --set device=cuda --set "model.channels=[64, 128]" --set "model.hidden=[512]" \
    --set train.epochs=15 --set data.batch_size=128 \
    --check --min-mean 99.5 --min-seed 99.5 --max-wall 600 || status=1

elapsed "done: exit status $status"
exit $status
