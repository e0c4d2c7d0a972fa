"""sfbd.load / sfbd.Model: the same arrays as sfbd sample / sfbd denoise, the denoiser's
contract, stages, seeds, the errors, the package top, and the examples of docs/python-api.md."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from run_helpers import cli_env

import sfbd
from sfbd import api
from sfbd.cli.main import main
from sfbd.config import load_config, to_dict
from sfbd.errors import DataError, SfbdError
from sfbd.io.checkpoint import load_tensors, module_state
from sfbd.noise import WhiteGaussian

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"

#: ring8 with the analytic Gaussian denoiser: stages 0 and 1 in a few seconds
GAUSS_RUN = [
    "data.source=ring8",
    "data.num_samples=600",
    "data.clean_fraction=0.1",
    "model.kind=gaussian",
    "sfbd.iterations=1",
    "eval.num_samples=100",
    "sample.steps=16",
    "device=cpu",
]


@pytest.fixture(scope="module")
def gauss_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gauss")
    assert main(["run", "--out", str(out), "--quiet", "--set", *GAUSS_RUN]) == 0
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny run on uint8 8x8 images (a small UNet, 2 + 2 steps): samples come back uint8.
    Clean images only (uint8 noisy data are refused: 8 bits would round the noise)."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    np.save(d / "c.npy", rng.integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8))
    sets = [f"data.clean={d / 'c.npy'}", "method=clean-only"]
    sets += ["model.channels=8", "train.pretrain_steps=2", "train.update_steps=2"]
    sets += ["train.batch_size=8", "sfbd.iterations=1", "eval.num_samples=4", "sample.steps=4"]
    sets += ["device=cpu"]
    assert main(["run", "--out", str(d / "run"), "--quiet", "--set", *sets]) == 0
    return d / "run"


def _cli(tmp_path, argv):
    """Run ``sfbd argv --out tmp/out.npy --quiet`` in process; the array it wrote."""
    out = tmp_path / "cli-out.npy"
    assert main([*argv, "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    return np.load(out)


def _cli_error(capsys, argv):
    """The message of ``sfbd argv`` (which must exit 2 with one line)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sfbd: error: ") and err.count("\n") == 1, err
    return err[len("sfbd: error: ") : -1]


# -- Python and the command line give the same arrays -------------------------------------


def test_sample_is_the_cli_bit_for_bit(gauss_run, tmp_path):
    run = str(gauss_run)
    cases = [({}, []), ({"seed": 5, "steps": 8}, ["--seed", "5", "--steps", "8"])]
    for stage in (None, 0):
        model = sfbd.load(run, stage=stage, device="cpu")
        flag = [] if stage is None else ["--stage", str(stage)]
        for kwargs, flags in cases:
            x = model.sample(37, **kwargs)
            cli = _cli(tmp_path, ["sample", "--run", run, "--n", "37", *flag, *flags])
            assert x.dtype == cli.dtype == np.float32 and x.shape == (37, 2)
            assert np.array_equal(x, cli)


def test_denoise_is_the_cli_bit_for_bit(gauss_run, tmp_path):
    run = str(gauss_run)
    y = np.random.default_rng(3).standard_normal((29, 2)).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    model = sfbd.load(run, device="cpu")
    base = ["denoise", "--run", run, "--input", str(tmp_path / "y.npy"), "--sigma", "0.3"]
    cases = [
        ({}, []),
        ({"seed": 9}, ["--seed", "9"]),
        ({"sampler": "heun", "steps": 12}, ["--sampler", "heun", "--steps", "12"]),
    ]
    for kwargs, flags in cases:
        x = model.denoise(y, 0.3, **kwargs)
        assert x.shape == y.shape and x.dtype == np.float32
        assert np.array_equal(x, _cli(tmp_path, [*base, *flags]))
    # float64 input is read as float32, like a float64 .npy file
    assert np.array_equal(model.denoise(y.astype(np.float64), 0.3), model.denoise(y, 0.3))


def test_uint8_images_in_their_own_scale_as_the_cli(image_run, tmp_path):
    model = sfbd.load(image_run, device="cpu")
    assert model.shape == (1, 8, 8) and model.scale == "uint8"
    s = model.sample(3, steps=4)
    assert s.dtype == np.uint8 and s.shape == (3, 1, 8, 8)
    assert np.array_equal(
        s, _cli(tmp_path, ["sample", "--run", str(image_run), "--n", "3", "--steps", "4"])
    )
    y = np.random.default_rng(1).integers(0, 256, size=(5, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "y.npy", y)
    x = model.denoise(y, 0.5, steps=4)
    assert x.dtype == np.uint8 and x.shape == y.shape
    argv = ["denoise", "--run", str(image_run), "--input", str(tmp_path / "y.npy")]
    assert np.array_equal(x, _cli(tmp_path, [*argv, "--sigma", "0.5", "--steps", "4"]))
    # uint8 in is y / 127.5 - 1 in the model space, mapped back: the float path rounded
    xf = model.denoise(y.astype(np.float32) / 127.5 - 1, 0.5, steps=4)
    assert xf.dtype == np.float32
    assert np.array_equal(x, np.clip(np.rint((xf + 1) * 127.5), 0, 255).astype(np.uint8))


def test_defaults_are_the_commands_streams_and_schedules(gauss_run):
    """Direct computation: sample is Heun over edm_sigmas(sample.steps) on the stream
    ("sample", seed); denoise is the SDE over 256 levels on ("denoise-cli", seed), as
    sfbd sample / sfbd denoise have always drawn them (files written before stay valid)."""
    from sfbd.diffusion.batched import denoise_all, generate
    from sfbd.diffusion.schedule import edm_sigmas
    from sfbd.rng import stream_id

    model = sfbd.load(gauss_run, device="cpu")
    assert model.config.sample.steps == 16 and model.config.seed == 0
    want = generate(
        model.denoiser, 9, (2,), edm_sigmas(16), stream=stream_id("sample", 0), progress=False
    )
    assert np.array_equal(model.sample(9), want.numpy())
    y = np.random.default_rng(0).standard_normal((7, 2)).astype(np.float32)
    stream = stream_id("denoise-cli", 0)
    want = denoise_all(
        model.denoiser,
        torch.as_tensor(y),
        WhiteGaussian(0.3),
        edm_sigmas(256),
        stream=stream,
        sampler="sde",
        batch_size=3,
        progress=False,
    )
    assert np.array_equal(model.denoise(y, 0.3), want.numpy())
    want = denoise_all(
        model.denoiser,
        torch.as_tensor(y),
        WhiteGaussian(0.3),
        edm_sigmas(16),
        stream=stream,
        sampler="heun",
        progress=False,
    )
    assert np.array_equal(model.denoise(y, 0.3, sampler="heun"), want.numpy())


# -- the model: its denoiser, config and stage ----------------------------------------------


def test_denoiser_is_the_stage_ema_on_b_by_shape(gauss_run):
    model = sfbd.load(gauss_run, device="cpu")
    _, tensors = load_tensors(gauss_run / "checkpoints" / "stage-01", "cpu")
    ema = module_state(tensors, "ema")
    mu, lam, u = ema["mean"], ema["evals"], ema["evecs"]
    cov = (u * lam) @ u.T
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.01, 0.1, 0.3, 1.0, 3.0, 30.0], dtype=torch.float64)
    with torch.no_grad():
        d = model.denoiser(x, sigma)
    assert d.shape == x.shape
    # Tweedie for N(mu, S): D(x, s) = mu + S (S + s^2 I)^-1 (x - mu), row by row
    for i in range(6):
        want = mu + cov @ torch.linalg.solve(cov + sigma[i] ** 2 * torch.eye(2), x[i] - mu)
        assert torch.allclose(d[i], want, atol=1e-10), (i, d[i], want)
    assert not model.denoiser.training


def test_denoiser_contract_of_a_network(doc_run):
    run = doc_run[0] / "runs" / "ring8-small"
    model = sfbd.load(run, device="cpu")
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([1e-4, 0.1, 0.5, 2.0, 40.0])
    with torch.no_grad():
        d = model.denoiser(x, sigma)
        one = torch.cat([model.denoiser(x[i : i + 1], sigma[i : i + 1]) for i in range(5)])
    assert d.shape == (5, 2) and torch.allclose(d, one, atol=1e-6)  # rows are independent
    # EDM preconditioning: c_skip -> 1 and c_out -> 0 as sigma -> 0, so D(x, 1e-4) ~ x
    assert torch.allclose(d[0], x[0], atol=1e-3)
    # the EMA weights of the last stage, not the raw ones
    _, tensors = load_tensors(run / "checkpoints" / "stage-01", "cpu")
    state = model.denoiser.state_dict()
    assert all(torch.equal(state[k], v) for k, v in module_state(tensors, "ema").items())
    assert any(not torch.equal(state[k], v) for k, v in module_state(tensors, "model").items())


def test_config_and_stage(gauss_run):
    model = sfbd.load(gauss_run)
    saved = yaml.safe_load((gauss_run / "config.yaml").read_text())
    assert to_dict(model.config) == saved
    assert model.config == load_config(overrides=GAUSS_RUN)
    assert model.stage == 1 and model.shape == (2,) and model.scale == "float"
    assert sfbd.load(gauss_run, stage=0).stage == 0
    assert "stage=1" in repr(model)


def test_default_stage_is_the_last_finished_and_explicit_stages_load(gauss_run, tmp_path):
    last, zero = sfbd.load(gauss_run, device="cpu"), sfbd.load(gauss_run, 0, "cpu")
    one = sfbd.load(gauss_run, stage=1, device="cpu")
    assert np.array_equal(last.sample(20), one.sample(20))
    assert not np.array_equal(zero.sample(20), one.sample(20))  # other weights
    # a run whose stage 1 is not finished (not in metrics.json): stage 0 is the default
    part = tmp_path / "part"
    shutil.copytree(gauss_run, part)
    metrics = json.loads((part / "metrics.json").read_text())
    metrics["stages"] = metrics["stages"][:1]
    (part / "metrics.json").write_text(json.dumps(metrics))
    model = sfbd.load(part, device="cpu")
    assert model.stage == 0 and np.array_equal(model.sample(20), zero.sample(20))
    with pytest.raises(SfbdError, match=r"^stage 1 is not finished in .*; finished stages: \[0\]$"):
        sfbd.load(part, stage=1)


def test_seeds(gauss_run):
    model = sfbd.load(gauss_run, device="cpu")
    assert np.array_equal(model.sample(30), model.sample(30, seed=model.config.seed))
    assert np.array_equal(model.sample(30, seed=4), model.sample(30, seed=4))
    assert not np.array_equal(model.sample(30, seed=4), model.sample(30, seed=5))
    assert np.array_equal(model.sample(10, seed=4), model.sample(30, seed=4)[:10])  # keyed
    y = np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32)
    assert np.array_equal(model.denoise(y, 0.3), model.denoise(y, 0.3, seed=model.config.seed))
    assert not np.array_equal(model.denoise(y, 0.3, seed=1), model.denoise(y, 0.3, seed=2))
    # in input order: the first rows do not depend on the rest; heun does not use the seed
    assert np.array_equal(model.denoise(y[:5], 0.3, seed=1), model.denoise(y, 0.3, seed=1)[:5])
    flow = [model.denoise(y, 0.3, seed=s, sampler="heun") for s in (1, 2)]
    assert np.array_equal(*flow)


def test_noise_model_is_white_gaussian_at_sigma():
    noise = api.noise_model(0.25)
    assert isinstance(noise, WhiteGaussian) and noise.sigma == 0.25
    assert api.noise_model(np.float32(0.5)).sigma == 0.5


# -- errors: the command's messages, raised ------------------------------------------------


def test_errors_are_the_cli_messages(gauss_run, tmp_path, capsys):
    run = str(gauss_run)
    model = sfbd.load(run, device="cpu")
    y = np.zeros((4, 2), np.float32)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "y5.npy", np.zeros((3, 5), np.float32))
    out = ["--out", str(tmp_path / "o.npy")]
    sample = ["sample", "--run", run, *out]
    denoise = ["denoise", "--run", run, *out, "--input", str(tmp_path / "y.npy")]
    cases = [  # (Python call, the same call on the command line, message)
        (
            lambda: sfbd.load(tmp_path),
            ["sample", "--run", str(tmp_path), "--n", "2", *out],
            f"{tmp_path} is not a run directory with a finished stage (sfbd run --out)",
        ),
        (
            lambda: sfbd.load(run, stage=7),
            [*sample, "--n", "2", "--stage", "7"],
            f"stage 7 is not finished in {run}; finished stages: [0, 1]",
        ),
        (lambda: model.sample(0), [*sample, "--n", "0"], "--n must be >= 1, got 0"),
        (
            lambda: model.sample(3, steps=1),
            [*sample, "--n", "3", "--steps", "1"],
            "--steps must be >= 2, got 1",
        ),
        (
            lambda: model.denoise(y, 0.3, steps=1),
            [*denoise, "--sigma", "0.3", "--steps", "1"],
            "--steps must be >= 2, got 1",
        ),
        (
            lambda: model.denoise(y, 0.0),
            [*denoise, "--sigma", "0"],
            "--sigma must be a positive number (the noise std), got 0.0",
        ),
        (
            lambda: model.denoise(y, -0.5),
            [*denoise, "--sigma", "-0.5"],
            "--sigma must be a positive number (the noise std), got -0.5",
        ),
        (
            lambda: model.denoise(y, float("nan")),
            [*denoise, "--sigma", "nan"],
            "--sigma must be a positive number (the noise std), got nan",
        ),
        (
            lambda: model.denoise(np.zeros((3, 5), np.float32), 0.3),
            ["denoise", "--run", run, *out, "--input", str(tmp_path / "y5.npy"), "--sigma", "0.3"],
            "--input samples have shape (5,) but the model was trained on (2,)",
        ),
    ]
    for call, argv, message in cases:
        with pytest.raises(SfbdError) as info:
            call()
        assert str(info.value) == message
        assert _cli_error(capsys, argv) == message
    assert not (tmp_path / "o.npy").exists()


def test_errors_of_python_only_input(gauss_run, tmp_path):
    model = sfbd.load(gauss_run, device="cpu")
    y = np.zeros((4, 2), np.float32)
    bad = np.array([[0.0, np.nan], [1.0, 1.0], [np.inf, 0.0]], np.float32)
    with pytest.raises(DataError, match=r"^--input has NaN or infinite values in 2 of 3 samples"):
        model.denoise(bad, 0.3)
    with pytest.raises(DataError, match=r"^--input has dtype bool; expected numbers$"):
        model.denoise(y > 0, 0.3)
    with pytest.raises(SfbdError, match=r"^--input samples have shape \(\) but"):
        model.denoise(np.zeros(4, np.float32), 0.3)
    with pytest.raises(SfbdError, match=r"^--sampler must be one of heun, sde, got 'euler'$"):
        model.denoise(y, 0.3, sampler="euler")
    with pytest.raises(SfbdError, match=r"^--sigma holds 2 levels but there are 4 inputs"):
        model.denoise(y, [0.1, 0.2])
    with pytest.raises(SfbdError, match=r"^--n must be an integer, got 2.5$"):
        model.sample(2.5)
    with pytest.raises(SfbdError, match=r"^--steps must be an integer, got True$"):
        model.sample(2, steps=True)
    assert model.sample(np.int64(3)).shape == (3, 2)
    with pytest.raises(SfbdError, match=r"^--stage must be an integer, got '1'$"):
        sfbd.load(gauss_run, stage="1")
    assert sfbd.load(gauss_run, stage=np.int64(0)).stage == 0
    # no finished stage; a damaged run; a config.yaml this version cannot read
    empty = tmp_path / "empty"
    shutil.copytree(gauss_run, empty)
    (empty / "metrics.json").write_text('{"stages": []}')
    with pytest.raises(SfbdError, match=r"has no finished stage yet$"):
        sfbd.load(empty)
    (empty / "metrics.json").write_text("{")
    with pytest.raises(SfbdError, match=r"^cannot read the run in .* it is damaged: rerun"):
        sfbd.load(empty)
    other = tmp_path / "other"
    shutil.copytree(gauss_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["sample"]["stepz"] = 3
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SfbdError, match=r"unknown configuration key 'sample.stepz'"):
        sfbd.load(other)


# -- the package top ------------------------------------------------------------------------


def test_package_top_is_lazy_and_documented():
    code = (
        "import sys, sfbd; assert 'torch' not in sys.modules, 'import sfbd imported torch'; "
        "assert sorted(m for m in sys.modules if m.startswith('sfbd')) == "
        "['sfbd', 'sfbd.version']; "
        "print(sfbd.load.__module__, sfbd.Model.__module__, sfbd.Run.__module__, "
        "sfbd.load_config.__module__, sfbd.noise_model.__module__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "sfbd.api",
        "sfbd.api",
        "sfbd.run.runner",
        "sfbd.config",
        "sfbd.api",
    ]
    for name in ("load", "Model", "Run", "load_config", "noise_model"):
        assert name in sfbd.__all__ and name in dir(sfbd) and getattr(sfbd, name).__doc__
    assert sfbd.load is api.load and sfbd.load_config is load_config
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = sfbd.nope
    version = subprocess.run(
        [sys.executable, "-m", "sfbd", "--version"], env=cli_env(), capture_output=True, text=True
    )
    assert version.stdout.strip() == f"sfbd {sfbd.__version__}"


# -- docs/python-api.md: every example runs --------------------------------------------------


def _doc_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory):
    """The page's first example (training), run in a folder holding configs/ring8.yaml:
    (that folder, the example's names)."""
    d = tmp_path_factory.mktemp("doc")
    (d / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "ring8.yaml", d / "configs")
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(d)
    try:
        exec(compile(_doc_blocks()[0], f"{DOC}:block0", "exec"), ns)
    finally:
        os.chdir(cwd)
    return d, ns


def test_the_python_api_page_runs(doc_run):
    blocks = _doc_blocks()
    assert len(blocks) == 3 and "sfbd.Run(" in blocks[0] and "sfbd.load(" in blocks[1]
    folder, ns = doc_run
    assert [s["iteration"] for s in ns["stages"]] == [0, 1]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for i, block in enumerate(blocks[1:], 1):
            exec(compile(block, f"{DOC}:block{i}", "exec"), ns)
    finally:
        os.chdir(cwd)
    x, y, x0, flow = ns["x"], ns["y"], ns["x0"], ns["flow"]
    assert ns["model"].stage == 1 and x.shape == y.shape == x0.shape == flow.shape == (1000, 2)
    assert ns["first"].shape == (1000, 2) and not np.array_equal(ns["first"], x)
    # what the page says: the noisy rows are about 0.28 off the unit circle, x0 about 0.05
    assert 0.2 < ns["off_ring"] < 0.35 and ns["on_ring"] < 0.1
    assert tuple(ns["d"].shape) == (8, 2)


# -- noise models: the run's own, per-row levels, coloured noise -----------------------------

COV = np.array([[0.09, 0.03], [0.03, 0.04]])


@pytest.fixture(scope="module")
def whitened_run(tmp_path_factory):
    """GAUSS_RUN under coloured noise, whitened: the model lives in the whitened space."""
    d = tmp_path_factory.mktemp("whitened")
    np.save(d / "cov.npy", COV)
    sets = [*GAUSS_RUN, "data.sigma=null", f"data.noise_cov={d / 'cov.npy'}"]
    assert main(["run", "--out", str(d / "run"), "--quiet", "--set", *sets]) == 0
    return d


def test_per_row_levels_from_python_and_the_cli(gauss_run, tmp_path):
    run = str(gauss_run)
    y = np.random.default_rng(4).standard_normal((23, 2)).astype(np.float32)
    levels = np.geomspace(0.05, 1.5, 23)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "lv.npy", levels)
    model = sfbd.load(run, device="cpu")
    x = model.denoise(y, levels)
    cli = _cli(
        tmp_path,
        [
            "denoise",
            "--run",
            run,
            "--input",
            str(tmp_path / "y.npy"),
            "--sigma",
            str(tmp_path / "lv.npy"),
        ],
    )
    assert np.array_equal(x, cli)
    assert np.array_equal(model.denoise(y, str(tmp_path / "lv.npy")), x)
    # each row is what it is alone at its own level (white noise at that level)
    for i in (0, 11, 22):
        alone = model.denoise(y, float(levels[i]))[i]
        assert np.allclose(x[i], alone, atol=1e-5), i
    # the noisier a row, the further the posterior sample moves it (on average)
    moved = np.linalg.norm(x - y, axis=1)
    assert moved[-8:].mean() > moved[:8].mean()


def test_a_whitened_run_samples_and_denoises_in_the_data_space(whitened_run, tmp_path):
    from sfbd.diffusion.batched import denoise_all, generate
    from sfbd.diffusion.schedule import edm_sigmas
    from sfbd.noise import ColouredGaussian
    from sfbd.rng import stream_id

    run = str(whitened_run / "run")
    model = sfbd.load(run, device="cpu")
    assert isinstance(model.noise, ColouredGaussian) and np.allclose(model.noise.cov, COV)
    x = model.sample(40)
    z = generate(
        model.denoiser,
        40,
        (2,),
        edm_sigmas(16),
        stream=stream_id("sample", 0),
        batch_size=4096,
        device=torch.device("cpu"),
        progress=False,
    ).numpy()
    assert np.allclose(x, model.noise.decode(z), atol=1e-6)  # decoded: the data's space
    assert not np.allclose(x, z, atol=1e-2)
    assert np.array_equal(x, _cli(tmp_path, ["sample", "--run", run, "--n", "40"]))
    y = np.random.default_rng(5).standard_normal((17, 2)).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    x0 = model.denoise(y)  # the run's own covariance, through its whitening
    noise = ColouredGaussian(COV)
    zin = noise.encode_noisy(y, np.arange(17))
    want = denoise_all(
        model.denoiser,
        torch.as_tensor(zin),
        noise,
        edm_sigmas(256),
        stream=stream_id("denoise-cli", 0),
        sampler="sde",
        progress=False,
    )
    assert np.allclose(x0, noise.decode(want.numpy()), atol=1e-5)
    base = ["denoise", "--run", run, "--input", str(tmp_path / "y.npy")]
    assert np.array_equal(x0, _cli(tmp_path, base))
    assert np.array_equal(x0, _cli(tmp_path, [*base, "--noise-cov", str(whitened_run / "cov.npy")]))
    with pytest.raises(SfbdError, match="denoises only that noise: leave out --sigma"):
        model.denoise(y, 0.3)
    with pytest.raises(SfbdError, match="leave out --noise-cov"):
        model.denoise(y, noise_cov=2 * COV)


def test_coloured_inputs_to_a_white_run_are_topped_up(gauss_run):
    from sfbd.noise import ColouredGaussian

    model = sfbd.load(str(gauss_run), device="cpu")
    y = np.random.default_rng(6).standard_normal((15, 2)).astype(np.float32)
    noise = api.noise_model(noise_cov=COV, run=model.noise, seed=0)
    assert isinstance(noise, ColouredGaussian) and noise.method == "top-up"
    x = model.denoise(y, noise_cov=COV)
    topped = noise.encode_noisy(y, np.arange(15))  # white at sqrt(lambda_max)
    assert np.array_equal(x, model.denoise(topped, float(np.sqrt(np.linalg.eigvalsh(COV).max()))))
    with pytest.raises(SfbdError, match="not both"):
        model.denoise(y, 0.3, noise_cov=COV)
    with pytest.raises(DataError, match="--noise-cov is not symmetric"):
        model.denoise(y, noise_cov=np.array([[1.0, 0.5], [0.1, 1.0]]))
