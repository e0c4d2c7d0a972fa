"""Fréchet Inception Distance (FID), computed as pytorch-fid / TTUR compute it.

FID fits a Gaussian to the 2048-d Inception pool features of each image set and returns the
Fréchet (2-Wasserstein) distance between the two Gaussians::

    FID = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr( (S_1 S_2)^{1/2} ),

with ``mu`` the feature mean and ``S`` the unbiased (``N - 1``) feature covariance. pytorch-fid
takes the trace term from ``scipy.linalg.sqrtm(S_1 S_2)``, a Schur decomposition of a
non-symmetric matrix (13-16 s at D = 2048 on one CPU thread, ~32 s on two busy ones);
:func:`frechet_distance` computes the same number from a pivoted Cholesky factor and one
symmetric eigenproblem (see there), 8.8 times faster at D = 2048 on one thread
(``benchmarks/frechet.py``), and equal to the ``sqrtm`` value to 1e-11 relative or better for
full-rank covariances and to ~1e-7 for rank-deficient ones (fewer images than dimensions), where
``sqrtm``'s round-off is that large. Reference statistics are ``.npz`` files with arrays ``mu``
``(D,)`` and ``sigma`` ``(D, D)``, the format of pytorch-fid and EDM reference files.

The features come from :class:`sfbd.metrics.inception.FIDInceptionV3` (TF FID Inception with
pytorch-fid's weights, see :func:`sfbd.metrics.inception.load_inception`). Images here are
float arrays in ``[-1, 1]``, rounded to 8 bits before the network by default (as generated
samples are when saved as PNGs for pytorch-fid or EDM); values comparable with published numbers
also need the published protocol (usually 50k generated images against the training set).

References
----------
* M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter. "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium." NeurIPS 2017.
* C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. "Rethinking the Inception
  Architecture for Computer Vision." CVPR 2016.
* D. C. Dowson, B. V. Landau. "The Fréchet distance between multivariate normal
  distributions." J. Multivariate Analysis 12(3), 1982.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.linalg.lapack
import torch
from torch import nn

from sfbd.errors import DataError
from sfbd.io.atomic import save_npz
from sfbd.runtime.fast import full_precision

__all__ = [
    "FEATURE_NETWORKS",
    "extract_features",
    "feature_stats",
    "fid_from_images",
    "frechet_distance",
    "load_feature_network",
    "load_stats",
    "save_stats",
]

#: Feature networks by name: the FID Inception-v3 (FID) and DINOv2 ViT-L/14 (FD-DINOv2).
FEATURE_NETWORKS = ("inception", "dinov2")

#: Relative tolerance of the covariance checks of :func:`frechet_distance`: a covariance ``S``
#: is refused when ``max |S - S^T|`` or ``-lambda_min(S)`` exceeds ``COV_TOL * max |S_ij|``.
#: Round-off stays far below it: ``-lambda_min`` is ~1e-15 of ``max |S_ij|`` for a float64
#: covariance of fewer samples than dimensions, ~1e-7 stored as float32, ~2e-6 summed in float32.
COV_TOL = 1e-4


def _gaussian(mu: np.ndarray, sigma: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    s = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if m.ndim != 1:
        raise ValueError(f"mu{name} must be a vector (D,), got shape {m.shape}")
    if s.shape != (m.shape[0], m.shape[0]):
        raise ValueError(f"sigma{name} must have shape {(m.shape[0],) * 2}, got {s.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError(f"mu{name} / sigma{name} contain non-finite values")
    return m, s


def _psd_factor(s: np.ndarray, name: str, floor: float) -> np.ndarray:
    """``F`` ``(D, r)`` with ``S = F F^T`` up to round-off, ``r`` the numerical rank of the
    symmetric ``S``; raises ValueError if an eigenvalue of ``S`` is below ``floor``.

    Cholesky with complete pivoting first, ``P^T S P = L L^T`` (LAPACK ``dpstrf``), stopped when
    the largest remaining pivot is at most ``tol = D * machine epsilon * max_i S_ii``: then
    ``F = P L[:, :r]``, if the Schur complement left, ``S_22 - L_2 L_2^T``, is round-off (all
    entries at most ``tol``; so at full rank, and for exactly singular covariances). Otherwise
    (``S`` indefinite, or singular with round-off far above ``tol``, as covariances of fewer
    samples than dimensions summed in float32) from ``eigh(S) = V diag(w) V^T``:
    ``F = V diag(sqrt(w))`` over the ``w > tol``, so that negative eigenvalues are clipped to 0
    as ``sqrtm`` does implicitly (a truncated Cholesky would drop some positive ones too).
    """
    n = s.shape[0]
    tol = n * np.finfo(np.float64).eps * max(float(np.max(np.diagonal(s))), 0.0)
    c, piv, rank, info = scipy.linalg.lapack.dpstrf(s, tol=tol, lower=1)
    if info < 0:
        raise ValueError(f"LAPACK dpstrf: illegal argument {-info}")
    low = c[:, :rank]
    for j in range(1, rank):  # the strict upper triangle still holds S (a tenth of np.tril's time)
        low[:j, j] = 0.0
    f = np.empty((n, rank))
    f[piv - 1] = low
    if rank == n:  # every pivot was positive: S is positive definite
        return f
    tail = piv[rank:] - 1
    schur = s[np.ix_(tail, tail)] - f[tail] @ f[tail].T
    if float(np.max(np.abs(schur))) <= tol:
        return f
    w, v = np.linalg.eigh(s)
    if w[0] < floor:
        raise ValueError(
            f"sigma{name} is not positive semi-definite: its smallest eigenvalue {w[0]:.3g} is "
            f"below -{COV_TOL:g} * max |S| = {floor:.3g} (the square root of the product would "
            "be imaginary)"
        )
    keep = w > tol
    return v[:, keep] * np.sqrt(w[keep])


def _covariance(s: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(S_sym, F)``: the symmetric part ``(S + S^T) / 2`` of a covariance and its factor
    (:func:`_psd_factor`). Raises ValueError if ``S`` is not symmetric and positive
    semi-definite to within ``COV_TOL * max |S_ij|``."""
    scale = float(np.max(np.abs(s)))
    asym = float(np.max(np.abs(s - s.T)))
    if asym > COV_TOL * scale:
        raise ValueError(
            f"sigma{name} is not symmetric: max |S - S^T| = {asym:.3g} > "
            f"{COV_TOL:g} * max |S| = {COV_TOL * scale:.3g}"
        )
    if asym > 0:
        s = (s + s.T) / 2
    return s, _psd_factor(s, name, -COV_TOL * scale)


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """``tr (S_1 S_2)^{1/2} = sum_i sqrt(lambda_i(F^T S' F))`` with ``F`` the factor
    (:func:`_psd_factor`) of lower rank (``S_1``'s on ties) and ``S'`` the other covariance,
    symmetrised (see :func:`frechet_distance`)."""
    (s1, f1), (s2, f2) = _covariance(s1, "1"), _covariance(s2, "2")
    f, other = (f1, s2) if f1.shape[1] <= f2.shape[1] else (f2, s1)
    if f.shape[1] == 0:
        return 0.0
    m = f.T @ other @ f
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sum(np.sqrt(np.clip(lam, 0.0, None))))


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    *,
    eps: float = 1e-6,
) -> float:
    r"""Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    .. math::

        d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr} \Sigma_1
            + \operatorname{tr} \Sigma_2 - 2 \operatorname{tr} (\Sigma_1 \Sigma_2)^{1/2}.

    The trace term, pytorch-fid's ``tr sqrtm(sigma1 @ sigma2)``, comes from a symmetric
    eigenproblem instead of a general matrix square root. For any factor
    :math:`\Sigma_1 = F F^T` with :math:`F` of shape ``(D, r)``, :math:`r = \operatorname{rank}
    \Sigma_1`, the ``(r, r)`` matrix :math:`M = F^T \Sigma_2 F` is symmetric positive
    semi-definite and has the nonzero eigenvalues of :math:`\Sigma_1 \Sigma_2 = F (F^T \Sigma_2)`
    (those of :math:`(F^T \Sigma_2) F`), which are those of
    :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}` (the form of Dowson and Landau). Hence

    .. math::

        \operatorname{tr} (\Sigma_1 \Sigma_2)^{1/2}
            = \operatorname{tr} (\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}
            = \sum_{i=1}^r \sqrt{\lambda_i(M)},

    and the roles of the two covariances may be swapped. Each covariance is factored by a
    Cholesky factorisation with complete pivoting (LAPACK ``dpstrf``, about a tenth of the cost
    of an eigendecomposition), stopped at the numerical rank ``r``, where the largest pivot left
    is at most ``tol = D * machine epsilon * max_i S_ii``; the rest of the covariance counts as
    exactly 0 if the Schur complement left is round-off (entries at most ``tol``). Otherwise (an
    indefinite matrix, or a singular one whose null space holds round-off far above ``tol``, as
    covariances of fewer samples than dimensions summed in float32) ``F`` comes from
    :math:`\Sigma = V \operatorname{diag}(w) V^T` (``numpy.linalg.eigh``) as
    :math:`V \operatorname{diag}(\sqrt{w})` over the ``w > tol``: negative eigenvalues are
    clipped to 0, as ``sqrtm`` does implicitly. The factor of lower rank is used (``sigma1``'s
    on ties), so that ``M`` has no eigenvalues that are round-off of 0 (from the null space of
    the other covariance), whose square roots, ~1e-8 of :math:`\lVert M \rVert^{1/2}` each,
    would add up to more than round-off. ``M`` is symmetrised, :math:`(M + M^T) / 2`, and its
    round-off negative eigenvalues count as 0 (``sqrtm`` returns their square roots as
    imaginary parts, which pytorch-fid drops). All in float64.

    A singular covariance (fewer samples than dimensions, dead features) thus needs no offset,
    and identical inputs give 0 to ~1e-14 of the trace (``sqrtm``: ~1e-8). Against the
    ``sqrtm`` formula the distance agrees to 1e-11 to 1e-14 relative for full-rank covariances
    and to ~1e-7 for rank-deficient ones, where that is the round-off of ``sqrtm`` (this is the
    closer to an exact value there: ``tests/test_fid.py``).

    Args:
        mu1, mu2: means, shape ``(D,)`` (a scalar is read as ``D = 1``).
        sigma1, sigma2: covariances, shape ``(D, D)``, symmetric positive semi-definite. Each is
            symmetrised, ``(S + S^T) / 2``, and must be symmetric and positive semi-definite up
            to round-off: ``max |S - S^T|`` and ``-lambda_min(S)`` at most ``COV_TOL = 1e-4``
            times ``max |S_ij|``. Smaller negative eigenvalues are round-off and count as 0 in
            the trace term (``tr(sigma)`` is that of the matrix as given).
        eps: diagonal offset added to both covariances if an eigendecomposition fails to
            converge (``numpy.linalg.LinAlgError``; not seen for finite symmetric input).

    Returns:
        ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2))`` as a
        float (not clipped: round-off can make it slightly negative for equal inputs).

    Raises:
        ValueError: mismatched shapes, non-finite (NaN or inf) entries, a covariance that is
            not symmetric or not positive semi-definite beyond the tolerance above, or an
            eigendecomposition that does not converge even after adding ``eps * I``.
    """
    m1, s1 = _gaussian(mu1, sigma1, "1")
    m2, s2 = _gaussian(mu2, sigma2, "2")
    if m1.shape != m2.shape:
        raise ValueError(f"mu1 has shape {m1.shape} but mu2 has shape {m2.shape}")
    diff = m1 - m2
    try:
        trace_sqrt = _trace_sqrt_product(s1, s2)
    except np.linalg.LinAlgError:
        offset = np.eye(s1.shape[0]) * eps
        try:
            trace_sqrt = _trace_sqrt_product(s1 + offset, s2 + offset)
        except np.linalg.LinAlgError as e:
            raise ValueError(
                f"the eigendecomposition for tr sqrt(sigma1 sigma2) did not converge even "
                f"after adding eps * I: {e}"
            ) from e
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt
    return float(value)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (float64) of features ``(N, D)``, N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain non-finite values")
    mu = f.mean(axis=0)
    sigma = np.atleast_2d(np.cov(f, rowvar=False))
    return mu, sigma


def feature_sums(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(sum of rows, sum of outer products, count) in float64: statistics that add up across
    processes, for :func:`stats_from_sums`."""
    f = np.asarray(features, dtype=np.float64)
    return f.sum(axis=0), f.T @ f, f.shape[0]


def stats_from_sums(s1: np.ndarray, s2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance from :func:`feature_sums` (added over shards), n >= 2."""
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
    if not (np.all(np.isfinite(s1)) and np.all(np.isfinite(s2))):
        raise ValueError("features contain non-finite values")
    mu = s1 / n
    sigma = (s2 - n * np.outer(mu, mu)) / (n - 1)
    return mu, (sigma + sigma.T) / 2


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as an 8-bit file would store them: clipped, rounded to the nearest of
    the 256 levels ``k / 127.5 - 1`` (halves up: ``floor((x + 1) * 127.5 + 0.5)``, the mapping
    EDM uses to write its PNGs) and mapped back. Levels already on the grid are unchanged."""
    return torch.floor((x.clamp(-1.0, 1.0) + 1.0) * 127.5 + 0.5) / 127.5 - 1.0


def extract_features(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    *,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    progress: bool = False,
    quantize: bool = True,
) -> np.ndarray:
    """Features of images (Inception pool or DINOv2 CLS), batch by batch.

    Args:
        model: maps float images ``(B, 3, H, W)`` in ``[-1, 1]`` to ``(B, D)`` features (e.g.
            :func:`sfbd.metrics.inception.load_inception` or
            :func:`sfbd.metrics.dinov2.load_dinov2`); an output ``(B, D, 1, 1)`` or a
            one-element list of such is also accepted. It is moved to ``device`` and set to
            eval mode.
        images: ``(N, C, H, W)`` with ``C`` 1 (grayscale, repeated to 3 channels) or 3, float
            values in ``[-1, 1]``; a torch tensor or NumPy array.
        batch_size: images per forward pass.
        device: where the forward passes run.
        progress: show a tqdm progress bar.
        quantize: round the images to 8 bits first (:func:`quantize_8bit`), as the field's FID
            sees them: generated samples are scored as saved PNGs, the reference as read from
            its uint8 files (for which this changes nothing).

    Returns:
        float32 array ``(N, D)`` (``D = 2048`` for the FID Inception, 1024 for DINOv2).
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n = int(images.shape[0])
    if n == 0:
        raise DataError("images is empty (0 images)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = model.to(device).eval()
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"{type(model).__name__} features", unit="batch")
    out: list[np.ndarray] = []
    lo, hi = np.inf, -np.inf
    with torch.inference_mode(), full_precision(device):  # float32 even under a bf16 caller
        for start in starts:
            batch = torch.as_tensor(images[start : start + batch_size])
            x = batch.to(device=device, dtype=torch.float32)
            if not torch.isfinite(x).all():
                raise DataError(f"images {start}..{start + len(x) - 1} contain NaN or inf")
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
            if quantize:
                x = quantize_8bit(x)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            feats = model(x)
            if isinstance(feats, (list, tuple)):
                feats = feats[-1]
            if feats.ndim == 4 and feats.shape[-2:] == (1, 1):
                feats = feats[..., 0, 0]
            if feats.ndim != 2 or feats.shape[0] != x.shape[0]:
                raise ValueError(f"model returned shape {tuple(feats.shape)}, expected (B, D)")
            out.append(feats.to(device="cpu", dtype=torch.float32).numpy())
    if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
        warnings.warn(
            f"images range over [{lo:.3g}, {hi:.3g}]; FID expects values in [-1, 1]",
            stacklevel=2,
        )
    return np.concatenate(out, axis=0)


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Write ``mu`` ``(D,)`` and ``sigma`` ``(D, D)`` to an ``.npz`` file at exactly ``path``."""
    m, s = _gaussian(mu, sigma, "")
    save_npz(path, mu=m, sigma=s)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(mu, sigma)`` (float64) from an ``.npz`` file with arrays ``mu`` and ``sigma``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FID reference statistics not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "mu" not in data or "sigma" not in data:
                raise DataError(f"{path} lacks arrays 'mu' and 'sigma' (has {sorted(data.files)})")
            mu, sigma = data["mu"], data["sigma"]
    except DataError:
        raise
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read FID statistics from {path}: {e}") from e
    try:
        return _gaussian(mu, sigma, "")
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e


def fid_from_images(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    ref: str | Path | tuple[np.ndarray, np.ndarray],
    *,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    progress: bool = False,
    quantize: bool = True,
) -> float:
    """FID between images ``(N, C, H, W)`` in ``[-1, 1]`` (N >= 2) and reference statistics.

    Args:
        model: feature network (see :func:`extract_features`).
        images: the image set, e.g. generated samples.
        ref: path of an ``.npz`` with ``mu`` / ``sigma`` (see :func:`load_stats`), or a tuple
            ``(mu, sigma)``.
        batch_size, device, progress, quantize: as in :func:`extract_features`.
    """
    mu_ref, sigma_ref = load_stats(ref) if isinstance(ref, (str, Path)) else ref
    feats = extract_features(
        model, images, batch_size=batch_size, device=device, progress=progress, quantize=quantize
    )
    mu, sigma = feature_stats(feats)
    return frechet_distance(mu, sigma, mu_ref, sigma_ref)


def load_feature_network(kind: str, path: str | Path | None = None) -> nn.Module:
    """The feature network ``kind`` (one of :data:`FEATURE_NETWORKS`) with its published
    weights, from ``path`` or the download cache: :func:`sfbd.metrics.inception.load_inception`
    for ``"inception"``, :func:`sfbd.metrics.dinov2.load_dinov2` for ``"dinov2"``."""
    if kind == "inception":
        from sfbd.metrics.inception import load_inception

        return load_inception(path)
    if kind == "dinov2":
        from sfbd.metrics.dinov2 import load_dinov2

        return load_dinov2(path)
    raise ValueError(f"feature network must be one of {', '.join(FEATURE_NETWORKS)}, not {kind!r}")
