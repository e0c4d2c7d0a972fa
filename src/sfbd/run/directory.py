"""The run directory: its paths, the saved configuration, metrics.json, the manifest, and
what is invalidated when an earlier stage's outputs cannot be trusted.

Layout (a contract, see docs/run-directory.md): ``config.yaml``, ``metrics.json`` (an entry
per finished stage, written last and atomically: an entry there means the stage is complete),
``manifest.json`` (sizes and checksums of each finished stage's files), ``checkpoints/stage-KK``
and ``checkpoints/step`` (safetensors + JSON), ``denoised/E_KK/shard-*.npz``, ``samples/``,
pictures, ``log.jsonl``, ``data/`` (the run's stored training arrays, e.g. ``noisy.npy``
with its record ``noisy.json``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sfbd.config import Config, dump_yaml, load_config, to_dict
from sfbd.data.store import STORED  # DIR/data/NAME.npy + NAME.json: stored training arrays
from sfbd.errors import SfbdError
from sfbd.io.atomic import atomic_write_text
from sfbd.io.manifest import Manifest
from sfbd.methods.base import Stage

OUTPUTS = (
    "config.yaml",
    "metrics.json",
    "metrics.png",
    "stages.png",
    "checkpoints",
    "denoised",
    "samples",
    "log.jsonl",
    "tensorboard",
    "fid_ref.npz",
    "fd_dinov2_ref.npz",
    "manifest.json",
)
STEP_CHECKPOINT = "step"  # checkpoints/step.{safetensors,json}: the latest mid-stage state


def stage_stem(out: Path, k: int) -> Path:
    """``DIR/checkpoints/stage-KK``: stage k's checkpoint (add .json / .safetensors)."""
    return Path(out) / "checkpoints" / f"stage-{k:02d}"


def step_stem(out: Path) -> Path:
    """``DIR/checkpoints/step``: the latest mid-stage step checkpoint."""
    return Path(out) / "checkpoints" / STEP_CHECKPOINT


def denoised_dir(out: Path, k: int) -> Path:
    """``DIR/denoised/E_KK``: the shards of E_k."""
    return Path(out) / "denoised" / f"E_{k:02d}"


def shard_path(folder: Path, r: range) -> Path:
    """The shard file of E_k holding the samples of index range ``r``."""
    return folder / f"shard-{r.start:09d}.npz"


class RunDirectory:
    """One run directory (see the module docstring); every method runs through one."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.manifest: Manifest  # read by open_manifest, once the directory is checked

    def open_manifest(self) -> None:
        """Read manifest.json (after the directory was checked, and cleared if it had to be)."""
        self.manifest = Manifest(self.out)

    def stage_stem(self, k: int) -> Path:
        return stage_stem(self.out, k)

    def step_stem(self) -> Path:
        return step_stem(self.out)

    def denoised_dir(self, k: int) -> Path:
        return denoised_dir(self.out, k)

    def data_dir(self) -> Path:
        """``DIR/data``: the run's stored training arrays (e.g. the benchmark's noisy set)."""
        return self.out / "data"

    def samples(self, k: int, suffix: str = ".npy") -> Path:
        return self.out / "samples" / f"stage-{k:02d}{suffix}"

    # -- configuration -------------------------------------------------------------------
    def config_conflicts(self, cfg: Config, growable: Sequence[str]) -> list[str] | None:
        """Keys in which ``cfg`` differs from the saved run (those in ``growable`` alone are
        allowed: the stages are a prefix); None when the directory holds no sfbd run."""
        saved = self.out / "config.yaml"
        if not saved.is_file():
            return None
        old = _resolved(yaml.safe_load(saved.read_text()))
        new = to_dict(cfg)
        diff = sorted(_diff_keys(old, new))
        if not diff or not set(diff) <= set(growable):
            return diff
        # a growable key grows a run (more stages); shrunk, the run would record fewer
        # stages than metrics.json and the checkpoints hold: refused, naming the values
        shrunk = [k for k in diff if _value(new, k) < _value(old, k)]
        return [f"{k}: {_value(old, k)} there, {_value(new, k)} here, and a finished run "
                "can grow but not shrink" for k in shrunk]  # fmt: skip

    def check(
        self, cfg: Config, growable: Sequence[str], force: bool, before_clear: Callable[[], None]
    ) -> bool:
        """Refuse a directory that holds another run or other files (unless ``force``);
        returns whether it must be cleared. ``before_clear`` runs first (a DDP barrier)."""
        diff = self.config_conflicts(cfg, growable)
        if diff:
            if not force:
                raise SfbdError(
                    f"{self.out} holds a run with a different configuration "
                    f"(differs in {', '.join(diff)}); use another --out, or --force to "
                    "start over"
                )
            before_clear()
            return True
        if diff is None and self.out.exists() and any(self.out.iterdir()) and not force:
            raise SfbdError(
                f"{self.out} exists and is not an sfbd run directory; use another --out or --force"
            )
        return False

    def write_config(self, cfg: Config) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", dump_yaml(cfg))

    def clear(self) -> None:
        """Remove this tool's outputs from the run directory."""
        for name in OUTPUTS:
            path = self.out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        data = self.data_dir()  # only the files sfbd writes there: a user's own stay
        if data.is_dir():
            for f in [
                *data.glob(".*.tmp"),
                *(data / f"{n}{x}" for n in STORED for x in (".npy", ".json")),
            ]:
                f.unlink(missing_ok=True)
            if not any(data.iterdir()):
                data.rmdir()

    # -- metrics.json --------------------------------------------------------------------
    def metrics(self) -> list[dict]:
        path = self.out / "metrics.json"
        return json.loads(path.read_text())["stages"] if path.is_file() else []

    def write_metrics(self, stages: list[dict]) -> None:
        atomic_write_text(self.out / "metrics.json", json.dumps({"stages": stages}, indent=1))

    # -- trust and invalidation ----------------------------------------------------------
    def verified(
        self, done: list[dict], stages: Sequence[Stage], log: Callable[[str], None]
    ) -> list[dict]:
        """The finished stages whose outputs match the manifest; later ones are redone."""
        for pos, entry in enumerate(done):
            k = entry["iteration"]
            problems = self.manifest.problems(k)
            if problems:
                log(
                    f"stage {k} outputs cannot be trusted ({'; '.join(problems)}): "
                    f"redoing from stage {k}"
                )
                self.invalidate(k, stages)
                done = done[:pos]
                self.write_metrics(done)
                break
        return done

    def invalidate(self, k: int, stages: Sequence[Stage]) -> None:
        """Remove what stage k and later stages produced (E_k itself stems from stage k-1)."""
        self.manifest.forget(k)
        for stage in stages:
            j = stage.iteration
            if j >= k:
                for suffix in (".safetensors", ".json"):
                    self.stage_stem(j).with_suffix(suffix).unlink(missing_ok=True)
            if j > k:
                shutil.rmtree(self.denoised_dir(j), ignore_errors=True)
        step = self.step_stem()
        try:
            meta = json.loads(step.with_suffix(".json").read_text())["meta"]
            stale = meta["iteration"] > k
        except (OSError, ValueError, KeyError, TypeError):
            stale = True
        if stale:
            self.remove_step()

    def remove_step(self) -> None:
        """Delete the step checkpoint (JSON first: no JSON, no step checkpoint)."""
        for suffix in (".json", ".safetensors"):
            self.step_stem().with_suffix(suffix).unlink(missing_ok=True)


_ABSENT = object()

#: keys whose absence from a saved config.yaml (written before they existed) means another
#: value than today's default: what the older sfbd did. 0.7 held no noisy samples out, so
#: its runs resume only with eval.noisy_holdout=0 (else their noisy set would change)
BEFORE_THEY_EXISTED = {"eval.noisy_holdout": 0.0}


def _value(tree: object, key: str) -> Any:
    """The value of dotted ``key`` in a nested dict (None where it is absent)."""
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _resolved(saved: object) -> object:
    """A saved config.yaml as this sfbd resolves it (e.g. 0.7's ``data.noise: gaussian`` is
    the name of the model it meant), so an old run resumes; as read when it does not load."""
    if not isinstance(saved, dict):
        return saved
    try:
        resolved = to_dict(load_config(base=saved))
    except SfbdError:
        return saved
    for key, value in BEFORE_THEY_EXISTED.items():  # absent: the older sfbd's behaviour
        if _value(saved, key) is None:
            section, name = key.split(".")
            resolved[section][name] = value
    return resolved


def _diff_keys(old: object, new: object) -> list[str]:
    """Dotted keys whose values differ. A key the saved configuration lacks (written by an
    older sfbd) counts as equal when the new value is that key's default."""
    return _diff(old, new, "", to_dict(Config()))


def _diff(old: object, new: object, prefix: str, default: object) -> list[str]:
    if old is _ABSENT:
        return [] if new == default else [prefix.rstrip(".")]
    if isinstance(old, dict) and isinstance(new, dict):
        sub = default if isinstance(default, dict) else {}
        return [
            d
            for k in sorted(set(old) | set(new))
            for d in _diff(old.get(k, _ABSENT), new.get(k), f"{prefix}{k}.", sub.get(k, _ABSENT))
        ]
    return [] if old == new else [prefix.rstrip(".")]
