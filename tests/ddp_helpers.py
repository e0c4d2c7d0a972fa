"""Run a function in N gloo processes on the CPU, as torchrun would (for the DDP tests)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from sfbd.runtime import distributed

    distributed.init("cpu", timeout_s=120)
    try:
        fn(rank, world, *args)
    except BaseException:
        distributed.destroy(finished=False)
        raise  # torch.multiprocessing reports it to the parent
    distributed.destroy()
    distributed.leave(0)  # skip the teardown that gloo's threads can abort (see leave)


def run_ranks(world: int, fn: Callable, *args: object) -> None:
    """``fn(rank, world, *args)`` in ``world`` processes joined in a gloo process group."""
    mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)
