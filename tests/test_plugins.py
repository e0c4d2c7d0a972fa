"""The plug-in contract (sfbd.plugins): a noise model and a network from files outside sfbd.

``tests/plugins/toy_noise.py`` and ``tests/plugins/toy_net.py`` register a toy noise model
(``toy-scaled``, with its key ``data.toy_level``) and a toy network (``toy-linear``, with
``model.toy_width``). With no edit anywhere in ``src/``, each is selectable from YAML and
``--set``, refused with a one-line error for a bad value, described by ``sfbd status`` and run
end to end by ``sfbd run``, ``sfbd denoise`` and ``sfbd.load``. Everything runs in
subprocesses, so this process's registries stay as sfbd made them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from run_helpers import cli_env

PLUGINS = Path(__file__).resolve().parent / "plugins"
NOISE, NET = str(PLUGINS / "toy_noise.py"), str(PLUGINS / "toy_net.py")
TINY = {
    "device": "cpu",
    "data": {"source": "ring8", "num_samples": 600, "clean_fraction": 0.1, "sigma": None},
    "train": {"pretrain_steps": 30, "update_steps": 20, "batch_size": 64, "log_every": 10},
    "sample": {"steps": 12, "batch_size": 128},
    "sfbd": {"iterations": 1},
    "eval": {"num_samples": 200},
}


def sfbd(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sfbd", *args]
    return subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the toy noise model and the toy network, configured by YAML."""
    tmp = tmp_path_factory.mktemp("plugins")
    cfg = {
        **TINY,
        "plugins": [NOISE, NET],
        "data": {**TINY["data"], "toy_level": 0.3},
        "model": {"kind": "toy-linear", "toy_width": 8},
    }
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp / "run"
    done = sfbd("run", str(path), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    return out


def test_a_run_records_and_uses_the_plugins(run_dir: Path) -> None:
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["plugins"] == [NOISE, NET]  # absolute: found again by sample, denoise, load
    assert saved["data"]["noise"] == "toy-scaled"  # data.noise: auto chose it by its key
    assert saved["data"]["toy_level"] == 0.3 and saved["model"]["toy_width"] == 8
    stages = json.loads((run_dir / "metrics.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == ["pretrain", "update"]
    assert all(np.isfinite(s["metrics"]["swd"]) for s in stages)
    meta = json.loads((run_dir / "checkpoints" / "stage-01.json").read_text())
    assert meta["denoiser"] == {"kind": "toy-linear", "config": {"shape": [2], "width": 8}}
    assert meta["meta"]["noise_model"] == {"noise": "toy-scaled", "level": 0.3}
    # E_1 is in the toy's model space z = x / 2: its spread is half the data's (ring radius 1)
    shard = next((run_dir / "denoised" / "E_01").glob("shard-*.npz"))
    with np.load(shard) as f:
        z = f["x"]
    radius = float(np.sqrt((z.astype(np.float64) ** 2).sum(axis=1)).mean())
    assert 0.3 < radius < 0.75, radius


def test_status_describes_the_plugin_noise_model_and_network(run_dir: Path) -> None:
    done = sfbd("status", "--run", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["noise"] == "toy noise, level 0.3 on x / 2" and status["finished"]
    # 2 inputs + the noise label -> 8 hidden -> 2 outputs, weights and biases
    assert status["network"] == f"toy-linear (toy_width 8), {3 * 8 + 8 + 8 * 2 + 2} parameters"
    text = sfbd("status", "--run", str(run_dir)).stdout
    assert "noise: toy noise, level 0.3 on x / 2" in text and "network: toy-linear" in text


def test_denoise_and_load_use_the_plugins(run_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal((50, 2))).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "x.npy"
    done = sfbd(
        "denoise", "--run", str(run_dir), "--input", str(tmp_path / "y.npy"), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    x = np.load(out)
    assert x.shape == y.shape and np.isfinite(x).all()
    code = (
        f"import sfbd, numpy as np; m = sfbd.load({str(run_dir)!r}); x = m.sample(64, seed=1); "
        "d = m.denoise(np.zeros((5, 2), np.float32), toy_level=0.3); "
        "print(m.config.data.noise, m.config.model.kind, x.shape, d.shape, "
        "bool(np.isfinite(x).all()))"
    )
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["toy-scaled", "toy-linear", "(64,", "2)", "(5,", "2)", "True"]


def test_plugins_are_selected_and_validated_from_set(tmp_path: Path) -> None:
    sets = [f"plugins=[{NOISE}, {NET}]", "data.source=ring8", "data.sigma=null"]
    sets += ["data.noise=toy-scaled", "data.toy_level=0.2", "model.kind=toy-linear"]
    args = ["run", "--out", str(tmp_path / "r"), "--print-config"]
    done = sfbd(*args, *[a for s in sets for a in ("--set", s)])
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(done.stdout)
    assert cfg["data"]["noise"] == "toy-scaled" and cfg["model"]["toy_width"] == 16
    for bad, message in [
        ("data.toy_level=-1", "data.toy_level must be a number > 0, got -1.0"),
        ("model.toy_width=0", "model.toy_width must be >= 1, got 0"),
        ("data.toy_level=abc", "data.toy_level must be a number, got 'abc'"),
        ("model.toy_wdth=3", "did you mean 'model.toy_width'?"),
    ]:
        done = sfbd(*args, *[a for s in [*sets, bad] for a in ("--set", s)])
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and message in lines[0], done.stderr
    # the toy's key and the default data.sigma are two noise models: refused, naming both
    sets[2] = "data.sigma=0.35"
    del sets[3]
    done = sfbd(*args, *[a for s in sets for a in ("--set", s)])
    assert done.returncode != 0
    assert "data.sigma and data.toy_level describe two noise models" in done.stderr


def test_a_missing_plugin_file_is_a_one_line_error(tmp_path: Path) -> None:
    done = sfbd(
        "run", "--out", str(tmp_path / "r"), "--set", "plugins=[nowhere/toy.py]",
        "--set", "data.source=ring8", "--print-config",
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert "plugins: file '" in line and "/nowhere/toy.py' not found" in line, line


def test_without_the_plugins_the_names_are_unknown() -> None:
    done = python(
        "import sfbd\nfrom sfbd.errors import ConfigError\n"
        "try:\n    sfbd.load_config(overrides=['data.source=ring8', 'model.kind=toy-linear'])\n"
        "except ConfigError as e:\n    print(e)\n"
    )
    assert "model.kind must be one of" in done.stdout and "toy-linear" not in done.stdout
