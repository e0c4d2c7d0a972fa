"""The data files the quality benchmark makes, and the data each dataset's runs use.

Every array is written once and rewritten only if its content changed, so a run directory
named by the hash of its data (suite/runner.py) stays valid across reruns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gaussian_steps as gs  # benchmarks/gaussian_steps.py: section 5's problem
import numpy as np

from sfbd.data.sources import digits as builtin_digits
from sfbd.data.sources import ring8 as builtin_ring8
from suite.settings import GMM, Suite

DIGITS_PRETRAIN_CLASSES = (0, 1, 2, 3, 4)  # the similar digits set: only these classes
RING8_MODES = (0, 1, 2, 3, 4, 5)  # the similar 2-D set: ring8 (modes at 45° k) without 6, 7


@dataclass(frozen=True)
class DataFiles:
    """The arrays the suite makes (written once, rewritten only if their content changed)."""

    gmm8: Path
    digits: Path  # section 1's digits: a fixed random 2/3 of the 1,797 images
    digits_similar: Path  # section 6: the other third, digits 0-4 only
    ring8_similar: Path  # section 6: ring8 without two of its modes
    gauss: Path  # section 5: draws of N(gs.MU, gs.COV)

    def similar(self, ds: str) -> Path:
        return {"ring8": self.ring8_similar, "digits": self.digits_similar}[ds]


def save_array(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or not np.array_equal(np.load(path), x):
        np.save(path, x)
    return path


def make_gmm(path: Path) -> Path:
    """6-component mixture in 8-D: means uniform in [-1, 1]^8 (fixed rng), std 0.1, 20,000."""
    rng = np.random.default_rng(8)
    means = rng.uniform(-1.0, 1.0, size=(6, 8))
    comp = rng.integers(0, 6, size=20_000)
    x = (means[comp] + 0.1 * rng.standard_normal((20_000, 8))).astype(np.float32)
    return save_array(path, x)


def digits_split_indices(
    labels: np.ndarray, classes: Sequence[int] = DIGITS_PRETRAIN_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (problem, similar set) into scikit-learn's digits.

    A fixed random 2/3 of the images is the problem; of the other third only the images of
    ``classes`` are kept as the similar set, so it shares no image with the problem's clean,
    noisy or held-out samples.
    """
    perm = np.random.default_rng(1797).permutation(len(labels))
    n_b = len(labels) // 3
    a, b = np.sort(perm[n_b:]), np.sort(perm[:n_b])
    return a, b[np.isin(labels[b], list(classes))]


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """(problem images, similar pretraining images), scaled as the builtin ``digits`` source."""
    from sklearn.datasets import load_digits

    x = builtin_digits()  # (1797, 1, 8, 8) in [-1, 1], in load_digits() order
    a, b = digits_split_indices(load_digits().target)
    return x[a].astype(np.float32), x[b].astype(np.float32)


def ring8_similar(n: int = 2000, modes: Sequence[int] = RING8_MODES) -> np.ndarray:
    """``n`` fresh ring8 samples (own seed) from only the given modes (mode k at angle 45° k)."""
    x = builtin_ring8(2 * n, np.random.default_rng([8, 2000]))
    k = np.rint(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)).astype(int) % 8
    x = x[np.isin(k, list(modes))]
    if len(x) < n:  # 2n draws keep 1.5n on average with 6 of 8 modes
        raise ValueError(f"only {len(x)} samples in modes {modes}")
    return x[:n].astype(np.float32)


def make_data(out: Path) -> DataFiles:
    problem, similar = digits_split()
    return DataFiles(
        gmm8=make_gmm(out / "gmm8.npy"),
        digits=save_array(out / "digits.npy", problem),
        digits_similar=save_array(out / "digits-similar.npy", similar),
        ring8_similar=save_array(out / "ring8-similar.npy", ring8_similar()),
        gauss=gs.write_data(out / "gauss.npy"),
    )


def dataset_base(suite: Suite, ds: str, files: DataFiles) -> dict[str, str]:
    """Section 1's overrides for a dataset (without method and seeds); section 6 reuses them."""
    if ds == "digits":
        return {**suite.image, "data.source": str(files.digits)}
    source = str(files.gmm8) if ds == GMM else ds
    return {**suite.vector, "data.source": source}
