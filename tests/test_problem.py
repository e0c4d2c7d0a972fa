import numpy as np
import pytest

from sfbd.config import load_config
from sfbd.data.problem import corrupt, load_problem
from sfbd.errors import DataError


def _cfg(*extra):
    return load_config(overrides=["data.source=ring8", "data.num_samples=2000", *extra])


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
    a = corrupt(x, np.array([0, 1, 2, 3]), 1.0, 0)
    b = corrupt(x[2:], np.array([2, 3]), 1.0, 0)
    assert np.array_equal(a[2:], b)
    assert not np.allclose(corrupt(x, np.arange(4), 1.0, 1), a)


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
