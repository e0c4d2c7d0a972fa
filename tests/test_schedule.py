import pytest
import torch

from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas


def test_endpoints_and_monotone():
    s = edm_sigmas(18)
    assert s.shape == (19,)
    assert s[0].item() == pytest.approx(80.0, rel=1e-12)
    assert s[-2].item() == pytest.approx(0.002, rel=1e-12)
    assert s[-1].item() == 0.0
    assert bool((s[1:] < s[:-1]).all())


def test_rho_spacing_is_linear_in_root():
    s = edm_sigmas(10)[:-1]
    root = s ** (1 / 7)
    diffs = root[1:] - root[:-1]
    assert torch.allclose(diffs, diffs[0].expand_as(diffs), rtol=1e-10)


def test_paper_tau_is_a_grid_point_of_18_steps():
    # The paper's CIFAR-10 tau = 0.59 is the rounded 18-step grid point 0.5853.
    s = edm_sigmas(18)
    assert (s - 0.5853).abs().min().item() < 1e-4


def test_truncate_uses_exactly_the_grid_points_below_tau():
    grid = edm_sigmas(18)
    tau = 0.5
    t = truncate_sigmas(grid, tau)
    expected = [tau] + [v for v in grid.tolist() if 0 < v < tau] + [0.0]
    assert t.tolist() == pytest.approx(expected)
    assert t[0].item() == tau and t[-1].item() == 0.0


def test_truncate_at_a_grid_point_does_not_repeat_it():
    grid = edm_sigmas(18)
    i = int((grid - 0.5853).abs().argmin())
    t = truncate_sigmas(grid, 0.5853)
    # first step goes from tau straight to the next grid point
    assert t[1].item() == grid[i + 1].item()
    assert len(t) == len(grid) - i


def test_truncate_rejects_nonpositive_tau():
    with pytest.raises(ValueError, match="tau"):
        truncate_sigmas(edm_sigmas(18), 0.0)
