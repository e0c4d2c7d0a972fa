"""The EDM noise-level schedule and its truncation at a starting level tau.

Karras et al. 2022, eq. (5): for i = 0..n-1,
    sigma_i = (sigma_max^(1/rho) + i/(n-1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
followed by sigma_n = 0. SFBD's backward sampling starts at the data's noise level tau, so it
runs the part of this grid below tau: [tau, grid points < tau, 0].
"""

from __future__ import annotations

import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0


def edm_sigmas(
    steps: int,
    *,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Decreasing EDM noise levels, with a final 0 appended.

    Args:
        steps: number n of nonzero levels (n >= 2; EDM's "18 steps" for CIFAR-10 is n = 18).
    Returns:
        (n + 1,) tensor: sigma_max = s_0 > s_1 > ... > s_{n-1} = sigma_min, then 0.
    References: Karras et al. 2022, eq. (5).
    """
    if steps < 2:
        raise ValueError(f"the schedule needs at least 2 steps, got {steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    i = torch.arange(steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (hi + i / (steps - 1) * (lo - hi)) ** rho
    sig = torch.cat([sig, torch.zeros(1, dtype=torch.float64)])
    return sig.to(dtype=dtype, device=device)


def truncate_sigmas(sigmas: torch.Tensor, tau: float, *, rtol: float = 1e-3) -> torch.Tensor:
    """The part of a schedule that runs from noise level ``tau`` down to 0.

    Returns [tau, every grid point strictly below tau, 0]. A grid point within relative
    tolerance ``rtol`` of tau counts as tau itself (the paper's tau = 0.59 is the 18-step grid
    point 0.5853), so the first step always goes from tau to the next grid point.

    Args:
        sigmas: (n + 1,) decreasing schedule ending in 0, as from :func:`edm_sigmas`.
        tau: starting noise level, 0 < tau.
    Returns:
        (m + 1,) tensor [tau, ..., 0] with the dtype/device of ``sigmas``.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    below = sigmas[(sigmas < tau * (1.0 - rtol)) & (sigmas > 0)]
    head = torch.tensor([tau], dtype=sigmas.dtype, device=sigmas.device)
    tail = torch.zeros(1, dtype=sigmas.dtype, device=sigmas.device)
    return torch.cat([head, below, tail])


def truncate_rows(
    sigmas: torch.Tensor, taus: torch.Tensor, *, rtol: float = 1e-3
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-row :func:`truncate_sigmas`: row b of a batch starts at its own level taus[b].

    Row b's schedule is [taus[b], every grid point below taus[b], 0], exactly what
    :func:`truncate_sigmas` gives it alone. Rows with the same number of steps share a group,
    so each group is one batched sampler run whatever the batch holds.

    Args:
        sigmas: (n + 1,) decreasing schedule ending in 0.
        taus: (B,) starting levels, all > 0.
    Returns:
        [(rows, schedule)]: ``rows`` (B_g,) int64 positions in the batch, ``schedule``
        (B_g, m_g + 1) with the dtype/device of ``sigmas``; groups by increasing m_g.
    """
    taus = taus.to(dtype=torch.float64, device=sigmas.device).reshape(-1)
    if not bool((taus > 0).all()):
        raise ValueError(f"every level must be > 0, got min {float(taus.min())}")
    grid = sigmas[sigmas > 0].to(torch.float64)
    # grid points strictly below each tau (within rtol of tau counts as tau itself)
    count = (grid[None, :] < taus[:, None] * (1.0 - rtol)).sum(dim=1)
    groups = []
    for m in torch.unique(count).tolist():
        rows = torch.nonzero(count == m).reshape(-1)
        tail = sigmas[sigmas > 0][len(grid) - m :] if m else sigmas[:0]
        sched = torch.zeros((len(rows), m + 2), dtype=sigmas.dtype, device=sigmas.device)
        sched[:, 0] = taus[rows].to(sigmas.dtype)
        sched[:, 1 : m + 1] = tail
        groups.append((rows, sched))
    return groups
