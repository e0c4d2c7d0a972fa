#!/usr/bin/env bash
# GPU check of the fast path, prepared to run unattended on a CUDA machine in about 5 minutes.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results under ${OUT:-/tmp}
#
# Needs PyTorch (CUDA build), numpy, scipy, pyyaml, tqdm, safetensors; no network, no install:
# it runs from the source tree with PYTHONPATH=src. Steps (each logged to $OUT):
#   1. nvidia-smi and torch/CUDA versions                      -> env.txt
#   2. the fast-path tests on CUDA (SFBD_TEST_DEVICE=cuda), if pytest is importable
#                                                              -> pytest.txt
#   3. GPU-only correctness checks (always): bf16 vs fp32 and channels_last vs not on a small
#      DDPM++ network, the samplers free of host-device syncs (CUDA sync-debug mode "error")
#      and equal to the CPU result, FID features in float32 under a bf16 caller, fused Adam's
#      found_inf skip on the device; without pytest
#      also compile vs eager and the bf16-vs-fp32 training check  -> correctness.txt
#   3b. a small `sfbd run` end to end on CUDA with the fast path            -> e2e.txt
#   4. benchmarks/throughput.py at full size (the paper's network, batch 512)
#                                                              -> throughput.txt, throughput.json
# A failing step is reported and the next one still runs; the exit status is 1 if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
failed=()

step() { echo; echo "=== $* ($(date +%T))"; }

step "1/4 environment"
{
    nvidia-smi || echo "nvidia-smi not available"
    "$PY" - <<'EOF'
import sys
import torch
print("python", sys.version.split()[0])
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, f"{p.total_memory / 2**30:.1f} GiB", f"sm_{p.major}{p.minor}")
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton not importable: torch.compile on CUDA will fail")
EOF
} 2>&1 | tee "$OUT/env.txt"

HAVE_PYTEST=0
if "$PY" -c 'import pytest' 2>/dev/null; then HAVE_PYTEST=1; fi

step "2/4 fast-path tests on CUDA"
if [ "$HAVE_PYTEST" = 1 ]; then
    if ! SFBD_TEST_DEVICE=cuda timeout 150 "$PY" -m pytest -q -p no:cacheprovider \
        tests/test_fast.py tests/test_sample.py tests/test_distributed.py \
        2>&1 | tee "$OUT/pytest.txt"; then
        failed+=("pytest")
    fi
else
    echo "pytest is not importable: step 3 runs the extended checks instead" | tee "$OUT/pytest.txt"
fi

step "3/4 GPU correctness checks"
if ! SFBD_FULL_CHECKS=$((1 - HAVE_PYTEST)) timeout 150 "$PY" - 2>&1 <<'EOF' | tee "$OUT/correctness.txt"
import contextlib
import math
import os
import time
import traceback

import torch
from torch import nn

from sfbd.runtime import fast
from sfbd.diffusion.loss import EDMLoss
from sfbd.diffusion.sample import backward_sample
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.nets import build_denoiser
from sfbd.nets.songunet import PRESETS

dev = torch.device(os.environ.get("SFBD_CHECK_DEVICE", "cuda"))
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
full = os.environ.get("SFBD_FULL_CHECKS") == "1"
results = []


def check(name):
    def wrap(fn):
        t0 = time.perf_counter()
        try:
            detail = fn()
            results.append((name, True))
            print(f"PASS {name} ({time.perf_counter() - t0:.1f}s) {detail or ''}")
        except Exception:
            results.append((name, False))
            print(f"FAIL {name}")
            traceback.print_exc()
        return fn
    return wrap


@contextlib.contextmanager
def sync_debug():
    """Raise on any host-device synchronisation inside the block (CUDA only)."""
    if dev.type != "cuda":
        yield
        return
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def songunet(seed=0):
    torch.manual_seed(seed)
    kw = {"shape": [3, 32, 32], "model_channels": 32, "channel_mult": [1, 2, 2], "num_blocks": 1,
          "attn_resolutions": [16], "dropout": 0.0, "augment_dim": 9, **PRESETS["ddpmpp"]}
    den = build_denoiser("songunet", kw)
    with torch.no_grad():
        for m in den.modules():  # re-draw the zero-initialised output layers
            if isinstance(m, nn.Conv2d) and m.weight.abs().max() < 1e-3:
                nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.weight[0].numel()))
    return den.eval()


g = torch.Generator().manual_seed(1)
X = torch.randn(16, 3, 32, 32, generator=g)
SIG = torch.exp(torch.randn(16, generator=g) * 1.2 - 1.2)
LAB = torch.randn(16, 9, generator=g) * 0.3


@check("bf16 autocast vs fp32 (relative error of the network part: mean < 4%, max < 6%)")
def _():
    den = songunet().to(dev)
    x, s, lab = X.to(dev), SIG.to(dev), LAB.to(dev)
    with torch.no_grad():
        ref = den(x, s, aug_labels=lab)
        with fast.autocast(dev, True):
            low = den(x, s, aug_labels=lab)
    part = ref - (0.25 / (s**2 + 0.25)).view(-1, 1, 1, 1) * x
    rel = (low - ref).flatten(1).norm(dim=1) / part.flatten(1).norm(dim=1)
    assert low.dtype == torch.float32 and rel.min().item() > 1e-5, rel
    assert rel.mean().item() < 0.04 and rel.max().item() < 0.06, rel  # CPU: 1.7-2.4%
    return f"relative error mean {rel.mean().item():.4f}, max {rel.max().item():.4f}"


@check("channels_last vs contiguous, and CUDA vs CPU (fp32)")
def _():
    cpu = songunet()
    with torch.no_grad():
        ref = cpu(X, SIG, aug_labels=LAB)
    den = songunet().to(dev)
    with torch.no_grad():
        plain = den(X.to(dev), SIG.to(dev), aug_labels=LAB.to(dev))
        fast.to_channels_last(den)
        cl = den(fast.channels_last_input(X.to(dev)), SIG.to(dev), aug_labels=LAB.to(dev))
    e1 = (cl - plain).abs().max().item()
    e2 = (plain.cpu() - ref).abs().max().item()
    assert e1 < 1e-3 and e2 < 1e-3, (e1, e2)
    return f"max abs diff {e1:.2e} (channels_last), {e2:.2e} (cuda vs cpu)"


@check("samplers: no host-device sync inside the step loops; CUDA result = CPU result")
def _():
    den = songunet().to(dev)
    grid = edm_sigmas(18)
    y, keys = X.to(dev), torch.arange(16, device=dev)
    out = {}
    for sampler in ("heun", "sde"):
        with torch.no_grad(), fast.autocast(dev, True):  # warm up (first calls)
            backward_sample(den, y, 0.59, grid, keys=keys, stream=3, sampler=sampler)
        with torch.no_grad():
            backward_sample(den, y, 0.2, grid, keys=keys, stream=3, sampler=sampler)
        with sync_debug(), torch.no_grad():
            with fast.autocast(dev, True):
                o = backward_sample(den, y, 0.59, grid, keys=keys, stream=3, sampler=sampler)
            out[sampler] = backward_sample(den, y, 0.2, grid, keys=keys, stream=3,
                                           sampler=sampler)
        assert o.dtype == torch.float32 and torch.isfinite(o).all()
    cpu = songunet()
    with torch.no_grad():
        for sampler in ("heun", "sde"):
            ref = backward_sample(cpu, X, 0.2, grid, keys=torch.arange(16), stream=3,
                                  sampler=sampler)
            err = (out[sampler].cpu() - ref).abs().max().item()
            assert err < 1e-3, (sampler, err)
    return "heun and sde ran with sync debug mode 'error'"


@check("FID features stay float32 inside a caller's bf16 autocast (as in the pipeline)")
def _():
    from sfbd.metrics.fid import extract_features

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 64, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(64, 128)).to(dev)
    x = X[:, :, :16, :16].clamp(-1, 1)
    want = extract_features(net, x, device=dev)
    with fast.autocast(dev, True):
        got = extract_features(net, x, device=dev)
    assert (got == want).all(), abs(got - want).max()
    return "features identical"


@check("fused Adam on CUDA: found_inf=1 is a no-op; step_unless_nonfinite never syncs")
def _():
    p = nn.Parameter(torch.randn(1000, device=dev))
    opt = fast.make_adam([p], lr=1e-2)
    assert fast.is_fused(opt)
    p.grad = torch.randn_like(p)
    opt.step()
    before = p.detach().clone()
    state = {k: v.clone() for k, v in opt.state[p].items()}
    p.grad = torch.full_like(p, float("nan"))
    with sync_debug():
        flag = fast.step_unless_nonfinite(opt)
    assert flag.item() == 1.0 and torch.equal(p, before)
    assert all(torch.equal(v, state[k]) for k, v in opt.state[p].items())
    p.grad = torch.randn_like(p)
    with sync_debug():
        flag = fast.step_unless_nonfinite(opt)
    assert flag.item() == 0.0 and not torch.equal(p, before)
    assert opt.state[p]["step"].item() == 2.0


if full:

    @check("torch.compile vs eager (small DDPM++ network)")
    def _():
        den = songunet().to(dev)
        x, s, lab = X.to(dev), SIG.to(dev), LAB.to(dev)
        with torch.no_grad():
            ref = den(x, s, aug_labels=lab)
            fast.maybe_compile(den, True)
            out = den(x, s, aug_labels=lab)
        err = (out - ref).abs().max().item()
        assert err < 1e-3, err
        return f"max abs diff {err:.2e}"

    @check("bf16 training tracks fp32 (200 EDM-loss steps, ring of 8 Gaussians)")
    def _():
        gen = torch.Generator().manual_seed(0)
        ang = torch.randint(0, 8, (4096,), generator=gen) * (2 * math.pi / 8)
        data = torch.stack([ang.cos(), ang.sin()], 1) + 0.05 * torch.randn(4096, 2, generator=gen)
        data = data.to(dev)

        def run(bf16):
            torch.manual_seed(3)
            den = build_denoiser("mlp", {"shape": [2], "hidden": 64, "layers": 2}).to(dev)
            opt = fast.make_adam(den.parameters(), lr=3e-3)
            lg, ig = torch.Generator(device=dev).manual_seed(7), torch.Generator().manual_seed(11)
            losses = []
            for _ in range(200):
                x = data[torch.randint(0, 4096, (128,), generator=ig).to(dev)]
                with fast.autocast(dev, bf16):
                    loss = EDMLoss()(den, x, lg).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return sum(losses[-50:]) / 50

        a, b = run(False), run(True)
        assert abs(a - b) < 0.1 * a, (a, b)
        return f"final loss fp32 {a:.4f}, bf16 {b:.4f}"

bad = [n for n, ok in results if not ok]
print(f"\n{len(results) - len(bad)}/{len(results)} checks passed")
raise SystemExit(1 if bad else 0)
EOF
then
    failed+=("correctness")
fi

step "3b/4 sfbd run end to end on CUDA (fast path, small ring8 problem)"
if ! timeout 150 "$PY" -m sfbd run --out "$OUT/e2e" --force --quiet \
    --set data.source=ring8 --set data.num_samples=4000 --set train.pretrain_steps=300 \
    --set train.update_steps=150 --set sfbd.iterations=2 --set eval.num_samples=1000 \
    --set sample.steps=32 --set device=cuda 2>&1 | tee "$OUT/e2e.txt" \
    || ! "$PY" -c "import json,sys; s=json.load(open(sys.argv[1]))['stages']; \
print([round(e['metrics']['swd'], 4) for e in s]); assert len(s) == 3" "$OUT/e2e/metrics.json" \
    2>&1 | tee -a "$OUT/e2e.txt"; then
    failed+=("e2e")
fi

step "4/4 throughput at full size"
if ! timeout 360 "$PY" benchmarks/throughput.py --repeats 3 --steps 5 --warmup 2 \
    --sample-repeats 2 --json-out "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.txt"; then
    failed+=("throughput")
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]} (logs in $OUT)"
    exit 1
fi
echo "all steps passed (logs in $OUT)"
