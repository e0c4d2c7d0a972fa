"""Masked observations (sfbd.noise.mask): benchmark masks keyed by (seed, index), the forward
model with its missing entries exactly 0, user mask files and their checks, subsets and specs,
the configuration keys, and the API's noise_model(mask=...)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sfbd
from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError, DataError
from sfbd.noise import WhiteGaussian, from_spec
from sfbd.noise.linear import white_noise
from sfbd.noise.mask import MaskedGaussian, keyed_mask

SHAPE = (3, 4, 4)
BENCH = ["data.source=digits"]
USER = ["data.noisy=n.npy", "data.clean=c.npy", "data.sigma=0.1"]


def _save(tmp_path, m: np.ndarray, name: str = "m.npy") -> str:
    path = tmp_path / name
    np.save(path, m)
    return str(path)


def _file_masks(n: int, shape: tuple[int, ...] = SHAPE, seed: int = 1) -> np.ndarray:
    """n masks of 0/1 that each observe at least one entry."""
    m = keyed_mask(np.arange(n), shape, 0.5, seed)
    m.reshape(n, -1)[:, 0] = 1
    return m


def _config_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- benchmark masks ------------------------------------------------------------------------


def test_keyed_mask_keeps_the_fraction_asked_keyed_by_seed_and_index():
    idx = np.arange(100, 300)
    m = keyed_mask(idx, (100,), 0.3, 4)  # 20,000 entries
    assert m.dtype == np.float32 and m.shape == (200, 100)
    assert set(np.unique(m)) == {0.0, 1.0}
    assert abs(m.mean() - 0.3) < 0.01
    rows = [5, 0, 150, 77]  # a subset, in another order: the same rows
    assert np.array_equal(keyed_mask(idx[rows], (100,), 0.3, 4), m[rows])
    other = keyed_mask(idx, (100,), 0.3, 5)
    assert abs(other.mean() - 0.3) < 0.01
    assert 0.38 < (other != m).mean() < 0.46  # independent draws: 2 * 0.3 * 0.7 = 0.42
    # one uniform draw per entry: a larger fraction keeps every entry a smaller one keeps
    assert np.all(keyed_mask(idx, (100,), 0.6, 4) >= m)


def test_keyed_mask_redraws_samples_that_would_observe_nothing():
    """On D = 2 at keep 0.5 a quarter of first draws keep nothing; those are drawn again, so
    the masks are Bernoulli(0.5)^2 conditioned on >= 1 kept: (1,0), (0,1), (1,1) at 1/3 each."""
    idx = np.arange(3000)
    m = keyed_mask(idx, (2,), 0.5, 3)
    assert np.all(m.sum(1) >= 1)
    share = [np.mean((m == pattern).all(1)) for pattern in ([1, 0], [0, 1], [1, 1])]
    assert np.allclose(share, 1 / 3, atol=0.03), share
    # still keyed by index alone: a subset in another order gives the same rows
    rows = [2999, 0, 17, 1500]
    assert np.array_equal(keyed_mask(idx[rows], (2,), 0.5, 3), m[rows])
    # at D = 64 a redraw is (almost surely) never needed: the fraction kept is keep
    first = keyed_mask(idx, (64,), 0.5, 3)
    assert 0.45 < first.mean() < 0.55
    # where a redraw almost never succeeds, one entry is kept
    rare = keyed_mask(np.arange(50), (4,), 1e-4, 3)
    assert np.all(rare.sum(1) >= 1) and rare.mean() < 0.5


def test_corrupt_zeroes_missing_entries_and_adds_white_noise_to_the_others():
    rng = np.random.default_rng(0)
    idx = np.array([3, 10, 11, 40, 41, 99])
    x = rng.uniform(-1, 1, size=(6, *SHAPE)).astype(np.float32)
    noise = MaskedGaussian(0.2, keep=0.5, index=idx, noise_seed=7)
    y = noise.corrupt(x, idx, 7)
    m = keyed_mask(idx, SHAPE, 0.5, 7)
    assert 0.35 < m.mean() < 0.65
    assert y.dtype == np.float32 and np.all(y[m == 0] == 0)
    want = x + 0.2 * white_noise(idx, SHAPE, 7)
    np.testing.assert_allclose(y[m == 1], want[m == 1], atol=1e-6)
    # the very noise a white-noise run at the same level adds
    assert np.array_equal(y[m == 1], WhiteGaussian(0.2).corrupt(x, idx, 7)[m == 1])
    resid = (y - x)[m == 1] / 0.2
    assert 0.7 < resid.std() < 1.3
    # the benchmark corrupts chunks of rows through subset(): the same values
    part = noise.subset(np.array([4, 1]))
    assert np.array_equal(part.corrupt(x[[4, 1]], idx[[4, 1]], 7), y[[4, 1]])
    # missing entries of stored noisy data may hold anything: read as 0
    garbage = y.copy()
    garbage[m == 0] = rng.normal(size=int((m == 0).sum())) * 50
    assert np.array_equal(noise.encode_noisy(garbage, np.arange(6)), y)


def test_operator_is_the_mask_of_each_row():
    import torch

    idx = np.array([8, 2, 5])
    noise = MaskedGaussian(0.1, keep=0.4, index=idx, noise_seed=2)
    v = torch.randn(2, *SHAPE, dtype=torch.float64)
    op = noise.operator(torch.tensor([2, 0]), v)
    want = keyed_mask(idx[[2, 0]], SHAPE, 0.4, 2)
    assert torch.equal(op.forward(v), torch.as_tensor(want, dtype=torch.float64) * v)
    assert torch.equal(op.adjoint(v), op.forward(v))


# -- user mask files ------------------------------------------------------------------------


def _bad_files(n: int) -> list[tuple[str, np.ndarray, str]]:
    good = _file_masks(n)
    half = good.copy()
    half[3, 1, 2, 2] = 0.5
    empty = good.copy()
    empty[2] = 0
    return [
        ("count", good[:-1], f"data.mask has shape {(n - 1, *SHAPE)} but data.noisy has"),
        ("channels", _file_masks(n, (2, 4, 4)), "data.mask has shape"),
        ("size", _file_masks(n, (3, 4, 5)), f"it must be {(n, *SHAPE)} or {(n, 1, 4, 4)}"),
        ("half", half, "data.mask must hold only 0 and 1 (1 = observed); sample 3 holds 0.5"),
        ("empty", empty, "data.mask: sample 2 observes nothing"),
    ]


@pytest.mark.parametrize("case", range(5), ids=[c[0] for c in _bad_files(6)])
def test_mask_files_that_cannot_describe_the_data_are_refused(tmp_path, case):
    _, bad, fragment = _bad_files(6)[case]
    noise = MaskedGaussian(0.1, mask=_save(tmp_path, bad))
    with pytest.raises(DataError) as err:
        noise.check(None, np.zeros((6, *SHAPE), np.float32))
    msg = str(err.value)
    assert msg.startswith("data.mask") and fragment in msg and "\n" not in msg


def test_mask_file_errors_name_the_key_in_user_mode(tmp_path):
    """The checks run when the problem is loaded, and the count is checked first."""
    rng = np.random.default_rng(1)
    np.save(tmp_path / "noisy.npy", rng.normal(size=(6, *SHAPE)).astype(np.float32))
    np.save(tmp_path / "clean.npy", rng.normal(size=(4, *SHAPE)).astype(np.float32))
    user = [f"data.noisy={tmp_path / 'noisy.npy'}", f"data.clean={tmp_path / 'clean.npy'}"]
    user.append("data.sigma=0.1")
    empty = _file_masks(6)
    empty[4] = 0
    cfg = load_config(overrides=[*user, f"data.mask={_save(tmp_path, empty)}"])
    assert cfg.data.noise == "mask"
    with pytest.raises(DataError, match=r"^data\.mask: sample 4 observes nothing"):
        load_problem(cfg)
    cfg = load_config(overrides=[*user, f"data.mask={_save(tmp_path, _file_masks(5), 'n.npy')}"])
    with pytest.raises(DataError, match=r"^data\.mask .* holds 5 masks but data.noisy has 6"):
        load_problem(cfg)
    cfg = load_config(overrides=[*user, f"data.mask={tmp_path / 'missing.npy'}"])
    with pytest.raises(DataError, match=r"^data\.mask: file .* not found"):
        load_problem(cfg)
    good = _file_masks(6)
    cfg = load_config(overrides=[*user, f"data.mask={_save(tmp_path, good, 'g.npy')}"])
    prob = load_problem(cfg)
    assert isinstance(prob.corruption, MaskedGaussian) and prob.corruption.sigma == 0.1
    noisy = np.asarray(prob.noisy)  # missing entries set to 0 when read
    assert np.array_equal(noisy, (good * np.load(tmp_path / "noisy.npy")).astype(np.float32))


def test_one_channel_mask_covers_every_channel(tmp_path):
    m = _file_masks(6, (1, 4, 4))
    noise = MaskedGaussian(0.0, mask=_save(tmp_path, m))
    noise.check(None, np.zeros((6, *SHAPE), np.float32))  # (N, 1, H, W) for (N, C, H, W)
    x = np.random.default_rng(2).normal(size=(6, *SHAPE)).astype(np.float32)
    ax = noise.observe(x, np.arange(6))
    assert ax.shape == x.shape
    for c in range(SHAPE[0]):
        assert np.array_equal(ax[:, c], m[:, 0] * x[:, c])
    y = noise.corrupt(x, np.arange(6), 0)  # sigma 0: exactly the masked data
    assert np.array_equal(y, ax)


def test_vector_masks_are_one_per_entry(tmp_path):
    m = _file_masks(5, (7,))
    noise = MaskedGaussian(0.1, mask=_save(tmp_path, m))
    noise.check(None, np.zeros((5, 7), np.float32))
    with pytest.raises(DataError, match=r"must be \(5, 8\), one 0/1"):
        noise.check(None, np.zeros((5, 8), np.float32))


def test_subset_of_a_file_model_reads_its_own_rows(tmp_path):
    m = _file_masks(8)
    noise = MaskedGaussian(0.1, mask=_save(tmp_path, m), cg_steps=3)
    rows = np.array([6, 1, 3])
    sub = noise.subset(rows)
    assert len(sub) == 3 and sub.sigma == 0.1 and sub.cg_steps == 3
    assert np.array_equal(sub.masks(np.arange(3), SHAPE), m[rows])
    assert np.array_equal(sub.masks(np.array([2, 0, 2]), SHAPE), m[[3, 6, 3]])  # any order
    assert np.array_equal(sub.subset(np.array([2, 0])).masks(np.arange(2), SHAPE), m[[3, 6]])
    with pytest.raises(DataError, match="noisy sample 3 has no mask: 3 are known"):
        sub.masks(np.array([3]), SHAPE)
    # a benchmark model's subset keeps its rows' source indices
    keep = MaskedGaussian(0.1, keep=0.5, index=np.array([10, 20, 30, 40]), noise_seed=1)
    part = keep.subset(np.array([3, 1]))
    assert part.index.tolist() == [40, 20]
    assert np.array_equal(part.masks(np.arange(2), SHAPE), keep.masks(np.array([3, 1]), SHAPE))


def test_spec_round_trips_through_json(tmp_path):
    keep = MaskedGaussian(0.05, keep=0.4, index=[5, 9, 2], noise_seed=3, cg_steps=2)
    file = MaskedGaussian(0.1, mask=_save(tmp_path, _file_masks(5))).subset(np.array([4, 0]))
    for noise in (keep, file):
        back = from_spec(json.loads(json.dumps(noise.spec())))
        assert isinstance(back, MaskedGaussian) and noise.matches(back)
        assert (back.sigma, back.cg_steps, len(back)) == (noise.sigma, noise.cg_steps, len(noise))
        rows = np.arange(len(noise))
        assert np.array_equal(back.masks(rows, SHAPE), noise.masks(rows, SHAPE))
    assert keep.spec()["noise"] == "mask" and keep.spec()["keep"] == 0.4
    assert file.spec()["rows"] == [4, 0]
    assert not keep.matches(MaskedGaussian(0.05, keep=0.4, index=[5, 9, 2], noise_seed=4))


# -- configuration --------------------------------------------------------------------------


def test_a_mask_with_its_noise_level_is_one_noise_model():
    cfg = load_config(overrides=[*BENCH, "data.mask_keep=0.5", "data.sigma=0.05"])
    assert cfg.data.noise == "mask" and cfg.data.sigma == 0.05
    cfg = load_config(overrides=[*BENCH, "data.mask_keep=1", "data.sigma=0"])  # sigma may be 0
    assert cfg.data.noise == "mask"
    prob = load_problem(load_config(overrides=[*BENCH, "data.mask_keep=0.5", "data.sigma=0.05"]))
    noise = prob.corruption
    assert isinstance(noise, MaskedGaussian) and noise.sigma == 0.05 and noise.keep == 0.5
    assert prob.holdout is None  # no Gaussian model space: no val_noisy hold-out
    y, m = np.asarray(prob.noisy), noise.masks(np.arange(len(prob.noisy)), (1, 8, 8))
    assert np.all(y[m == 0] == 0) and abs(m.mean() - 0.5) < 0.01
    resid = (y - np.asarray(prob.noisy_truth))[m == 1]
    assert abs(resid.std() - 0.05) < 0.003


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (
            [*USER, "data.mask=m.npy", "data.noise_cov=k.npy"],
            ["data.noise_cov", "data.mask"],
        ),
        (
            [*USER, "data.noise=mask", "data.mask=m.npy"] + ["data.noise_cov=k.npy"],
            ["data.noise_cov", "mask"],
        ),
        ([*BENCH, "data.mask_keep=0"], ["data.mask_keep must be a fraction in (0, 1]", "0.0"]),
        ([*BENCH, "data.mask_keep=1.5"], ["data.mask_keep must be a fraction in (0, 1]", "1.5"]),
        (
            [*USER, "data.mask_keep=0.5"],
            ["data.mask_keep draws masks in benchmark mode", "give data.mask"],
        ),
        ([*BENCH, "data.mask=m.npy"], ["data.mask is a user-mode file", "data.mask_keep"]),
        (
            [*USER, "data.mask=m.npy", "data.mask_keep=0.5"],
            ["data.mask", "data.mask_keep", "not both"],
        ),
        ([*BENCH, "data.mask_keep=0.5", "data.sigma=-1"], ["data.sigma must be one number >= 0"]),
        ([*BENCH, "data.mask_keep=0.5", "data.sigma=.nan"], ["data.sigma must be one number"]),
        ([*BENCH, "data.naive=true", "data.sigma=0.1"], ["data.naive", "data.mask_keep"]),
        (
            [*BENCH, "data.naive=true", "data.mask_keep=0.5", "data.sigma=0"],
            ["data.naive", "data.sigma", "> 0"],
        ),
    ],
)
def test_bad_mask_settings_are_refused(overrides, fragments):
    msg = _config_error(overrides)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_naive_needs_a_positive_level_only():
    cfg = load_config(overrides=[*BENCH, "data.naive=true", "data.mask_keep=0.5", "data.sigma=0.1"])
    assert cfg.data.naive is True and cfg.data.noise == "mask"


# -- the API ----------------------------------------------------------------------------------


def test_noise_model_takes_a_mask_with_its_level(tmp_path):
    m = _file_masks(4)
    path = _save(tmp_path, m)
    noise = sfbd.noise_model(mask=path, sigma=0.1, n=4)
    assert isinstance(noise, MaskedGaussian) and noise.sigma == 0.1 and len(noise) == 4
    assert np.array_equal(noise.masks(np.arange(4), SHAPE), m)
    assert sfbd.noise_model(mask=path).sigma == 0.0  # no level: noiseless observed entries
    with pytest.raises(DataError, match="--mask holds 4 masks for 5 inputs; one per input"):
        sfbd.noise_model(mask=path, sigma=0.1, n=5)
    with pytest.raises(DataError, match="--sigma with --mask must be one number >= 0"):
        sfbd.noise_model(mask=path, sigma=-1, n=4)
    white = sfbd.noise_model(sigma=0.1)
    assert type(white) is WhiteGaussian and white.sigma == 0.1
    noise = sfbd.noise_model(mask=path, sigma=0.2)
    with pytest.raises(DataError, match=r"^--mask has shape"):  # errors name the flag
        noise.check(None, np.zeros((4, 1, 5, 5), np.float32), ("data.clean", "--input"))


def test_a_user_mask_without_data_sigma_is_asked_for_its_noise_level(tmp_path):
    msg = _config_error(["data.noisy=n.npy", "data.clean=c.npy", f"data.mask={tmp_path}/m.npy"])
    assert msg.startswith("data.mask is given but data.sigma is not")
    assert "white noise on the observations" in msg and "0 for none" in msg


def test_user_masked_digits_run_end_to_end(tmp_path, capsys):
    """User mode: a user's masked digits, their 0/1 mask file and sigma = 0.05, the analytic
    Gaussian prior. ``sfbd run`` writes E_1, whose observed entries stay at the observations
    and whose missing entries are filled far closer to the truth than the zeros they hold;
    ``sfbd status`` names the mask file."""
    from sklearn.datasets import load_digits

    from sfbd.cli.main import main
    from sfbd.run.denoise import read_denoised

    x = (load_digits().images / 8.0 - 1.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    rng = np.random.default_rng(0)
    m = (rng.random(x[200:1000].shape) < 0.5).astype(np.float32)
    y = m * (x[200:1000] + 0.05 * rng.normal(size=m.shape)) + (1 - m) * 7.0  # any missing value
    np.save(tmp_path / "clean.npy", x[:200])
    np.save(tmp_path / "noisy.npy", y.astype(np.float32))
    np.save(tmp_path / "mask.npy", m)
    sets = [f"data.{k}={tmp_path / k}.npy" for k in ("clean", "noisy", "mask")]
    sets += ["data.sigma=0.05", "model.kind=gaussian", "sample.steps=16", "sfbd.iterations=1"]
    sets += ["device=cpu", "eval.num_samples=20", "train.pretrain_steps=1", "train.update_steps=1"]
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", "--set", *sets]) == 0
    capsys.readouterr()
    assert main(["status", "--run", str(out)]) == 0
    assert f"noise: masked (from {tmp_path / 'mask.npy'})" in capsys.readouterr().out

    index, e = read_denoised(out, 1)
    truth, seen, obs = x[200:1000][index], m[index] == 1, y[index]
    assert np.abs(e - obs)[seen].mean() < 0.06  # observed at sigma 0.05
    filled = np.sqrt(np.mean((e - truth)[~seen] ** 2))
    zeros = np.sqrt(np.mean(truth[~seen] ** 2))
    assert filled < 0.8 * zeros, (filled, zeros)  # one posterior draw; seen: 0.55 against 0.84
