"""Input checks shared by the filter, the fit and online EM (numpy only).

>>> check_matrix([[1.0, float("nan")]])
Traceback (most recent call last):
...
training.errors.BadInputError: X: non-finite value at row 0, column 1
>>> sorted(sequence_starts(10, [4, 6]))
[0, 4]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.errors import BadInputError

__all__ = ["check_matrix", "sequence_starts"]


def check_matrix(X: np.ndarray, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """``X`` as a finite float64 ``(n, D)`` array, or a BadInputError (a ValueError) naming the row and column."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise BadInputError(
            f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}",
            field=name,
        )
    if n_features is not None and X.shape[1] != n_features:
        raise BadInputError(f"{name}: expected {n_features} features, got {X.shape[1]}", field=name)
    if not np.isfinite(X).all():
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise BadInputError(
            f"{name}: non-finite value at row {int(r)}, column {int(c)}", field=name
        )
    return X


def sequence_starts(n: int, lengths: Sequence[int] | None) -> set[int]:
    if lengths is None:
        return {0}
    lens = [int(v) for v in lengths]
    if any(v <= 0 for v in lens) or sum(lens) != n:
        raise BadInputError(
            f"lengths: must be positive and sum to n_samples={n}, got sum {sum(lens)}",
            field="lengths",
        )
    return {int(s) for s in np.concatenate([[0], np.cumsum(lens)[:-1]])}
