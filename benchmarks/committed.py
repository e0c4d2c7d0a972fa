"""Where a benchmark writes its results, and the command line it records there.

The results files in benchmarks/ (RESULTS.md and its figures, ONLINE_RAMP.md, BF16_SAMPLING.md,
SOAK.md) are committed: they are the numbers the README and docs/ quote. The rule every
benchmark script follows:

* ``--results FILE`` given: write there, whatever the run;
* a full run (the script's default settings) without it: write the committed file in the
  repository's benchmarks/ folder, wherever the script is started from;
* a quick or partial run without it: write under a scratch folder (``runs/...``, which
  .gitignore lists), never over the committed file.

The recorded command is what a user types at the repository root: ``python benchmarks/x.py``
and the arguments, with paths inside the repository written relative to it and paths outside
it (a machine's own folders) shortened to ``.../name``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository this script belongs to


def results_path(
    given: str | os.PathLike[str] | None, committed: str, scratch: Path, full: bool
) -> Path:
    """The results file of a run.

    Args:
        given: the ``--results`` argument, or None when it was not given.
        committed: the committed file, relative to the repository root (``benchmarks/X.md``).
        scratch: where a quick or partial run writes instead (under ``runs/``).
        full: whether this is the full run whose numbers the committed file records.

    Returns:
        ``given`` if given, else ``REPO / committed`` for a full run, else ``scratch``.
    """
    if given is not None:
        return Path(given)
    return REPO / committed if full else Path(scratch)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as it should appear in a committed file: relative to the repository root when
    it lies inside it (or is already relative), else ``.../`` and its last component."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    resolved = p.resolve()
    try:
        return resolved.relative_to(REPO).as_posix() or "."
    except ValueError:
        return f".../{resolved.name}"


def _argument(arg: str) -> str:
    """One argument with any absolute path in it (``/a/b`` or ``--key=/a/b``) made portable."""
    head, sep, tail = arg.partition("=")
    if sep and os.path.isabs(tail):
        return head + sep + display_path(tail)
    return display_path(arg) if os.path.isabs(arg) else arg


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command a user types at the repository root to repeat this run.

    Args:
        script: the script's ``__file__``.
        argv: the arguments after the script's name (``sys.argv[1:]``).

    Returns:
        ``python benchmarks/<script> <args>``, shell-quoted, with no machine paths.
    """
    parts = ["python", display_path(script), *(_argument(a) for a in argv)]
    return " ".join(shlex.quote(a) for a in parts)


def write_table(
    script: str,
    argv: Sequence[str],
    *,
    title: str,
    note: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    committed: str,
    given: str | os.PathLike[str] | None,
) -> Path:
    """Write a one-table results file of a diagnostic script and return its path.

    The file: ``# title``; the command as typed (:func:`command_line`), the date, the
    machine, torch's and sfbd's versions and ``note``; then the table. It goes to ``given``
    (``--results``) if given, else to ``runs/<script's stem>/<committed's name>``: such a
    script's committed file (``committed``, e.g. ``benchmarks/MMPS_FLOOR.md``) is written only
    by naming it.
    """
    import datetime as dt
    import platform

    import torch

    import sfbd

    md = [
        f"# {title}",
        "",
        f"`{command_line(script, argv)}`, {dt.date.today()}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"sfbd {sfbd.__version__}. {note}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]
    scratch = REPO / "runs" / Path(script).stem / Path(committed).name
    out = results_path(given, committed, scratch, False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md))
    return out
