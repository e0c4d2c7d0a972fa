"""Checks of `benchmarks/quality.py` and its sections (benchmarks/suite/): their helpers, the full
suite's plan, the --only names, and `--quick` end to end (which must leave the committed
benchmarks/RESULTS.md and its figures untouched).

The end-to-end `--quick` run takes about 3 minutes on 2 CPU cores; the other tests a few seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from sfbd.config import dump_yaml, load_config
from sfbd.data import load_problem
from sfbd.run.runner import plan

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture()
def quality(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/quality.py imported as a module (it imports benchmarks/suite/)."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("quality_under_test", BENCH / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SUITE_MODULES = (
    "settings",
    "data",
    "methods",
    "samplers",
    "fractions",
    "sigmas",
    "pretrain",
    "validation",
)


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The modules of benchmarks/suite/ (the sections and what they share), by short name."""
    monkeypatch.syspath_prepend(str(BENCH))
    yield SimpleNamespace(
        **{name: importlib.import_module(f"suite.{name}") for name in SUITE_MODULES}
    )
    for name in [m for m in sys.modules if m == "suite" or m.startswith("suite.")]:
        sys.modules.pop(name)


# --------------------------------------------------------------------------- helpers


def test_gaussian_w2_closed_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import gaussian_steps as gs

    # 1-D: W2 = sqrt((m1 - m2)^2 + (s1 - s2)^2)
    w = gs.gaussian_w2(np.array([0.5]), np.array([[4.0]]), np.array([-0.5]), np.array([[1.0]]))
    assert w == pytest.approx(math.sqrt(1.0 + 1.0))
    # commuting (diagonal) covariances: sum over coordinates
    c1, c2 = np.diag([1.0, 9.0]), np.diag([4.0, 1.0])
    w = gs.gaussian_w2(np.zeros(2), c1, np.zeros(2), c2)
    assert w == pytest.approx(math.sqrt((1 - 2) ** 2 + (3 - 1) ** 2))
    # symmetric, zero on equal arguments, and invariant under a common rotation
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 3))
    s1, s2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    m1, m2 = rng.standard_normal((2, 3))
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    w = gs.gaussian_w2(m1, s1, m2, s2)
    assert w == pytest.approx(gs.gaussian_w2(m2, s2, m1, s1), rel=1e-6)
    assert w == pytest.approx(gs.gaussian_w2(q @ m1, q @ s1 @ q.T, q @ m2, q @ s2 @ q.T), rel=1e-6)
    assert gs.gaussian_w2(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-6)
    e = gs.errors(gs.MU, gs.COV)
    assert e == pytest.approx(
        {"mean_err": 0.0, "cov_err": 0.0, "rel_cov_err": 0.0, "w2": 0.0}, abs=1e-6
    )


def test_digits_split_is_disjoint_and_scaled(bench: SimpleNamespace) -> None:
    from sklearn.datasets import load_digits

    labels = load_digits().target
    a, b = bench.data.digits_split_indices(labels)
    assert len(np.intersect1d(a, b)) == 0
    assert len(a) == len(labels) - len(labels) // 3
    assert set(labels[b].tolist()) == set(bench.data.DIGITS_PRETRAIN_CLASSES)
    assert len(b) > 200  # about half of the held-back third
    problem, similar = bench.data.digits_split()
    assert problem.shape == (len(a), 1, 8, 8) and similar.shape == (len(b), 1, 8, 8)
    for x in (problem, similar):
        assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0


def test_ring8_similar_lacks_two_modes(bench: SimpleNamespace) -> None:
    x = bench.data.ring8_similar(3000)
    assert x.shape == (3000, 2) and x.dtype == np.float32
    assert np.median(np.linalg.norm(x, axis=1)) == pytest.approx(1.0, abs=0.05)
    mode = np.rint(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)).astype(int) % 8
    counts = np.bincount(mode, minlength=8)
    assert set(np.flatnonzero(counts)) == set(bench.data.RING8_MODES) == {0, 1, 2, 3, 4, 5}
    assert counts[list(bench.data.RING8_MODES)].min() > 0.1 * len(x)


class PlanRunner:
    """Stands in for suite.runner.Runner: validates each configuration, returns made-up metrics."""

    def __init__(self, common: dict[str, str], out: Path) -> None:
        self.common, self.out = common, out
        self.configs: dict[str, tuple[str, object]] = {}
        self.runs: dict[Path, object] = {}

    def __call__(self, label: str, overrides: dict[str, str]) -> tuple[list[dict], Path]:
        merged = {**self.common, **overrides}
        cfg = load_config(overrides=[f"{k}={v}" for k, v in merged.items()])
        digest = hashlib.sha1(dump_yaml(cfg).encode()).hexdigest()[:10]
        self.configs.setdefault(digest, (label, cfg))
        stages = []
        for s in plan(cfg):
            metrics = {"swd": 0.1 / (1 + s.iteration), "mmd": 1e-3}
            if s.iteration > 0 and s.name in ("update", "online"):
                metrics["denoise_psnr"] = 20.0
                metrics["denoise_nfe"] = 1000 if s.denoises else 300
            stages.append({"iteration": s.iteration, "stage": s.name, "metrics": metrics})
            stages[-1]["seconds"] = 1.0
        return stages, self.out / digest


def test_full_suite_plan_is_valid(bench: SimpleNamespace, tmp_path: Path) -> None:
    """Every configuration of the full suite (but section 5, which reads checkpoints) validates,
    and its tables and sentences are made, without training anything."""
    suite = bench.settings.SUITES["full"]
    files = bench.data.make_data(tmp_path)
    runner = PlanRunner(suite.common, tmp_path / "runs")
    res, _ = bench.methods.section_methods(runner, suite, suite.seeds, suite.image_seeds, files)
    assert len(res["digits"]["sfbd"]) == 3  # digits at 3 seeds
    t1, t2, s1 = bench.methods.methods_tables(res)
    assert "| digits | sfbd k=3 |" in t1 and "| digits | online-sfbd k=3 |" in t1
    assert "datasets" in s1 and "Online SFBD's final mean swd is" in s1
    std = {ds: 0.01 for ds in res}
    t, data, s = bench.samplers.section_samplers(runner, suite, std["ring8"])
    assert [(d["sampler"], d["steps"]) for d in data] == [
        ("heun", 18),
        ("heun", 32),
        ("heun", 64),
        ("sde", 64),
        ("sde", 256),
    ]
    bench.fractions.section_fractions(runner, suite)
    bench.sigmas.section_sigmas(runner, suite)
    n_before = len(runner.configs)
    t, pre, _, sentences = bench.pretrain.section_pretrain(runner, suite, files, std)
    assert set(pre) == {"ring8", "digits"} and len(sentences) == 2
    assert len(runner.configs) == n_before + 4  # 2 new runs per set; the rest is section 1's
    pretrain_cfgs = [c for _, c in runner.configs.values() if c.data.pretrain is not None]
    assert {Path(c.data.pretrain).name for c in pretrain_cfgs} == {
        "ring8-similar.npy",
        "digits-similar.npy",
    }
    assert all(c.data.clean_fraction == 0 for c in pretrain_cfgs)
    assert {c.method for c in pretrain_cfgs} == {"sfbd", "clean-only"}
    for cfg in pretrain_cfgs:  # the data load: no clean samples, a similar set of the same shape
        prob = load_problem(cfg)
        assert len(prob.clean) == 0 and prob.pretrain is not None and len(prob.pretrain) > 200
        assert prob.pretrain.shape[1:] == prob.noisy.shape[1:]
    digits = [c for _, c in runner.configs.values() if str(c.data.source).endswith("digits.npy")]
    assert len(digits) == 3 * 5 + 2  # 3 seeds of 5 methods, 2 pretraining runs


def test_only_names(quality: ModuleType) -> None:
    """Every section and subsection of 7 has an --only name; numbers and aliases select the same."""
    every = quality.selection(None)
    assert every == {
        "methods",
        "samplers",
        "fractions",
        "sigmas",
        "gaussian",
        "pretrain",
        "noise-models",
        "per-sample",
        "coloured",
        "photon",
        "noise-gaussian",
        "validation",
        "linear",
    }
    assert quality.selection(["9"]) == quality.selection(["masks"]) == {"linear"}
    assert quality.selection(["samplers"]) == {"samplers"}
    assert quality.selection(["8"]) == quality.selection(["ambient"]) == {"validation"}
    assert quality.selection(["2,clean-fraction", "4"]) == {"samplers", "fractions", "sigmas"}
    assert (
        quality.selection(["noise-models"])
        == quality.selection(["7"])
        == {
            "noise-models",
            "per-sample",
            "coloured",
            "photon",
            "noise-gaussian",
        }
    )
    assert quality.selection(["photon,7a"]) == {"noise-models", "photon", "per-sample"}
    with pytest.raises(ValueError, match="unknown section 'nope'"):
        quality.selection(["methods,nope"])
    args = quality.parse_args(["--only", "gaussian", "--only", "5"])
    assert args.selected == {"gaussian"}
    assert quality.results_file(args) == Path("runs/quality/full/RESULTS.md")  # never committed
    with pytest.raises(SystemExit):
        quality.parse_args(["--only", "sections"])


class EntryRunner(PlanRunner):
    """PlanRunner with the signature and counters of suite.runner.Runner."""

    def __init__(self, out: Path, common: dict[str, str]) -> None:
        super().__init__(common, out)
        self.ran: list[tuple[str, float]] = []
        self.reused = 0


def test_only_runs_the_named_sections(
    quality: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--quick --only samplers,fractions` through main(), without training: only sections 2
    and 3 are written, section 2 says that section 1 did not run, and the results and the
    sweeps figure go to the scratch folder."""
    monkeypatch.setattr(quality, "Runner", EntryRunner)
    out = tmp_path / "q"
    quality.main(["--quick", "--only", "samplers,fractions", "--out", str(out)])
    text = (out / "quick" / "RESULTS.md").read_text()
    assert "## 2. Backward sampler" in text and "## 3. Clean fraction (ring8)" in text
    for absent in ("## 1.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert absent not in text, absent
    assert "- sections run (--only): samplers, fractions" in text
    assert "section 1 did not run (--only), so there is no seed spread" in text
    assert "(quality-sweeps.png)" in text and (out / "quick" / "quality-sweeps.png").is_file()
    summary = json.loads((out / "quick" / "summary.json").read_text())
    assert {"samplers", "clean_fraction"} <= set(summary)
    assert not {"methods", "sigma", "gaussian", "pretrain", "noise_models"} & set(summary)
    assert list(summary["section_seconds"]) == ["2 samplers", "3 clean fraction"]


# --------------------------------------------------------------------------- end to end


def _snapshot(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under ``folder`` (bytecode caches aside)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_quality_quick(tmp_path: Path) -> None:
    """`python benchmarks/quality.py --quick` as a user types it, in a copy of the repository's
    benchmarks/ (with its committed results): the quick suite's results and figures land under
    runs/quality/quick/, and no committed file changes, in the copy or in the repository."""
    repo = tmp_path / "repo"
    shutil.copytree(BENCH, repo / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    committed_before, real_before = _snapshot(repo / "benchmarks"), _snapshot(BENCH)
    assert "RESULTS.md" in committed_before and "quality-swd.png" in committed_before
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "benchmarks/quality.py", "--quick"]  # no --out, no --results
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _snapshot(repo / "benchmarks") == committed_before, "quick run changed benchmarks/"
    assert _snapshot(BENCH) == real_before, "quick run changed the repository's benchmarks/"

    quick = repo / "runs" / "quality" / "quick"
    results = quick / "RESULTS.md"
    assert results.is_file()
    text = results.read_text()
    for header in (
        "| dataset | method | swd | mmd | denoise_psnr (dB) |",
        "| dataset | swd clean-only | swd sfbd (final) | swd oracle | gap closed |",
        "| sampler | sample.steps | final swd |",
        "| heun | 18 |",
        "| heun | 32 |",
        "| heun | 64 |",
        "| sde | 64 |",
        "| clean fraction | clean-only swd | sfbd final swd |",
        "| τ (data.sigma) | noisy-only swd (0% clean) | sfbd final swd (2% clean) |",
        "## 5. Exact distance to the truth",
        "| method | ‖μ − μ*‖ | ‖Σ − Σ*‖_F / ‖Σ*‖_F | W2 to the truth |",
        "| sfbd k=4 |",
        "| online-sfbd k=4 |",
        "| ring8 | online-sfbd k=2 |",
        "## 6. Pretraining on a similar dataset",
        "| dataset | method (seed 0) | swd | mmd | denoise_psnr (dB) |",
        "| ring8 | sfbd, pretrained on the similar set (0 clean) k=2 |",
        "| ring8 | pretrain-only (similar set, 0 clean) |",
        "## 7. Noise models",
        "### a. Per-sample levels (ring8)",
        "| SFBD, per-sample levels (data.sigma_range) |",
        "| SFBD, whitened (data.noise_cov) |",
        "| photons at full scale | noise rms (data scale) | Anscombe bias |",
        "| coloured, whitened |",
        "## 9. Masked and blurred data",
        "| method | final swd | gap closed | E_K RMSE |",
        "| SFBD, naive white guess |",
    ):
        assert header in text, header
    for word in ("oracle", "clean-only", "noisy-only", "sfbd", "ring8", "gmm8", "command"):
        assert word in text, word
    # one sentence per section, written from the numbers
    for start in (
        "SFBD's final mean swd is",
        "Final swd ranges from",
        "SFBD's final swd is below clean-only's at",
        "SFBD with 2% clean samples ends below noisy-only at",
        "With the exact denoiser, SFBD's W2",
        "Online SFBD's final mean swd is",
        "Online SFBD's W2 is",
        "- ring8: SFBD pretrained on the similar set",
    ):
        assert start in text, start
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE), "NaN in the results"
    for name in (
        "quality-swd.png",
        "quality-sweeps.png",
        "quality-ring8-samples.png",
        "quality-gaussian.png",
        "quality-pretrain.png",
        "quality-pretrain-ring8-samples.png",
    ):
        png = quick / name
        assert png.is_file() and png.stat().st_size > 1000, name
        assert f"({name})" in text, name

    # the header records the command as typed, with repo-relative paths only
    assert "- command: `python benchmarks/quality.py --quick`" in text
    assert "from `runs/quality/quick`" in text
    assert str(tmp_path) not in text and sys.executable not in text

    summary = json.loads((quick / "summary.json").read_text())
    ring8 = summary["methods"]["ring8"]
    # training on the clean originals must beat training on the noisy samples as if clean
    assert ring8["oracle"][0] < ring8["noisy-only"][0], ring8
    assert len(summary["sfbd_swd_per_iteration"]["ring8"][0]) == 3  # k = 0, 1, 2

    # section 2: heun at 18/32/64 steps and sde at 64, finite metrics and positive times
    samplers = summary["samplers"]
    assert {(d["sampler"], d["steps"]) for d in samplers} >= {
        ("heun", 18),
        ("heun", 32),
        ("heun", 64),
        ("sde", 64),
    }
    for d in samplers:
        assert 0 < d["swd"] < 1 and math.isfinite(d["mmd"]) and d["seconds"] > 0, d

    # section 5: exact distances; SFBD's fitted Gaussian approaches the truth over k
    gauss = summary["gaussian"]
    sfbd = gauss["sfbd"][0]
    assert len(sfbd) == 5  # k = 0..4
    for errs in [*sfbd, *(gauss[m][0][-1] for m in ("oracle", "clean-only", "noisy-only"))]:
        assert all(math.isfinite(v) and v >= 0 for v in errs.values()), errs
    assert sfbd[-1]["w2"] < 0.5 * sfbd[0]["w2"], sfbd
    assert sfbd[-1]["rel_cov_err"] < sfbd[0]["rel_cov_err"], sfbd
    assert sfbd[-1]["w2"] < gauss["noisy-only"][0][-1]["w2"]  # noisy-only fits Σ + τ² I
    assert gauss["oracle"][0][-1]["w2"] < gauss["clean-only"][0][-1]["w2"]  # 98,000 vs 78 fits
    assert sfbd[0]["w2"] == pytest.approx(gauss["clean-only"][0][-1]["w2"])  # both fit the clean

    # section 6: per-k metrics of SFBD pretrained on the similar set, and its baselines
    pre = summary["pretrain"]["ring8"]
    assert set(pre) == {
        "sfbd+pretrain",
        "sfbd",
        "pretrain-only",
        "clean-only",
        "noisy-only",
        "oracle",
    }
    assert len(pre["sfbd+pretrain"]) == 3 and len(pre["sfbd"]) == 3
    for stages in pre.values():
        for m in stages:
            assert 0 < m["swd"] < 1 and math.isfinite(m["mmd"]), m
    assert all(math.isfinite(m["denoise_psnr"]) for m in pre["sfbd+pretrain"][1:])
    # the clean-subset runs are section 1's (reused, same numbers)
    assert pre["sfbd"][-1]["swd"] == summary["sfbd_swd_per_iteration"]["ring8"][0][-1]


def _stages(values: list[tuple[float, float, float]]) -> list[dict]:
    keys = ("val_noisy", "swd", "val_clean")
    return [
        {"iteration": k, "metrics": dict(zip(keys, v, strict=True))} for k, v in enumerate(values)
    ]


def test_validation_agreement_on_made_up_stages(bench: SimpleNamespace) -> None:
    """Section 8's rank agreement: Kendall's tau and the best-stage match, on numbers whose
    answer is known."""
    agree = bench.validation.agreement
    same = {"a": [_stages([(3, 30, 3), (2, 20, 2), (1, 10, 1)])], "b": [_stages([(4, 40, 4)])]}
    a = agree(same)  # every ranking identical
    assert a["kendall_val_noisy_swd"] == pytest.approx(1.0) and a["pairs"] == 4
    assert a["kendall_val_noisy_val_clean"] == pytest.approx(1.0) and a["best_stage_agrees"] == 1
    flipped = {"a": [_stages([(1, 30, 1), (2, 20, 2), (3, 10, 3)])]}
    f = agree(flipped)  # val_noisy reversed against swd, but equal to val_clean
    assert f["kendall_val_noisy_swd"] == pytest.approx(-1.0)
    assert f["kendall_val_noisy_val_clean"] == pytest.approx(1.0)
    assert f["best_stage_agrees"] == 0.0


def test_linear_mean_errors_remove_the_spread_of_a_finite_average(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Section 9's posterior-mean RMSE: draws x_j = m + s z_j around a mean m that is off the
    truth by 0.1 per entry. The average of n draws is off by sqrt(0.1^2 + s^2 / n); the
    debiased value recovers 0.1, whatever s and n."""
    monkeypatch.syspath_prepend(str(BENCH))
    from suite.linear import mean_errors

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(2000, 64))
    for s, n in ((0.3, 8), (0.5, 4), (0.0, 2)):
        x = truth + 0.1 + s * rng.normal(size=(n, *truth.shape))
        averaged, debiased = mean_errors(x.sum(0), (x**2).sum(0), n, truth)
        assert averaged == pytest.approx(math.sqrt(0.01 + s**2 / n), rel=0.02)
        assert debiased == pytest.approx(0.1, rel=0.05)  # the averages: 0.14 to 0.27
    for name in [m for m in sys.modules if m == "suite" or m.startswith("suite.")]:
        sys.modules.pop(name)


def test_linear_denoising_mse_is_the_closed_form_for_gaussian_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Section 9's held-out denoising MSE: for x ~ N(0, l I) the exact denoiser
    D(y, s) = l / (l + s^2) y has E|D - x|^2 = l s^2 / (l + s^2) per entry; a denoiser that
    shrinks too little (the identity) scores s^2, worse at every level."""
    import torch

    monkeypatch.syspath_prepend(str(BENCH))
    from suite.linear import DENOISE_SIGMAS, denoising_mse

    lam = 0.3
    x = np.sqrt(lam) * np.random.default_rng(0).normal(size=(4000, 16))

    def exact(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return lam / (lam + s[:, None] ** 2) * y

    want = np.mean([lam * s**2 / (lam + s**2) for s in DENOISE_SIGMAS])
    assert denoising_mse(exact, x) == pytest.approx(want, rel=0.02)
    identity = denoising_mse(lambda y, s: y, x)
    assert identity == pytest.approx(np.mean([s**2 for s in DENOISE_SIGMAS]), rel=0.02)
    assert identity > 1.5 * want
    for name in [m for m in sys.modules if m == "suite" or m.startswith("suite.")]:
        sys.modules.pop(name)
