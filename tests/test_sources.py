import numpy as np
import pytest

from sfbd.data.sources import builtin, load_array, to_data_scale
from sfbd.errors import DataError


def test_builtins_shapes_and_determinism():
    for name in ("ring8", "checkerboard", "swissroll"):
        (a, sa), (b, _) = builtin(name, 500), builtin(name, 500)
        assert a.shape == (500, 2) and a.dtype == np.float32 and sa == "float"
        assert np.array_equal(a, b)
        assert np.abs(a).max() < 1.5


def test_ring8_is_on_the_unit_circle_with_8_balanced_modes():
    x, _ = builtin("ring8", 8000)
    r = np.linalg.norm(x, axis=1)
    assert abs(np.median(r) - 1.0) < 0.02
    mode = np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)) % 8
    counts = np.bincount(mode.astype(int), minlength=8)
    assert counts.min() > 850 and counts.max() < 1150


def test_checkerboard_occupies_alternate_squares():
    x, _ = builtin("checkerboard", 4000)
    cells = np.floor((x + 1) * 2).astype(int)  # 4x4 grid indices
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all() or (
        (cells[:, 0] + cells[:, 1]) % 2 == 1
    ).all()
    assert len({tuple(c) for c in cells}) == 8


def test_digits_scaled():
    x, _ = builtin("digits", 0)
    assert x.shape == (1797, 1, 8, 8)
    assert x.min() == -1.0 and x.max() == 1.0


def test_unknown_source():
    with pytest.raises(DataError, match="unknown data source"):
        builtin("mnist9", 10)


def test_load_array_formats(tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float64)
    np.save(tmp_path / "a.npy", x)
    got, scale = load_array(tmp_path / "a.npy")
    assert got.dtype == np.float32 and scale == "float" and np.allclose(got, x)
    np.savez(tmp_path / "one.npz", anything=x)
    assert np.allclose(load_array(tmp_path / "one.npz")[0], x)
    np.savez(tmp_path / "named.npz", x=x, y=x[:2])
    assert load_array(tmp_path / "named.npz")[0].shape == (5, 3)
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataError, match="name it 'x' or 'data'"):
        load_array(tmp_path / "two.npz")


def test_uint8_images_scaled_and_back(tmp_path):
    img = np.array([0, 128, 255], dtype=np.uint8).reshape(3, 1, 1, 1)
    np.save(tmp_path / "u.npy", img)
    x, scale = load_array(tmp_path / "u.npy")
    assert scale == "uint8"
    assert np.allclose(np.asarray(x).ravel(), [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)
    assert np.array_equal(to_data_scale(x, scale), img)


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.zeros((0, 2)), "empty"),
        (np.zeros((4,)), "expected vectors"),
        (np.zeros((2, 3, 4)), "expected vectors"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN or infinite values in 1 of 2 samples"),
        (np.array([[0.0, np.inf], [-np.inf, 2.0], [1, 1]]), "infinite values in 2 of 3 samples"),
        (np.array([[1e300, 0.0], [1.0, 2.0]]), "infinite values in 1 of 2 samples"),  # > float32
        (np.array([["a", "b"]]), "expected numbers"),
        (np.zeros((3, 0)), r"shape \(3, 0\): its samples hold no values"),
    ],
)
def test_load_array_rejects(tmp_path, arr, message):
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(DataError, match=message) as info:
        load_array(tmp_path / "bad.npy", "data.clean")
    assert str(info.value).startswith("data.clean in ") and "\n" not in str(info.value)


def test_load_array_missing_and_garbage(tmp_path):
    with pytest.raises(DataError, match=r"data.noisy file '.*nope.npy' not found; check the path"):
        load_array(tmp_path / "nope.npy", "data.noisy")
    (tmp_path / "g.npy").write_text("not an array")
    with pytest.raises(DataError, match=r"'.*g.npy' is not a valid .npy array file \(.*numpy.save"):
        load_array(tmp_path / "g.npy")
    np.save(tmp_path / "t.npy", np.zeros((100, 4), np.float32))
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(DataError, match="data.clean file .* is not a valid .npy array file"):
        load_array(tmp_path / "t.npy", "data.clean")
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match=r"'.*x.csv' is not a .npy/.npz file; give the samples"):
        load_array(tmp_path / "x.csv", "data.clean")


def test_load_array_bad_npz(tmp_path):
    np.savez(tmp_path / "none.npz")
    with pytest.raises(DataError, match="holds no arrays"):
        load_array(tmp_path / "none.npz", "data.clean")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"cannot read array 'x' of data.clean file .*obj.npz"):
        load_array(tmp_path / "obj.npz", "data.clean")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 junk that is not a zip")
    with pytest.raises(DataError, match="data.clean file .*junk.npz' is not a valid .npz"):
        load_array(tmp_path / "junk.npz", "data.clean")


def test_load_array_unreadable_file(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.zeros((3, 2), np.float32))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "a.npy"))

    monkeypatch.setattr(np, "load", denied)  # running as root, chmod 000 would still read
    with pytest.raises(DataError) as info:
        load_array(tmp_path / "a.npy", "data.clean")
    msg = str(info.value)
    assert msg.startswith("cannot read data.clean file ") and "Permission denied" in msg
    assert "check that it is a readable file" in msg


def test_load_array_unreadable_file_for_real(tmp_path):
    import os

    np.save(tmp_path / "a.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "a.npy").chmod(0)
    try:
        if os.access(tmp_path / "a.npy", os.R_OK):
            pytest.skip("running as a user that reads files without read permission (root)")
        with pytest.raises(DataError, match="cannot read data.clean file .*Permission denied"):
            load_array(tmp_path / "a.npy", "data.clean")
    finally:
        (tmp_path / "a.npy").chmod(0o644)


def test_load_array_directories(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "a.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"data.clean '.*dir' holds no PNG/JPEG images"):
        load_array(folder, "data.clean")
    with pytest.raises(DataError, match=r"data.noisy '.*dir' is a folder, not a .npy/.npz file"):
        load_array(folder, "data.noisy", images_ok=False)


def test_builtin_draws_are_independent_and_fixed():
    a, _ = builtin("ring8", 300)
    b, _ = builtin("ring8", 300, draw=1)
    assert np.array_equal(b, builtin("ring8", 300, draw=1)[0])
    assert not np.isin(b, a).all(axis=1).any()  # no point of draw 1 is a point of draw 0


def test_builtin_shapes_without_loading():
    from sfbd.data.sources import builtin_shape

    assert builtin_shape("cifar10") == (3, 32, 32)
    assert builtin_shape("celeba", 32) == (3, 32, 32)
    assert builtin_shape("ring8") == (2,) and builtin_shape("nope") is None


def test_celeba_needs_root_and_folders_load(tmp_path):
    from PIL import Image

    with pytest.raises(DataError, match="needs data.root"):
        builtin("celeba", 0)
    for i in range(3):
        Image.fromarray(np.full((4, 4, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    x, scale = load_array(tmp_path)
    assert x.shape == (3, 3, 4, 4) and scale == "uint8"
    assert np.allclose(x[1], 60 / 127.5 - 1)
    with pytest.raises(DataError, match="would quantize the noise"):
        load_array(tmp_path, "data.noisy", images_ok=False)


def test_cifar10_and_celeba_are_converted_once_into_the_data_cache(tmp_path, monkeypatch):
    import os

    from PIL import Image
    from test_images import _celeba_image, _fake_cifar_dir, _tar_dir

    from sfbd.data import images

    tarball = _tar_dir(_fake_cifar_dir(tmp_path / "src"), tmp_path / "cifar-10-python.tar.gz")
    store = tmp_path / "cache"
    with pytest.warns(UserWarning, match="not the official release"):
        x, scale = builtin("cifar10", 0, root=str(tarball), cache_dir=str(store))
    with pytest.warns(UserWarning, match="not the official release"):
        want = images.to_model_space(images.load_cifar10(tarball))
    assert scale == "uint8" and x.shape == (15, 3, 32, 32)
    assert np.array_equal(np.asarray(x), np.asarray(want))
    assert isinstance(x.raw, np.memmap) and x.raw.dtype == np.uint8  # mapped; float32 per read

    def never(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(images, "load_cifar10", never)
    with pytest.warns(UserWarning, match="not the official release"):  # repeated from the cache
        again, _ = builtin("cifar10", 0, root=str(tarball), cache_dir=str(store))
    assert np.array_equal(np.asarray(again), np.asarray(want))
    monkeypatch.undo()
    os.utime(tarball, ns=(1, 1))  # another archive at the same path: converted again
    monkeypatch.setattr(images, "load_cifar10", lambda root: np.zeros((1, 3, 32, 32), np.uint8))
    assert builtin("cifar10", 0, root=str(tarball), cache_dir=str(store))[0].shape[0] == 1
    monkeypatch.undo()
    with pytest.raises(DataError, match="CIFAR-10 path .* not found"):
        builtin("cifar10", 0, root=str(tmp_path / "nowhere"), cache_dir=str(store))

    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for i in range(3):
        _celeba_image((40 * i, 0, 0), (0, 0, 0)).save(folder / f"{i:06d}.png")
    a, _ = builtin("celeba", 2, root=str(folder), image_size=8, cache_dir=str(store))
    b, _ = builtin("celeba", 3, root=str(folder), image_size=4, cache_dir=str(store))
    assert a.shape == (2, 3, 8, 8) and b.shape == (3, 3, 4, 4)  # n and size are in the key
    assert np.array_equal(np.asarray(a), np.asarray(to_model_space_of(folder, 8, 2)))
    assert len(list(store.glob("celeba-*.npy"))) == 2 and len(list(store.glob("cifar10-*"))) == 4
    Image.fromarray(np.zeros((218, 178, 3), np.uint8)).save(folder / "000000.png")
    os.utime(folder / "000000.png", ns=(2, 2))
    c, _ = builtin("celeba", 2, root=str(folder), image_size=8, cache_dir=str(store))
    assert np.asarray(c)[0].min() == -1.0 and np.asarray(c)[0].max() == -1.0  # the new file
    with pytest.raises(DataError, match="CelebA folder .* not found"):
        builtin("celeba", 2, root=str(tmp_path / "none"), cache_dir=str(store))


def to_model_space_of(folder, size, n):
    from sfbd.data import images

    return images.to_model_space(images.load_celeba(folder, size=size, limit=n))
