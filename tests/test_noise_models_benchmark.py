"""Checks of section 7 of the quality benchmark (benchmarks/suite/noise/, which
benchmarks/noise_models.py runs alone): its closed forms, the Anscombe error it reports, the
plan of its ring8 subsections (every run's configuration valid, the naive guesses on the very
noisy files the right model sees), and noise_models.py's --only names. The section runs end to
end in tests/test_quality_benchmark.py's --quick run."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_quality_benchmark import BENCH, PlanRunner

from sfbd.config import load_config
from sfbd.data import load_problem

PARTS = ("common", "per_sample", "coloured", "photon", "gaussian")


@pytest.fixture()
def nm(monkeypatch: pytest.MonkeyPatch):
    """benchmarks/suite/noise/'s modules by short name, and the noise_models.py entry point."""
    monkeypatch.syspath_prepend(str(BENCH))
    modules = {name: importlib.import_module(f"suite.noise.{name}") for name in PARTS}
    yield SimpleNamespace(**modules, entry=importlib.import_module("noise_models"))
    for name in [m for m in sys.modules if m.split(".")[0] in ("suite", "noise_models")]:
        sys.modules.pop(name)


def test_w2_closed_form(nm):
    a = np.diag([1.0, 4.0])
    assert nm.gaussian.w2(np.zeros(2), a, np.zeros(2), a) == pytest.approx(0.0, abs=1e-7)
    # diagonal covariances: W2^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    b = np.diag([4.0, 1.0])
    w = nm.gaussian.w2(np.array([1.0, 0.0]), a, np.zeros(2), b)
    assert w == pytest.approx(np.sqrt(1.0 + 1.0 + 1.0))


def test_anscombe_error_is_small_at_high_counts_and_grows_at_low(nm):
    bias_hi, std_hi = nm.photon.anscombe_error(1.0 / 1000, n=50_000)
    bias_lo, std_lo = nm.photon.anscombe_error(1.0 / 3, n=50_000)
    assert abs(bias_hi) < 0.02 and abs(std_hi - 1.0) < 0.02
    assert abs(bias_lo) > 0.1 or abs(std_lo - 1.0) > 0.1  # below a few photons it fails


def test_gap_closed(nm):
    assert nm.common.gap(0.2, 0.1, 0.15) == "0.50"
    assert nm.common.gap(0.2, 0.1, 0.1) == "1.00"
    assert nm.common.gap(0.2, 0.2, 0.1) == "–"


def test_ring8_plan_is_valid_and_naive_runs_see_the_same_noisy_data(nm, tmp_path: Path):
    runner = PlanRunner({"device": "cpu"}, tmp_path)
    vector = {"data.num_samples": "2000", "model.hidden": "16", "sfbd.iterations": "2"}
    files = nm.common.make_files(tmp_path, n_gauss=1000)
    t_ps, res = nm.per_sample.section_per_sample(runner, vector, 1, tmp_path)
    t_col, _ = nm.coloured.section_coloured(runner, vector, 1, tmp_path, files)
    t_ph, ph = nm.photon.section_photon(runner, vector, (30,), tmp_path, files)
    assert "| SFBD, per-sample levels (data.sigma_range) |" in t_ps
    assert "| SFBD, top-up to white (data.noise_method: top-up) |" in t_col
    assert len(ph["rows"]) == 1 and ph["rows"][0]["photons"] == 30
    cfgs = {label: cfg for label, cfg in runner.configs.values()}
    naive = cfgs["ps-s0-naive"]
    right = cfgs["ps-s0-sfbd"]
    assert naive.data.source is None and right.data.sigma_range == [0.1, 0.8]
    prob = load_problem(right)
    assert np.array_equal(np.load(naive.data.noisy), prob.noisy)  # the same noisy file
    assert naive.data.sigma == pytest.approx(float(prob.corruption.sigma.mean()), rel=1e-5)
    # the coloured naive guess sees the raw noisy data, not the whitened one
    col = load_problem(cfgs["col-s0-whiten"])
    assert np.allclose(np.load(cfgs["col-s0-naive"].data.noisy), col.decode(col.noisy))
    ph_cfg = cfgs["ph-30-sfbd"]
    assert ph_cfg.data.noise == "poisson-gaussian" and ph_cfg.data.gain == pytest.approx(1 / 30)
    assert {cfgs["ps-s0-clean-only"].method, cfgs["ps-s0-oracle"].method} == {
        "clean-only",
        "oracle",
    }
    load_config(overrides=[f"data.source={files['ring8_unit']}"])  # a valid source


def test_noise_models_only_names(nm) -> None:
    """noise_models.py alone: --only names its subsections (or 7a-7d); a partial run never
    writes the committed file."""
    assert nm.entry.parse_args([]).parts == ("per-sample", "coloured", "photon", "noise-gaussian")
    args = nm.entry.parse_args(["--only", "photon,7a"])
    assert args.parts == ("per-sample", "photon")  # in the section's order
    assert nm.entry.results_file(args) == Path("runs/noise_models/full/NOISE_MODELS.md")
    with pytest.raises(SystemExit):
        nm.entry.parse_args(["--only", "gaussian"])  # quality.py's section 5, not 7d
