"""Tests for the torch.distributed helpers: sharding, batch splitting, and a real 2-process job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sfbd.runtime import distributed as D

SRC = str(Path(__file__).resolve().parents[1] / "src")


# --- pure functions ------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize(("n_items", "shard_size"), [(0, 4), (1, 4), (10, 3), (12, 4), (7, 100)])
def test_every_item_is_processed_exactly_once(world: int, n_items: int, shard_size: int) -> None:
    shards = D.shard_indices(n_items, shard_size)
    assert all(0 < len(s) <= shard_size for s in shards)
    assert all(s.step == 1 for s in shards)  # contiguous
    seen = [i for rank in range(world) for s in D.my_shards(shards, rank, world) for i in s]
    assert sorted(seen) == list(range(n_items))
    counts = [len(D.my_shards(shards, rank, world)) for rank in range(world)]
    assert max(counts) - min(counts) <= 1  # round-robin balances the shards


def test_sharding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shard_size"):
        D.shard_indices(10, 0)
    with pytest.raises(ValueError, match="n_items"):
        D.shard_indices(-1, 2)
    with pytest.raises(ValueError, match="rank"):
        D.my_shards(D.shard_indices(4, 1), 2, 2)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("global_batch", [4, 7, 12, 13])
@pytest.mark.parametrize("max_micro", [None, 1, 2, 5])
def test_rank_batch_partitions_and_weights_give_the_global_mean(
    world: int, global_batch: int, max_micro: int | None
) -> None:
    losses = torch.randn(global_batch, generator=torch.Generator().manual_seed(global_batch))
    parts = [D.rank_batch(global_batch, r, world, max_micro) for r in range(world)]
    # the ranks' slices tile the global batch, with sizes differing by at most one
    items = [i for p in parts for i in p.items]
    assert items == list(range(global_batch))
    sizes = [len(p.items) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    total = torch.zeros((), dtype=torch.float64)
    ddp = torch.zeros((), dtype=torch.float64)
    for p in parts:
        assert [i for m in p.micro for i in m.items] == list(p.items)
        micro_sizes = [len(m.items) for m in p.micro]
        assert min(micro_sizes) >= 1 and max(micro_sizes) - min(micro_sizes) <= 1
        if max_micro is not None:
            assert max(micro_sizes) <= max_micro
            assert len(micro_sizes) == -(-len(p.items) // max_micro)  # as few as possible
        else:
            assert len(p.micro) == 1
        rank_sum = torch.zeros((), dtype=torch.float64)
        for m in p.micro:
            micro_mean = losses[list(m.items)].double().mean()
            total += m.weight * micro_mean
            rank_sum += m.ddp_weight * micro_mean
        ddp += rank_sum / world  # what DDP's gradient averaging does to the ranks' sums
    target = losses.double().mean()
    assert torch.allclose(total, target, rtol=1e-12, atol=1e-12)
    assert torch.allclose(ddp, target, rtol=1e-12, atol=1e-12)


def test_rank_batch_uneven_split_and_errors() -> None:
    assert [len(D.rank_batch(10, r, 4).items) for r in range(4)] == [3, 3, 2, 2]
    assert [len(m.items) for m in D.rank_batch(10, 0, 1, max_micro=4).micro] == [4, 3, 3]
    with pytest.raises(ValueError, match="at least the number of ranks"):
        D.rank_batch(3, 0, 4)
    with pytest.raises(ValueError, match="max_micro"):
        D.rank_batch(8, 0, 2, max_micro=0)
    with pytest.raises(ValueError, match="rank"):
        D.rank_batch(8, 2, 2)


def test_single_process_helpers_are_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    me = D.init("cpu")
    assert me == D.Dist(0, 1, 0) and me.is_main and not me.distributed
    t = torch.tensor([1.0, 2.0])
    out = D.all_reduce_mean(t)
    assert torch.equal(out, t) and out is not t
    assert D.broadcast_object({"a": 1}) == {"a": 1}
    assert D.all_gather_object(5) == [5]
    D.barrier()
    assert D.main_only(lambda: "ran")() == "ran"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert D.env_info() == D.Dist(1, 2, 0) and not D.env_info().is_main
    assert D.main_only(lambda: "ran")() is None
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="bad torchrun environment"):
        D.env_info()
    assert D.local_device(D.Dist(0, 2, 1), "cuda") == torch.device("cuda", 1)
    assert D.local_device(D.Dist(0, 2, 1), "cpu") == torch.device("cpu")


# --- a real 2-process gloo job ----------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    from sfbd.runtime import distributed as D

    me = D.init("cpu", timeout_s=60)
    info = D.info()
    t = torch.tensor([float(me.rank), 10.0 * (me.rank + 1)])
    mean = D.all_reduce_mean(t)
    total = D.all_reduce_sum(torch.tensor(me.rank + 1))
    obj = D.broadcast_object({"seed": 1234, "rank": me.rank} if me.is_main else None)
    shards = D.my_shards(D.shard_indices(11, 3), me.rank, me.world_size)
    gathered = D.all_gather_object([i for s in shards for i in s])
    D.barrier()
    D.destroy()
    print(json.dumps({
        "rank": me.rank, "world": me.world_size, "info": [info.rank, info.world_size],
        "input_after": t.tolist(), "mean": mean.tolist(), "sum": int(total),
        "obj": obj, "gathered": gathered,
    }))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker: str, world: int = 2) -> list[subprocess.Popen[str]]:
    """``python -c worker`` as ranks 0..world-1 of a gloo job on this machine."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", worker],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def test_two_process_gloo_collectives() -> None:
    world = 2
    procs = _spawn(_WORKER, world)
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, r in enumerate(results):
        assert r["rank"] == rank and r["world"] == world and r["info"] == [rank, world]
        assert r["mean"] == [0.5, 15.0]  # mean of [0, 10] and [1, 20]
        assert r["input_after"] == [float(rank), 10.0 * (rank + 1)]  # input untouched
        assert r["sum"] == 3
        assert r["obj"] == {"seed": 1234, "rank": 0}  # rank 0's object everywhere
        # gathered per rank, in rank order: together every index once
        assert sorted(i for part in r["gathered"] for i in part) == list(range(11))
        assert r["gathered"][0] == [0, 1, 2, 6, 7, 8]


def test_leave_exits_plainly_without_a_group_and_skips_teardown_after_one(monkeypatch):
    from sfbd.runtime import distributed as D

    with pytest.raises(SystemExit) as exc:
        D.leave(3)
    assert exc.value.code == 3

    class Stream:
        def __init__(self):
            self.flushed = 0

        def flush(self):
            self.flushed += 1

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(D, "_started", True)
    monkeypatch.setattr(D.os, "_exit", fake_exit)
    out, err = Stream(), Stream()
    monkeypatch.setattr(D.sys, "stdout", out)
    monkeypatch.setattr(D.sys, "stderr", err)
    with pytest.raises(Exited) as ended:
        D.leave(5)
    assert ended.value.args == (5,) and out.flushed >= 1 and err.flushed >= 1


_DDP_WORKER = textwrap.dedent(
    """
    import sys, torch
    from sfbd.runtime import distributed as D

    me = D.init("cpu", timeout_s=60)
    ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    ddp(torch.ones(4, 3)).sum().backward()
    del ddp
    D.destroy()
    print("done", me.rank, end="")  # unflushed: leave() must flush it
    sys.stderr.write("bye")
    D.leave(7)
    """
)


def test_a_ddp_process_leaves_with_its_code_and_its_output():
    procs = _spawn(_DDP_WORKER)
    for rank, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 7, err[-2000:]
        assert out == f"done {rank}" and err.endswith("bye")
