import numpy as np
import pytest

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import DataError
from sfbd.noise import WhiteGaussian


def _cfg(*extra):
    """ring8 with no held-out noisy set: these tests pin the whole noisy set's sizes and
    rows (test_holdout.py tests the held-out set)."""
    base = ["data.source=ring8", "data.num_samples=2000", "eval.noisy_holdout=0"]
    return load_config(overrides=[*base, *extra])


def test_benchmark_split_sizes_and_disjointness():
    p = load_problem(_cfg("data.clean_fraction=0.05", "data.holdout=0.1"))
    assert len(p.reference) == 200
    assert len(p.clean) == 90 and len(p.noisy) == 1710 and len(p.noisy_truth) == 1710
    allx = np.concatenate([p.reference, p.clean, p.noisy_truth])
    assert len(np.unique(allx, axis=0)) == 2000  # a partition of the source


def test_noise_is_fixed_per_source_index_and_has_level_sigma():
    a = load_problem(_cfg("data.sigma=0.3", "data.clean_fraction=0.05"))
    b = load_problem(_cfg("data.sigma=0.3", "data.clean_fraction=0.2"))
    eps = (a.noisy - a.noisy_truth) / 0.3
    assert abs(eps.std() - 1) < 0.05 and abs(eps.mean()) < 0.05
    # a sample that is noisy in both splits carries the same noise draw
    common = {tuple(t): n for t, n in zip(b.noisy_truth, b.noisy, strict=True)}
    shared = [
        (n, common[tuple(t)])
        for t, n in zip(a.noisy_truth, a.noisy, strict=True)
        if tuple(t) in common
    ]
    assert len(shared) > 1000
    assert all(np.array_equal(x, y) for x, y in shared)


def test_corrupt_depends_on_index_and_seed_only():
    x = np.zeros((4, 2), np.float32)
    a = WhiteGaussian(1.0).corrupt(x, np.array([0, 1, 2, 3]), 0)
    b = WhiteGaussian(1.0).corrupt(x[2:], np.array([2, 3]), 0)
    assert np.array_equal(a[2:], b)
    assert not np.allclose(WhiteGaussian(1.0).corrupt(x, np.arange(4), 1), a)


def test_user_mode_and_shape_mismatch(tmp_path):
    np.save(tmp_path / "noisy.npy", np.zeros((10, 1, 8, 8), np.float32))
    np.save(tmp_path / "clean.npy", np.zeros((3, 1, 8, 8), np.float32))
    np.save(tmp_path / "vec.npy", np.zeros((3, 64), np.float32))
    base = [f"data.noisy={tmp_path / 'noisy.npy'}", "data.sigma=0.5"]
    p = load_problem(load_config(overrides=[*base, f"data.clean={tmp_path / 'clean.npy'}"]))
    assert p.shape == (1, 8, 8) and p.is_image and p.noisy_truth is None and p.reference is None
    with pytest.raises(DataError, match=r"clean samples have shape \(64,\) but noisy samples"):
        load_problem(load_config(overrides=[*base, f"data.clean={tmp_path / 'vec.npy'}"]))
    with pytest.raises(DataError, match="eval.reference samples have shape"):
        load_problem(
            load_config(
                overrides=[
                    *base,
                    f"data.clean={tmp_path / 'clean.npy'}",
                    f"eval.reference={tmp_path / 'vec.npy'}",
                ]
            )
        )


def test_too_few_clean_samples():
    with pytest.raises(DataError, match="leaves 1 clean samples"):
        load_problem(_cfg("data.clean_fraction=0.0005", "data.holdout=0"))


def _data_error(cfg) -> str:
    with pytest.raises(DataError) as info:
        load_problem(cfg)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_pretrain_builtin_in_benchmark_mode():
    p = load_problem(_cfg("data.clean_fraction=0", "data.pretrain=checkerboard"))
    assert len(p.clean) == 0 and p.clean.shape == (0, 2) and len(p.noisy) == 1800
    assert p.pretrain.shape == (2000, 2) and p.pretrain.dtype == np.float32
    assert "pretrain 2000" in p.summary()
    # the same 2-D builtin as the source is an independent draw: no source point reappears
    q = load_problem(_cfg("data.pretrain=ring8"))
    source = np.concatenate([q.reference, q.clean, q.noisy_truth])
    assert not np.isin(q.pretrain, source).all(axis=1).any()
    assert (
        load_problem(_cfg()).pretrain is None and "pretrain" not in load_problem(_cfg()).summary()
    )


def test_pretrain_is_ignored_by_methods_that_do_not_pretrain():
    from sfbd.methods import METHODS

    for method, reads in (("noisy-only", False), ("oracle", False), ("sfbd", True)):
        cfg = _cfg(f"method={method}", "data.pretrain=checkerboard")
        assert METHODS[method]().uses_pretrain(cfg) is reads  # the method decides
        p = load_problem(cfg, pretrain=METHODS[method]().uses_pretrain(cfg))
        assert (p.pretrain is not None) is reads
    assert not METHODS["sfbd"]().uses_pretrain(_cfg())  # nothing to read


def test_pretrain_file_in_user_mode(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "noisy.npy", rng.standard_normal((30, 3)).astype(np.float32))
    np.save(tmp_path / "pre.npy", rng.standard_normal((12, 3)))
    base = [f"data.noisy={tmp_path / 'noisy.npy'}", "data.sigma=0.5", "eval.noisy_holdout=0"]
    p = load_problem(load_config(overrides=[*base, f"data.pretrain={tmp_path / 'pre.npy'}"]))
    assert p.clean.shape == (0, 3) and p.pretrain.shape == (12, 3) and p.shape == (3,)
    assert p.summary() == "samples of shape (3,): clean 0, noisy 30 at sigma 0.5, pretrain 12"


def test_pretrain_shape_and_size_are_checked(tmp_path):
    msg = _data_error(_cfg("data.pretrain=digits"))
    assert msg == (
        "data.pretrain samples have shape (1, 8, 8) but noisy samples have (2,); "
        "both must hold the same kind of sample"
    )
    np.save(tmp_path / "one.npy", np.zeros((1, 2), np.float32))
    msg = _data_error(_cfg(f"data.pretrain={tmp_path / 'one.npy'}"))
    assert msg == (
        "data.pretrain holds 1 sample but needs at least 2; give a larger set of clean samples"
    )
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 1.0]], np.float32))
    msg = _data_error(_cfg(f"data.pretrain={tmp_path / 'nan.npy'}"))
    assert msg.startswith("data.pretrain in ") and "NaN or infinite values in 1 of 2" in msg
    msg = _data_error(_cfg(f"data.pretrain={tmp_path / 'missing'}"))
    assert msg.startswith("data.pretrain file ") and msg.endswith("not found; check the path")


def test_user_mode_inputs_are_checked(tmp_path):
    np.save(tmp_path / "noisy.npy", np.zeros((10, 2), np.float32))
    np.save(tmp_path / "one.npy", np.zeros((1, 2), np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 2), np.float32))
    np.save(tmp_path / "inf.npy", np.full((4, 2), np.inf, np.float32))
    noisy = f"data.noisy={tmp_path / 'noisy.npy'}"
    msg = _data_error(
        load_config(overrides=[noisy, "data.sigma=0.3", f"data.clean={tmp_path / 'one.npy'}"])
    )
    assert msg.startswith("data.clean holds 1 sample but needs at least 2")
    msg = _data_error(
        load_config(overrides=[noisy, "data.sigma=0.3", f"data.clean={tmp_path / 'empty.npy'}"])
    )
    assert (
        msg.startswith("data.clean in ") and "is empty (shape (0, 2)): it holds no samples" in msg
    )
    inf = f"data.noisy={tmp_path / 'inf.npy'}"
    msg = _data_error(
        load_config(overrides=[inf, "data.sigma=0.3", f"data.clean={tmp_path / 'noisy.npy'}"])
    )
    assert msg.startswith("data.noisy in ") and "infinite values in 4 of 4 samples" in msg
    ref = f"eval.reference={tmp_path / 'one.npy'}"
    msg = _data_error(
        load_config(
            overrides=[noisy, "data.sigma=0.3", f"data.clean={tmp_path / 'noisy.npy'}", ref]
        )
    )
    assert msg.startswith("eval.reference holds 1 sample but needs at least 2")


def test_a_one_sample_holdout_is_refused():
    cfg = load_config(
        overrides=[
            "data.source=ring8",
            "data.num_samples=10",
            "data.holdout=0.1",
            "data.clean_fraction=0.3",
        ]
    )
    msg = _data_error(cfg)
    assert msg.startswith("data.holdout 0.1 of 10 samples holds out 1 sample")
    assert "raise data.holdout, or set it to 0" in msg


def test_the_benchmark_noisy_set_is_stored_once_memory_mapped_and_rebuilt_when_damaged(tmp_path):
    from sfbd.data.store import store_problem
    from sfbd.io.arrays import Samples

    cfg = _cfg("data.sigma=0.3")
    lazy = load_problem(cfg)
    assert isinstance(lazy.noisy, Samples) and lazy.noisy.computed  # corrupted when read
    want = np.asarray(lazy.noisy)
    whole = WhiteGaussian(0.3).corrupt(np.asarray(lazy.noisy_truth), _noisy_index(cfg), 0)
    assert np.array_equal(want, whole)  # chunked, keyed noise: the whole-array corruption
    folder = tmp_path / "data"
    stored = store_problem(lazy, cfg, folder, write=True)
    assert isinstance(stored.noisy, np.memmap) and np.array_equal(stored.noisy, want)
    stamp = (folder / "noisy.npy").stat().st_mtime_ns
    store_problem(lazy, cfg, folder, write=True)
    assert (folder / "noisy.npy").stat().st_mtime_ns == stamp  # reused, not rewritten
    # truncated, or made under another noise seed: rebuilt
    data = (folder / "noisy.npy").read_bytes()
    (folder / "noisy.npy").write_bytes(data[: len(data) // 2])
    assert np.array_equal(store_problem(lazy, cfg, folder, write=True).noisy, want)
    other = _cfg("data.sigma=0.3", "data.noise_seed=1")
    again = store_problem(load_problem(other), other, folder, write=True)
    assert not np.array_equal(again.noisy, want)
    assert np.array_equal(again.noisy, np.asarray(load_problem(other).noisy))


def test_the_stored_arrays_key_holds_the_data_roots_identity(tmp_path):
    import os

    from sfbd.data.store import sources_key

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"one")
    cfg = _cfg("data.source=cifar10", f"data.root={archive}")
    before = sources_key(cfg)
    assert before["files"]["root"]["size"] == 3
    os.utime(archive, ns=(5, 5))  # another archive under the same path and settings
    assert sources_key(cfg) != before
    assert "root" not in sources_key(_cfg("data.source=cifar10"))["files"]  # the download cache


def _noisy_index(cfg):
    """The source indices of the noisy samples, as split_benchmark draws them."""
    d = cfg.data
    perm = np.random.default_rng([d.noise_seed, 7]).permutation(d.num_samples)
    train = perm[int(round(d.holdout * d.num_samples)) :]
    return np.sort(train[int(round(d.clean_fraction * len(train))) :])


def test_a_user_npy_is_used_in_place_and_a_float64_one_converted_per_read(tmp_path):
    x = np.random.default_rng(0).standard_normal((500, 3))
    np.save(tmp_path / "n32.npy", x.astype(np.float32))
    np.save(tmp_path / "n64.npy", x)
    np.save(tmp_path / "c.npy", x[:20].astype(np.float32))
    for name in ("n32", "n64"):
        cfg = load_config(
            overrides=[
                f"data.noisy={tmp_path / name}.npy",
                f"data.clean={tmp_path}/c.npy",
                "data.sigma=0.3",
                "eval.noisy_holdout=0",  # the whole file, in place
            ]
        )
        p = load_problem(cfg)
        assert np.array_equal(np.asarray(p.noisy), x.astype(np.float32))
        assert isinstance(p.noisy, np.memmap) == (name == "n32")


def test_uint8_noisy_files_are_refused(tmp_path):
    """Noise stored in 8 bits is rounded and clipped: its known level would be wrong."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "y.npy", rng.integers(0, 256, (20, 1, 4, 4), dtype=np.uint8))
    np.save(tmp_path / "c.npy", rng.integers(0, 256, (5, 1, 4, 4), dtype=np.uint8))
    sets = [f"data.noisy={tmp_path / 'y.npy'}", f"data.clean={tmp_path / 'c.npy'}"]
    cfg = load_config(overrides=[*sets, "data.sigma=0.2"])
    with pytest.raises(DataError, match="data.noisy .* holds uint8 values: noise cannot be"):
        load_problem(cfg)
    np.save(tmp_path / "y.npy", rng.normal(size=(20, 1, 4, 4)).astype(np.float32))
    assert len(load_problem(cfg).noisy) == 20  # float noisy data beside uint8 clean images
