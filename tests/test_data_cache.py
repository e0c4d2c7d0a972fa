"""Converted-input caches (sfbd.data.cache): built once, memory-mapped, rebuilt when stale or
damaged, never half-written, and built by rank 0 alone under DDP."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from sfbd.data import cache, load_array
from sfbd.data.images import load_image_folder, to_model_space
from sfbd.errors import SfbdError


def _counting(arr):
    calls = []

    def build():
        calls.append(1)
        return arr

    return build, calls


def test_built_once_then_mapped(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2)
    build, calls = _counting(arr)
    a = cache.cached("t", {"v": 1}, build, tmp_path)
    b = cache.cached("t", {"v": 1}, build, tmp_path)
    assert calls == [1] and isinstance(b, np.memmap) and b.dtype == np.uint8
    assert np.array_equal(a, arr) and np.array_equal(b, arr)
    assert cache.cached("t", {"v": 2}, build, tmp_path) is not None and calls == [1, 1]
    assert len(cache.entries(tmp_path)) == 2
    freed = cache.clear(tmp_path)
    assert freed > 2 * arr.nbytes and cache.entries(tmp_path) == []


def test_a_conversions_warnings_are_kept_and_repeated_on_every_open(tmp_path):
    import warnings

    arr = np.zeros((2, 3), np.float32)
    calls = []

    def build():
        calls.append(1)
        warnings.warn("copy is not the official release", UserWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        return arr

    with (
        pytest.warns(DeprecationWarning, match="old API"),
        pytest.warns(UserWarning, match="not the official release"),
    ):
        cache.cached("w", {"v": 1}, build, tmp_path)
    with warnings.catch_warnings(record=True) as again:  # a hit: no build, same data warning
        warnings.simplefilter("always")
        cache.cached("w", {"v": 1}, build, tmp_path)
    assert calls == [1]
    assert [(w.category, str(w.message)) for w in again] == [
        (UserWarning, "copy is not the official release")
    ]
    (meta,) = tmp_path.glob("w-*.json")
    assert json.loads(meta.read_text())["warnings"] == ["copy is not the official release"]


@pytest.mark.parametrize("damage", ["truncate", "no-record", "other-key", "bad-size"])
def test_damaged_or_stale_caches_are_rebuilt(tmp_path, damage):
    arr = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    build, calls = _counting(arr)
    cache.cached("t", {"v": 1}, build, tmp_path)
    (npy,) = tmp_path.glob("t-*.npy")
    meta = npy.with_suffix(".json")
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:300])
    elif damage == "no-record":
        meta.unlink()
    elif damage == "other-key":
        info = json.loads(meta.read_text())
        meta.write_text(json.dumps({**info, "key": {"v": 0}}))
    else:
        info = json.loads(meta.read_text())
        meta.write_text(json.dumps({**info, "bytes": info["bytes"] + 1}))
    got = cache.cached("t", {"v": 1}, build, tmp_path)
    assert calls == [1, 1] and np.array_equal(got, arr)


def test_an_image_folder_is_cached_and_a_changed_folder_gets_a_new_cache(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        px = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(px).save(folder / f"{i}.png")
    x, scale = load_array(folder, "data.clean", cache_dir=tmp_path / "c")
    want = to_model_space(load_image_folder(folder))
    assert scale == "uint8" and np.array_equal(np.asarray(x), want)
    assert len(cache.entries(tmp_path / "c")) == 1
    load_array(folder, "data.clean", cache_dir=tmp_path / "c")
    assert len(cache.entries(tmp_path / "c")) == 1  # reused
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(folder / "9.png")
    x2, _ = load_array(folder, "data.clean", cache_dir=tmp_path / "c")
    assert len(x2) == 6 and len(cache.entries(tmp_path / "c")) == 2


def test_compressed_npz_goes_through_the_cache_and_plain_npz_is_mapped(tmp_path):
    x = np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32)
    np.savez_compressed(tmp_path / "c.npz", x=x)
    np.savez(tmp_path / "p.npz", x=x)
    got, _ = load_array(tmp_path / "c.npz", cache_dir=tmp_path / "c")
    assert np.array_equal(np.asarray(got), x) and len(cache.entries(tmp_path / "c")) == 1
    got, _ = load_array(tmp_path / "p.npz", cache_dir=tmp_path / "c")
    assert isinstance(got, np.memmap) and np.array_equal(got, x)
    assert len(cache.entries(tmp_path / "c")) == 1


def test_too_little_disk_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("sfbd.io.disk.shutil.disk_usage", lambda p: usage._replace(free=2**20))
    arr = np.zeros((1000, 1000), np.float32)
    want = r"not enough disk space for the data cache t-.*\.npy .* 4,000,000 bytes .* needed, "
    with pytest.raises(SfbdError, match=want + r"1,048,576 bytes .* free.*data.cache_dir"):
        cache.cached("t", {"v": 1}, lambda: arr, tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.npy")) and not list((tmp_path / "c").glob("*.json"))


def test_a_killed_build_leaves_only_a_temporary_that_the_next_build_removes(tmp_path):
    import subprocess
    import sys

    from run_helpers import cli_env

    script = (
        "import numpy as np; from sfbd.data import cache; "
        "cache.cached('t', {'v': 1}, lambda: np.zeros((3000, 1000), np.float32), "
        f"{str(tmp_path)!r})"
    )
    died = subprocess.run([sys.executable, "-c", script], env=cli_env("data.write:2"))
    assert died.returncode == -9
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob("*.json"))
    assert len(list(tmp_path.glob(".*.tmp"))) == 1
    done = subprocess.run([sys.executable, "-c", script], env=cli_env())
    assert done.returncode == 0
    assert not list(tmp_path.glob(".*.tmp")) and len(cache.entries(tmp_path)) == 1


def _streamed(tmp_path, calls):
    want = np.arange(5 * 2 * 3 * 3, dtype=np.uint8).reshape(5, 2, 3, 3)

    def build(allocate):
        calls.append(1)
        out = allocate(want.shape)
        assert isinstance(out, np.memmap) and os.path.dirname(out.filename) == str(tmp_path)
        assert os.path.basename(out.filename).startswith(".")  # a temporary until complete
        for i in range(len(want)):  # row by row, as an image reader fills it
            out[i] = want[i]
        return out

    return build, want


def test_a_streamed_build_writes_into_the_cache_file(tmp_path):
    calls = []
    build, want = _streamed(tmp_path, calls)
    got = cache.cached("s", {"v": 1}, build, tmp_path, streamed=True)
    assert isinstance(got, np.memmap) and got.dtype == np.uint8 and np.array_equal(got, want)
    again = cache.cached("s", {"v": 1}, build, tmp_path, streamed=True)
    assert calls == [1] and np.array_equal(again, want)
    (meta,) = tmp_path.glob("s-*.json")
    info = json.loads(meta.read_text())
    assert info["shape"] == [5, 2, 3, 3] and info["dtype"] == "uint8"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_or_refused_streamed_build_leaves_nothing(tmp_path, monkeypatch):
    import shutil

    def half_then_fail(allocate):
        out = allocate((4, 3))
        out[:2] = 1
        raise ValueError("image 3 is broken")

    with pytest.raises(ValueError, match="image 3 is broken"):
        cache.cached("s", {"v": 1}, half_then_fail, tmp_path, streamed=True)
    with pytest.raises(TypeError, match="must return the array it allocated"):
        cache.cached("s", {"v": 1}, lambda allocate: np.zeros(3), tmp_path, streamed=True)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("sfbd.io.disk.shutil.disk_usage", lambda p: usage._replace(free=10))
    with pytest.raises(SfbdError, match=r"not enough disk space .* 1,000 bytes"):
        cache.cached("s", {"v": 1}, lambda allocate: allocate((10, 100)), tmp_path, streamed=True)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_streamed_build_leaves_only_a_temporary(tmp_path):
    import subprocess
    import sys

    from run_helpers import cli_env

    script = (
        "import os, signal; from sfbd.data import cache\n"
        "def build(allocate):\n"
        "    out = allocate((100, 10)); out[:50] = 3\n"
        "    if os.environ.get('DIE'): os.kill(os.getpid(), signal.SIGKILL)\n"
        "    out[50:] = 3; return out\n"
        f"cache.cached('s', {{'v': 1}}, build, {str(tmp_path)!r}, streamed=True)\n"
    )
    died = subprocess.run([sys.executable, "-c", script], env={**cli_env(), "DIE": "1"})
    assert died.returncode == -9
    assert [p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    done = subprocess.run([sys.executable, "-c", script], env=cli_env())
    assert done.returncode == 0
    assert not list(tmp_path.glob(".*.tmp")) and len(cache.entries(tmp_path)) == 1
    (npy,) = tmp_path.glob("s-*.npy")
    assert (np.load(npy) == 3).all()


def _ranks_build(rank, world, root, counts, local):
    from sfbd.runtime import distributed

    os.environ["LOCAL_RANK"] = "0"  # each rank plays the first process of its own node
    folder = root / (f"node{rank}" if local else "shared")

    def build():
        (counts / f"built-by-{rank}").write_text("1")
        return np.full((4, 3), 7.0, np.float32)

    got = cache.cached("t", {"v": 1}, build, folder)
    assert np.array_equal(got, np.full((4, 3), 7.0))
    distributed.barrier()


@pytest.mark.parametrize("local", [False, True])
def test_under_ddp_rank_zero_builds_and_a_node_local_folder_is_built_per_node(tmp_path, local):
    from ddp_helpers import run_ranks

    counts = tmp_path / "counts"
    counts.mkdir()
    run_ranks(2, _ranks_build, tmp_path, counts, local)
    built = sorted(p.name for p in counts.iterdir())
    # a shared folder: rank 0 builds, rank 1 waits and maps it; a node-local folder that
    # rank 1 cannot see: its node builds its own copy, once
    assert built == (["built-by-0", "built-by-1"] if local else ["built-by-0"])
    folders = ["node0", "node1"] if local else ["shared"]
    for f in folders:
        assert len(cache.entries(tmp_path / f)) == 1
