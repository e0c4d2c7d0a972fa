import math

import pytest
import torch
from torch.special import ndtr

from sfbd.diffusion.loss import AmbientLoss, EDMLoss
from sfbd.diffusion.precond import EDMDenoiser
from sfbd.nets.gaussian import GaussianDenoiser


class Zero(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, noise_labels, aug_labels=None):
        return x * self.w


class Lin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((), 0.3))

    def forward(self, x, noise_labels, aug_labels=None):
        return x * self.w + noise_labels.view(-1, *([1] * (x.ndim - 1)))


def test_weight_formula():
    loss = EDMLoss()
    s = torch.tensor([0.5, 1.0, 2.0])
    assert torch.allclose(loss.weight(s), (s**2 + 0.25) / (0.5 * s) ** 2)


def test_perfect_denoiser_has_zero_loss():
    x = torch.randn(8, 5)
    loss = EDMLoss()
    assert torch.allclose(loss(lambda xn, s: x, x), torch.zeros(8))


def test_zero_network_loss_is_unit_variance_target():
    # With F = 0, D = c_skip (x + n); lambda * E||D - x||^2 / dim equals the raw target's
    # variance, which preconditioning makes exactly 1 when Var[x] = sigma_data^2.
    torch.manual_seed(0)
    x = 0.5 * torch.randn(20000, 4)
    loss = EDMLoss()
    sigma = torch.full((20000,), 0.7)
    val = loss(EDMDenoiser(Zero()), x, sigma=sigma, noise=torch.randn_like(x))
    assert abs(val.mean().item() - 1.0) < 0.03


def test_sigma_distribution_is_lognormal():
    g = torch.Generator().manual_seed(1)
    seen = []
    loss = EDMLoss()

    def spy(xn, s):
        seen.append(s.clone())
        return xn

    loss(spy, torch.zeros(50000, 1), g)
    logs = seen[0].log()
    assert abs(logs.mean().item() + 1.2) < 0.03
    assert abs(logs.std().item() - 1.2) < 0.03


# -- the ambient loss ---------------------------------------------------------------------
MU = torch.tensor([0.3, -0.2], dtype=torch.float64)
CHOL = torch.tensor([[0.5, 0.0], [0.3, 0.2]], dtype=torch.float64)
COV = CHOL @ CHOL.T


def _gaussian_problem(n: int, tau: float, seed: int = 0):
    """x ~ N(MU, COV) (n, 2), y = x + tau eps, float64."""
    g = torch.Generator().manual_seed(seed)
    x = MU + torch.randn(n, 2, generator=g, dtype=torch.float64) @ CHOL.T
    return x, x + tau * torch.randn(n, 2, generator=g, dtype=torch.float64), g


def _linear(a: torch.Tensor, b: torch.Tensor):
    """D(x, sigma) = x a^T + b, whatever sigma."""
    return lambda xt, s: xt @ a.T + b


def _clean_loss(a: torch.Tensor, b: torch.Tensor, sigma: float) -> float:
    """E||a x_t + b - x||^2 / 2 for x_t = x + sigma z, in closed form: with M = a - I,
    e = M x + sigma a z + b has mean M mu + b and covariance M S M^T + sigma^2 a a^T."""
    m = a - torch.eye(2, dtype=torch.float64)
    mean = m @ MU + b
    cov = m @ COV @ m.T + sigma**2 * a @ a.T
    return float((torch.trace(cov) + mean @ mean) / 2)


def _exact(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean denoiser of N(MU, COV) at sigma: a = S (S + sigma^2 I)^-1, b = (I - a) mu."""
    a = COV @ torch.linalg.inv(COV + sigma**2 * torch.eye(2, dtype=torch.float64))
    return a, (torch.eye(2, dtype=torch.float64) - a) @ MU


def test_ambient_loss_is_the_clean_loss_plus_a_known_constant():
    """Monte Carlo: mean((D - y_hat)^2) - C equals the closed-form clean loss for linear
    denoisers, at several sigma > tau; the exact denoiser has the smallest ambient loss."""
    n, tau = 400_000, 0.4
    x, y, g = _gaussian_problem(n, tau)
    t = torch.full((n,), tau, dtype=torch.float64)
    gd = GaussianDenoiser((2,))
    gd.set_moments(MU, COV)
    for sigma in (0.45, 0.6, 1.0, 3.0):
        s = torch.full((n,), sigma, dtype=torch.float64)
        noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x_t, target, const = AmbientLoss.targets(y, s, noise, t)
        assert torch.allclose(const, torch.tensor(tau**2 * sigma**2 / (sigma**2 - tau**2)).double())
        # x_t is x + sigma z in distribution: its covariance is S + sigma^2 I (5 std. errors)
        want = COV + sigma**2 * torch.eye(2, dtype=torch.float64)
        assert torch.allclose(torch.cov(x_t.T), want, atol=5 * (sigma**2 + 0.3) * (2 / n) ** 0.5)
        a, b = _exact(sigma)
        assert torch.allclose(gd(x_t, s), x_t @ a.T + b, atol=1e-10)  # D* is this linear map
        losses = {}
        for name, (pa, pb) in {
            "exact": (a, b),
            "shrunk": (0.8 * a, b),
            "shifted": (a, b + 0.1),
            "identity": (torch.eye(2, dtype=torch.float64), torch.zeros(2).double()),
        }.items():
            per = ((_linear(pa, pb)(x_t, s) - target) ** 2).mean(1) - const
            err = 4 * float(per.std()) / n**0.5  # 4 standard errors
            assert abs(float(per.mean()) - _clean_loss(pa, pb, sigma)) < err, (sigma, name)
            losses[name] = float(per.mean())
        assert min(losses, key=losses.get) == "exact", (sigma, losses)


def test_least_squares_on_ambient_targets_recovers_the_clean_denoiser():
    """Regressing y_hat on x_t (the ambient loss's minimiser over linear maps) converges to
    D*'s matrix S (S + sigma^2 I)^-1 and offset, from noisy data alone."""
    n, tau = 400_000, 0.4
    _, y, g = _gaussian_problem(n, tau, seed=1)
    t = torch.full((n,), tau, dtype=torch.float64)
    for sigma in (0.5, 0.8, 2.0):
        s = torch.full((n,), sigma, dtype=torch.float64)
        noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x_t, target, _ = AmbientLoss.targets(y, s, noise, t)
        design = torch.cat([x_t, torch.ones(n, 1, dtype=torch.float64)], dim=1)
        coef = torch.linalg.lstsq(design, target).solution  # (3, 2)
        a, b = _exact(sigma)
        assert torch.allclose(coef[:2].T, a, atol=0.02), (sigma, coef[:2].T, a)
        assert torch.allclose(coef[2], b, atol=0.02), (sigma, coef[2], b)


def test_ambient_loss_with_tau_zero_is_edm_bit_for_bit():
    x = torch.randn(64, 3, 4)
    den = EDMDenoiser(Lin())
    edm, amb = EDMLoss(), AmbientLoss()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = edm.draw(x, g1)
    b = amb.draw(x, g2, tau=torch.zeros(64, dtype=torch.float64))
    for i in (0, 2, 3):  # x, sigma, noise
        assert torch.equal(a[i], b[i])
    want = edm.per_sample(den, a[0], a[2], a[3])
    got = amb.per_sample(den, b[0], b[2], b[3], tau=torch.zeros(64, dtype=torch.float64))
    assert torch.equal(got, want)
    assert torch.equal(amb.per_sample(den, a[0], a[2], a[3]), want)  # tau None: EDM's


def test_ambient_levels_tend_to_edms_as_tau_goes_to_zero():
    z = torch.randn(100_000, generator=torch.Generator().manual_seed(4))
    edm = (z * 1.2 - 1.2).exp()
    got = AmbientLoss().levels(z, torch.full((100_000,), 1e-12, dtype=torch.float64))
    assert ((got - edm) / edm).abs().max() < 2e-6  # float32 rounding of EDM's own formula


def test_ambient_levels_are_edms_lognormal_conditioned_on_sigma_at_least_tau():
    """sigma >= tau, and ln sigma's quantiles are those of N(P_mean, P_std^2) truncated at
    ln tau (its CDF (Phi(w) - Phi(a)) / (1 - Phi(a)) at standardised w); far tails finite."""
    n = 200_000
    z = torch.randn(n, generator=torch.Generator().manual_seed(5))
    loss = AmbientLoss()
    for tau in (0.02, 0.35, 2.0, 30.0):
        sigma = loss.levels(z, torch.full((n,), tau, dtype=torch.float64)).double()
        assert torch.isfinite(sigma).all() and (sigma >= tau).all() and (sigma > 0).all()
        w = (sigma.log() + 1.2) / 1.2
        a = torch.tensor((math.log(tau) + 1.2) / 1.2, dtype=torch.float64)
        for q in (0.1, 0.5, 0.9):
            wq = torch.quantile(w, q)
            cdf = (ndtr(wq) - ndtr(a)) / (1 - ndtr(a))
            assert abs(float(cdf) - q) < 0.005, (tau, q, float(cdf))
    extreme = torch.tensor([-7.0, -5.0, 0.0, 5.0, 7.0])
    sigma = loss.levels(extreme, torch.full((5,), 0.35, dtype=torch.float64))
    assert torch.isfinite(sigma).all() and (sigma >= 0.35).all()
    assert (sigma.diff() > 0).all()  # monotone in z: the inverse CDF of the same z


def test_ambient_rows_are_weighted_as_documented():
    """A row's loss is lambda(sigma) (1 - tau^2/sigma^2)^p (mean((D - y_hat)^2) - C), each row
    at its own tau (per-sample levels), clean rows at EDM's."""
    torch.manual_seed(6)
    x, noise = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    tau = torch.tensor([0.0, 0.2, 0.5, 0.9], dtype=torch.float64)
    sigma = torch.tensor([0.3, 0.25, 1.0, 1.5], dtype=torch.float64)
    den = _linear(0.7 * torch.eye(3, dtype=torch.float64), torch.zeros(3).double())
    for p in (0.0, 0.5, 1.0, 2.0):
        loss = AmbientLoss(temper=p)
        got = loss.per_sample(den, x, sigma, noise, tau=tau)
        gap = (sigma**2 - tau**2).sqrt()
        x_t = x + gap[:, None] * noise
        y_hat = (x - (tau**2 / sigma**2)[:, None] * x_t) / (1 - tau**2 / sigma**2)[:, None]
        const = tau**2 * sigma**2 / (sigma**2 - tau**2)
        sq = ((0.7 * x_t - y_hat) ** 2).mean(1) - const
        want = loss.weight(sigma) * (1 - tau**2 / sigma**2) ** p * sq
        assert torch.allclose(got, want, rtol=1e-6), p  # D in float32, as EDM
        # the original ambient form: ||(tau^2/sigma^2) x_t + (1 - tau^2/sigma^2) D - y||^2
        r = (tau**2 / sigma**2)[:, None]
        amb = ((r * x_t + (1 - r) * 0.7 * x_t - x) ** 2).mean(1)
        assert torch.allclose(amb, (1 - r[:, 0]) ** 2 * (sq + const), rtol=1e-10)


def test_the_ambient_loss_refuses_augmentation():
    loss = AmbientLoss(augment=lambda x, g: (x, torch.zeros(x.shape[0], 9)))
    with pytest.raises(ValueError, match="augmentation"):
        loss.draw(torch.zeros(4, 2), tau=torch.full((4,), 0.3, dtype=torch.float64))
