"""The synthetic, seeded CIFAR-sized datasets of the memory benchmark (written in chunks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rss.settings import CHUNK, KINDS, SHAPE, SIGMA, D


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def _vectors(n: int, seed: int, stream: int) -> np.ndarray:
    """Smooth clean vectors in (-1, 1): tanh of a random rank-16 map of Gaussian codes."""
    basis = _rng(seed, 0).standard_normal((16, D)).astype(np.float32) / 4
    codes = _rng(seed, stream).standard_normal((n, 16)).astype(np.float32)
    return np.tanh(codes @ basis)


def _blobs(n: int, rng: np.random.Generator) -> np.ndarray:
    """n uint8 images (n, 3, 32, 32): a background colour and 4 Gaussian blobs of colour each."""
    k = 4
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    centre = rng.uniform(0, 32, (n, k, 2, 1, 1)).astype(np.float32)
    width = rng.uniform(2, 8, (n, k, 1, 1)).astype(np.float32)
    colour = rng.uniform(-1, 1, (n, k, 3)).astype(np.float32)
    base = rng.uniform(-0.5, 0.5, (n, 3, 1, 1)).astype(np.float32)
    d2 = (yy - centre[:, :, 0]) ** 2 + (xx - centre[:, :, 1]) ** 2  # (n, k, 32, 32)
    weight = np.exp(-d2 / (2 * width**2))
    x = base + np.einsum("nkc,nkhw->nchw", colour, weight)
    return np.clip(np.rint((np.tanh(x) + 1) * 127.5), 0, 255).astype(np.uint8)


def _write(path: Path, shape: tuple[int, ...], dtype: str, fill) -> None:
    """Write a .npy of ``shape`` in chunks of CHUNK samples: ``fill(start, count)`` -> rows."""
    tmp = path.with_suffix(".part.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    for start in range(0, shape[0], CHUNK):
        count = min(CHUNK, shape[0] - start)
        arr[start : start + count] = fill(start, count)
    arr.flush()
    del arr
    tmp.replace(path)


def make_dataset(kind: str, n: int, folder: Path, seed: int = 0) -> list[str]:
    """Write the synthetic dataset of ``kind`` with N samples into ``folder`` (reused if there);
    returns its ``--set`` pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "vectors":
        noisy, clean = folder / "noisy.npy", folder / "clean.npy"
        if not noisy.exists():

            def noisy_rows(start: int, count: int) -> np.ndarray:
                x = _vectors(count, seed, 1 + start // CHUNK)
                noise = _rng(seed, 10**6 + start // CHUNK).standard_normal(x.shape, np.float32)
                return x + SIGMA * noise

            _write(noisy, (n, D), "float32", noisy_rows)
        if not clean.exists():
            m = max(2, n // 25)
            _write(clean, (m, D), "float32", lambda s, c: _vectors(c, seed, 2 * 10**6 + s // CHUNK))
        return [f"data.noisy={noisy}", f"data.clean={clean}", f"data.sigma={SIGMA}"]
    if kind == "images":
        source = folder / "source.npy"
        if not source.exists():
            _write(
                source,
                (n, *SHAPE),
                "uint8",
                lambda s, c: _blobs(c, _rng(seed, 3 * 10**6 + s // CHUNK)),
            )
        return [
            f"data.source={source}",
            f"data.sigma={SIGMA}",
            "data.clean_fraction=0.02",
            "data.holdout=0.1",
            "data.noise_seed=0",
        ]
    raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
