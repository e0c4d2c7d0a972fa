"""Counter-based random numbers keyed by sample index.

Every random draw that belongs to one sample (its fixed corruption noise, the noise a sampler
injects into it, its starting point when generating) is a pure function of
(stream, key, counter, element). Results therefore never depend on batch size, batch order,
device count or where a run was resumed. The hash is splitmix64 (Steele, Lea, Flood 2014);
normal variates come from the Box-Muller transform of two 53-bit uniforms.
"""

from __future__ import annotations

import hashlib

import torch

_MASK64 = (1 << 64) - 1


def _s64(c: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    c &= _MASK64
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _s64(0x9E3779B97F4A7C15)
_C1 = _s64(0xBF58476D1CE4E5B9)
_C2 = _s64(0x94D049BB133111EB)


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser applied elementwise to an int64 tensor (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ _srl(z, 30)) * _C1
    z = (z ^ _srl(z, 27)) * _C2
    return z ^ _srl(z, 31)


def stream_id(*parts: object) -> int:
    """A stable 63-bit id for a named random stream, e.g. ``stream_id("denoise", seed, k)``."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def keyed_randn(
    keys: torch.Tensor,
    shape: tuple[int, ...],
    *,
    stream: int,
    counter: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise (B, *shape), row b a function of (stream, keys[b], counter) only.

    Args:
        keys: (B,) integer keys, typically the sample indices.
        shape: per-sample shape.
        stream: id of the random stream, a well-mixed 63-bit id from :func:`stream_id`. Key
            and stream are combined by XOR before hashing, so raw small integers are unsafe:
            streams 0 and 1 give the same rows for keys 0..N-1, only permuted (key k of one is
            key k ^ 1 of the other).
        counter: draw number within the stream (e.g. the sampler step).
    Returns:
        (B, *shape) tensor on ``keys.device``.
    """
    keys = keys.to(torch.int64).reshape(-1)
    numel = 1
    for s in shape:
        numel *= int(s)
    base = splitmix64(splitmix64(keys ^ _s64(stream)) + _s64(counter * 0x632BE59BD9B4E019))
    idx = torch.arange(2 * numel, dtype=torch.int64, device=keys.device)
    h = splitmix64(base[:, None] ^ splitmix64(idx)[None, :])
    u = (_srl(h, 11).to(torch.float64) + 0.5) * 2.0**-53  # in (0, 1)
    u1, u2 = u[:, :numel], u[:, numel:]
    z = (-2.0 * u1.log()).sqrt() * torch.cos(2.0 * torch.pi * u2)
    return z.to(dtype).reshape((keys.shape[0], *shape))
