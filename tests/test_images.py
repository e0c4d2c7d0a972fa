"""Image dataset readers: folders/zips, CIFAR-10 (fake archives, no network), CelebA crop."""

import hashlib
import io
import pickle
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfbd.data import images
from sfbd.data.images import load_celeba, load_cifar10, load_image_folder, to_model_space
from sfbd.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- folders / zips


def _rgb(seed: int, h: int = 3, w: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _write_pngs(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    for rel, arr in arrays.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / rel)


def _zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*"), reverse=True):  # stored out of order on purpose
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return dest


def test_folder_exact_values_order_and_zip_equivalence(tmp_path):
    folder = tmp_path / "imgs"
    arrays = {"b.png": _rgb(1), "a.png": _rgb(2), "sub/c.png": _rgb(3), "a0.png": _rgb(4)}
    _write_pngs(folder, arrays)
    (folder / "dataset.json").write_text('{"labels": null}')  # EDM layout: ignored
    (folder / "notes.txt").write_text("not an image")

    x = load_image_folder(folder)
    order = ["a.png", "a0.png", "b.png", "sub/c.png"]  # sorted relative paths
    assert x.dtype == np.uint8 and x.shape == (4, 3, 3, 4)
    for i, rel in enumerate(order):
        assert np.array_equal(x[i], arrays[rel].transpose(2, 0, 1)), rel
    assert x[0, 2, 1, 3] == arrays["a.png"][1, 3, 2]  # (N, C, H, W) from (H, W, C)

    z = load_image_folder(_zip_folder(folder, tmp_path / "imgs.zip"))
    assert np.array_equal(x, z)


def test_a_folder_can_be_read_into_a_given_array(tmp_path):
    _write_pngs(tmp_path, {"a.png": _rgb(1), "b.png": _rgb(2)})
    given = []

    def allocate(shape):
        given.append(np.full(shape, 9, np.uint8))
        return given[-1]

    got = load_image_folder(tmp_path, allocate=allocate)
    assert len(given) == 1 and got is given[0] and got.shape == (2, 3, 3, 4)
    assert np.array_equal(got, load_image_folder(tmp_path))  # every value written


def test_grayscale_gives_one_channel_and_alpha_is_dropped(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    x = load_image_folder(tmp_path)
    assert x.shape == (1, 1, 3, 4) and np.array_equal(x[0, 0], gray)

    rgba_dir = tmp_path / "rgba"
    rgba_dir.mkdir()
    rgba = np.concatenate([_rgb(5), np.full((3, 4, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(rgba_dir / "x.png")
    y = load_image_folder(rgba_dir)
    assert y.shape == (1, 3, 3, 4) and np.array_equal(y[0], rgba[..., :3].transpose(2, 0, 1))


def test_jpeg_is_read(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "x.JPG", quality=95)
    x = load_image_folder(tmp_path)
    assert x.shape == (1, 3, 8, 8) and np.abs(x.astype(int) - 200).max() <= 2


def test_mixed_sizes_names_the_file(tmp_path):
    _write_pngs(tmp_path, {"a.png": _rgb(1), "b.png": _rgb(2), "cat_17.png": _rgb(3, 48, 64)})
    with pytest.raises(DataError, match=r"'cat_17.png'.* is 64x48 RGB .*'a.png' is 4x3 RGB"):
        load_image_folder(tmp_path)


def test_mixed_modes_names_the_file(tmp_path):
    _write_pngs(tmp_path, {"a.png": _rgb(1), "b.png": _rgb(2)[..., 0]})
    with pytest.raises(DataError, match=r"'b.png'.* is 4x3 L but .* 4x3 RGB"):
        load_image_folder(tmp_path)


def test_empty_and_missing(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no PNG/JPEG images"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no PNG/JPEG images"):
        load_image_folder(_zip_folder(tmp_path, tmp_path.parent / "empty.zip"))


def test_messages_name_the_input(tmp_path, monkeypatch):
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path, what="data.clean")
    assert str(info.value) == (
        f"data.clean {str(tmp_path)!r} holds no PNG/JPEG images (.png, .jpg, .jpeg); "
        "point it at the folder or zip that holds them"
    )
    with pytest.raises(DataError, match=r"^data.clean '.*nope' not found$"):
        load_image_folder(tmp_path / "nope", what="data.clean")

    def denied(self, pattern):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "rglob", denied)
    with pytest.raises(DataError, match=r"^cannot list data.clean '.*': Permission denied; check"):
        load_image_folder(tmp_path, what="data.clean")


def test_corrupt_image_names_the_file(tmp_path):
    _write_pngs(tmp_path, {"a.png": _rgb(1)})
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"cannot read image 'bad.png'"):
        load_image_folder(tmp_path)
    (tmp_path / "not.zip").write_bytes(b"garbage")
    with pytest.raises(DataError, match="as a zip"):
        load_image_folder(tmp_path / "not.zip")


def test_to_model_space():
    x = np.array([0, 127, 255], np.uint8).reshape(1, 1, 1, 3)
    y = to_model_space(x)
    assert y.dtype == np.float32 and y.min() == -1.0 and y.max() == 1.0
    with pytest.raises(DataError):
        to_model_space(y)


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar_rows(n: int, batch: int) -> np.ndarray:
    """Rows whose R, G, B planes are distinct constants that encode (batch, row)."""
    rows = np.empty((n, 3072), np.uint8)
    for i in range(n):
        base = 8 * batch + 2 * i
        rows[i, :1024], rows[i, 1024:2048], rows[i, 2048:] = base, base + 100, base + 200
    return rows


def _fake_cifar_dir(root: Path, protocol: int = 2) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        batch = {b"batch_label": name.encode(), b"data": _cifar_rows(3, b), b"labels": [0, 1, 2]}
        (d / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"]}))
    return d


def _tar_dir(d: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(d, arcname=d.name)
    return dest


@pytest.fixture
def fake_cifar(tmp_path):
    d = _fake_cifar_dir(tmp_path / "src")
    return d, _tar_dir(d, tmp_path / "cifar-10-python.tar.gz")


def test_cifar_tarball_and_folder_agree_and_planes_decode(fake_cifar):
    d, tarball = fake_cifar
    train = load_cifar10(tarball)
    assert train.dtype == np.uint8 and train.shape == (15, 3, 32, 32)
    assert np.array_equal(train, load_cifar10(d))
    assert np.array_equal(train, load_cifar10(d.parent))  # folder holding cifar-10-batches-py
    for k in range(15):  # batch k // 3, row k % 3, in data_batch_1..5 order
        base = 8 * (k // 3) + 2 * (k % 3)
        assert (train[k, 0] == base).all() and (train[k, 1] == base + 100).all()
        assert (train[k, 2] == base + 200).all()
    test = load_cifar10(tarball, split="test")
    assert test.shape == (3, 3, 32, 32) and (test[:, 0, 0, 0] == [40, 42, 44]).all()
    assert np.array_equal(test, load_cifar10(d, split="test"))


def test_cifar_row_major_layout(tmp_path):
    d = _fake_cifar_dir(tmp_path)
    row = np.arange(3072, dtype=np.int64) % 251
    batch = {b"data": row.astype(np.uint8)[None], b"labels": [3]}
    (d / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    img = load_cifar10(d, split="test")[0]
    assert img[1, 0, 5] == (1024 + 5) % 251  # green plane, first image row, column 5
    assert img[2, 3, 7] == (2048 + 3 * 32 + 7) % 251  # blue plane, row 3, column 7


def test_cifar_copy_that_is_not_the_official_release_is_read_with_a_warning(
    fake_cifar, monkeypatch
):
    d, tarball = fake_cifar
    official = {b: _md5(d / b) for b in images.CIFAR10_BATCH_MD5}
    for src in (d, tarball):
        with pytest.warns(UserWarning, match=r"not the official release \(data_batch_1, .*"):
            load_cifar10(src)
    monkeypatch.setattr(images, "CIFAR10_BATCH_MD5", official)  # the fake as if official
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for src in (d, tarball):
            assert load_cifar10(src).shape == (15, 3, 32, 32)
            assert load_cifar10(src, split="test").shape == (3, 3, 32, 32)
    monkeypatch.setitem(images.CIFAR10_BATCH_MD5, "data_batch_4", "0" * 32)
    with pytest.warns(UserWarning, match=r"\(data_batch_4 differ") as seen:
        load_cifar10(d)
    assert len(seen) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cifar10(d, split="test")  # the test split does not read data_batch_4


def test_cifar_refuses_non_data_pickles_and_bad_inputs(tmp_path):
    d = _fake_cifar_dir(tmp_path)
    (d / "data_batch_2").write_bytes(pickle.dumps({b"data": Path("x")}))
    with pytest.raises(DataError, match="data_batch_2 .* not a CIFAR-10 python batch"):
        load_cifar10(d)
    with pytest.raises(DataError, match="lacks test_batch"):
        (d / "test_batch").unlink()
        load_cifar10(d, split="test")
    with pytest.raises(ConfigError, match="split"):
        load_cifar10(d, split="valid")
    with pytest.raises(DataError, match="not found"):
        load_cifar10(tmp_path / "nope")
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read CIFAR-10 archive"):
        load_cifar10(tmp_path / "junk.tar.gz")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar_download_verifies_md5(fake_cifar, tmp_path, monkeypatch):
    _, tarball = fake_cifar
    cache = tmp_path / "cache"
    monkeypatch.setattr(images, "CIFAR10_URL", tarball.as_uri())

    monkeypatch.setattr(images, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(DataError, match="MD5"):
        load_cifar10(cache_dir=cache)
    assert list(cache.iterdir()) == []  # neither the archive nor a temporary file is left

    monkeypatch.setattr(images, "CIFAR10_MD5", _md5(tarball))
    x = load_cifar10(cache_dir=cache, split="test")
    assert x.shape == (3, 3, 32, 32)
    assert [p.name for p in cache.iterdir()] == ["cifar-10-python.tar.gz"]
    monkeypatch.setattr(images, "CIFAR10_URL", "http://127.0.0.1:9/unused")  # cache hit now
    assert np.array_equal(load_cifar10(cache_dir=cache, split="test"), x)

    monkeypatch.setattr(images, "CIFAR10_MD5", "1" * 32)  # cached file no longer matches
    with pytest.raises(DataError, match="not the official"):
        load_cifar10(cache_dir=cache)


def test_cifar_offline_says_where_to_put_the_archive(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"
    monkeypatch.setattr(images, "CIFAR10_URL", url)
    monkeypatch.setenv("SFBD_CACHE", str(tmp_path / "envcache"))
    dest = str(tmp_path / "envcache" / "cifar-10-python.tar.gz")
    with pytest.raises(DataError) as err:
        load_cifar10()
    msg = str(err.value)
    assert url in msg and dest in msg and "\n" not in msg
    assert list((tmp_path / "envcache").iterdir()) == []
    with pytest.raises(DataError, match="not in the cache") as err:
        load_cifar10(download=False, cache_dir=tmp_path / "other")
    assert url in str(err.value)


# ----------------------------------------------------------------------------- CelebA


def _celeba_image(inside: tuple[int, int, int], outside: tuple[int, int, int]) -> Image.Image:
    arr = np.empty((218, 178, 3), np.uint8)
    arr[:] = outside
    arr[39:179, 19:159] = inside  # exactly the 140x140 crop box
    return Image.fromarray(arr)


def test_celeba_crop_box_and_shape(tmp_path):
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    colours = [(200, 30, 90), (10, 220, 40), (120, 120, 250)]
    for i, c in enumerate(colours):  # lossless, so the crop box can be checked exactly
        _celeba_image(c, (0, 0, 0) if i % 2 else (255, 255, 255)).save(folder / f"{i:06d}.png")
    x = load_celeba(tmp_path)  # the parent of img_align_celeba/ works too
    assert x.dtype == np.uint8 and x.shape == (3, 3, 64, 64)
    for i, c in enumerate(colours):
        # Exactly the inside colour, border pixels included: a box shifted by even one pixel
        # would blend the outside colour into the edge rows/columns.
        assert np.array_equal(
            x[i], np.broadcast_to(np.array(c, np.uint8)[:, None, None], x[i].shape)
        )
    assert np.array_equal(load_celeba(folder, size=32, limit=2), load_celeba(folder, size=32)[:2])
    assert load_celeba(folder, size=32, limit=2).shape == (2, 3, 32, 32)


def test_celeba_jpeg(tmp_path):
    _celeba_image((200, 30, 90), (255, 255, 255)).save(tmp_path / "000001.jpg", quality=90)
    x = load_celeba(tmp_path)
    assert x.shape == (1, 3, 64, 64)
    centre = x[0, :, 8:-8, 8:-8].astype(int) - np.array([200, 30, 90])[:, None, None]
    assert np.abs(centre).max() <= 8  # JPEG artefacts only; the outside white is cropped away


def test_celeba_crop_box_is_sensitive(tmp_path, monkeypatch):
    _celeba_image((200, 30, 90), (255, 255, 255)).save(tmp_path / "000001.png")
    monkeypatch.setattr(images, "CELEBA_CROP_BOX", (20, 39, 160, 179))  # one pixel right
    x = load_celeba(tmp_path)
    assert x[0, 1, :, -1].min() > 30  # the white outside leaks into the last column


def test_celeba_rejects_wrong_size_and_bad_args(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "000001.jpg")
    with pytest.raises(DataError, match=r"'000001.jpg'.* is 64x64, but aligned CelebA"):
        load_celeba(tmp_path)
    with pytest.raises(ConfigError):
        load_celeba(tmp_path, size=0)
    with pytest.raises(ConfigError):
        load_celeba(tmp_path, limit=0)


def test_cifar_pickle_protocol_5_loads(tmp_path):
    d = _fake_cifar_dir(tmp_path, protocol=5)
    assert load_cifar10(d).shape == (15, 3, 32, 32)


def test_unpickler_blocks_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    payload = pickle.dumps({b"data": Evil()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        images._CifarUnpickler(io.BytesIO(payload), encoding="bytes").load()


def _py2_style_batch(rows: np.ndarray) -> bytes:
    """A batch pickled the way the official (Python 2 cPickle, protocol 2) files are."""

    def s(b: bytes) -> bytes:  # BINSTRING: a Python 2 str, read back as bytes
        return b"T" + struct.pack("<I", len(b)) + b

    n = rows.shape[0]
    p = b"\x80\x02}(" + s(b"data")
    p += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
    p += b"(K\x01K" + bytes([n]) + b"M\x00\x0c\x86"  # version 1, shape (n, 3072)
    p += b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
    p += b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    p += b"\x89" + s(rows.tobytes()) + b"tb"  # not Fortran order, raw bytes
    p += s(b"labels") + b"](" + b"K\x00" * n + b"eu."
    return p


def test_cifar_python2_pickles_load_without_numpy_core_warnings(tmp_path):
    d = _fake_cifar_dir(tmp_path)
    rows = np.random.default_rng(0).integers(0, 256, (2, 3072), dtype=np.uint8)
    (d / "test_batch").write_bytes(_py2_style_batch(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. NumPy 2's numpy.core deprecation
        warnings.filterwarnings("ignore", "CIFAR-10 .* not the official release")
        x = load_cifar10(d, split="test")
    assert np.array_equal(x.reshape(2, -1), rows)
