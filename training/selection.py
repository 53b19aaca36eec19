"""The one train/validation splitter: walk-forward folds over an ordered sequence.

Time-ordered data is never shuffled: every fold trains on items strictly before its validation
block, with ``gap`` items purged in between (set it to the label horizon so no training label
looks into the validation block). The items are rows (samples) or days; :meth:`WalkForward.split`
takes a length and gives index arrays, :meth:`WalkForward.folds` takes the items themselves.

The validation blocks are the last ``n_folds * test_size`` items, each fold validating the next
``test_size`` of them; training expands from the start (or rolls over the last ``train_size``).

>>> cv = WalkForward(test_size=2, n_folds=2, gap=1)
>>> [(tr.tolist(), va.tolist()) for tr, va in cv.split(8)]
[([0, 1, 2], [4, 5]), ([0, 1, 2, 3, 4], [6, 7])]
>>> WalkForward(test_size=1).folds(["mon", "tue", "wed"])
[(['mon'], ['tue']), (['mon', 'tue'], ['wed'])]
>>> time_split(10, valid_frac=0.2, gap=1)
(array([0, 1, 2, 3, 4, 5, 6]), array([8, 9]))
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from training.errors import BadInputError

__all__ = ["WalkForward", "time_split", "walk_forward"]

T = TypeVar("T")


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward folds (skfolio/scikit-learn style) with a purge ``gap``.

    ``test_size`` items per validation block; ``n_folds`` blocks (``None``: as many as leave at
    least ``min_train_size`` training items before the first); ``train_size`` caps the training
    window to the latest items (``None``: expanding from the start).
    """

    test_size: int = 1
    n_folds: int | None = None
    gap: int = 0
    min_train_size: int = 1
    train_size: int | None = None

    def __post_init__(self) -> None:
        if self.test_size < 1:
            raise BadInputError(f"test_size: must be >= 1, got {self.test_size}", field="test_size")
        if self.n_folds is not None and self.n_folds < 1:
            raise BadInputError(f"n_folds: must be >= 1, got {self.n_folds}", field="n_folds")
        if self.gap < 0:
            raise BadInputError(f"gap: must be >= 0, got {self.gap}", field="gap")
        if self.min_train_size < 1:
            raise BadInputError(
                f"min_train_size: must be >= 1, got {self.min_train_size}", field="min_train_size"
            )
        if self.train_size is not None and self.train_size < 1:
            raise BadInputError(
                f"train_size: must be >= 1, got {self.train_size}", field="train_size"
            )

    def n_splits(self, n: int) -> int:
        """How many folds ``n`` items give (0 when not even one fits)."""
        if self.n_folds is not None:
            return self.n_folds
        return max(0, (n - self.gap - self.min_train_size) // self.test_size)

    def split(self, n: int | Sequence[object]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(train, validation)`` index arrays of each fold, oldest fold first.

        Raises :class:`~training.errors.BadInputError` naming the fold when it has fewer than
        ``min_train_size`` training items.
        """
        n = n if isinstance(n, int) else len(n)
        n_folds = self.n_splits(n)
        first = n - n_folds * self.test_size
        for i in range(n_folds):
            start = first + i * self.test_size
            train_end = start - self.gap
            if train_end < self.min_train_size:
                raise BadInputError(
                    f"walk-forward fold {i} of {n} items has {max(train_end, 0)} to train on "
                    f"(test_size={self.test_size}, gap={self.gap})",
                    field="n_folds",
                )
            train_start = 0 if self.train_size is None else max(0, train_end - self.train_size)
            yield np.arange(train_start, train_end), np.arange(start, start + self.test_size)

    def folds(self, items: Sequence[T]) -> list[tuple[list[T], list[T]]]:
        """:meth:`split` over ``items`` (already in time order), as lists of the items."""
        return [
            ([items[i] for i in tr], [items[i] for i in va]) for tr, va in self.split(len(items))
        ]


def time_split(n: int, valid_frac: float = 0.2, gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One split: train on the first part, validate on the last ``valid_frac`` (at least one
    item); ``gap`` items between them are dropped."""
    if n < 2:
        raise BadInputError(f"time_split: need n >= 2, got {n}", field="n")
    if not (0.0 < valid_frac < 1.0):
        raise BadInputError(
            f"time_split: valid_frac must be in (0, 1), got {valid_frac}", field="valid_frac"
        )
    n_valid = max(1, round(n * valid_frac))
    if n - n_valid - gap < 1:
        raise BadInputError(
            f"time_split: nothing left to train on (n={n}, valid={n_valid}, gap={gap})",
            field="valid_frac",
        )
    [(train, valid)] = WalkForward(test_size=n_valid, n_folds=1, gap=gap).split(n)
    return train, valid


def walk_forward(
    n: int, n_folds: int = 4, valid_frac: float = 0.2, gap: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the last ``valid_frac`` of ``n`` rows in ``n_folds`` equal
    blocks (rows that do not divide evenly train).

    >>> [(len(a), int(v[0]), int(v[-1])) for a, v in walk_forward(100, n_folds=2, valid_frac=0.2)]
    [(80, 80, 89), (90, 90, 99)]
    """
    n_valid = max(n_folds, round(n * valid_frac))
    return WalkForward(test_size=n_valid // n_folds, n_folds=n_folds, gap=gap).split(n)
