"""Training and backward-sampling throughput of the paper's CIFAR-10 network, fast path vs fp32.

The network is the one ``configs/cifar10-4pct.yaml`` builds (DDPM++ SongUNet, 128 channels,
multipliers 2,2,2, 4 blocks per level, dropout 0.13, 9 augmentation labels; 55.7 M parameters)
at batch 512. In one process it times, for our fast path (bf16 autocast + channels_last +
torch.compile + fused Adam, as :mod:`sfbd.runtime.fast` resolves them for the device) and for
a plain fp32 eager run of the same network (TF32 off, default Adam):

* training: images/s of ``sfbd.train.loop.train_stage`` itself (batch drawn on the device,
  forward + backward + Adam step of the EDM loss with the non-leaky augmentation pipeline,
  p = 0.12, non-finite check, EMA update), random images in [-1, 1];
* backward sampling: images/s of Heun sampling from tau down to 0 on the paper's 18-step EDM
  grid (tau = 0.2: 6 steps, 11 network evaluations; tau = 0.59: 7 steps, 13 evaluations);
* the bf16 (and fp32) matrix-product ceiling in TFLOP/s, and the fraction of the bf16 ceiling
  reached, from the network's FLOPs per image counted once with ``FlopCounterMode``.

Warm-up iterations (which include compilation) are excluded; each timed repeat is bracketed by
device synchronisations and the median over repeats is reported. Prints a table and, last, one
JSON line. Compare numbers only between runs on the same card.

Usage:
    PYTHONPATH=src python benchmarks/throughput.py                 # the paper's setting (GPU)
    PYTHONPATH=src python benchmarks/throughput.py --quick         # tiny CPU smoke run (<1 min)
    ... [--batch 512] [--channels 128] [--size 32] [--device cuda] [--repeats 5] [--steps 10]
        [--bf16 auto|on|off] [--channels-last ...] [--compile ...] [--fused-adam ...]
        [--max-micro N] [--no-fp32] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sfbd.config import load_config
from sfbd.diffusion.loss import EDMLoss
from sfbd.diffusion.sample import backward_sample
from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas
from sfbd.nets import build_model
from sfbd.runtime import fast
from sfbd.train.augment import Augment
from sfbd.train.ema import EMA
from sfbd.train.loop import TrainState, train_stage
from sfbd.train.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cifar10-4pct.yaml"
TAUS = (0.2, 0.5853)  # the paper's tau = 0.59 is the 18-step grid point 0.5853
QUICK = {  # a tiny network and batch: a smoke test of the script, numbers mean nothing
    "batch": 4,
    "channels": 16,
    "size": 8,
    "repeats": 2,
    "steps": 2,
    "warmup": 1,
    "matmul_n": 256,
    "overrides": ["model.channel_mult=[1,2]", "model.blocks_per_level=1"],
}


def label(tau: float) -> str:
    """How a noise level appears in the JSON keys: two significant digits (0.5853 -> 0.59)."""
    return f"{tau:.2g}"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU, where ops are synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_tf32(enabled: bool) -> None:
    """TF32 for fp32 matmuls and convolutions on CUDA (off: the authors' fp32 default)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def timed_rate(
    fn: Callable[[], object], items: int, device: torch.device, *, warmup: int, repeats: int
) -> tuple[float, float]:
    """(median items/s over ``repeats`` timed calls of ``fn``, warm-up seconds)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warm = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        rates.append(items / (time.perf_counter() - t0))
    return statistics.median(rates), warm


def matmul_tflops(device: torch.device, n: int, dtype: torch.dtype, iters: int = 10) -> float:
    """Dense n x n x n matrix-product throughput in TFLOP/s (2 n^3 FLOPs per product)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)

    def run() -> None:
        for _ in range(iters):
            torch.mm(a, b)

    rate, _ = timed_rate(run, 2 * n**3 * iters, device, warmup=1, repeats=3)
    return rate / 1e12


def count_flops(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> tuple[int, int]:
    """(forward FLOPs, training-step FLOPs) per image: one forward, then forward + backward."""
    b = 2
    x = torch.rand(b, *shape, device=device) * 2 - 1
    sigma = torch.full((b,), 0.5, device=device)
    labels = torch.zeros(b, 9, device=device)
    aug = labels if getattr(model.net, "augment_dim", 0) else None
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, sigma, aug_labels=aug)
    forward = counter.get_total_flops() // b
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(x, sigma, aug_labels=aug).square().mean().backward()
    model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops() // b


class Bench:
    """One configuration (fast path or plain fp32) of the network on a device."""

    def __init__(
        self,
        build: Callable[[], nn.Module],
        device: torch.device,
        path: fast.FastPath,
        compile_options: dict,
    ) -> None:
        self.device = device
        self.path = path
        self.model = build()
        fast.to_channels_last(self.model, path.channels_last)
        fast.maybe_compile(self.model, path.compile, **compile_options)
        self.opt = fast.make_adam(self.model.parameters(), lr=1e-4, fused=path.fused_adam)
        self.loss_fn = EDMLoss(augment=Augment(0.12))

    def train_rate(
        self,
        batch: int,
        shape: tuple[int, ...],
        max_micro: int | None,
        *,
        steps: int,
        warmup: int,
        repeats: int,
    ) -> tuple[float, float]:
        """(training images/s, warm-up seconds): median over ``repeats`` timings of ``steps``
        optimizer steps at global batch ``batch``, after ``warmup`` untimed steps."""
        gen = torch.Generator(device=self.device).manual_seed(1)
        data = torch.rand(4 * batch, *shape, device=self.device, generator=gen) * 2 - 1
        state = TrainState(self.model, copy.deepcopy(self.model).eval(), self.opt)
        augment = self.loss_fn.augment

        def train(n: int) -> None:  # the training loop of sfbd run itself
            settings = TrainSettings(
                steps=n,
                batch_size=batch,
                lr=1e-4,
                seed=1,
                log_every=10**9,
                micro_batch=max_micro,
                bf16=self.path.bf16,
                channels_last=self.path.channels_last,
                progress=False,
            )
            train_stage(state, data, settings, EMA.for_stage(0.1, n), augment=augment)

        start = time.perf_counter()
        train(warmup)  # the first steps compile (fast path)
        sync(self.device)
        warm = time.perf_counter() - start
        rate, _ = timed_rate(
            lambda: train(steps), batch * steps, self.device, warmup=0, repeats=repeats
        )
        return rate, warm

    def sample_rate(
        self, batch: int, shape: tuple[int, ...], tau: float, grid: torch.Tensor, repeats: int
    ) -> tuple[float, float]:
        """(backward-sampling images/s from tau, warm-up seconds): median of ``repeats`` timed
        calls after one untimed call (which compiles, on the fast path)."""
        gen = torch.Generator(device=self.device).manual_seed(2)
        clean = torch.rand(batch, *shape, device=self.device, generator=gen) * 2 - 1
        y = clean + tau * torch.randn(batch, *shape, device=self.device, generator=gen)
        keys = torch.arange(batch, device=self.device)
        self.model.eval()

        def run() -> None:
            with torch.no_grad(), fast.autocast(self.device, self.path.bf16):
                backward_sample(self.model, y, tau, grid, keys=keys, stream=0, sampler="heun")

        return timed_rate(run, batch, self.device, warmup=1, repeats=repeats)


def _oom_errors() -> tuple[type[BaseException], ...]:
    return (torch.cuda.OutOfMemoryError,) if torch.cuda.is_available() else ()


def measure(
    name: str,
    bench: Bench,
    args: argparse.Namespace,
    shape: tuple[int, ...],
    grid: torch.Tensor,
) -> dict:
    """Training and sampling rates of one configuration; on running out of GPU memory in
    training, retries with half the micro-batch (gradient accumulation)."""
    out: dict = {}
    max_micro = args.max_micro
    while True:
        try:
            rate, warm = bench.train_rate(
                args.batch,
                shape,
                max_micro,
                steps=args.steps,
                warmup=args.warmup,
                repeats=args.repeats,
            )
            break
        except _oom_errors():
            max_micro = (max_micro or args.batch) // 2
            bench.opt.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            print(f"[{name}] out of memory in training; retrying with micro-batches of {max_micro}")
            if max_micro < 1:
                raise
    out["train_img_s"], out["train_warmup_s"], out["train_micro"] = rate, warm, max_micro
    bench.opt.zero_grad(set_to_none=True)
    for tau in args.taus:
        rate, warm = bench.sample_rate(args.sample_batch, shape, tau, grid, args.sample_repeats)
        out[f"sample_img_s_tau{label(tau)}"], out[f"sample_warmup_s_tau{label(tau)}"] = rate, warm
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(CONFIG), help="network settings (model.*)")
    ap.add_argument("--batch", type=int, help="training batch (default 512)")
    ap.add_argument("--sample-batch", type=int, help="backward-sampling batch (default: --batch)")
    ap.add_argument("--channels", type=int, help="model.channels (default: the config's)")
    ap.add_argument("--size", type=int, help="image height = width (default 32)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--repeats", type=int, help="timed repeats, median reported (default 5)")
    ap.add_argument("--steps", type=int, help="training steps per timed repeat (default 10)")
    ap.add_argument("--warmup", type=int, help="untimed training steps first (default 3)")
    ap.add_argument("--sample-repeats", type=int, help="timed sampling calls (default: --repeats)")
    ap.add_argument("--taus", type=float, nargs="+", default=list(TAUS))
    ap.add_argument("--max-micro", type=int, help="largest micro-batch (gradient accumulation)")
    for switch in ("bf16", "channels-last", "compile", "fused-adam"):
        ap.add_argument(f"--{switch}", choices=fast.SWITCHES, default="auto")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: default)")
    ap.add_argument("--matmul-n", type=int, help="matrix size of the ceiling (default 8192)")
    ap.add_argument("--no-fp32", action="store_true", help="skip the fp32 eager baseline")
    ap.add_argument("--set", action="append", default=[], help="extra config key=value")
    ap.add_argument("--json-out", help="also write the JSON line to this file")
    ap.add_argument("--quick", action="store_true", help="tiny CPU smoke run (<1 min)")
    args = ap.parse_args(argv)
    defaults = {"batch": 512, "size": 32, "repeats": 5, "steps": 10, "warmup": 3}
    defaults["matmul_n"] = 8192
    if args.quick:
        defaults.update({k: v for k, v in QUICK.items() if k != "overrides"})
        args.set = QUICK["overrides"] + args.set
        if args.device == "auto":
            args.device = "cpu"
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.channels is None and args.quick:
        args.channels = QUICK["channels"]
    if args.sample_batch is None:
        args.sample_batch = args.batch
    if args.sample_repeats is None:
        args.sample_repeats = args.repeats
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def print_table(
    record: dict, ours: dict, plain: dict, taus: list[float], nfe: dict[float, int]
) -> None:
    """The fast path against fp32 eager, per measure, and the matmul ceiling."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    rows = [("training img/s", "train_img_s")] + [
        (f"backward sampling tau={label(t)} ({nfe[t]} NFE) img/s", f"sample_img_s_tau{label(t)}")
        for t in taus
    ]
    print(f"\n{'what':<42}{'fast path':>14}{'fp32 eager':>14}{'ratio':>8}")
    for what, key in rows:
        a, b = ours[key], plain.get(key)
        ratio = "-" if b is None else f"{a / b:.2f}"
        print(f"{what:<42}{cell(a):>14}{cell(b):>14}{ratio:>8}")
    tflops, tflops32 = record["matmul_tflops"], record["matmul_tflops_fp32"]
    print(
        f"matmul ceiling: bf16 {tflops:,.1f} TFLOP/s, fp32 {tflops32:,.1f} TFLOP/s; "
        f"training reaches {100 * record['fraction_of_ceiling']:.1f}% of "
        f"{record['ceiling_dtype']}'s "
        f"({record['gflop_per_image_train']:.1f} GFLOP/image per step)"
    )


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the JSON record it prints last."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    overrides = list(args.set)
    if args.channels is not None:
        overrides.append(f"model.channels={args.channels}")
    cfg = load_config(args.config, overrides=overrides)
    shape = (3, args.size, args.size)
    set_tf32(False)
    grid = edm_sigmas(18)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"

    def build() -> nn.Module:
        return build_model(cfg, shape, device)

    reference = build()
    n_params = sum(p.numel() for p in reference.parameters())
    flops_fwd, flops_train = count_flops(reference, shape, device)
    del reference

    path = fast.resolve(
        device,
        bf16=args.bf16,
        channels_last=args.channels_last,
        compile=args.compile,
        fused_adam=args.fused_adam,
    )
    options = {"dynamic": False} | ({"mode": args.compile_mode} if args.compile_mode else {})
    print(f"device {name}, torch {torch.__version__}, batch {args.batch}, shape {shape}")
    print(f"network: {n_params / 1e6:.2f} M parameters, {flops_fwd / 1e9:.2f} GFLOP/image forward")
    print(f"fast path: {path}")

    def run(label: str, p: fast.FastPath) -> dict:
        bench = Bench(build, device, p, options)
        result = measure(label, bench, args, shape, grid)
        del bench
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return result

    ours = run("fast", path)
    plain = {} if args.no_fp32 else run("fp32", fast.FastPath())
    tflops = matmul_tflops(device, args.matmul_n, torch.bfloat16)
    tflops32 = matmul_tflops(device, args.matmul_n, torch.float32)

    record: dict = {"train_img_s": ours["train_img_s"]}
    if plain:
        record["train_img_s_fp32"] = plain["train_img_s"]
        record["ratio"] = ours["train_img_s"] / plain["train_img_s"]
    for tau in args.taus:
        key = f"sample_img_s_tau{label(tau)}"
        record[key] = ours[key]
        if plain:
            record[f"sample_img_s_fp32_tau{label(tau)}"] = plain[key]
            record[f"sample_ratio_tau{label(tau)}"] = ours[key] / plain[key]
    nfe = {tau: 2 * (len(truncate_sigmas(grid, tau)) - 1) - 1 for tau in args.taus}
    record["matmul_tflops"] = tflops
    record["matmul_tflops_fp32"] = tflops32
    record["gflop_per_image_forward"] = flops_fwd / 1e9
    record["gflop_per_image_train"] = flops_train / 1e9
    # the ceiling of the dtype the fast path computes in: bf16 with autocast, else fp32
    ceiling = tflops if path.bf16 else tflops32
    record["ceiling_dtype"] = "bfloat16" if path.bf16 else "float32"
    record["fraction_of_ceiling"] = ours["train_img_s"] * flops_train / (ceiling * 1e12)
    for tau in args.taus:
        done = ours[f"sample_img_s_tau{label(tau)}"] * nfe[tau] * flops_fwd
        record[f"sample_fraction_of_ceiling_tau{label(tau)}"] = done / (ceiling * 1e12)
    record.update(
        {
            "device": name,
            "torch": torch.__version__,
            "batch": args.batch,
            "sample_batch": args.sample_batch,
            "image_shape": list(shape),
            "params": n_params,
            "fast_path": vars(path),
            "train_micro": ours["train_micro"],
            "train_micro_fp32": plain.get("train_micro"),
            "train_warmup_s": ours["train_warmup_s"],
            "taus": list(args.taus),
            "nfe": {f"tau{label(t)}": n for t, n in nfe.items()},
            "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        }
    )
    print_table(record, ours, plain, args.taus, nfe)
    line = json.dumps(record)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    print(line)
    return record


if __name__ == "__main__":
    main()
