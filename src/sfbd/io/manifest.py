"""The run manifest: what each finished stage produced, with sizes and SHA-256 checksums.

``manifest.json`` maps a stage's iteration to the files it wrote (paths relative to the run
directory). A stage is recorded after all its files are complete and before its metrics entry
(the entry in metrics.json is what marks a stage finished). On resume every finished stage is
checked against the manifest; a missing, resized or altered file is reported and the stage
(and everything after it) is redone, never silently trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from sfbd.io.atomic import atomic_write_text
from sfbd.io.cache import file_digest

NAME = "manifest.json"


def file_record(path: Path) -> dict[str, int | str]:
    return {"size": path.stat().st_size, "sha256": file_digest(path, "sha256")}


class Manifest:
    """``manifest.json`` of a run directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / NAME
        self.stages: dict[str, dict[str, dict]] = {}
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text())["stages"]
            except (ValueError, KeyError, TypeError):
                self.stages = {}  # unreadable: every stage fails verification and is redone

    def record(self, iteration: int, files: list[Path]) -> None:
        """Record the files of stage ``iteration``: paths under the run directory (as the run
        directory was given, relative or absolute) or relative to it."""
        entry = {}
        for f in files:
            try:
                rel = f.relative_to(self.root)  # a path under the run directory
            except ValueError:
                rel = f  # already relative to it
            entry[rel.as_posix()] = file_record(self.root / rel)
        self.stages[str(iteration)] = entry
        atomic_write_text(self.path, json.dumps({"stages": self.stages}, indent=1, sort_keys=True))

    def forget(self, from_iteration: int) -> None:
        """Drop stages ``from_iteration`` and later (they are being redone)."""
        keep = {k: v for k, v in self.stages.items() if int(k) < from_iteration}
        if keep != self.stages:
            self.stages = keep
            atomic_write_text(self.path, json.dumps({"stages": keep}, indent=1, sort_keys=True))

    def problems(self, iteration: int) -> list[str]:
        """Why stage ``iteration``'s files cannot be trusted (empty: they match)."""
        entry = self.stages.get(str(iteration))
        if entry is None:
            return [f"stage {iteration} is not in {NAME}"]
        out = []
        for rel, want in sorted(entry.items()):
            path = self.root / rel
            if not path.is_file():
                out.append(f"{rel} is missing")
                continue
            size = path.stat().st_size
            if size != want["size"]:
                out.append(f"{rel} has {size} bytes, expected {want['size']}")
            elif file_digest(path, "sha256") != want["sha256"]:
                out.append(f"{rel} does not match its SHA-256 checksum")
        return out
