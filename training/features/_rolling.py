"""Rolling statistics of the feature engine: the causal standardiser and return statistics.

Private to :mod:`training.features.engine` (numpy only).

>>> std = Standardiser(window=3, n_features=1, floor=1e-6, clip=10.0)
>>> for v in (1.0, 2.0, 3.0):
...     std.push(np.array([v]))
>>> std.z(np.array([4.0])).round(4).tolist()  # (4 - mean 2) / std 0.8165
[2.4495]
>>> [round(v, 4) for v in ret_stats(deque([1.0, -1.0, 1.0, -1.0]), 4, 4)]
[1.0, -0.75, 0.5]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from dataclasses import field

import numpy as np

__all__ = ["Standardiser", "ret_stats"]


@dataclass
class Standardiser:
    """Rolling mean/std over the last ``window`` samples; z uses PREVIOUS samples only.

    Sums are kept relative to the session's first vector (less cancellation) and recomputed
    exactly from the ring buffer once per window, so rounding drift stays bounded.
    """

    window: int
    n_features: int
    floor: float
    clip: float
    buf: np.ndarray = field(init=False)
    s1: np.ndarray = field(init=False)
    s2: np.ndarray = field(init=False)
    count: int = 0
    pos: int = 0
    ref: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.buf = np.zeros((self.window, self.n_features))
        self.s1 = np.zeros(self.n_features)
        self.s2 = np.zeros(self.n_features)

    def z(self, x: np.ndarray) -> np.ndarray:
        n = self.count
        if n == 0 or self.ref is None:
            return np.zeros(self.n_features)
        mean = self.s1 / n
        var = self.s2 / n
        var -= mean * mean
        np.maximum(var, 0.0, out=var)
        std = np.sqrt(var)
        np.maximum(std, self.floor, out=std)
        z = x - self.ref
        z -= mean
        z /= std
        np.minimum(z, self.clip, out=z)
        np.maximum(z, -self.clip, out=z)
        return z

    def push(self, x: np.ndarray) -> None:
        if self.ref is None:
            self.ref = x.copy()
        d = x - self.ref
        if self.count == self.window:
            old = self.buf[self.pos]
            self.s1 -= old
            self.s2 -= old * old
        else:
            self.count += 1
        self.buf[self.pos] = d
        self.s1 += d
        self.s2 += d * d
        self.pos += 1
        if self.pos == self.window:
            self.pos = 0
            self.s1 = self.buf.sum(axis=0)
            self.s2 = (self.buf * self.buf).sum(axis=0)


def ret_stats(values: deque[float], n_rv: int, n_ac: int) -> tuple[float, float, float]:
    """Population std of the last ``n_rv`` values and lag-1/lag-2 autocorrelation of the last
    ``n_ac`` (0.0 when too short or constant; autocorrelations clipped to [-1, 1]).

    Computed from scratch each sample (windows are short) so constant stretches give exact 0.
    """
    vals = list(values)
    rv = 0.0
    tail = vals[-n_rv:]
    k = len(tail)
    if k >= 2:
        m = sum(tail) / k
        d = [v - m for v in tail]
        rv = math.sqrt(math.sumprod(d, d) / k)
    tail = vals[-n_ac:]
    k = len(tail)
    if k < 4:
        return rv, 0.0, 0.0
    m = sum(tail) / k
    d = [v - m for v in tail]
    den = math.sumprod(d, d)
    if not den > 0.0:
        return rv, 0.0, 0.0
    c1 = math.sumprod(d[1:], d[:-1]) / den
    c2 = math.sumprod(d[2:], d[:-2]) / den
    return rv, max(-1.0, min(1.0, c1)), max(-1.0, min(1.0, c2))
