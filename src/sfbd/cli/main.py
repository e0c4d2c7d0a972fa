"""The ``sfbd`` command: run the pipeline, the demo, and use a trained run.

    sfbd run [CONFIG.yaml] --out DIR [--set key=value ...]   # whole pipeline, resumable
    sfbd demo [--out DIR]                                    # offline default run, minutes on CPU
    sfbd sample --run DIR --n N --out FILE.npy [--stage K] [--seed S]
    sfbd denoise --run DIR --input NOISY.npy --sigma TAU --out FILE.npy [--stage K] [--seed S]
    sfbd fid-stats SOURCE --out REF.npz [--features inception|dinov2]  # reference statistics
    sfbd fid --input IMAGES.npy --stats REF.npz [--features inception|dinov2]  # FID / FD-DINOv2

Errors a user can fix print one line ``sfbd: error: ...`` and exit with status 2.
A run stopped by SIGTERM/SIGINT saves what it needs to resume and exits with status 75.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from sfbd.api import check_n, check_steps, load, noise_model
from sfbd.config import Config, dump_yaml, load_config, to_dict
from sfbd.data import (
    BUILTINS,
    builtin,
    builtin_shape,
    load_array,
    load_pretrain,
    load_problem,
    to_data_scale,
)
from sfbd.data.problem import check_sample_shape
from sfbd.diffusion.sample import SAMPLERS
from sfbd.errors import SfbdError
from sfbd.io.arrays import SampleArray
from sfbd.io.atomic import save_npy
from sfbd.methods import METHODS
from sfbd.nets import model_config, parameter_count
from sfbd.noise import flag, noise_arguments
from sfbd.run.runner import Run, plan, resolve_device
from sfbd.runtime import distributed
from sfbd.runtime.interrupt import EARLY, EXIT_INTERRUPTED, Interrupted, stop_on_signals
from sfbd.version import __version__


def dry_run(cfg: Config) -> dict:
    """What a run would do, without training: resolved config, data shape, network, stages."""
    shape = None
    pretrain = METHODS[cfg.method]().uses_pretrain(cfg)
    if cfg.data.source in BUILTINS:
        shape = builtin_shape(cfg.data.source, cfg.data.image_size)
    if shape is None:  # files: read them (this also validates them)
        shape = load_problem(cfg, pretrain=pretrain).shape
    elif pretrain:  # a builtin source with data.pretrain: check the pretrain shape
        assert cfg.data.pretrain is not None
        pre = builtin_shape(cfg.data.pretrain, cfg.data.image_size)
        pre = pre if pre is not None else load_pretrain(cfg).shape[1:]
        check_sample_shape("data.pretrain", pre, shape, "noisy")
    kind, kwargs = model_config(cfg, shape)
    return {
        "config": to_dict(cfg),
        "data_shape": list(shape),
        "model": {"kind": kind, "parameters": parameter_count(cfg, shape), "config": kwargs},
        "stages": [dataclasses.asdict(s) for s in plan(cfg)],
    }


def _run(args: argparse.Namespace) -> int:
    if args.max_stages is not None and args.max_stages < 0:
        raise SfbdError(f"--max-stages must be >= 0, got {args.max_stages}")
    cfg = load_config(args.config, args.set)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    if args.dry_run:
        print(json.dumps(dry_run(cfg), indent=1))
        return 0
    if distributed.env_info().distributed:  # started by torchrun: join the process group
        distributed.init(resolve_device(cfg.device).type)
    finished = False
    try:
        with stop_on_signals(EARLY) as flag:
            Run(cfg, args.out, progress=not args.quiet).execute(
                max_stages=args.max_stages, force=args.force, stop=flag
            )
        finished = True
    finally:
        distributed.destroy(finished=finished)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sfbd.cli.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, progress=not args.quiet)
    return 0


def _check_out(path: str) -> Path:
    out = Path(path)
    if out.suffix != ".npy":
        raise SfbdError(f"--out must name a .npy file, got {path!r}")
    return out


def _sample(args: argparse.Namespace) -> int:
    out = _check_out(args.out)
    check_n(args.n)  # the arguments first: no checkpoint is read for a typo
    check_steps(args.steps)
    model = load(args.run, args.stage, args.device)
    x = model.sample(args.n, seed=args.seed, steps=args.steps, progress=not args.quiet)
    save_npy(out, x)
    if not args.quiet:
        print(f"wrote {args.n} samples of shape {model.shape} to {out}")
    return 0


def _denoise(args: argparse.Namespace) -> int:
    out = _check_out(args.out)
    noise = {name: getattr(args, name) for name in noise_arguments()}
    if any(v is not None for v in noise.values()):
        noise_model(**noise)  # the arguments first: no checkpoint is read for a typo
    check_steps(args.steps)
    y, scale = load_array(args.input, "--input")  # model space; scale: the file's
    model = load(args.run, args.stage, args.device)
    x = model.denoise(
        y,
        seed=args.seed,
        sampler=args.sampler,
        steps=args.steps,
        progress=not args.quiet,
        **noise,
    )
    save_npy(out, to_data_scale(x, scale))
    if not args.quiet:
        print(f"wrote {len(x)} denoised samples to {out}")
    return 0


def _images(spec: str, root: str | None) -> SampleArray:
    """Images in [-1, 1] from a builtin name (cifar10, celeba, digits) or a path, as a sample
    array (memory-mapped, converted to float32 per read)."""
    if spec in BUILTINS:
        x, _ = builtin(spec, 162770 if spec == "celeba" else 0, root=root)
    else:
        x, _ = load_array(spec, "images")
    if x.ndim != 4:
        raise SfbdError(f"{spec!r} holds vectors of shape {x.shape[1:]}; FID needs images")
    return x


def _status(args: argparse.Namespace) -> int:
    from sfbd.cli.status import format_status, run_status

    status = run_status(args.run, verify=args.verify)
    print(json.dumps(status, indent=1) if args.json else format_status(status))
    return 1 if status.get("problems") else 0


def _feature_network(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """The --features network with its weights (--inception or --dinov2 file, else cache)."""
    from sfbd.metrics.fid import load_feature_network

    other = "dinov2" if args.features == "inception" else "inception"
    if getattr(args, other) is not None:
        raise SfbdError(
            f"--{other} gives the weights of --features {other}, but --features is "
            f"{args.features}; drop --{other} or pass --features {other}"
        )
    return load_feature_network(args.features, getattr(args, args.features)).to(device)


def _fid_stats(args: argparse.Namespace) -> int:
    from sfbd.metrics.fid import extract_features, feature_stats, save_stats

    out = Path(args.out)
    if out.suffix != ".npz":
        raise SfbdError(f"--out must name a .npz file, got {args.out!r}")
    x = _images(args.source, args.root)
    device = resolve_device(args.device)
    model = _feature_network(args, device)
    feats = extract_features(model, x, device=device, progress=not args.quiet)
    mu, sigma = feature_stats(feats)
    save_stats(out, mu, sigma)
    if not args.quiet:
        what = "FID" if args.features == "inception" else "FD-DINOv2"
        print(f"wrote {what} statistics of {len(x)} images to {out}")
    return 0


def _fid(args: argparse.Namespace) -> int:
    from sfbd.metrics.fid import fid_from_images, load_stats
    from sfbd.metrics.inception import FEATURE_DIM as INCEPTION_DIM

    ref = load_stats(args.stats)
    x = _images(args.input, None)
    device = resolve_device(args.device)
    model = _feature_network(args, device)
    dim = int(ref[0].shape[0])
    want = model.embed_dim if args.features == "dinov2" else INCEPTION_DIM
    if dim != want:
        raise SfbdError(
            f"--stats {args.stats} holds {dim}-d statistics, not the {want}-d features of "
            f"--features {args.features}; make them with sfbd fid-stats --features "
            f"{args.features}, or pass the --features they were made with"
        )
    print(f"{fid_from_images(model, x, ref, device=device, progress=not args.quiet):.4f}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    """List the converted-input caches (sizes, total), or delete them with --clear."""
    from sfbd.data import cache

    root = cache.cache_root(args.dir)
    if args.clear:
        freed = cache.clear(args.dir)
        print(f"cleared {root}: {freed / 2**20:.1f} MiB freed")
        return 0
    found = cache.entries(args.dir)
    for path, size in found:
        print(f"{size / 2**20:10.1f} MiB  {path.name}")
    total = sum(size for _, size in found)
    print(f"{len(found)} cache(s), {total / 2**20:.1f} MiB in {root}")
    return 0


def _add_feature_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--features",
        choices=("inception", "dinov2"),
        default="inception",
        help="inception: FID (default); dinov2: FD-DINOv2 (DINOv2 ViT-L/14 CLS features)",
    )
    p.add_argument("--inception", help="Inception weights file (default: cache/download)")
    p.add_argument("--dinov2", help="DINOv2 ViT-L/14 weights file (default: cache/download)")


STAGE_HELP = "stage/iteration K, or best (lowest val_noisy) (default: the last finished)"


def _stage(text: str) -> int | str:
    """--stage: an integer K, or 'best'."""
    if text == "best":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer K or best, got {text!r}") from None


def _add_denoise(sub: argparse._SubParsersAction) -> None:
    """``sfbd denoise``; its noise flags are every noise model's ``arguments``."""
    n = sub.add_parser("denoise", help="posterior samples of the clean data behind noisy inputs")
    n.add_argument("--run", required=True, help="run directory")
    n.add_argument("--input", required=True, help="noisy samples (.npy/.npz)")
    for name, text in noise_arguments().items():
        n.add_argument(flag(name), dest=name, help=text)
    n.add_argument("--out", required=True, help="output .npy, in input order")
    n.add_argument("--stage", type=_stage, help=STAGE_HELP)
    n.add_argument("--seed", type=int, help="seed (default: the run's)")
    n.add_argument(
        "--sampler",
        choices=SAMPLERS.names(),
        default="sde",
        help="sde: posterior sample (default); heun: deterministic probability-flow map",
    )
    n.add_argument("--steps", type=int, help="schedule steps (default: 256 for sde, else run's)")
    n.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    n.add_argument("--quiet", action="store_true")
    n.set_defaults(func=_denoise)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfbd",
        description="Train diffusion models from noisy data plus a small clean set (SFBD).",
    )
    p.add_argument("--version", action="version", version=f"sfbd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run (or resume) the whole pipeline")
    r.add_argument("config", nargs="?", help="YAML configuration (see configs/)")
    r.add_argument("--out", required=True, help="run directory; rerun to resume")
    r.add_argument(
        "--set",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="one or several overrides (--set a=1 b=2 --set c=3)",
    )
    r.add_argument("--max-stages", type=int, help="stop after this many stages (rerun resumes)")
    r.add_argument("--force", action="store_true", help="discard a different run in --out")
    r.add_argument("--print-config", action="store_true", help="print the resolved config only")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config, data shape, network and parameter count as JSON",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    r.set_defaults(func=_run)

    d = sub.add_parser("demo", help="offline demo: SFBD vs clean-only on ring8 (minutes on CPU)")
    d.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    d.add_argument("--quick", action="store_true", help="a much shorter run, for smoke tests")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_demo)

    s = sub.add_parser("sample", help="generate samples from pure noise with a trained run")
    s.add_argument("--run", required=True, help="run directory")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="output .npy (data's own shape and scale)")
    s.add_argument("--stage", type=_stage, help=STAGE_HELP)
    s.add_argument("--seed", type=int, help="seed (default: the run's)")
    s.add_argument("--steps", type=int, help="Heun steps of the schedule (default: the run's)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_sample)

    _add_denoise(sub)

    t = sub.add_parser("status", help="where a run stands: stages, progress, time left")
    t.add_argument("--run", required=True, help="run directory (the --out of sfbd run)")
    t.add_argument("--json", action="store_true", help="print the status as JSON")
    t.add_argument(
        "--verify",
        action="store_true",
        help="also check finished stages' files against the manifest (exit 1 on a mismatch)",
    )
    t.set_defaults(func=_status)

    f = sub.add_parser(
        "fid-stats", help="FID (or FD-DINOv2) reference statistics (mu, sigma) of a dataset"
    )
    f.add_argument("source", help="cifar10, celeba, digits, an image folder/.zip or .npy/.npz")
    f.add_argument("--out", required=True, help="output .npz with mu and sigma")
    f.add_argument("--root", help="cifar10/celeba data location (as data.root)")
    _add_feature_args(f)
    f.add_argument("--device", default="auto")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=_fid_stats)

    g = sub.add_parser(
        "fid", help="FID (or FD-DINOv2) of images (e.g. from sfbd sample) against statistics"
    )
    g.add_argument("--input", required=True, help="images: .npy/.npz (uint8 or [-1, 1]) or folder")
    g.add_argument("--stats", required=True, help="reference .npz (mu, sigma), e.g. from fid-stats")
    _add_feature_args(g)
    g.add_argument("--device", default="auto")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_fid)

    c = sub.add_parser(
        "cache", help="list (or --clear) the converted-input caches (image folders, CIFAR-10, ...)"
    )
    c.add_argument("--dir", help="the cache folder (default: as data.cache_dir's default)")
    c.add_argument("--clear", action="store_true", help="delete every cache in it")
    c.set_defaults(func=_cache)
    return p


def _warning_line(show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints sfbd's own warnings as one ``sfbd: warning:`` line
    (no source excerpt) and leaves other libraries' warnings to ``show``."""
    package = str(Path(__file__).resolve().parent.parent)

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if str(Path(filename).resolve()).startswith(package):
            print(f"sfbd: warning: {message}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line(warnings.showwarning)
            return args.func(args)
    except SfbdError as exc:
        print(f"sfbd: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"sfbd: interrupted ({exc}); rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("sfbd: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
