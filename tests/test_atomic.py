import numpy as np
import pytest

from sfbd.io.atomic import atomic_write, atomic_write_text, save_npy, save_npz


def test_writes_exact_paths_with_ordinary_permissions(tmp_path):
    save_npy(tmp_path / "a" / "x.npy", np.arange(3))
    save_npz(tmp_path / "s.stats", mu=np.ones(2))  # no ".npz" appended
    atomic_write_text(tmp_path / "t.txt", "hi")
    assert np.array_equal(np.load(tmp_path / "a" / "x.npy"), np.arange(3))
    with np.load(tmp_path / "s.stats") as f:
        assert np.array_equal(f["mu"], np.ones(2))
    assert (tmp_path / "t.txt").read_text() == "hi"
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "s.stats", "t.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_text(target, "old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
