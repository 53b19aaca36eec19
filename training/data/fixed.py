"""Nautilus 128-bit fixed point, vectorised: the one encoder and decoder of prices and sizes.

Nautilus 1.231 (high-precision build) stores a price or size as ``raw = value * 10**16`` in an
int128 (``FIXED_PRECISION`` 16), Parquet type ``fixed_size_binary[16]``. A value at instrument
precision ``p`` is ``round(value * 10**p) * 10**(16 - p)``. We build those bytes from numpy
(no Nautilus object per row) and decode them bit-identically to ``Price.as_double()``.

A value off the ``10**-p`` grid is an error here, never rounded: rounding would silently change
the data. :func:`off_grid` is the one test of "on the grid" (the catalog encoder and the
instrument precision fit share it).

>>> fixed_raw(np.array([1.5, -0.5]), 1).tolist()  # (lo, hi) words of 1.5e16 and -0.5e16
[[15000000000000000, 0], [18441744073709551616, 18446744073709551615]]
>>> decode_fixed(encode_fixed(np.array([61837.64]), 2)).tolist()
[61837.63999999999]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from training.errors import BadInputError

__all__ = [
    "FIXED_PRECISION",
    "decode_fixed",
    "encode_fixed",
    "fixed_raw",
    "off_grid",
    "out_of_range",
]

#: Decimals of Nautilus's raw fixed point (``nautilus_trader.model.objects.FIXED_PRECISION``).
FIXED_PRECISION = 16
_MASK32 = np.uint64(0xFFFFFFFF)
_MAX_UNITS = 2.0**63  # round(value * 10**p) must fit an int64 before the 128-bit scaling


def _scaled(values: np.ndarray, precision: int) -> tuple[np.ndarray, np.ndarray]:
    """(``values * 10**precision``, that rounded half away from zero like Nautilus)."""
    scaled = np.asarray(values, dtype=np.float64) * (10.0**precision)
    return scaled, np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)


def _off(v: np.ndarray, scaled: np.ndarray, n: np.ndarray) -> np.ndarray:
    return (np.abs(scaled - n) > 1e-9 + 1e-12 * np.abs(scaled)) | ((n == 0) & (v != 0))


def off_grid(values: np.ndarray, precision: int) -> np.ndarray:
    """Mask of values that are not a multiple of ``10**-precision`` (beyond float noise).

    Float noise is relative (a parsed decimal is within an ulp, ~2e-16, of its value), so the
    tolerance is ``1e-12`` of the scaled value plus ``1e-9`` of one unit; a non-zero value that
    would be stored as zero is always off the grid (the tolerance used to be ``1e-3`` units,
    which let ``4e-7`` pass as ``0`` at 3 decimals: a size of 0 deletes a book level).

    >>> off_grid(np.array([0.1 + 0.2, 25.426189, 4e-7, 61837.63999999999]), 3).tolist()
    [False, True, True, False]
    """
    v = np.asarray(values, dtype=np.float64)
    return _off(v, *_scaled(v, precision))


def out_of_range(values: np.ndarray, precision: int) -> np.ndarray:
    """Mask of values too large for the encoder at ``precision`` (``|v| * 10**p >= 2**63``)."""
    return np.abs(_scaled(values, precision)[1]) >= _MAX_UNITS


def _mul_u64(a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact 64x64 -> 128-bit unsigned product as (lo, hi) uint64 words."""
    b = np.uint64(b)
    a_lo, a_hi = a & _MASK32, a >> np.uint64(32)
    b_lo, b_hi = b & _MASK32, b >> np.uint64(32)
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (p0 >> np.uint64(32)) + (p1 & _MASK32) + (p2 & _MASK32)
    lo = (p0 & _MASK32) | (mid << np.uint64(32))
    hi = p3 + (p1 >> np.uint64(32)) + (p2 >> np.uint64(32)) + (mid >> np.uint64(32))
    return lo, hi


def _negate(lo: np.ndarray, hi: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two's complement of the 128-bit (lo, hi) words where ``neg``."""
    nlo = ~lo + np.uint64(1)
    nhi = ~hi + (nlo == 0).astype(np.uint64)
    return np.where(neg, nlo, lo), np.where(neg, nhi, hi)


def fixed_raw(values: np.ndarray, precision: int, name: str = "value") -> np.ndarray:
    """Nautilus raw int128 (``round(v * 10**precision) * 10**(16 - precision)``) as (n, 2) uint64.

    Rounds half away from zero like Nautilus's ``f64_to_fixed_i128``; columns are (lo, hi)
    little-endian words, i.e. exactly the bytes of a ``fixed_size_binary[16]`` cell. Raises
    :class:`~training.errors.BadInputError` naming ``name`` for a non-finite value, a value off
    the ``10**-precision`` grid or one beyond the encoder's range.
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all():
        raise BadInputError(f"{name}: non-finite value", field=name)
    scaled, n = _scaled(v, precision)
    off = _off(v, scaled, n)
    if off.any():
        i = int(np.argmax(off))
        raise BadInputError(
            f"{name}[{i}] = {float(v[i])!r} is not a multiple of 1e-{precision} "
            "(instrument precision)",
            field=name,
        )
    if (np.abs(n) >= _MAX_UNITS).any():
        raise BadInputError(f"{name}: value out of range for precision {precision}", field=name)
    ni = n.astype(np.int64)
    neg = ni < 0
    lo, hi = _mul_u64(np.abs(ni).astype(np.uint64), 10 ** (FIXED_PRECISION - precision))
    if neg.any():
        lo, hi = _negate(lo, hi, neg)
    return np.stack([lo, hi], axis=1)


def encode_fixed(
    values: np.ndarray, precision: int, name: str = "value"
) -> pa.FixedSizeBinaryArray:
    """Float values as Nautilus 128-bit fixed-point ``fixed_size_binary[16]`` (see :func:`fixed_raw`)."""
    words = np.ascontiguousarray(fixed_raw(values, precision, name))
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(words), [None, pa.py_buffer(words.tobytes())]
    )


def _bit_length(h: np.ndarray) -> np.ndarray:
    """Bit length of positive uint64 values below 2**63."""
    e = np.frexp(h.astype(np.float64))[1].astype(np.int64)
    too_big = (h >> (e - 1).astype(np.uint64)) == 0
    return e - too_big


def decode_fixed(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``fixed_size_binary[16]`` raw int128 -> float64, bit-identical to ``Price.as_double()``.

    Nautilus computes ``(double)raw / 1e16`` with a correctly rounded int128 -> double
    conversion; we reproduce it with a sticky-bit shift into 64 bits.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    buf = arr.buffers()[1]
    words = np.frombuffer(buf, dtype=np.uint64, count=2 * n, offset=arr.offset * 16).reshape(n, 2)
    lo, hi = words[:, 0].copy(), words[:, 1].copy()
    neg = (hi >> np.uint64(63)) == 1
    if neg.any():
        lo, hi = _negate(lo, hi, neg)
    out = lo.astype(np.float64)
    big = hi != 0
    if big.any():
        h, low = hi[big], lo[big]
        s = _bit_length(h).astype(np.uint64)
        x = (h << (np.uint64(64) - s)) | (low >> s)
        sticky = (low & ((np.uint64(1) << s) - np.uint64(1))) != 0
        x |= sticky.astype(np.uint64)
        out[big] = np.ldexp(x.astype(np.float64), s.astype(np.int64))
    out /= 1e16
    return np.where(neg, -out, out)
