"""Masked observations: y = m * (x + sigma * eps), m in {0, 1} per entry, 1 = observed.

A = diag(m_i) for sample i, its own adjoint. Missing entries of ``data.noisy`` may hold any
finite value: they are set to 0 when read (:meth:`MaskedGaussian.encode_noisy`), which is
A y. Backward sampling is MMPS (:mod:`sfbd.noise.linear`, :mod:`sfbd.diffusion.posterior`):
with M = sigma^2 I + sigma_t^2 A J A the residual y - A D is 0 off the mask, and CG stays on
the observed entries, so sigma may be 0.

* User mode: ``data.mask``, a ``.npy`` of 0/1 shaped like ``data.noisy`` (N, C, H, W), or
  (N, 1, H, W) (one mask for every channel), or (N, D) for vectors; read memory-mapped.
* Benchmark mode: ``data.mask_keep``, the fraction of entries kept, each entry of sample i kept
  independently, a function of (noise_seed, source index i) only; a sample that would observe
  nothing is drawn again (:func:`keyed_mask`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sfbd.errors import ConfigError, DataError
from sfbd.noise.base import NOISE_MODELS, Corruption
from sfbd.noise.linear import LinearCorruption, LinearKeys, white_noise
from sfbd.rng import keyed_randn, stream_id

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig

CHUNK = 4096  # rows per step when checking a mask file
REDRAWS = 64  # benchmark masks: draws of a sample that observes nothing, then one entry kept


@dataclass
class MaskKeys(LinearKeys):
    """The ``data.*`` keys of masked observations."""

    mask: str | None = None  # .npy of 0/1 (N, C, H, W), (N, 1, H, W) or (N, D); 1 = observed
    mask_keep: float | None = None  # benchmark mode: fraction of entries kept (iid per entry)


def keyed_mask(index: np.ndarray, shape: tuple[int, ...], keep: float, seed: int) -> np.ndarray:
    """Masks (N, *shape) of 0/1 float32: entry j of sample i kept with probability ``keep``,
    a function of (seed, index[i], j) only, and every sample observes at least one entry.

    A draw u_ij ~ U(0, 1) keeps entry j when u_ij < keep; a sample that keeps none is drawn
    again from the next counter of its key (:func:`sfbd.rng.keyed_randn`), so the masks are
    iid Bernoulli(keep) per entry conditioned on observing something: a sample that observes
    nothing carries no information, and its posterior would be the prior (a user's mask is
    refused for it, :meth:`MaskedGaussian.check`). After :data:`REDRAWS` draws (only when
    (1 - keep)^D is near 1) the entry of the last draw nearest to being kept is kept.
    """
    keys = torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64)
    stream = stream_id("data-mask", seed)

    def uniforms(k: torch.Tensor, counter: int) -> torch.Tensor:
        z = keyed_randn(k, shape, stream=stream, counter=counter, dtype=torch.float64)
        return torch.special.ndtr(z).reshape(len(k), -1)

    u = uniforms(keys, 0)
    for counter in range(1, REDRAWS + 1):
        empty = torch.nonzero(~(u < keep).any(1)).flatten()
        if not len(empty):
            break
        u[empty] = uniforms(keys[empty], counter)
    m = u < keep
    empty = torch.nonzero(~m.any(1)).flatten()
    m[empty, u[empty].argmin(1)] = True
    return m.reshape(len(keys), *shape).to(torch.float32).numpy()


def read_mask(path: str, key: str) -> np.ndarray:
    """A mask file memory-mapped, or a one-line DataError naming ``key``."""
    p = Path(path).expanduser()
    if p.suffix != ".npy":
        raise DataError(f"{key} must name a .npy file of 0/1, got {path!r}")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{key}: file {path!r} not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{key}: cannot read {path!r} as a .npy array ({exc})") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{key}: {path!r} holds {arr.dtype} values, not 0/1")
    return arr


class MaskOperator:
    """A = diag(m_b) per row (self-adjoint); ``m`` (B, *) broadcast against the state."""

    def __init__(self, m: torch.Tensor) -> None:
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m * x

    def adjoint(self, v: torch.Tensor) -> torch.Tensor:
        return self.m * v


@NOISE_MODELS.register("mask")
class MaskedGaussian(LinearCorruption):
    """Masked observations with white noise of level ``sigma`` >= 0 on the observed entries.

    Args:
        sigma: the noise std of observed entries (data scale).
        mask: a user's mask (N, *) (array or the path of its .npy, read when first needed), or
        keep, index, noise_seed: benchmark mode's keyed masks of the source rows ``index``.
        rows: the rows of the file this model covers (None: all), after :meth:`subset`.
        cg_steps: conjugate-gradient steps of the posterior sampler (``sample.cg_steps``).
    """

    name = "mask"
    Keys = MaskKeys
    arguments = {
        "mask": "masked inputs: .npy of 0/1 shaped like --input (1 = observed); "
        "--sigma gives the noise level of the observed entries (default 0)"
    }
    for_inputs = False  # the run's masks belong to its own noisy set

    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        return [f"data.{k}" for k in ("mask", "mask_keep") if getattr(data, k) is not None]

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        d = cfg.data
        if d.mask is not None and d.mask_keep is not None:
            raise ConfigError("give data.mask (user mode) or data.mask_keep (benchmark), not both")
        if getattr(d, "noise_cov", None) is not None:
            raise ConfigError(
                "data.mask is given together with data.noise_cov: masked observations take "
                "white noise at data.sigma only; unset one of them"
            )
        cls.check_sigma(cfg, "a mask")
        if d.mask_keep is not None:
            k = d.mask_keep
            if not (math.isfinite(k) and 0 < k <= 1):
                raise ConfigError(f"data.mask_keep must be a fraction in (0, 1], got {k}")
            if d.source is None:
                raise ConfigError(
                    "data.mask_keep draws masks in benchmark mode (data.source); in user mode "
                    "give data.mask, the .npy of each noisy sample's 0/1 mask"
                )
        elif d.source is not None:
            raise ConfigError(
                "data.mask is a user-mode file (data.noisy); in benchmark mode draw masks "
                "with data.mask_keep"
            )

    @classmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> Corruption:
        d = cfg.data
        sigma, cg = float(d.sigma), cfg.sample.cg_steps  # type: ignore[arg-type]
        if d.mask_keep is not None:
            assert index is not None, "validate_config allows data.mask_keep in benchmark mode"
            model = cls(sigma, keep=d.mask_keep, index=index, noise_seed=d.noise_seed, cg_steps=cg)
        else:
            assert d.mask is not None
            model = cls(sigma, mask=d.mask, cg_steps=cg)
            if n is not None and len(model.file) != n:
                raise DataError(
                    f"data.mask {d.mask!r} holds {len(model.file)} masks but data.noisy has "
                    f"{n} samples; it needs one mask per noisy sample, in its order"
                )
        return model.finish(cfg)

    @classmethod
    def describe_config(cls, data: DataConfig) -> str:
        seen = f"{data.mask_keep:g} of entries kept" if data.mask_keep else f"from {data.mask}"
        return f"masked ({seen}), white noise sigma {data.sigma} on observed entries"

    @classmethod
    def from_arguments(
        cls, args: dict[str, Any], *, n: int | None, seed: int
    ) -> MaskedGaussian | None:
        if args.get("mask") is None:
            return None
        model = cls(cls.sigma_argument(args, "--mask"), mask=args["mask"], what="--mask")
        if n is not None and len(model.file) != n:
            raise DataError(f"--mask holds {len(model.file)} masks for {n} inputs; one per input")
        return model

    def __init__(
        self,
        sigma: float,
        mask: np.ndarray | str | None = None,
        *,
        keep: float | None = None,
        index: np.ndarray | list[int] | None = None,
        noise_seed: int = 0,
        rows: np.ndarray | list[int] | None = None,
        cg_steps: int = 1,
        what: str = "data.mask",
    ) -> None:
        if (mask is None) == (keep is None):
            raise ValueError("give a mask or keep (with index), not both")
        self.sigma, self.cg_steps, self.what = float(sigma), int(cg_steps), what
        self.path = str(mask) if isinstance(mask, str | Path) else None
        self._file = None if isinstance(mask, str | Path) else mask
        self.keep, self.noise_seed = keep, int(noise_seed)
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    @property
    def file(self) -> np.ndarray:
        """The user's masks (N, *), memory-mapped when read from a path."""
        if self._file is None:
            assert self.path is not None, "benchmark masks are drawn, not read"
            self._file = read_mask(self.path, self.what)
        return self._file

    def __len__(self) -> int:
        if self.keep is not None:
            assert self.index is not None
            return len(self.index)
        return len(self.file) if self.rows is None else len(self.rows)

    def masks(self, pos: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The 0/1 masks (b, *m) float32 of this model's rows ``pos``, for samples of
        ``shape``; m is ``shape`` or (1, H, W), broadcast over channels."""
        pos = np.asarray(pos, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= len(self)):
            raise DataError(f"noisy sample {int(pos.max())} has no mask: {len(self)} are known")
        if self.keep is not None:
            assert self.index is not None
            return keyed_mask(self.index[pos], shape, self.keep, self.noise_seed)
        src = pos if self.rows is None else self.rows[pos]
        return np.asarray(self.file[np.sort(src)][np.argsort(np.argsort(src))], np.float32)

    def operator(self, keys: torch.Tensor, like: torch.Tensor) -> MaskOperator:
        m = self.masks(keys.cpu().numpy(), tuple(like.shape[1:]))
        return MaskOperator(torch.as_tensor(m, dtype=like.dtype, device=like.device))

    def observe(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.masks(rows, tuple(x.shape[1:])) * x

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """m * (x + sigma * eps) (the noise of missing entries is masked too)."""
        eps = white_noise(index, tuple(x.shape[1:]), noise_seed)
        m = self.masks(np.arange(len(x)), tuple(x.shape[1:]))
        return (m * (np.asarray(x, np.float32) + self.sigma * eps)).astype(np.float32)

    def encode_noisy(self, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        """A y: missing entries (any value) set to 0."""
        return (self.masks(index, tuple(y.shape[1:])) * y).astype(np.float32)

    def check(
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        """A user's mask: shaped like the noisy samples (or one channel), 0/1, and every
        sample observes at least one entry."""
        if noisy is None or self.keep is not None:
            return
        f, shape, what = self.file, tuple(noisy.shape[1:]), self.what
        one = (1, *shape[1:]) if len(shape) == 3 else shape
        if len(f) != len(noisy) or tuple(f.shape[1:]) not in {shape, one}:
            also = f" or {(len(noisy), *one)}" if one != shape else ""
            raise DataError(
                f"{what} has shape {tuple(f.shape)} but {keys[1]} has {tuple(noisy.shape)}: "
                f"it must be {(len(noisy), *shape)}{also}, one 0/1 per entry (1 = observed)"
            )
        for s in range(0, len(f), CHUNK):
            part = np.asarray(f[s : s + CHUNK], dtype=np.float64)
            bad = ~((part == 0) | (part == 1))
            if bad.any():
                at = np.argwhere(bad)[0]
                raise DataError(
                    f"{what} must hold only 0 and 1 (1 = observed); sample {s + at[0]} holds "
                    f"{part[tuple(at)]}"
                )
            empty = part.reshape(len(part), -1).sum(1) == 0
            if empty.any():
                i = s + int(np.flatnonzero(empty)[0])
                raise DataError(
                    f"{what}: sample {i} observes nothing (its mask is all 0); drop it from "
                    f"{keys[1]} or observe at least one entry"
                )

    def subset(self, rows: np.ndarray) -> MaskedGaussian:
        rows = np.asarray(rows, dtype=np.int64)
        if self.keep is not None:
            assert self.index is not None
            return MaskedGaussian(
                self.sigma,
                keep=self.keep,
                index=self.index[rows],
                noise_seed=self.noise_seed,
                cg_steps=self.cg_steps,
            )
        mine = rows if self.rows is None else self.rows[rows]
        out = MaskedGaussian(
            self.sigma,
            mask=self.path or self.file,
            rows=mine,
            cg_steps=self.cg_steps,
            what=self.what,
        )
        out._file = self._file
        return out

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"noise": self.name, "sigma": self.sigma, "cg_steps": self.cg_steps}
        if self.keep is not None:
            assert self.index is not None
            out.update(keep=self.keep, index=self.index.tolist(), noise_seed=self.noise_seed)
        else:
            out.update(mask=self.path or "given", what=self.what)
            if self.rows is not None:
                out["rows"] = self.rows.tolist()
        return out

    def describe(self) -> str:
        seen = f"{self.keep:g} of entries kept" if self.keep is not None else f"mask {self.path}"
        return f"masked ({seen}), sigma {self.sigma:g}"

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> MaskedGaussian:
        d = int(np.prod(shape))
        return cls(0.1, keep=0.6, index=np.arange(n), noise_seed=5, cg_steps=d)
