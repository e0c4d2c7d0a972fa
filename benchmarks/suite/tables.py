"""Means and spreads over seeds, Markdown tables, and the small words the sentences use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(np.mean(a)), float(np.std(a)) if len(a) > 1 else 0.0


def mean_of(values: Sequence[float]) -> float:
    return mean_std(values)[0]


def fmt(values: Sequence[float], spec: str = ".4f") -> str:
    vals = [v for v in values if np.isfinite(v)]
    if not vals:
        return "–"
    m, s = mean_std(vals)
    return f"{m:{spec}}" if len(vals) == 1 else f"{m:{spec}} ± {s:{spec}}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def below(a: float, b: float) -> str:
    return "below" if a < b else "not below"


def listing(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"
