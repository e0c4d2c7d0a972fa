"""benchmarks/tweedie_calibration.py: claimed against actual posterior variance, and the
Jacobian's asymmetry, on Gaussian data where both are known in closed form."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def calibration(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(
        "tweedie_under_test", BENCH / "tweedie_calibration.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module.calibration


LAM, D, N = 0.3, 16, 4000  # x ~ N(0, LAM I) in D dimensions, N samples


def _x() -> torch.Tensor:
    return LAM**0.5 * torch.randn(
        N, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


@pytest.mark.parametrize("s", [0.1, 0.5, 2.0])
def test_the_exact_denoiser_is_calibrated_and_symmetric(calibration, s):
    def exact(y, sig):
        return LAM / (LAM + sig[:, None] ** 2) * y

    ratio, asym = calibration(exact, _x(), s, 4, torch.Generator().manual_seed(1))
    assert ratio == pytest.approx(1.0, rel=0.03)
    assert asym < 1e-9


def test_a_denoiser_that_shrinks_too_much_claims_too_little(calibration):
    """D = c y with c half the exact factor: claimed s^2 c D against the actual error
    ((1 - c)^2 LAM + c^2 s^2) D per sample."""
    s = 0.5
    c = 0.5 * LAM / (LAM + s**2)
    ratio, _ = calibration(lambda y, sig: c * y, _x(), s, 4, torch.Generator().manual_seed(2))
    want = s**2 * c / ((1 - c) ** 2 * LAM + c**2 * s**2)
    assert ratio == pytest.approx(want, rel=0.03) and want < 0.5


def test_a_non_symmetric_jacobian_is_seen(calibration):
    k = torch.randn(D, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b = 0.5 * torch.eye(D, dtype=torch.float64) + 0.2 * (k - k.T)  # J = B, B - B^T = 0.4 (k - k^T)
    _, asym = calibration(lambda y, sig: y @ b.T, _x(), 0.5, 4, torch.Generator().manual_seed(4))
    assert asym > 0.3
