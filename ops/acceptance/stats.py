"""The statistics the acceptance checks use: state-histogram entropy and a block-bootstrap CI.

``state_entropy_bits`` is the Shannon entropy (bits) of the filtered-state *histogram* of a day;
training's normalised posterior entropy is another measure with another name.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["block_bootstrap_ci", "state_entropy_bits"]


def state_entropy_bits(states: np.ndarray) -> float:
    """Shannon entropy (bits) of the histogram of ``states`` (negative codes = no result, ignored).

    >>> state_entropy_bits(np.array([0, 0, 1, 1]))
    1.0
    >>> state_entropy_bits(np.array([2, 2, 2, -1]))
    0.0
    """
    states = np.asarray(states)
    states = states[states >= 0]
    if len(states) == 0:
        return 0.0
    p = np.bincount(states) / len(states)
    p = p[p > 0]
    return float(max(0.0, -(p * np.log2(p)).sum()))


def block_bootstrap_ci(
    x: np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lower, upper)``: percentile CI of the mean of ``x`` by a moving-block bootstrap
    (block length ``ceil(n ** (1/3))``, so short-range autocorrelation of PnL changes is kept).
    Fewer than 2 values give a zero-width interval at the mean (0 for none).

    >>> m, lo, hi = block_bootstrap_ci(np.arange(100.0))
    >>> m, lo < m < hi
    (49.5, True)
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = float(x.mean())
    if n < 2:
        return mean, mean, mean
    block = math.ceil(n ** (1.0 / 3.0))
    n_blocks = math.ceil(n / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(min(lo, mean)), float(max(hi, mean))
