"""How the peak grows with N, against the extra data bytes: the benchmark's PASS or FAIL."""

from __future__ import annotations

from collections.abc import Sequence

from rss.settings import LIMIT, MIB, D


def data_bytes(n: int) -> int:
    """Bytes of the noisy set of N samples as float32."""
    return n * D * 4


def growth(points: Sequence[tuple[int, float]], dim: int = D) -> float:
    """(RssAnon(N_max) - RssAnon(N_min)) / (data_bytes(N_max) - data_bytes(N_min)).

    Args:
        points: (N, peak RssAnon in bytes) of runs at two or more sizes.
        dim: numbers per sample (data bytes = N x dim x 4).
    """
    (n0, r0), (n1, r1) = min(points), max(points)
    if n1 == n0:
        raise ValueError("growth needs runs at two different sizes")
    return (r1 - r0) / ((n1 - n0) * dim * 4)


def verdicts(rows: list[dict], limit: float = LIMIT) -> list[dict]:
    """Per (kind, processes) with two or more sizes: growth from the smallest to the largest N
    (RssAnon from the rows' MiB) and whether it is below ``limit``."""
    out = []
    for kind, procs in dict.fromkeys((r["kind"], r["procs"]) for r in rows):
        pts = [
            (r["n"], r["rss_anon_mib"] * MIB)
            for r in rows
            if (r["kind"], r["procs"]) == (kind, procs)
        ]
        if len({n for n, _ in pts}) < 2:
            continue
        g = growth(pts)
        out.append(
            {
                "kind": kind,
                "procs": procs,
                "n_min": min(pts)[0],
                "n_max": max(pts)[0],
                "growth": g,
                "limit": limit,
                "pass": g < limit,
            }
        )
    return out
