"""sfbd.metrics.ambient: val_noisy estimates the clean loss from noisy data (closed forms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfbd.diffusion.loss import EDMLoss
from sfbd.metrics.ambient import LOW, ambient_validation, validation_levels
from sfbd.nets.gaussian import GaussianDenoiser

MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


def _gaussian(mean: np.ndarray, cov: np.ndarray) -> GaussianDenoiser:
    den = GaussianDenoiser((2,))
    den.set_moments(torch.as_tensor(mean), torch.as_tensor(cov))
    return den


def _clean_loss(m: np.ndarray, s: np.ndarray, sigma: float) -> float:
    """E ||D(x + sigma z) - x||^2 / d for x ~ N(MU, COV) and the Gaussian denoiser of N(m, s):
    D(x_t) = m + A (x_t - m), A = s (s + sigma^2 I)^-1."""
    a = s @ np.linalg.inv(s + sigma**2 * np.eye(2))
    e = a - np.eye(2)
    bias = e @ (MU - m)
    return float(np.trace(e @ COV @ e.T) + sigma**2 * np.trace(a @ a.T) + bias @ bias) / 2


def test_levels_span_the_grid() -> None:
    grid = validation_levels(np.array([0.2, 0.5]), 80.0, 5)
    assert np.allclose(grid[:, 0], LOW * np.array([0.2, 0.5])) and np.allclose(grid[:, -1], 80)
    assert np.allclose(np.diff(np.log(grid), axis=1), np.diff(np.log(grid), axis=1)[:, :1])


@pytest.mark.parametrize("tau", [0.2, 0.6])
@pytest.mark.parametrize("moments", ["exact", "wrong"])
def test_expected_val_noisy_is_the_closed_form_clean_loss(tau: float, moments: str) -> None:
    """E[val_noisy] = the lambda-weighted clean loss on the grid, for an exact and for a
    mis-specified denoiser, within Monte-Carlo error; val_clean estimates the same."""
    m, s = (MU, COV) if moments == "exact" else (np.array([0.0, 0.1]), 0.6 * np.eye(2))
    den = _gaussian(m, s)
    h = 40_000
    g = np.random.default_rng(0)
    x = MU + g.standard_normal((h, 2)) @ np.linalg.cholesky(COV).T
    y = (x + tau * g.standard_normal((h, 2))).astype(np.float32)
    taus, keys = np.full(h, tau), np.arange(h)
    got = ambient_validation(
        den, y, taus, keys, sigma_max=80.0, stream=5, truth=x.astype(np.float32), n_levels=6
    )
    levels = validation_levels(np.array([tau]), 80.0, 6)[0]
    want = np.mean(
        [float(EDMLoss().weight(torch.tensor(sg))) * _clean_loss(m, s, sg) for sg in levels]
    )
    # the estimator's spread over seeds here: std 0.5% (tau 0.2) to 0.8% (tau 0.6) of the value,
    # against a 17-23% gap between the exact and the wrong denoiser: 3.5% is 4 to 7 std
    assert abs(got["val_noisy"] - want) < 0.035 * want, (got, want)
    assert abs(got["val_clean"] - want) < 0.03 * want, (got, want)


def test_val_noisy_ranks_denoisers_as_the_clean_loss_does() -> None:
    g = np.random.default_rng(1)
    h, tau = 20_000, 0.4
    x = MU + g.standard_normal((h, 2)) @ np.linalg.cholesky(COV).T
    y = (x + tau * g.standard_normal((h, 2))).astype(np.float32)
    scores = []
    for shrink in (1.0, 0.8, 0.5):  # ever worse covariances
        den = _gaussian(MU, shrink * COV)
        scores.append(
            ambient_validation(
                den, y, np.full(h, tau), np.arange(h), sigma_max=80.0, stream=1, truth=x
            )
        )
    assert [s["val_noisy"] for s in scores] == sorted(s["val_noisy"] for s in scores)
    assert [s["val_clean"] for s in scores] == sorted(s["val_clean"] for s in scores)


def test_the_extra_noise_is_keyed_and_batch_size_free() -> None:
    den = _gaussian(MU, COV)
    y = np.random.default_rng(2).standard_normal((50, 2)).astype(np.float32)
    a = ambient_validation(den, y, np.full(50, 0.3), np.arange(50), sigma_max=80, stream=3)
    b = ambient_validation(
        den, y, np.full(50, 0.3), np.arange(50), sigma_max=80, stream=3, batch_size=7
    )
    c = ambient_validation(den, y, np.full(50, 0.3), np.arange(50), sigma_max=80, stream=4)
    assert a["val_noisy"] == pytest.approx(b["val_noisy"], rel=1e-9)
    assert a["val_noisy"] != c["val_noisy"] and "val_clean" not in a
