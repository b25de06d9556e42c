"""snn on CUDA, end to end: moving and saving models, training (fp32, bf16 autocast, nccl),
the demos, NIR export, and the Triton kernels against the reference loop.

Every test here needs a CUDA device and is skipped without one (benchmarks/gpu_check.sh runs
them on a GPU machine). The Triton kernels' own tests are tests/test_triton.py, which on CUDA
run there directly.
"""

from __future__ import annotations

import io
import json
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import snn
from snn.functional import LIFParameters, lif_sequence
from tests._reference import equation_loop

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(20, 30),
        snn.LIF(beta=0.9, shape=30, learn_beta=True, learn_threshold=True),
        torch.nn.Linear(30, 5),
        snn.LIF(beta=0.8, reset="zero"),
    )


def test_to_cuda_pickle_and_torch_save_round_trip(tmp_path):
    model = _model().to("cuda")
    x = torch.rand(8, 4, 20, device="cuda")
    out = model(x)
    assert out.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(b.device.type == "cuda" for b in model.buffers())
    again = pickle.loads(pickle.dumps(model))
    assert torch.equal(again(x), out)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = _model().to("cuda")
    fresh.load_state_dict(torch.load(buffer, map_location="cuda"))
    assert torch.equal(fresh(x), out)
    torch.save(model, tmp_path / "model.pt")
    whole = torch.load(tmp_path / "model.pt", map_location="cuda", weights_only=False)
    assert torch.equal(whole(x), out)
    assert torch.equal(model.to("cpu")(x.cpu()), out.cpu())


def _train(tmp_path: Path, *overrides: str) -> dict:
    cmd = [sys.executable, str(ROOT / "train.py"), SMOKE, "device=cuda", f"out_dir={tmp_path}"]
    cmd += ["log.progress=false", *overrides]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "device: cuda" in result.stdout
    return next(r for r in reversed(records) if "test_acc" in r)


@pytest.mark.parametrize("amp", [False, True])
def test_train_py_on_cuda(tmp_path, amp):
    """The smoke config trains on CUDA, in fp32 and under bf16 autocast, to well above chance
    (10 classes: 10 %)."""
    final = _train(tmp_path, f"train.amp={str(amp).lower()}")
    assert final["test_acc"] > 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl data-parallel needs 2 GPUs")
def test_torchrun_with_nccl_on_two_gpus(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1"]
    cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}"]
    cmd += [str(ROOT / "train.py"), SMOKE, "device=cuda", f"out_dir={tmp_path}"]
    cmd += ["log.progress=false"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "nccl" in result.stdout + result.stderr or "world" in result.stdout


@pytest.mark.parametrize("demo", ["single_neuron"])
def test_demo_on_cuda(tmp_path, demo):
    cmd = [sys.executable, "-m", f"snn.demos.{demo}", "--device", "cuda", "--out", str(tmp_path)]
    cmd += ["--input", "sine", "--population", "40", "--fi", "--fi-points", "5"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "sine.json").exists() and (tmp_path / "fi_curve.png").exists()
    # the CUDA run's spikes are the CPU run's (float64, the same operations)
    cpu = tmp_path / "cpu"
    cmd_cpu = [*cmd[:4], "cpu", "--out", str(cpu), *cmd[7:]]
    subprocess.run(cmd_cpu, cwd=ROOT, check=True, capture_output=True, timeout=300)
    on_gpu = json.loads((tmp_path / "sine.json").read_text())
    on_cpu = json.loads((cpu / "sine.json").read_text())
    assert on_gpu["spike_times_ms"] == on_cpu["spike_times_ms"]


def test_nir_export_from_a_cuda_model():
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), snn.LIF(beta=0.9, reset="zero"))
    x = torch.rand(3, 1, 6)
    on_cpu = snn.export_nir(model, x)
    on_gpu = snn.export_nir(model.to("cuda"), x.to("cuda"))
    assert set(on_gpu.nodes) == set(on_cpu.nodes)
    for name, node in on_cpu.nodes.items():
        for key, value in vars(node).items():
            if hasattr(value, "shape"):
                assert (getattr(on_gpu.nodes[name], key) == value).all(), (name, key)
    assert next(model.parameters()).device.type == "cuda"  # export leaves the model where it was


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fused_backend_on_cuda_matches_the_equations(dtype, reset):
    """backend="fused" (the Triton kernels on CUDA), 2,000 neurons (several blocks, a partial
    one), T = 70 (several chunks): bitwise spikes, gradients to 1e-5."""
    g = torch.Generator().manual_seed(0)
    x = (0.7 * torch.randn(70, 4, 500, generator=g, dtype=dtype) + 0.25).cuda()
    v0 = (0.5 * torch.randn(4, 500, generator=g, dtype=dtype)).cuda()
    beta = (0.4 + 0.55 * torch.rand(500, generator=g, dtype=dtype)).cuda()
    v_th = (0.6 + 0.6 * torch.rand(500, generator=g, dtype=dtype)).cuda()
    w = torch.randn(70, 4, 500, generator=g, dtype=dtype).cuda()

    def grads(run):
        leaves = [t.clone().requires_grad_() for t in (x, v0, beta, v_th)]
        spikes, trace, v_last = run(*leaves)
        ((spikes * w).sum() + (trace * w).sum() * 0.3 + v_last.sum()).backward()
        return spikes, trace, [t.grad for t in leaves]

    def fused(x, v0, beta, v_th):
        p = LIFParameters(beta=beta, v_th=v_th, reset=reset, surrogate="atan")
        out = lif_sequence(x, v0, p, record_membrane=True, backend="fused")
        return out.spikes, out.membrane, out.state

    def equations(x, v0, beta, v_th):
        spikes, trace, v_last, _ = equation_loop(x, v0, beta, v_th, 0.0, 0.0, reset, False, "atan")
        return spikes, trace, v_last

    got, want = grads(fused), grads(equations)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    for a, b in zip(got[2], want[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_layer_runs_the_kernels_and_matches_eager():
    x = torch.rand(50, 8, 1000, device="cuda")
    linear = torch.nn.Linear(1000, 1000).cuda()
    outs = []
    for backend in ("fused", "eager"):
        lif = snn.LIF(beta=0.9, backend=backend)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outs.append(lif(linear(x)))
    assert outs[0].dtype == torch.bfloat16
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("neuron", ["cuba_lif", "alif"])
def test_family_on_cuda_matches_the_reference_loop(monkeypatch, neuron):
    """CubaLIF and ALIF with backend="fused" on CUDA (the family's Triton kernels, with the
    current or the threshold state compiled in): bitwise spikes, gradients to 1e-5."""
    from snn import family_functional as ff
    from snn.kernels import triton_family

    calls = []
    for name in ("cuba_lif_sequence", "alif_sequence"):
        real = getattr(triton_family, name)
        monkeypatch.setattr(
            triton_family, name, lambda *a, real=real, **k: calls.append(1) or real(*a, **k)
        )
    g = torch.Generator().manual_seed(1)
    x = (0.5 * torch.randn(40, 4, 600, generator=g) + 0.2).cuda()
    if neuron == "alif":
        p = ff.ALIFParameters(lif=LIFParameters(beta=0.9, reset="zero"), rho=0.95, adapt=1.5)
        run = ff.alif_sequence
    else:
        p = ff.CubaLIFParameters()
        run = ff.cuba_lif_sequence
    results = []
    for backend in ("fused", "reference"):
        leaf = x.clone().requires_grad_()
        out = run(leaf, None, p, backend=backend)
        (out.spikes * torch.arange(40, device="cuda")[:, None, None]).sum().backward()
        results.append((out.spikes, leaf.grad))
    assert calls == [1]  # the fused run, on the Triton kernels
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("kind", "reset"), [("lif", "subtract"), ("cuba", "zero"),
                                             ("alif", "subtract")])  # fmt: skip
def test_recurrent_on_cuda_matches_the_recurrent_loop(monkeypatch, kind, reset):
    """snn.Recurrent with backend="fused" on CUDA runs the Triton recurrent node (a matrix
    product and one step kernel per step) and equals tests/test_recurrent.py's loop with 600
    neurons, T = 41, per-neuron parameters and a non-zero state: bitwise spikes in float32, and
    the gradients of the input, the states, the weight, the bias and every parameter to 1e-5."""
    from snn.kernels import triton_recurrent
    from tests.test_recurrent import make_case
    from tests.test_triton import assert_recurrent_matches

    calls = []
    real = triton_recurrent.recurrent_sequence
    monkeypatch.setattr(
        triton_recurrent, "recurrent_sequence", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    case = make_case(kind, torch.float32)
    x, state, s0, p, weight, bias, weights = [
        [t.cuda() for t in c] if isinstance(c, list) else
        {k: t.cuda() for k, t in c.items()} if isinstance(c, dict) else c.cuda()
        for c in case
    ]  # fmt: skip
    assert_recurrent_matches(kind, reset, False, "fused", x, state, s0, p, weight, bias, weights)
    assert calls == [1]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_the_kernels_run_on_the_inputs_device():
    """Triton launches on the current device; the node switches to the input's (cuda:1)."""
    x = torch.rand(20, 4, 300, device="cuda:1", requires_grad=True)
    fused = lif_sequence(x, None, LIFParameters(beta=0.9), backend="fused").spikes
    reference = lif_sequence(x, None, LIFParameters(beta=0.9), backend="reference").spikes
    assert fused.device == x.device and torch.equal(fused, reference)
