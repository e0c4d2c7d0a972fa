"""Backward sampling of the noisy set: sharded, resumable, dealt across DDP ranks.

* :meth:`ShardedDenoiser.full_pass` makes E_k: every noisy sample backward-sampled with the
  EMA model, written in shards of ``sample.shard_size`` samples
  (``denoised/E_KK/shard-*.npz``, keyed by index, ``x`` in ``sample.denoised_dtype``). Complete
  shards from an earlier run are kept, unreadable ones are redone; shards are dealt round robin
  across ranks, so every noisy sample is denoised exactly once per pass whatever the world
  size. The noisy set is read a shard at a time, and E_k comes back as a view of the
  memory-mapped shards (uncompressed .npz members, :mod:`sfbd.io.npz`), not an array in memory.
* :meth:`ShardedDenoiser.rows` backward-samples chosen noisy samples in memory (Online SFBD's
  refreshes): the rows are split into contiguous parts, one per rank, and gathered on all.

The injected noise of sample i in its c-th denoising is keyed by (seed, c, i), so results do
not depend on batch size, shard size or world size.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sfbd.data.problem import Problem
from sfbd.diffusion.batched import denoise_all
from sfbd.errors import SfbdError
from sfbd.io.arrays import SampleArray, Samples, Stacked, gather
from sfbd.io.atomic import save_npz
from sfbd.io.disk import require_free
from sfbd.io.npz import open_member
from sfbd.rng import stream_id
from sfbd.run.directory import denoised_dir, shard_path
from sfbd.runtime import distributed, faults, heap
from sfbd.runtime.fast import FastPath, autocast
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.schema import Config


class ShardedDenoiser:
    """Backward sampling of ``prob.noisy`` for one run (see the module docstring)."""

    def __init__(
        self,
        cfg: Config,
        prob: Problem,
        out: Path,
        grid: torch.Tensor,
        fast: FastPath,
        *,
        progress: bool,
        log: Callable[[str, bool], None],
        stop_requested: Callable[[], bool],
    ) -> None:
        self.cfg, self.prob, self.out, self.grid = cfg, prob, Path(out), grid
        self.fast, self.progress, self.log = fast, progress, log
        self.stop_requested = stop_requested  # any rank asked to stop (every rank calls)
        self.stop: StopFlag = NEVER
        self.dist = distributed.info()

    def evaluations(self, index: np.ndarray | None = None) -> int:
        """Denoiser calls of one backward pass over the noisy rows ``index`` (default: all)."""
        if index is None:
            index = np.arange(len(self.prob.noisy))
        return self.prob.corruption.evaluations(self.cfg.sample.sampler, self.grid, index)

    def _backward(
        self, ema: torch.nn.Module, index: np.ndarray, visit: int, desc: str, stop: StopFlag
    ) -> torch.Tensor:
        """Rows ``index`` (contiguous batches of sample.batch_size) on the CPU."""
        with autocast(self.grid.device, self.fast.bf16):
            return denoise_all(
                ema,
                torch.as_tensor(gather(self.prob.noisy, index)),
                self.prob.corruption,
                self.grid,
                stream=stream_id("denoise", self.cfg.seed, visit),
                sampler=self.cfg.sample.sampler,
                batch_size=self.cfg.sample.batch_size,
                keys=torch.as_tensor(index, dtype=torch.int64),
                desc=desc,
                progress=self.progress,
                stop=stop,
            )

    # -- in-memory rows (refreshes) ------------------------------------------------------
    def rows(self, ema: torch.nn.Module, index: np.ndarray, visit: int) -> torch.Tensor:
        """Noisy samples ``index`` backward-sampled (their ``visit``-th denoising), on every
        rank; each rank samples a contiguous part."""
        me = self.dist
        parts = np.array_split(np.asarray(index), me.world_size)
        mine = parts[me.rank]
        x = self._backward(ema, mine, visit, f"refresh {len(index)}", NEVER) if len(mine) else None
        faults.point("online.refresh")
        if not me.distributed:
            assert x is not None
            return x
        gathered = distributed.all_gather_object(None if x is None else x.numpy())
        return torch.cat([torch.as_tensor(g) for g in gathered if g is not None])

    # -- E_k in shards -------------------------------------------------------------------
    def full_pass(self, k: int, ema: torch.nn.Module, stop: StopFlag) -> SampleArray:
        """E_k, every noisy sample in index order, from shards kept or written now (a view of
        the memory-mapped shard files)."""
        prob, folder = self.prob, denoised_dir(self.out, k)
        n, size = len(prob.noisy), self.cfg.sample.shard_size
        shards = distributed.shard_indices(n, size)
        rank, world = self.dist.rank, self.dist.world_size
        parts: dict[int, SampleArray] = {}
        for i, r in enumerate(shards):  # each rank checks (and may redo) only its own shards
            x = self._read_shard(folder, r) if i % world == rank else None
            if x is not None:
                parts[r.start] = x
        mine = distributed.my_shards(shards, rank, world)
        todo = [r for r in mine if r.start not in parts]
        if todo:
            self._check_disk(folder, sum(len(r) for r in todo) * self.bytes_per_sample())
            folder.mkdir(parents=True, exist_ok=True)  # `sfbd status`: denoising has begun
        if parts and todo:
            self.log(f"stage {k}: {len(parts)} of {len(mine)} denoised shards kept", False)
        # under DDP the ranks agree on a stop request after each round of shards
        local_stop = stop if not self.dist.distributed else NEVER
        for j in range(len(distributed.my_shards(shards, 0, world))):
            r = mine[j] if j < len(mine) else None
            if r is not None and r.start not in parts:
                desc = f"stage {k} update: denoise {r.start}-{r.stop - 1} of {n}"
                x = self._backward(ema, np.arange(r.start, r.stop), k, desc, local_stop).numpy()
                path = shard_path(folder, r)
                save_npz(path, index=np.arange(r.start, r.stop), x=x.astype(self.dtype, copy=False))
                faults.point("denoise.shard")
                parts[r.start] = Samples(open_member(path, "x"))
                del x
                heap.release()  # the pass's freed buffers back to the system
            if self.dist.distributed:  # every rank, every round, also with nothing to do
                stop.check_agreed(self.stop_requested(), f"during stage {k} denoising")
        if self.dist.distributed:
            distributed.barrier()  # every shard is written: read the other ranks' ones
            for r in shards:
                if r.start not in parts:
                    x = self._read_shard(folder, r, redo=False)
                    if x is None:
                        raise SfbdError(f"denoised shard {shard_path(folder, r)} is missing")
                    parts[r.start] = x
        if not shards:
            return prob.noisy
        return Stacked([parts[r.start] for r in shards]) if len(shards) > 1 else parts[0]

    def shard_files(self, k: int) -> list[Path]:
        return sorted(denoised_dir(self.out, k).glob("shard-*.npz"))

    @property
    def dtype(self) -> np.dtype:
        """The dtype E_k's shards store (``sample.denoised_dtype``)."""
        return np.dtype(self.cfg.sample.denoised_dtype)

    def bytes_per_sample(self) -> int:
        """Disk bytes of one denoised sample."""
        return denoised_bytes(self.cfg, self.prob.shape)

    def _read_shard(self, folder: Path, r: range, redo: bool = True) -> SampleArray | None:
        """A shard's samples (memory-mapped) if its file is complete and holds exactly the
        indices of ``r``, in the configured dtype."""
        path = shard_path(folder, r)
        if not path.is_file():
            return None
        try:
            index, x = open_member(path, "index"), open_member(path, "x")
            ok = (
                np.array_equal(index, np.arange(r.start, r.stop))
                and x.shape == (len(r), *self.prob.shape)
                and x.dtype == self.dtype
            )
            why = "holds other indices, shapes or dtype"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            ok, why = False, f"unreadable: {type(exc).__name__}"
        if not ok:
            if not redo:
                raise SfbdError(f"denoised shard {path} {why}")
            self.log(f"denoised shard {path.name} {why}; redoing it", True)
            path.unlink()
            return None
        return Samples(x)

    @staticmethod
    def _check_disk(folder: Path, needed: int) -> None:
        """Refuse to start denoising when the disk cannot hold the denoised set."""
        require_free(folder, needed, "the denoised set", "use an --out on a larger disk")


def denoised_bytes(cfg: Config, shape: tuple[int, ...]) -> int:
    """Disk bytes of one denoised sample of ``shape`` in ``sample.denoised_dtype``."""
    return math.prod(shape) * np.dtype(cfg.sample.denoised_dtype).itemsize


def read_denoised(run_dir: str | Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, x) of the denoised set E_k of a run: its shards joined in index order."""
    folder = denoised_dir(Path(run_dir), k)
    shards = sorted(folder.glob("shard-*.npz"))
    if not shards:
        raise SfbdError(f"no denoised set E_{k:02d} in {run_dir}")
    index, x = [], []
    for path in shards:
        with np.load(path) as f:
            index.append(f["index"])
            x.append(f["x"])
    return np.concatenate(index), np.concatenate(x)
