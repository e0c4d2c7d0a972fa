"""Checks of `benchmarks/committed.py`: which file each benchmark writes, the command it records.

Every script writes its committed results file (benchmarks/*.md) only on a full run or when
``--results`` names it; a quick or partial run goes to a scratch folder under runs/.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/<name>.py imported as a module (its siblings importable, as when run)."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def committed(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _load("committed", monkeypatch)


def test_repo_is_the_scripts_repository(committed: ModuleType) -> None:
    assert committed.REPO == ROOT
    assert (committed.REPO / "benchmarks" / "RESULTS.md").is_file()


def test_results_path_rule(committed: ModuleType, tmp_path: Path) -> None:
    scratch = Path("runs") / "x" / "X.md"
    given = tmp_path / "mine.md"
    # --results wins over everything, full run or not
    for full in (True, False):
        assert committed.results_path(str(given), "benchmarks/X.md", scratch, full) == given
    # a full run writes the committed file of this repository, wherever it was started from
    assert (
        committed.results_path(None, "benchmarks/X.md", scratch, True) == ROOT / "benchmarks/X.md"
    )
    # anything else writes the scratch file
    assert committed.results_path(None, "benchmarks/X.md", scratch, False) == scratch


def test_display_path(committed: ModuleType, tmp_path: Path) -> None:
    assert committed.display_path(ROOT / "benchmarks" / "RESULTS.md") == "benchmarks/RESULTS.md"
    assert committed.display_path(ROOT) == "."
    assert committed.display_path("runs/quality/full") == "runs/quality/full"  # relative: kept
    outside = tmp_path / "scratch" / "out"
    assert committed.display_path(outside) == ".../out"
    assert str(tmp_path) not in committed.display_path(outside)


def test_command_line_has_no_machine_paths(committed: ModuleType, tmp_path: Path) -> None:
    script = str(BENCH / "quality.py")
    assert committed.command_line(script, []) == "python benchmarks/quality.py"
    argv = ["--quick", "--out", str(tmp_path / "r"), f"--results={ROOT / 'runs' / 'a b.md'}"]
    line = committed.command_line(script, argv)
    assert line == "python benchmarks/quality.py --quick --out .../r '--results=runs/a b.md'"
    assert str(tmp_path) not in line and str(ROOT) not in line


def _ns(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def test_quality_writes_committed_results_only_for_the_full_suite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quality = _load("quality", monkeypatch)
    base = {"out": "runs/quality", "results": None, "quick": False, "seeds": None}
    assert quality.results_file(_ns(**base)) == ROOT / "benchmarks" / "RESULTS.md"
    quick = quality.results_file(_ns(**{**base, "quick": True}))
    assert quick == Path("runs/quality/quick/RESULTS.md")
    assert quality.results_file(_ns(**{**base, "seeds": 1})) == Path("runs/quality/full/RESULTS.md")
    assert quality.results_file(_ns(**{**base, "quick": True, "results": "a.md"})) == Path("a.md")
    only = _ns(**{**base, "only": ["samplers"]})  # one section: a partial run
    assert quality.results_file(only) == Path("runs/quality/full/RESULTS.md")
    assert quality.results_file(_ns(**{**base, "only": None})) == ROOT / "benchmarks" / "RESULTS.md"


@pytest.mark.parametrize(
    ("name", "file", "partial", "scratch"),
    [
        (
            "bf16_sampling",
            "BF16_SAMPLING.md",
            ["--n", "200"],
            "runs/bf16-sampling/BF16_SAMPLING.md",
        ),
        (
            "bf16_sampling",
            "BF16_SAMPLING.md",
            ["--seeds", "2"],
            "runs/bf16-sampling/BF16_SAMPLING.md",
        ),
        ("soak", "SOAK.md", ["--minutes", "1"], "runs/soak/SOAK.md"),
        ("soak", "SOAK.md", ["--seed", "3"], "runs/soak/SOAK.md"),
        (
            "ambient_weighting",
            "AMBIENT_WEIGHTING.md",
            ["--seeds", "1"],
            "runs/ambient_weighting/AMBIENT_WEIGHTING.md",
        ),
    ],
)
def test_scripts_write_committed_results_only_for_a_full_run(
    monkeypatch: pytest.MonkeyPatch, name: str, file: str, partial: list[str], scratch: str
) -> None:
    module = _load(name, monkeypatch)
    assert module.results_file(module.parse_args([])) == ROOT / "benchmarks" / file
    assert module.results_file(module.parse_args(partial)) == Path(scratch)
    given = module.parse_args([*partial, "--results", "elsewhere.md"])
    assert module.results_file(given) == Path("elsewhere.md")


def test_online_ramp_is_always_the_full_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load("online_ramp", monkeypatch)
    assert module.results_file(module.parse_args([])) == ROOT / "benchmarks" / "ONLINE_RAMP.md"
    given = module.parse_args(["--results", "r.md"])
    assert module.results_file(given) == Path("r.md")


SCRIPTS = {
    "RESULTS.md": "quality.py",
    "ONLINE_RAMP.md": "online_ramp.py",
    "BF16_SAMPLING.md": "bf16_sampling.py",
    "SOAK.md": "soak.py",
    "MEMORY.md": "memory.py",
    "AMBIENT_WEIGHTING.md": "ambient_weighting.py",
    "MMPS_FLOOR.md": "mmps_floor.py",
    "TWEEDIE_CALIBRATION.md": "tweedie_calibration.py",
}


def test_committed_results_record_portable_commands() -> None:
    """The committed files name the command as typed at the repository root."""
    assert sorted(SCRIPTS) == sorted(p.name for p in BENCH.glob("*.md"))
    for name, script in SCRIPTS.items():
        text = (BENCH / name).read_text()
        for marker in ("/work/", "/tmp/", "/home/", ".venv/bin"):
            assert marker not in text, f"{name} records a machine path ({marker})"
        assert f"`python benchmarks/{script}" in text, name
