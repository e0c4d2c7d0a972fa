"""What every section of the quality benchmark is given, and what it hands back.

A section module has ``run(ctx) -> Output``: it prints its heading and tables as it goes and
returns its part of RESULTS.md, its entries of summary.json and what its figures need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.data import DataFiles
from suite.runner import Runner
from suite.settings import Suite


@dataclass
class Context:
    """The run of the suite the sections share."""

    runner: Runner
    suite: Suite
    seeds: int  # section 1, vector sets
    image_seeds: int  # section 1, digits
    files: DataFiles
    out: Path  # OUT/quick or OUT/full: the run directories and the section-7 files
    selected: frozenset[str]  # the --only names selected (every name without --only)
    #: ring8 etc. -> section 1's seed std of SFBD's final swd (None with one seed); None
    #: itself when section 1 did not run (--only), which sections 2 and 6 say.
    sfbd_std: dict[str, float | None] | None = None


@dataclass
class Output:
    """A section's results."""

    markdown: list[str]  # its lines of RESULTS.md, from its "## n." heading to a blank line
    summary: dict[str, Any]  # its entries of summary.json
    data: dict[str, Any] = field(default_factory=dict)  # what its figures need
