"""Image dataset readers: folders or zips of PNG/JPEG files, CIFAR-10, and aligned CelebA.

Every reader returns uint8 images of shape (N, C, H, W) (C = 1 for grayscale, 3 for RGB), the
same layout ``sources.load_array`` accepts as a 'uint8' array; :func:`to_model_space` maps them
to float32 in [-1, 1]. Nothing here needs torchvision.

- :func:`load_image_folder`: a directory (searched recursively) or a ``.zip`` of PNG/JPEG files,
  in sorted relative-path order; EDM's dataset zips (PNGs plus ``dataset.json``) work as-is, the
  labels are ignored.
- :func:`load_cifar10`: the official python archive ``cifar-10-python.tar.gz`` (or its extracted
  ``cifar-10-batches-py`` folder), downloaded into a cache and MD5-checked when not given.
- :func:`load_celeba`: aligned CelebA JPEGs (``img_align_celeba``, 178x218), centre-cropped to
  140x140 and resized, as in NCSN/NCSNv2/score-SDE.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from sfbd.errors import ConfigError, DataError
from sfbd.io.arrays import Allocate, to_float32
from sfbd.io.cache import default_cache_dir, download_verified, file_digest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = (
    "c58f30108f718f92721af3b95e74349a"  # as listed on https://www.cs.toronto.edu/~kriz/cifar.html
)
CIFAR10_FILENAME = "cifar-10-python.tar.gz"
CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR10_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
#: MD5 of each batch file of the official release (the values torchvision also checks); a
#: user-supplied copy that differs is read, with a warning that its results do not compare with
#: published ones.
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

CELEBA_SIZE = (178, 218)  # (width, height) of the aligned CelebA images
CELEBA_CROP_BOX = (19, 39, 159, 179)  # PIL (left, top, right, bottom): 140x140 at x=19, y=39

_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow >= 9.1 moved the filter constants
# Pillow-mode -> the mode images are read as: 8-bit grayscale or RGB; alpha is dropped.
_TARGET_MODE = {
    "1": "L",
    "L": "L",
    "LA": "L",
    "La": "L",
    "RGB": "RGB",
    "RGBA": "RGB",
    "RGBa": "RGB",
    "RGBX": "RGB",
    "P": "RGB",
    "PA": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
}


def to_model_space(images: np.ndarray) -> np.ndarray:
    """Map uint8 images (N, C, H, W) in [0, 255] to float32 in [-1, 1] (x / 127.5 - 1)."""
    if images.dtype != np.uint8:
        raise DataError(f"expected uint8 images, got dtype {images.dtype}")
    return to_float32(images)


# --------------------------------------------------------------------------- image folders


def _is_image_name(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    # Skip hidden files and macOS zip debris (__MACOSX/._x.png is not an image).
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return rel.lower().endswith(IMAGE_SUFFIXES)


def _list_images(
    path: Path, what: str
) -> tuple[list[str], Callable[[str], bytes], Callable[[], None]]:
    """Sorted relative names of the images in a directory or zip, a reader, and a closer."""
    if path.is_dir():
        try:
            names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        except OSError as exc:
            raise DataError(
                f"cannot list {what} {str(path)!r}: {exc.strerror or exc}; check its permissions"
            ) from None
        names = [n for n in names if _is_image_name(n)]
        return names, lambda rel: (path / rel).read_bytes(), lambda: None
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"cannot read {what} {str(path)!r} as a zip file: {exc}") from None
        names = sorted(i.filename for i in zf.infolist() if not i.is_dir())
        names = [n for n in names if _is_image_name(n)]
        return names, zf.read, zf.close
    if path.exists():
        raise DataError(f"{what} {str(path)!r} is neither a folder nor a .zip of PNG/JPEG images")
    raise DataError(f"{what} {str(path)!r} not found")


def _open_image(data: bytes, rel: str, where: Path) -> Image.Image:
    """Decode one image file fully, as 8-bit 'L' or 'RGB'."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. palette-transparency notices
            im = Image.open(io.BytesIO(data))
            im.load()
            target = _TARGET_MODE.get(im.mode)
            if target is None:
                raise DataError(
                    f"image {rel!r} in {str(where)!r} has mode {im.mode} (e.g. 16-bit or float); "
                    "convert it to 8-bit grayscale or RGB"
                )
            return im if im.mode == target else im.convert(target)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a user-facing data error
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read image {rel!r} in {str(where)!r}: {msg}") from None


def _describe(im: Image.Image) -> str:
    return f"{im.width}x{im.height} {im.mode}"


def _to_chw(im: Image.Image) -> np.ndarray:
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _read_images(
    path: str | Path,
    what: str,
    transform: Callable[[Image.Image, str], Image.Image] | None = None,
    limit: int | None = None,
    allocate: Allocate | None = None,
) -> np.ndarray:
    """Read every image under ``path`` (sorted), optionally transformed, into (N, C, H, W)
    uint8: a new array, or ``allocate(shape)``'s (a memory-mapped file, say), filled in place."""
    root = Path(path).expanduser()
    names, read, close = _list_images(root, what)
    try:
        if limit is not None:
            names = names[:limit]
        if not names:
            raise DataError(
                f"{what} {str(root)!r} holds no PNG/JPEG images (.png, .jpg, .jpeg); "
                "point it at the folder or zip that holds them"
            )
        out: np.ndarray | None = None
        first = ""
        for i, rel in enumerate(names):
            try:
                data = read(rel)
            except Exception as exc:  # noqa: BLE001 - OSError, BadZipFile, zlib.error, ...
                raise DataError(f"cannot read image {rel!r} in {str(root)!r}: {exc}") from None
            im = _open_image(data, rel, root)
            if transform is not None:
                im = transform(im, rel)
            if out is None:
                first = _describe(im)
                chw = _to_chw(im)
                shape = (len(names), *chw.shape)
                out = np.empty(shape, np.uint8) if allocate is None else allocate(shape)
                out[0] = chw
                continue
            if _describe(im) != first:
                raise DataError(
                    f"image {rel!r} in {str(root)!r} is {_describe(im)} but the first image "
                    f"{names[0]!r} is {first}; all images must have one size and mode"
                )
            out[i] = _to_chw(im)
        assert out is not None
        return out
    finally:
        close()


def load_image_folder(
    path: str | Path,
    *,
    what: str = "image folder",
    allocate: Allocate | None = None,
) -> np.ndarray:
    """Read a folder (recursively) or a ``.zip`` of PNG/JPEG images as uint8 (N, C, H, W).

    Files are taken in order of their relative path (so a folder and a zip of it give the same
    array); other files (``dataset.json``, hidden files, ``__MACOSX/``) are ignored. Grayscale
    images give C = 1 and colour images C = 3: palette and CMYK images are converted to RGB and
    an alpha channel is dropped (not composited). All images must share one size and mode;
    16-bit and float images are refused. ``what`` names the input in error messages (e.g. the
    config key that gave the path). ``allocate(shape)``, if given, supplies the array to fill
    (the data cache passes a memory-mapped file, so no copy is held in memory).
    """
    return _read_images(path, what, allocate=allocate)


# --------------------------------------------------------------------------- CIFAR-10


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only builds NumPy arrays, dtypes, and plain Python containers.

    The CIFAR-10 batches are pickles. A downloaded archive is read only after its MD5 matches
    the official one; user-supplied archives/folders are read through this class, which refuses
    any other global so a tampered file cannot run code.
    """

    _reconstruct = np.zeros(1).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
    _allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("_codecs", "encode"): __import__("codecs").encode,  # bytes in protocol-2 pickles
    }
    try:  # arrays pickled with protocol 5
        _frombuffer = np.zeros(1).__reduce_ex__(5)[0]
        _allowed[("numpy.core.numeric", "_frombuffer")] = _frombuffer
        _allowed[("numpy._core.numeric", "_frombuffer")] = _frombuffer
    except Exception:  # noqa: BLE001 - older NumPy without protocol-5 support
        pass

    def find_class(self, module: str, name: str) -> object:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return found


def _parse_cifar_batch(data: bytes, name: str, where: Path) -> np.ndarray:
    """One pickled batch -> uint8 (n, 3, 32, 32); rows hold the R, G, B planes, row-major."""
    try:
        batch = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a data error
        raise DataError(
            f"{name} in {str(where)!r} is not a CIFAR-10 python batch ({exc}); "
            f"use the official {CIFAR10_FILENAME}"
        ) from None
    rows = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if not (
        isinstance(rows, np.ndarray)
        and rows.dtype == np.uint8
        and rows.ndim == 2
        and rows.shape[1] == 3 * 32 * 32
    ):
        raise DataError(
            f"{name} in {str(where)!r} has no uint8 (N, 3072) 'data' array; "
            f"use the official {CIFAR10_FILENAME}"
        )
    return rows.reshape(-1, 3, 32, 32)


def _cifar_from_tar(tarball: Path, split: str) -> np.ndarray:
    wanted = CIFAR10_BATCHES[split]
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:*") as tf:
            for member in tf:
                base = PurePosixPath(member.name).name
                if member.isfile() and base in wanted and base not in found:
                    f = tf.extractfile(member)
                    assert f is not None
                    found[base] = f.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"cannot read CIFAR-10 archive {str(tarball)!r} ({exc}); "
            f"download it again from {CIFAR10_URL}"
        ) from None
    missing = [b for b in wanted if b not in found]
    if missing:
        raise DataError(
            f"CIFAR-10 archive {str(tarball)!r} lacks {', '.join(missing)}; "
            f"use the official {CIFAR10_FILENAME} from {CIFAR10_URL}"
        )
    return _cifar_batches(found, wanted, tarball)


def _cifar_from_dir(folder: Path, split: str) -> np.ndarray:
    wanted = CIFAR10_BATCHES[split]
    missing = [b for b in wanted if not (folder / b).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 folder {str(folder)!r} lacks {', '.join(missing)}; point it at the "
            f"extracted {CIFAR10_DIRNAME} folder or at {CIFAR10_FILENAME}"
        )
    return _cifar_batches({b: (folder / b).read_bytes() for b in wanted}, wanted, folder)


def _cifar_batches(found: dict[str, bytes], wanted: tuple[str, ...], where: Path) -> np.ndarray:
    """Parse the wanted batches in order; warn if any is not the official file."""
    changed = [b for b in wanted if hashlib.md5(found[b]).hexdigest() != CIFAR10_BATCH_MD5[b]]
    if changed:
        warnings.warn(
            f"CIFAR-10 in {str(where)!r} is not the official release ({', '.join(changed)} "
            f"differ from the published MD5s): it is used as given, but FIDs on it do not "
            f"compare with published ones; the official archive is {CIFAR10_URL}",
            UserWarning,
            stacklevel=3,
        )
    return np.concatenate([_parse_cifar_batch(found[b], b, where) for b in wanted])


def load_cifar10(
    root_or_tarball: str | Path | None = None,
    *,
    split: str = "train",
    download: bool = True,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """CIFAR-10 images as uint8 (N, 3, 32, 32): N = 50,000 for 'train', 10,000 for 'test'.

    ``root_or_tarball`` is the official ``cifar-10-python.tar.gz`` (read in place, not
    extracted), the extracted ``cifar-10-batches-py`` folder, or a folder holding either. With
    None the archive is looked up in ``cache_dir`` (default :func:`default_cache_dir`) and, if
    absent and ``download`` is true, fetched from :data:`CIFAR10_URL`; an archive in the cache is
    used only if its MD5 is the official :data:`CIFAR10_MD5`. Train = data_batch_1..5 in order,
    test = test_batch. Labels are not returned.
    """
    if split not in CIFAR10_BATCHES:
        raise ConfigError(f"CIFAR-10 split {split!r} is unknown: use 'train' or 'test'")
    if root_or_tarball is not None:
        p = Path(root_or_tarball).expanduser()
        if p.is_file():
            return _cifar_from_tar(p, split)
        if p.is_dir():
            all_batches = (*CIFAR10_BATCHES["train"], *CIFAR10_BATCHES["test"])
            for cand in (p, p / CIFAR10_DIRNAME):
                if any((cand / b).is_file() for b in all_batches):
                    return _cifar_from_dir(cand, split)
            if (p / CIFAR10_FILENAME).is_file():
                return _cifar_from_tar(p / CIFAR10_FILENAME, split)
            raise DataError(
                f"CIFAR-10 folder {str(p)!r} holds neither {CIFAR10_DIRNAME}/ nor "
                f"{CIFAR10_FILENAME}; get the archive from {CIFAR10_URL}"
            )
        raise DataError(f"CIFAR-10 path {str(p)!r} not found; get the archive from {CIFAR10_URL}")

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tarball = cache / CIFAR10_FILENAME
    if not tarball.is_file():
        if not download:
            raise DataError(
                f"CIFAR-10 is not in the cache: put {CIFAR10_FILENAME} from {CIFAR10_URL} at "
                f"{str(tarball)!r}, or allow downloading"
            )
        download_verified(
            CIFAR10_URL,
            tarball,
            algorithm="md5",
            digest=CIFAR10_MD5,
            what="CIFAR-10",
            error=DataError,
        )
    else:
        digest = file_digest(tarball, "md5")
        if digest != CIFAR10_MD5:
            raise DataError(
                f"{str(tarball)!r} has MD5 {digest}, not the official {CIFAR10_MD5}; delete it "
                f"and download {CIFAR10_URL} again"
            )
    return _cifar_from_tar(tarball, split)


# --------------------------------------------------------------------------- CelebA


def load_celeba(
    folder: str | Path,
    *,
    size: int = 64,
    limit: int | None = None,
    allocate: Allocate | None = None,
) -> np.ndarray:
    """Aligned CelebA as uint8 (N, 3, size, size), files in sorted order.

    ``folder`` is ``img_align_celeba/`` (the 178x218 aligned JPEGs), a folder that holds it, or
    ``img_align_celeba.zip``; ``limit`` reads only the first ``limit`` files. Each image is
    cropped to the central 140x140 box, PIL box :data:`CELEBA_CROP_BOX` = (19, 39, 159, 179),
    i.e. left = (178 - 140) // 2, top = (218 - 140) // 2 as in NCSN/NCSNv2 (torchvision
    ``CenterCrop(140)``) and score-SDE (``central_crop(img, 140)``), then resized to size x size
    with Pillow's BILINEAR filter, which (like those pipelines' bilinear ``Resize`` / antialiased
    ``tf.image.resize``) widens its kernel when shrinking, so it is antialiased. ``allocate``:
    as for :func:`load_image_folder`.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 140:
        raise ConfigError(f"CelebA size must be an integer in 1..140, got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"CelebA limit must be a positive integer or None, got {limit!r}")
    root = Path(folder).expanduser()
    if root.is_dir() and (root / "img_align_celeba").is_dir():
        root = root / "img_align_celeba"

    def crop(im: Image.Image, rel: str) -> Image.Image:
        if im.size != CELEBA_SIZE:
            raise DataError(
                f"image {rel!r} in {str(root)!r} is {im.width}x{im.height}, but aligned CelebA "
                f"images are {CELEBA_SIZE[0]}x{CELEBA_SIZE[1]}; use load_image_folder for others"
            )
        if im.mode != "RGB":
            im = im.convert("RGB")
        return im.crop(CELEBA_CROP_BOX).resize((size, size), _RESAMPLING.BILINEAR)

    return _read_images(root, "CelebA folder", transform=crop, limit=limit, allocate=allocate)
