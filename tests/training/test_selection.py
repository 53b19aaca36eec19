"""``training.selection``: the one walk-forward splitter (rows or days), purge gap, time split."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import BadInputError
from training.selection import WalkForward
from training.selection import time_split
from training.selection import walk_forward


@pytest.mark.parametrize(
    ("n", "test_size", "n_folds", "gap"),
    [(100, 10, 3, 0), (100, 7, 5, 4), (50, 1, None, 0), (12, 3, None, 2), (9, 2, 1, 6)],
)
def test_every_fold_trains_strictly_before_its_purged_validation_block(
    n: int, test_size: int, n_folds: int | None, gap: int
) -> None:
    cv = WalkForward(test_size=test_size, n_folds=n_folds, gap=gap)
    folds = list(cv.split(n))
    assert len(folds) == cv.n_splits(n) > 0
    for tr, va in folds:
        assert len(va) == test_size and np.all(np.diff(va) == 1)
        assert tr[0] == 0 and np.all(np.diff(tr) == 1)  # expanding from the start
        assert tr[-1] + gap < va[0]  # gap items purged between train and validation
    starts = [int(va[0]) for _, va in folds]
    assert starts == sorted(starts)
    assert folds[-1][1][-1] == n - 1  # the latest data is always validated
    blocks = np.concatenate([va for _, va in folds])
    assert len(np.unique(blocks)) == len(blocks)  # validation blocks never overlap


def test_as_many_folds_as_fit_when_n_folds_is_none() -> None:
    cv = WalkForward(test_size=2, gap=1, min_train_size=3)
    assert cv.n_splits(10) == 3  # (10 - 1 - 3) // 2
    assert [va.tolist() for _, va in cv.split(10)] == [[4, 5], [6, 7], [8, 9]]
    assert [len(tr) for tr, _ in cv.split(10)] == [3, 5, 7]
    assert list(WalkForward(test_size=5).split(5)) == []


def test_rolling_training_window() -> None:
    folds = list(WalkForward(test_size=2, n_folds=3, train_size=4).split(12))
    assert [tr.tolist() for tr, _ in folds] == [[2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]


def test_folds_over_items_and_sequences() -> None:
    days = ["d1", "d2", "d3", "d4"]
    assert WalkForward(test_size=1).folds(days) == [
        (["d1"], ["d2"]),
        (["d1", "d2"], ["d3"]),
        (["d1", "d2", "d3"], ["d4"]),
    ]
    assert WalkForward(test_size=1, gap=1).folds(days) == [(["d1"], ["d3"]), (["d1", "d2"], ["d4"])]
    split_len = [(a.tolist(), b.tolist()) for a, b in WalkForward(n_folds=2).split(days)]
    assert split_len == [([0, 1], [2]), ([0, 1, 2], [3])]


def test_too_little_training_data_names_the_fold() -> None:
    with pytest.raises(BadInputError, match="fold 0 of 10 items has 0 to train on"):
        list(WalkForward(test_size=3, n_folds=3, gap=1).split(10))
    with pytest.raises(BadInputError, match="gap"):
        WalkForward(gap=-1)
    with pytest.raises(BadInputError, match="test_size"):
        WalkForward(test_size=0)


def test_time_split_is_the_one_fold_walk_forward() -> None:
    for n, frac, gap in [(100, 0.2, 5), (10, 0.2, 1), (37, 0.33, 0)]:
        tr, va = time_split(n, frac, gap)
        n_valid = max(1, round(n * frac))
        [(wtr, wva)] = WalkForward(test_size=n_valid, n_folds=1, gap=gap).split(n)
        np.testing.assert_array_equal(tr, wtr)
        np.testing.assert_array_equal(va, wva)
        assert va[-1] == n - 1 and len(va) == n_valid and tr[-1] + gap < va[0]
    with pytest.raises(BadInputError, match="need n >= 2"):
        time_split(1)


def test_walk_forward_over_rows_splits_the_validation_share_in_equal_blocks() -> None:
    folds = list(walk_forward(103, n_folds=4, valid_frac=0.2, gap=2))
    assert [len(va) for _, va in folds] == [5, 5, 5, 5]  # round(20.6) = 21 -> 4 blocks of 5
    assert folds[-1][1][-1] == 102
    assert all(tr[-1] + 2 < va[0] for tr, va in folds)
