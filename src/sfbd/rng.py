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


def _splitmix64_(z: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """:func:`splitmix64` in place on ``z`` (``tmp``: int64 scratch of its shape)."""
    z.add_(_GOLDEN)
    for shift, mult in ((30, _C1), (27, _C2), (31, None)):
        torch.bitwise_right_shift(z, shift, out=tmp)
        tmp.bitwise_and_((1 << (64 - shift)) - 1)
        z.bitwise_xor_(tmp)
        if mult is not None:
            z.mul_(mult)
    return z


CHUNK_VALUES = 1 << 17  # uniforms per working buffer on the CPU (1 MiB of int64)


def keyed_randn(
    keys: torch.Tensor,
    shape: tuple[int, ...],
    *,
    stream: int,
    counter: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise (B, *shape), row b a function of (stream, keys[b], counter) only.

    Row b, element j of the n = prod(shape) is Box-Muller of two uniforms from hashes::

        base_b = splitmix64(splitmix64(keys[b] ^ stream) + counter * 0x632BE59BD9B4E019)
        h_bi   = splitmix64(base_b ^ splitmix64(i)),          i = 0 .. 2n-1
        u_bi   = ((h_bi >>> 11) + 0.5) * 2**-53                in (0, 1)
        z_bj   = sqrt(-2 log u_bj) * cos(2 pi u_b(n+j))

    computed in float64 and rounded to ``dtype``. On the CPU the rows go through three reused
    working buffers of about :data:`CHUNK_VALUES` values, in place, so a call allocates no
    temporaries of its output's size beyond the output (the values are those of the formula
    evaluated whole, bit for bit).

    Args:
        keys: (B,) integer keys, typically the sample indices.
        shape: per-sample shape.
        stream: id of the random stream, a well-mixed 63-bit id from :func:`stream_id`. Key
            and stream are combined by XOR before hashing, so raw small integers are unsafe:
            streams 0 and 1 give the same rows for keys 0..N-1, only permuted (key k of one is
            key k ^ 1 of the other).
        counter: draw number within the stream (e.g. the sampler step).
        dtype: the output's dtype.
    Returns:
        (B, *shape) tensor on ``keys.device``.
    """
    keys = keys.to(torch.int64).reshape(-1)
    numel = 1
    for s in shape:
        numel *= int(s)
    n_rows, dev = keys.shape[0], keys.device
    out = torch.empty((n_rows, numel), dtype=dtype, device=dev)
    if n_rows == 0 or numel == 0:
        return out.reshape((n_rows, *shape))
    base = splitmix64(splitmix64(keys ^ _s64(stream)) + _s64(counter * 0x632BE59BD9B4E019))
    mixed = splitmix64(torch.arange(2 * numel, dtype=torch.int64, device=dev))
    rows = n_rows if dev.type != "cpu" else max(1, min(n_rows, CHUNK_VALUES // (2 * numel)))
    h = torch.empty((rows, 2 * numel), dtype=torch.int64, device=dev)
    tmp = torch.empty_like(h)
    u = torch.empty((rows, 2 * numel), dtype=torch.float64, device=dev)
    for start in range(0, n_rows, rows):
        r = min(rows, n_rows - start)
        hr, tr, ur = h[:r], tmp[:r], u[:r]
        torch.bitwise_xor(base[start : start + r, None], mixed[None, :], out=hr)
        _splitmix64_(hr, tr)
        torch.bitwise_right_shift(hr, 11, out=tr)
        ur.copy_(tr.bitwise_and_((1 << 53) - 1))
        ur.add_(0.5).mul_(2.0**-53)
        radius, angle = ur[:, :numel], ur[:, numel:]
        radius.log_().mul_(-2.0).sqrt_()
        angle.mul_(2.0 * torch.pi).cos_()
        out[start : start + r].copy_(radius.mul_(angle))
    return out.reshape((n_rows, *shape))
