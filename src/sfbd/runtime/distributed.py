"""torch.distributed helpers for ``torchrun``: process-group set-up, sharding and batch splitting.

One process per device. ``torchrun`` exports RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR /
MASTER_PORT); :func:`init` reads them, starts the process group (NCCL on CUDA, gloo on CPU) when
WORLD_SIZE > 1 and is a no-op otherwise, so single-process code runs the same functions with
rank 0 of 1. Every collective helper here is likewise the identity without a process group.

Work division, both independent of the world size in *what* is computed:

* backward sampling: :func:`shard_indices` cuts the N noisy samples into contiguous shards and
  :func:`my_shards` deals them round-robin, so every sample is processed exactly once (keyed
  randomness, :mod:`sfbd.rng`, makes its result independent of which rank did it);
* training: :func:`rank_batch` gives each rank a contiguous slice of the global batch and splits
  it into micro-batches for gradient accumulation, with weights that make the accumulated
  gradient the gradient of the global-batch mean loss.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job.

    Attributes:
        rank: global rank, 0..world_size-1.
        world_size: number of processes.
        local_rank: rank within the node (the CUDA device index under torchrun).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files, logs and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def env_info() -> Dist:
    """Rank, world size and local rank from torchrun's environment (0, 1, 0 when unset)."""
    me = Dist(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))
    if me.world_size < 1 or not 0 <= me.rank < me.world_size:
        raise ValueError(f"bad torchrun environment: RANK={me.rank}, WORLD_SIZE={me.world_size}")
    return me


def info() -> Dist:
    """The current process group's rank and size (falls back to :func:`env_info`)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return env_info()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device_kind: str = "cpu", *, timeout_s: float | None = None) -> Dist:
    """Join the torchrun job: start the process group when WORLD_SIZE > 1.

    Args:
        device_kind: 'cuda' (NCCL; also selects device LOCAL_RANK) or 'cpu' (gloo).
        timeout_s: collective timeout (torch's default when None).
    Returns:
        This process's :class:`Dist`; rank 0 of 1 (and nothing started) without torchrun.
    """
    me = env_info()
    if not me.distributed:
        return me
    if device_kind == "cuda":
        torch.cuda.set_device(me.local_rank)
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["timeout"] = timedelta(seconds=timeout_s)
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend, rank=me.rank, world_size=me.world_size, **kwargs)
        global _started
        _started = True
    return me


_started = False  # whether init() started a process group in this process


def leave(code: int) -> NoReturn:
    """End the process with exit status ``code``.

    Without a process group this is ``sys.exit(code)``. Once :func:`init` started one, the
    interpreter's teardown is skipped (``os._exit`` after flushing the standard streams and
    logging): DDP keeps references to the process group that :func:`destroy` cannot drop, so
    gloo's threads are still running when the interpreter and C++ runtime tear down, and that
    teardown aborts the process now and then ("terminate called without an active exception",
    exit -6), turning a finished run into a failed one. Call it last, after every file is
    written and closed.
    """
    if not _started:
        sys.exit(code)
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to say
            stream.flush()
    os._exit(code)


def local_device(me: Dist, device_kind: str) -> torch.device:
    """The device this process uses: ``cuda:LOCAL_RANK`` on CUDA, else ``device_kind``."""
    if device_kind == "cuda":
        return torch.device("cuda", me.local_rank)
    return torch.device(device_kind)


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if not _active():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def destroy(*, finished: bool = True) -> None:
    """Leave the process group (no-op without one).

    ``finished``: every rank reached this point after the same last collective (a normal end),
    so all of them wait here for one another before any closes its connections; after an error
    on one rank the others may never come, so there is no wait. Under DDP the group's threads
    outlive this call (DDP keeps references to the group): end the process with :func:`leave`.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if finished:
        barrier()
    dist.destroy_process_group()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks, as a new tensor (the input is left unchanged).

    Sum then divide, since gloo has no AVG reduction. Must be called by every rank.
    """
    out = tensor.detach().clone()
    if not _active():
        return out
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks, as a new tensor. Must be called by every rank."""
    out = tensor.detach().clone()
    if _active():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum of ``tensor`` over ranks, as a new tensor (every rank calls)."""
    out = tensor.detach().clone()
    if _active():
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def any_rank(flag: bool, device: torch.device | str) -> bool:
    """Whether ``flag`` is True on any rank (one host synchronisation; every rank calls)."""
    if not _active():
        return flag
    return bool(all_reduce_max(torch.tensor(float(flag), device=device)))


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` (any picklable object) on every rank."""
    if not _active():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]  # type: ignore[return-value]


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, indexed by rank (``[obj]`` in a single process)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def main_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Decorator: run ``fn`` on rank 0 only; other ranks get None (no synchronisation)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        return fn(*args, **kwargs) if info().is_main else None

    return wrapper


def shard_indices(n_items: int, shard_size: int) -> list[range]:
    """Contiguous shards [0, s), [s, 2s), ... covering 0..n_items-1; the last may be shorter."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [range(i, min(i + shard_size, n_items)) for i in range(0, n_items, shard_size)]


def my_shards(shards: list[range], rank: int, world: int) -> list[range]:
    """The shards rank ``rank`` of ``world`` processes: shards rank, rank + world, ...

    Round-robin, so the ranks' loads differ by at most one shard; over all ranks every shard
    (and so every item) appears exactly once.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    return shards[rank::world]


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of a rank's share of the global batch.

    Attributes:
        items: positions in the global batch (0..global_batch-1), contiguous.
        weight: ``len(items) / global_batch``: the micro-batch mean loss times this, summed over
            all micro-batches of all ranks, is the global-batch mean loss.
        ddp_weight: ``weight * world``: the factor for the loss passed to ``backward`` when the
            ranks' gradients are *averaged* (as DDP does), so the averaged accumulated gradient
            is the gradient of the global-batch mean loss.
    """

    items: range
    weight: float
    ddp_weight: float


@dataclass(frozen=True)
class RankBatch:
    """A rank's contiguous share ``items`` of the global batch and its micro-batches."""

    items: range
    micro: list[MicroBatch]


def _split(n: int, parts: int) -> list[int]:
    """``n`` as ``parts`` sizes differing by at most one, larger first."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def rank_batch(global_batch: int, rank: int, world: int, max_micro: int | None = None) -> RankBatch:
    """This rank's slice of the global batch and its split into micro-batches.

    The global batch need not divide by ``world``: ranks take contiguous slices whose sizes
    differ by at most one (lower ranks take the extra items). Each slice is then split into
    ``ceil(size / max_micro)`` micro-batches of near-equal size (again differing by at most
    one), none larger than ``max_micro``. Weights are exact for unequal sizes: see
    :class:`MicroBatch`.

    Args:
        global_batch: the optimizer step's batch size over all ranks (>= world, so no rank
            is idle).
        rank, world: this rank and the number of ranks.
        max_micro: the largest micro-batch (None: no accumulation, one micro-batch).
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    if global_batch < world:
        raise ValueError(
            f"the global batch ({global_batch}) must be at least the number of ranks ({world})"
        )
    if max_micro is not None and max_micro < 1:
        raise ValueError(f"max_micro must be >= 1, got {max_micro}")
    sizes = _split(global_batch, world)
    start = sum(sizes[:rank])
    n = sizes[rank]
    n_micro = 1 if max_micro is None else -(-n // max_micro)
    micro = []
    pos = start
    for m in _split(n, n_micro):
        w = m / global_batch
        micro.append(MicroBatch(range(pos, pos + m), w, w * world))
        pos += m
    return RankBatch(range(start, start + n), micro)


__all__ = [
    "Dist",
    "MicroBatch",
    "RankBatch",
    "all_gather_object",
    "all_reduce_max",
    "all_reduce_mean",
    "any_rank",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "destroy",
    "local_device",
    "env_info",
    "info",
    "init",
    "leave",
    "main_only",
    "my_shards",
    "rank_batch",
    "shard_indices",
]
