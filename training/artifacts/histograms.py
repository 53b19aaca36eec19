"""Histograms of the training features: the reference distribution drift is measured against.

Stored in the bundle (``histograms.npz``); the Serve drift monitor and the adaptation code bin
live values with :func:`histogram_counts` on the same edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["feature_histograms", "histogram_counts"]


def feature_histograms(
    X: np.ndarray, names: Sequence[str], bins: int = 32
) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature ``{"edges", "counts", "probs"}`` of training features ``X`` (rows x features).

    Edges are equal-width between the 0.1 % and 99.9 % quantiles; values outside are counted in
    the end bins, so ``probs`` sums to 1 and live values must be clipped the same way
    (:func:`histogram_counts`). Non-finite values are refused: drop warm-up rows first.

    >>> h = feature_histograms(np.arange(10.0)[:, None], ["x"], bins=2)
    >>> h["x"]["counts"].tolist(), float(h["x"]["probs"].sum())
    ([5, 5], 1.0)
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"X has shape {X.shape}; expected (rows, {len(names)}) for names")
    if X.shape[0] == 0:
        raise ValueError("X has no rows")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if len(set(names)) != len(names):
        raise ValueError("feature names are not unique")
    out: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(names):
        col = X[:, j]
        bad = int(np.count_nonzero(~np.isfinite(col)))
        if bad:
            raise ValueError(f"feature {name!r}: {bad} non-finite values (drop warm-up rows)")
        lo, hi = np.quantile(col, [0.001, 0.999])
        if not hi > lo:
            lo, hi = float(np.min(col)), float(np.max(col))
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        counts = histogram_counts(edges, col)
        out[str(name)] = {"edges": edges, "counts": counts, "probs": counts / counts.sum()}
    return out


def histogram_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of ``edges``, clipping outliers into the end bins.

    >>> histogram_counts(np.array([0.0, 1.0, 2.0]), np.array([-5.0, 0.5, 1.5, 9.0])).tolist()
    [2, 2]
    """
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right") - 1
    idx = np.clip(idx, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1).astype(np.int64)
