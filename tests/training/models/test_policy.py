"""training/policy.py: time-ordered splits, XGBoost head on [posterior, features], decisions, UBJ."""

from __future__ import annotations

import numpy as np
import pytest

from training.models.policy import PolicyConfig
from training.models.policy import PolicyHead
from training.models.policy import evaluate_policy
from training.models.policy import fit_policy
from training.models.policy import policy_inputs
from training.selection import time_split
from training.selection import walk_forward

N, K, F = 4000, 3, 4


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels driven by regime (posterior) and one feature; returns posts, feats, labels, fwd_bp."""
    rng = np.random.default_rng(seed)
    post = rng.dirichlet(np.full(K, 0.3), size=N)
    feat = rng.standard_normal((N, F))
    signal = 1.5 * feat[:, 0] + 2.0 * (post[:, 2] - post[:, 0])
    fwd = 4.0 * signal + rng.normal(0, 2.0, size=N)
    labels = np.where(fwd > 3.0, 2, np.where(fwd < -3.0, 0, 1)).astype(np.int8)
    return post, feat, labels, fwd


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return make_data()


@pytest.fixture(scope="module")
def head(data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> PolicyHead:
    post, feat, labels, _ = data
    config = PolicyConfig(n_estimators=100, buy_threshold=0.45, sell_threshold=0.45)
    return fit_policy(post[:3000], feat[:3000], labels[:3000], config)


def test_time_split_is_ordered_with_gap() -> None:
    tr, va = time_split(100, valid_frac=0.2, gap=5)
    assert tr.tolist() == list(range(75)) and va.tolist() == list(range(80, 100))
    with pytest.raises(ValueError, match="nothing left to train"):
        time_split(10, valid_frac=0.5, gap=5)
    folds = list(walk_forward(1000, n_folds=4, valid_frac=0.2, gap=10))
    assert len(folds) == 4
    ends = [v[-1] for _, v in folds]
    assert ends[-1] == 999 and ends == sorted(ends)
    for tr, va in folds:
        assert tr[-1] + 10 < va[0]  # training strictly before validation, gap respected
    assert sum(len(v) for _, v in folds) == 200


def test_head_learns_out_of_sample(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], head: PolicyHead
) -> None:
    post, feat, labels, _ = data
    assert head.n_inputs == K + F and head.n_states == K
    assert head.booster.num_boosted_rounds() <= 100
    proba = head.predict_proba(policy_inputs(post[3000:], feat[3000:]))
    assert proba.shape == (1000, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    acc = (proba.argmax(axis=1) == labels[3000:]).mean()
    majority = np.bincount(labels[3000:]).max() / 1000
    assert acc > majority + 0.2


def test_predict_row_equals_batch_and_roundtrips_ubj(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], head: PolicyHead
) -> None:
    post, feat, _, _ = data
    X = policy_inputs(post[3000:3050], feat[3000:3050])
    batch = head.predict_proba(X)
    for i in range(0, 50, 7):
        np.testing.assert_allclose(head.predict_row(X[i]), batch[i], rtol=0, atol=2e-6)
    raw = head.to_bytes()
    assert raw[:1] == b"{"  # UBJSON object, not a pickle
    back = PolicyHead.from_bytes(raw, head.config, n_states=K)
    np.testing.assert_array_equal(back.predict_proba(X), batch)
    assert back.n_inputs == head.n_inputs
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        head.predict_row(X[0, :5])
    bad = X[0].copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="index 4"):
        head.predict_row(bad)


def test_compiled_tree_walk_equals_xgboost_including_split_boundaries(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], head: PolicyHead
) -> None:
    post, feat, _, _ = data
    assert head.compiled is not None
    X = policy_inputs(post, feat)[:1500].copy()
    c = head.compiled
    internal = np.flatnonzero(np.isfinite(c._thr))
    rng = np.random.default_rng(5)
    # put features exactly on split values: "x < split" goes left, equality goes right
    for i, node in enumerate(rng.choice(internal, size=500)):
        X[i, c._feat[node]] = c._thr[node]
    ours = np.stack([head.predict_row(r) for r in X])
    ref = head.predict_proba(X)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
    for r in X[:20]:
        np.testing.assert_allclose(head.predict_row_xgb(r), head.predict_row(r), atol=2e-6)


def test_decide_thresholds(head: PolicyHead) -> None:
    assert head.decide(np.array([0.1, 0.4, 0.5])) == ("buy", pytest.approx(0.4))
    assert head.decide(np.array([0.5, 0.4, 0.1])) == ("sell", pytest.approx(-0.4))
    assert head.decide(np.array([0.3, 0.4, 0.3])) == ("flat", pytest.approx(0.0))
    assert head.decide(np.array([0.46, 0.08, 0.46]))[0] == "flat"  # a tie is no edge
    act, score = head.decide_many(np.array([[0.1, 0.4, 0.5], [0.5, 0.4, 0.1], [0.3, 0.4, 0.3]]))
    assert act.tolist() == [2, 0, 1]
    np.testing.assert_allclose(score, [0.4, -0.4, 0.0])
    strict = PolicyHead(head.booster, PolicyConfig(buy_threshold=0.6, sell_threshold=0.6))
    assert strict.decide(np.array([0.1, 0.4, 0.5]))[0] == "flat"


def test_evaluate_policy_classification_figures() -> None:
    # issue 11: no PnL here any more (a per-second signal sum is not tradeable); the simulator
    # owns PnL. What is left: accuracy and the signal counts.
    rng = np.random.default_rng(1)
    n = 2000
    post = rng.dirichlet(np.ones(2), size=n)
    feat = rng.standard_normal((n, 1))
    labels = np.where(feat[:, 0] > 0.5, 2, np.where(feat[:, 0] < -0.5, 0, 1))
    head = fit_policy(post, feat, labels, PolicyConfig(n_estimators=50))
    m = evaluate_policy(head, post, feat, labels)
    n_dir = int((labels != 1).sum())
    assert m["accuracy"] > 0.99
    assert abs(m["signals"] - n_dir) <= 10
    assert m["buys"] + m["sells"] == m["signals"]
    assert "net_pnl_bp" not in m
    masked = evaluate_policy(head, post, feat, labels, valid_mask=labels == 2)
    assert masked["n"] == (labels == 2).sum() and masked["sells"] == 0


def test_valid_mask_rows_do_not_train(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    post, feat, labels, _ = data
    n = 1500
    mask = np.ones(n, dtype=bool)
    mask[::3] = False
    garbage = labels[:n].copy()
    garbage[~mask] = 2
    cfg = PolicyConfig(n_estimators=30)
    a = fit_policy(post[:n], feat[:n], garbage, cfg, valid_mask=mask)
    b = fit_policy(post[:n], feat[:n], labels[:n], cfg, valid_mask=mask)
    X = policy_inputs(post[n : n + 200], feat[n : n + 200])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_bad_inputs_name_the_field(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    post, feat, labels, _ = data
    f = feat[:500].copy()
    f[42, 1] = np.nan
    with pytest.raises(ValueError, match="features: non-finite value at row 42, column 1"):
        fit_policy(post[:500], f, labels[:500])
    with pytest.raises(ValueError, match="labels: values must be"):
        fit_policy(post[:500], feat[:500], np.full(500, 3))
    with pytest.raises(ValueError, match="rows"):
        fit_policy(post[:500], feat[:400], labels[:500])
    with pytest.raises(ValueError, match="buy_threshold"):
        PolicyConfig(buy_threshold=1.5)
