"""Clean data sources: builtin 2-D sets, digits, photo patches, CIFAR-10, CelebA, arrays and
image folders.

Vectors are (N, D) float32; images are (N, C, H, W) float32 in [-1, 1]. Arrays stored as uint8
are read as images in [0, 255] and mapped to [-1, 1] (noise levels then refer to that scale).

Nothing is read whole: a .npy is memory-mapped, an uncompressed .npz member too, and inputs that
cannot be mapped as they are (image folders and zips, CIFAR-10, CelebA, compressed .npz) are
converted once into a cached .npy (:mod:`sfbd.data.cache`). What comes back is a *sample array*
(:mod:`sfbd.io.arrays`) whose rows are converted to float32 as they are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sfbd.data import images
from sfbd.data.cache import cached, file_key
from sfbd.errors import DataError
from sfbd.io.arrays import SampleArray, Samples, nonfinite_rows
from sfbd.io.npz import open_member

BUILTIN_2D = ("ring8", "checkerboard", "swissroll")
BUILTINS = (*BUILTIN_2D, "digits", "patches", "cifar10", "celeba")


def ring8(n: int, rng: np.random.Generator) -> np.ndarray:
    """8 Gaussians (std 0.05) evenly spaced on the unit circle."""
    k = rng.integers(0, 8, size=n)
    angle = 2 * np.pi * k / 8
    centers = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centers + 0.05 * rng.standard_normal((n, 2))


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the 8 dark squares of a 4x4 checkerboard covering [-1, 1]^2."""
    cell = rng.integers(0, 8, size=n)
    row = cell // 2
    col = 2 * (cell % 2) + (row % 2)
    u = rng.random((n, 2))
    return np.stack([(col + u[:, 0]) / 2 - 1, (row + u[:, 1]) / 2 - 1], axis=1)


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    """A 2-D Swiss roll t (cos t, sin t), t in [1.5 pi, 4.5 pi], scaled into about [-1, 1]."""
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (4.5 * np.pi)
    return x + 0.01 * rng.standard_normal((n, 2))


def digits() -> np.ndarray:
    """scikit-learn's bundled 8x8 digits (1,797 images), (N, 1, 8, 8) scaled to [-1, 1]."""
    from sklearn.datasets import load_digits

    pixels = load_digits().images.astype(np.float32)  # values 0..16
    return (pixels / 8.0 - 1.0)[:, None]


def patches(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` 8x8 grey patches (N, 1, 8, 8) in [-1, 1] of scikit-learn's two bundled photos
    (china.jpg, flower.jpg; 427 x 640), at positions drawn by ``rng``, half from each."""
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    out = []
    for i, photo in enumerate(load_sample_images().images):
        grey = photo.astype(np.float32).mean(axis=2) / 127.5 - 1.0
        m = n // 2 + (n % 2 if i == 0 else 0)
        seed = int(rng.integers(2**31))
        out.append(extract_patches_2d(grey, (8, 8), max_patches=m, random_state=seed))
    return np.concatenate(out)[:, None].astype(np.float32)


def builtin_shape(name: str, image_size: int = 64) -> tuple[int, ...] | None:
    """Per-sample shape of a builtin source without loading it (None for unknown names)."""
    shapes = {
        "digits": (1, 8, 8),
        "patches": (1, 8, 8),
        "cifar10": (3, 32, 32),
        "celeba": (3, image_size, image_size),
    }
    return (2,) if name in BUILTIN_2D else shapes.get(name)


def builtin(
    name: str,
    n: int,
    *,
    root: str | None = None,
    image_size: int = 64,
    draw: int = 0,
    cache_dir: str | None = None,
) -> tuple[SampleArray, str]:
    """A builtin clean dataset and its scale ('float' or 'uint8').

    The 2-D sets have ``n`` samples from a fixed seed; ``draw`` > 0 gives another, independent
    set of ``n`` samples from the same distribution (``data.pretrain`` uses draw 1, so it never
    repeats the samples of ``data.source``); so has ``patches``, n 8x8 grey patches of two
    photos bundled with scikit-learn. ``cifar10`` is the 50,000 training
    images (``root``: the official tarball or its folder; default: the cache, downloaded once).
    ``celeba`` needs ``root``: the first ``n`` aligned CelebA images in file order (162,770 is
    the official training split), center-cropped to 140x140 and resized to ``image_size``.
    """
    if name == "digits":
        return digits(), "float"
    if name == "cifar10":
        return Samples(_cifar10(root, cache_dir)), "uint8"
    if name == "celeba":
        if root is None:
            raise DataError(
                "data.source=celeba needs data.root: the folder of aligned CelebA images "
                "(img_align_celeba), which must be downloaded by hand from the CelebA site"
            )
        return Samples(_celeba(root, n, image_size, cache_dir)), "uint8"
    gen = {"ring8": ring8, "checkerboard": checkerboard, "swissroll": swissroll}.get(name)
    gen = patches if name == "patches" else gen
    if gen is None:
        raise DataError(f"unknown data source {name!r}: use one of {', '.join(BUILTINS)} or a path")
    key = [BUILTINS.index(name), 20250205] + ([draw] if draw else [])
    rng = np.random.default_rng(key)
    return gen(n, rng).astype(np.float32), "float"


def _cifar10(root: str | None, cache_dir: str | None) -> np.ndarray:
    """CIFAR-10's training images, uint8, through the data cache.

    The key is the given archive or folder's identity, or, for the download cache's archive
    (which is used only with the official MD5), that MD5: the images are then known."""
    if root is not None and not Path(root).expanduser().exists():
        images.load_cifar10(root)  # raises its 'not found' error
    where = file_key(root) if root is not None else {"archive_md5": images.CIFAR10_MD5}
    key = {"split": "train", **where}
    return cached("cifar10", key, lambda: images.load_cifar10(root), cache_dir)


def _celeba(root: str, n: int, image_size: int, cache_dir: str | None) -> np.ndarray:
    """The first ``n`` aligned CelebA images at ``image_size``, uint8, through the data cache
    (keyed by the folder's listing, ``n`` and the size)."""
    if not Path(root).expanduser().exists():
        raise DataError(f"CelebA folder {root!r} not found; check data.root")
    key = {"size": image_size, "limit": n, **file_key(root)}
    return cached(
        "celeba",
        key,
        lambda allocate: images.load_celeba(root, size=image_size, limit=n, allocate=allocate),
        cache_dir,
        streamed=True,
    )


ARRAY_SUFFIXES = (".npy", ".npz")


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _read_npy_or_npz(p: Path, what: str, cache_dir: str | None = None) -> np.ndarray:
    """The array in a .npy file, or the one array (or the one named 'x'/'data') in a .npz,
    memory-mapped: a .npy and an uncompressed .npz member in place, a compressed member
    through a converted cache."""
    try:
        try:
            loaded = np.load(p, allow_pickle=False, mmap_mode="r")
        except ValueError:  # e.g. an array with no samples cannot be mapped: read it
            loaded = np.load(p, allow_pickle=False)
    except OSError as exc:
        raise DataError(
            f"cannot read {what} file {str(p)!r}: {exc.strerror or _first_line(exc)}; "
            "check that it is a readable file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a user-facing data error
        raise DataError(
            f"{what} file {str(p)!r} is not a valid {p.suffix.lower()} array file "
            f"({_first_line(exc)}); write it with numpy.save or numpy.savez"
        ) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    with loaded:
        names = list(loaded.keys())
        if not names:
            raise DataError(f"{what} file {str(p)!r} holds no arrays; save the samples in it")
        pick = [k for k in ("x", "data") if k in names] or (names if len(names) == 1 else [])
        if not pick:
            raise DataError(
                f"{what} file {str(p)!r} holds arrays {names}; keep one, or name it 'x' or 'data'"
            )
        try:
            member = open_member(p, pick[0])
            if isinstance(member, np.memmap) or member.size == 0:
                return member
            key = {**file_key(p), "member": pick[0]}
            return cached("npz", key, lambda: member, cache_dir)
        except Exception as exc:  # noqa: BLE001 - corrupt member, pickled objects, ...
            raise DataError(
                f"cannot read array {pick[0]!r} of {what} file {str(p)!r} "
                f"({_first_line(exc)}); write it again with numpy.savez"
            ) from None


def load_array(
    path: str | Path, what: str = "data", *, images_ok: bool = True, cache_dir: str | None = None
) -> tuple[SampleArray, str]:
    """Read samples as float32 vectors (N, D) or images (N, C, H, W), and their scale.

    Nothing is read whole (see the module docstring): the result is a memory-mapped float32
    array, or a view converting the stored rows to float32 as they are read; folders, zips and
    compressed .npz files are converted once into a cache in ``cache_dir``.

    ``path`` is a .npy/.npz array, or (when ``images_ok``) a folder or .zip of PNG/JPEG
    images. Returns the array and its scale: 'uint8' (8-bit images and uint8 arrays, read as
    [0, 255] and mapped to [-1, 1]) or 'float'. An .npz must hold one array, or one named
    'x' or 'data'. ``what`` names the input in error messages (e.g. the config key).

    Raises :class:`DataError` with a one-line message for a missing or unreadable path, a file
    that is not a valid array, a shape that is neither (N, D) nor (N, C, H, W), no samples,
    a non-numeric dtype and NaN or infinite values.
    """
    p = Path(path).expanduser()
    if p.is_dir() or p.suffix.lower() == ".zip":
        if not images_ok:
            kind = "a folder" if p.is_dir() else "a .zip"
            raise DataError(
                f"{what} {str(p)!r} is {kind}, not a .npy/.npz file; noisy data must be a "
                "float array (8-bit images would quantize the noise)"
            )
        key = {**file_key(p), "what": "images"}
        raw = cached(
            "images",
            key,
            lambda allocate: images.load_image_folder(p, what=what, allocate=allocate),
            cache_dir,
            streamed=True,
        )
        return Samples(raw), "uint8"
    if not p.exists():
        raise DataError(f"{what} file {str(p)!r} not found; check the path")
    if not p.is_file():
        raise DataError(f"{what} {str(p)!r} is not a regular file; give a .npy/.npz file")
    if p.suffix.lower() not in ARRAY_SUFFIXES:
        folders = " (or a folder or .zip of PNG/JPEG images)" if images_ok else ""
        raise DataError(
            f"{what} file {str(p)!r} is not a .npy/.npz file; give the samples as a "
            f".npy/.npz array{folders}"
        )
    arr = _read_npy_or_npz(p, what, cache_dir)
    if arr.ndim not in (2, 4):
        raise DataError(
            f"{what} in {str(p)!r} has shape {arr.shape}: expected vectors (N, D) or images "
            "(N, C, H, W)"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{what} in {str(p)!r} is empty (shape {arr.shape}): it holds no samples")
    if arr.size == 0:
        raise DataError(f"{what} in {str(p)!r} has shape {arr.shape}: its samples hold no values")
    if arr.dtype == np.uint8:
        return Samples(arr), "uint8"
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{what} in {str(p)!r} has dtype {arr.dtype}; expected numbers")
    # float32 as stored is used in place; other dtypes become float32 row by row as read
    # (float64 beyond float32's range becomes inf, reported below)
    out: SampleArray = arr if arr.dtype == np.float32 else Samples(arr)
    bad = nonfinite_rows(out)
    if bad:
        raise DataError(
            f"{what} in {str(p)!r} has NaN or infinite values in {bad} of {arr.shape[0]} "
            "samples; remove or repair those samples"
        )
    return out, "float"


def to_data_scale(x: np.ndarray, scale: str) -> np.ndarray:
    """Map model-space samples back to the data's own scale (uint8 data -> uint8 in [0, 255])."""
    x = np.asarray(x)
    if scale == "uint8":
        return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return x.astype(np.float32)
