"""The presets in configs/ load and resolve (tests/test_docs.py checks their documentation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sfbd.cli.demo import DEMO
from sfbd.config import load_config
from sfbd.run.runner import Run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TEMPLATE = ROOT / "configs" / "user-files.yaml"
PAPER = [
    ROOT / "configs" / n
    for n in ("cifar10-4pct.yaml", "cifar10-10pct.yaml", "celeba64.yaml", "cifar10-ambient.yaml")
]
PRESETS = [p for p in CONFIGS if p != TEMPLATE and p not in PAPER]  # CPU presets


def test_presets_exist():
    names = {p.name for p in CONFIGS}
    assert {"ring8.yaml", "digits.yaml", "gaussian.yaml", "user-files.yaml"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_loads_and_resolves(path, tmp_path):
    cfg = load_config(path)
    # max_stages=0 loads the data and builds the model (shape checks) without training.
    assert Run(cfg, tmp_path / "run", progress=False).execute(max_stages=0) == []


def test_ring8_preset_is_the_demo():
    assert load_config(ROOT / "configs" / "ring8.yaml") == load_config(base=DEMO)


def test_user_template_validates_with_overrides(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for name in ("noisy", "clean", "heldout"):
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], rng.standard_normal((40, 2)).astype(np.float32))
    overrides = [
        f"data.noisy={files['noisy']}",
        f"data.clean={files['clean']}",
        f"eval.reference={files['heldout']}",
        "data.sigma=0.3",
    ]
    cfg = load_config(TEMPLATE, overrides)
    assert cfg.data.source is None
    assert (cfg.data.noisy, cfg.data.clean) == (str(files["noisy"]), str(files["clean"]))
    assert cfg.eval.reference == str(files["heldout"])
    assert cfg.data.sigma == 0.3
    assert Run(cfg, tmp_path / "run", progress=False).execute(max_stages=0) == []
    # The template's own paths are placeholders that do not exist.
    raw = yaml.safe_load(TEMPLATE.read_text())
    for value in (raw["data"]["noisy"], raw["data"]["clean"], raw["eval"]["reference"]):
        assert not (ROOT / value).exists()


def test_paper_presets_dry_run(capsys):
    from sfbd.cli.main import main

    results = {}
    for path in PAPER:
        assert main(["run", str(path), "--out", "unused", "--dry-run"]) == 0
        results[path.name] = json.loads(capsys.readouterr().out)
    cifar = results["cifar10-4pct.yaml"]
    assert cifar["model"]["parameters"] == 55_733_891  # EDM's DDPM++ CIFAR-10 network
    assert cifar["data_shape"] == [3, 32, 32]
    c = cifar["config"]
    assert (c["train"]["batch_size"], c["train"]["lr"], c["model"]["dropout"]) == (512, 1e-3, 0.13)
    assert (c["sample"]["steps"], c["train"]["augment"], c["data"]["sigma"]) == (18, 0.12, 0.5853)
    assert results["cifar10-10pct.yaml"]["config"]["data"]["clean_fraction"] == 0.1
    amb = results["cifar10-ambient.yaml"]  # Daras et al.'s setting: tau 0.2, 10% clean
    ca = amb["config"]
    assert (ca["method"], ca["data"]["sigma"]) == ("ambient", 0.2)
    assert ca["data"]["clean_fraction"] == 0.1
    assert amb["model"]["parameters"] == 55_733_891 - 9 * 128  # DDPM++ without augment labels
    assert ca["train"]["augment"] == 0 and ca["model"] == c["model"]  # cifar10-4pct's network
    assert [s["steps"] for s in amb["stages"]] == [200_000]  # cifar10-10pct's whole budget
    celeba = results["celeba64.yaml"]
    cc = celeba["config"]
    assert celeba["data_shape"] == [3, 64, 64]
    assert celeba["model"]["config"]["embedding_type"] == "fourier"
    assert celeba["model"]["config"]["resample_filter"] == [1, 3, 3, 1]
    assert celeba["model"]["config"]["channel_mult_noise"] == 2
    assert (cc["train"]["batch_size"], cc["train"]["lr"], cc["model"]["dropout"]) == (
        256,
        2e-4,
        0.05,
    )
    assert (cc["sample"]["steps"], cc["train"]["augment"], cc["data"]["sigma"]) == (
        40,
        0.15,
        1.3824,
    )
    assert not Path("unused").exists()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_method_comment_lists_every_method(path):
    """Where a preset's ``method:`` line lists the choices, it lists every registered method
    (the user-mode template may say that oracle needs benchmark mode)."""
    from sfbd.methods import METHODS

    line = next(li for li in path.read_text().splitlines() if li.startswith("method:"))
    if "#" not in line:
        return  # no list to keep up to date
    listed = {w.strip("() :,") for w in line.split("#", 1)[1].split("|")}
    listed = {w.split()[0] for w in listed if w}
    assert set(METHODS) <= listed | {"oracle"} if path == TEMPLATE else set(METHODS) <= listed
