"""Fault injection for crash tests: ``SFBD_FAULT=point:n`` kills the process with SIGKILL
the n-th time the code reaches ``point`` (n counts from 1; several specs comma-separated).

Points: ``train.step`` (after an optimizer step), ``denoise.shard`` (after a denoised shard is
written), ``checkpoint.write`` (tensors written to the temporary file, not yet renamed),
``stage.end`` (stage finished, metrics not yet recorded), ``data.write`` (a chunk of a stored
array or data cache written to its temporary file). Without the variable this is a dict
lookup per call.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _parse(spec: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, n = part.partition(":")
        out[name] = int(n or 1)
    return out


_plan = _parse(os.environ.get("SFBD_FAULT", ""))


def point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if ``SFBD_FAULT`` asks for it."""
    if name not in _plan:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _plan[name]:
        os.kill(os.getpid(), signal.SIGKILL)
