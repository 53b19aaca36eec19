"""Policy head: XGBoost on ``[filtered posterior (K), features (D)]`` → P(sell, flat, buy).

Trained on FILTERED posteriors (the ones inference sees) with time-ordered splits only; the
probabilities become an action through two thresholds, and the score ``p_buy - p_sell``.
Stored as XGBoost UBJ bytes (no pickle). Imports only numpy/xgboost. The early-stopping split
is :func:`training.selection.time_split`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from training.errors import BadInputError
from training.selection import time_split

ACTIONS = ("sell", "flat", "buy")
_SELL, _FLAT, _BUY = 0, 1, 2


@dataclass(frozen=True)
class PolicyConfig:
    """XGBoost hyper-parameters and the decision thresholds on P(buy) / P(sell).

    The defaults (``nhmm train``'s) were chosen in ``bench/bench_head.py`` on development seeds
    by a rule fixed in advance: shallow trees on half the rows per round and a 0.55 threshold.
    The 1-s rows' labels overlap for a whole horizon, so the head sees far fewer independent
    outcomes than rows; the old depth-4 head fitted noise (held-out simulated net PnL
    +3.8 ± 1.9 USDT a day better with these, with labels' ``min_edge_bps`` 2)."""

    max_depth: int = 2
    eta: float = 0.1
    n_estimators: int = 200
    min_child_weight: float = 5.0
    subsample: float = 0.5
    buy_threshold: float = 0.55
    sell_threshold: float = 0.55
    seed: int = 0
    nthread: int = 1
    early_stopping_rounds: int = 20
    valid_frac: float = 0.2
    gap: int = 0

    def __post_init__(self) -> None:
        for name in ("buy_threshold", "sell_threshold"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise BadInputError(
                    f"PolicyConfig.{name} must be in [0, 1], got {getattr(self, name)}"
                )
        if not (0.0 < self.valid_frac < 1.0) or self.gap < 0:
            raise BadInputError("PolicyConfig.valid_frac must be in (0, 1) and gap >= 0")
        if self.n_estimators < 1 or self.max_depth < 1 or self.nthread < 1:
            raise BadInputError("PolicyConfig.n_estimators, max_depth and nthread must be >= 1")
        if not (0.0 < self.subsample <= 1.0):
            raise BadInputError(f"PolicyConfig.subsample must be in (0, 1], got {self.subsample}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def policy_inputs(posteriors: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``[posterior, features]`` as one float32 matrix, checked for shape and finiteness."""
    p = np.atleast_2d(np.asarray(posteriors, dtype=np.float64))
    f = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if p.shape[0] != f.shape[0]:
        raise BadInputError(f"posteriors has {p.shape[0]} rows but features has {f.shape[0]}")
    for name, a in (("posteriors", p), ("features", f)):
        if not np.isfinite(a).all():
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise BadInputError(f"{name}: non-finite value at row {int(r)}, column {int(c)}")
    return np.hstack([p, f]).astype(np.float32)


class CompiledTrees:
    """The booster's trees as flat numpy arrays, walked for one row with a few vector ops.

    XGBoost's ``inplace_predict`` costs ~70-200 µs per call here, nearly all Python/C-API
    overhead; this walk gives the same probabilities (float32 splits, ``x < split`` goes left)
    in a fraction of that. The per-class base margin is read off the booster's own margins on
    probe rows, and the walk is checked against ``inplace_predict`` when built.
    """

    def __init__(self, booster: xgb.Booster, n_classes: int = 3) -> None:
        model = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]
        trees = model["trees"]
        if not trees:
            raise ValueError("CompiledTrees: booster has no trees")
        left, right, feat, thr, value, roots, depth = [], [], [], [], [], [], 0
        offset = 0
        for t in trees:
            if any(int(v) != 0 for v in t["split_type"]):
                raise ValueError("CompiledTrees: only numerical splits are supported")
            lc = np.asarray(t["left_children"], dtype=np.int64)
            rc = np.asarray(t["right_children"], dtype=np.int64)
            leaf = lc < 0
            ids = np.arange(len(lc))
            left.append(np.where(leaf, ids, lc) + offset)
            right.append(np.where(leaf, ids, rc) + offset)
            feat.append(np.where(leaf, 0, np.asarray(t["split_indices"], dtype=np.int64)))
            cond = np.asarray(t["split_conditions"], dtype=np.float32)
            thr.append(np.where(leaf, np.float32(np.inf), cond))
            value.append(np.where(leaf, cond.astype(np.float64), 0.0))
            roots.append(offset)
            depth = max(depth, _tree_depth(lc, rc))
            offset += len(lc)
        self._left = np.concatenate(left)
        self._right = np.concatenate(right)
        self._feat = np.concatenate(feat)
        self._thr = np.concatenate(thr).astype(np.float32)
        self._value = np.concatenate(value)
        self._roots = np.asarray(roots, dtype=np.int64)
        self._depth = depth
        self._tree_class = np.asarray(model["tree_info"], dtype=np.int64)
        self.n_classes = n_classes
        self.n_inputs = int(booster.num_features())
        probe = np.random.default_rng(0).standard_normal((16, self.n_inputs)).astype(np.float32)
        margin = np.asarray(booster.inplace_predict(probe, predict_type="margin")).reshape(16, -1)
        sums = np.stack([self._tree_sums(r) for r in probe])
        base = margin - sums
        if np.ptp(base, axis=0).max() > 1e-4:
            raise ValueError("CompiledTrees: tree walk disagrees with the booster")
        self._base = base.mean(axis=0)

    def _tree_sums(self, x32: np.ndarray) -> np.ndarray:
        # every node's branch for this row at once, then follow it depth times
        nxt = np.where(x32[self._feat] < self._thr, self._left, self._right)
        node = self._roots
        for _ in range(self._depth):
            node = nxt[node]
        return np.bincount(self._tree_class, weights=self._value[node], minlength=self.n_classes)

    def predict_row(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of margins) for one finite row."""
        z = self._tree_sums(x.astype(np.float32)) + self._base
        e = np.exp(z - z.max())
        return e / e.sum()


def _tree_depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, frontier = 0, [0]
    while True:
        nxt = [c for n in frontier for c in (left[n], right[n]) if c >= 0]
        if not nxt:
            return depth
        depth += 1
        frontier = nxt


class PolicyHead:
    """A trained booster plus its config; single rows go through :class:`CompiledTrees`."""

    def __init__(
        self, booster: xgb.Booster, config: PolicyConfig, n_states: int | None = None
    ) -> None:
        self.booster = booster
        self.config = config
        self.booster.set_param({"nthread": config.nthread})
        self.n_inputs = int(booster.num_features())
        self.n_states = n_states
        try:
            self.compiled: CompiledTrees | None = CompiledTrees(booster)
        except ValueError:  # e.g. categorical splits: stay on XGBoost's own predictor
            self.compiled = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 3)`` probabilities of (sell, flat, buy) for ``X = [posterior, features]``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise BadInputError(f"X: expected shape (n, {self.n_inputs}), got {X.shape}")
        if not np.isfinite(X).all():
            raise BadInputError(
                f"X: non-finite value at row {int(np.argwhere(~np.isfinite(X))[0][0])}"
            )
        return np.asarray(self.booster.inplace_predict(X), dtype=np.float64).reshape(-1, 3)

    def predict_row(self, x: np.ndarray) -> np.ndarray:
        """``(3,)`` probabilities for one input row (the live path; same numbers as
        :meth:`predict_proba` to float32 precision, proven in tests)."""
        x = np.asarray(x)
        if x.shape != (self.n_inputs,):
            raise BadInputError(f"x: expected shape ({self.n_inputs},), got {x.shape}")
        if not np.isfinite(x).all():
            raise BadInputError(
                f"x: non-finite value at index {int(np.flatnonzero(~np.isfinite(x))[0])}"
            )
        if self.compiled is None:
            return self.predict_row_xgb(x)
        return self.compiled.predict_row(x)

    def predict_row_xgb(self, x: np.ndarray) -> np.ndarray:
        """:meth:`predict_row` through ``booster.inplace_predict`` (reference and fallback)."""
        row = np.asarray(x, dtype=np.float32).reshape(1, -1)
        return np.asarray(self.booster.inplace_predict(row), dtype=np.float64)[0]

    def decide(self, proba: np.ndarray) -> tuple[str, float]:
        """``(action, score)`` with score ``p_buy - p_sell``; buy/sell need their threshold and
        to beat the other side, else flat."""
        p_sell, p_buy = float(proba[_SELL]), float(proba[_BUY])
        score = p_buy - p_sell
        if p_buy >= self.config.buy_threshold and p_buy > p_sell:
            return "buy", score
        if p_sell >= self.config.sell_threshold and p_sell > p_buy:
            return "sell", score
        return "flat", score

    def decide_many(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`decide`: class codes (0 sell, 1 flat, 2 buy) and scores."""
        p = np.asarray(proba, dtype=np.float64)
        p_sell, p_buy = p[:, _SELL], p[:, _BUY]
        act = np.full(len(p), _FLAT, dtype=np.int8)
        act[(p_sell >= self.config.sell_threshold) & (p_sell > p_buy)] = _SELL
        act[(p_buy >= self.config.buy_threshold) & (p_buy > p_sell)] = _BUY
        return act, p_buy - p_sell

    def to_bytes(self) -> bytes:
        """XGBoost's own UBJ format."""
        return bytes(self.booster.save_raw("ubj"))

    @classmethod
    def from_bytes(cls, b: bytes, config: PolicyConfig, n_states: int | None = None) -> PolicyHead:
        booster = xgb.Booster()
        booster.load_model(bytearray(b))
        return cls(booster, config, n_states)


def fit_policy(
    posteriors: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    config: PolicyConfig = PolicyConfig(),
    valid_mask: np.ndarray | None = None,
) -> PolicyHead:
    """Train the head on time-ordered data: the last ``config.valid_frac`` (after a ``gap``) is
    the early-stopping set; rows with ``valid_mask`` False (e.g. no full label horizon, feature
    warm-up) are dropped after the split. The booster is cut at its best iteration."""
    X = policy_inputs(posteriors, features)
    y = np.asarray(labels)
    if y.shape != (X.shape[0],):
        raise BadInputError(f"labels: expected shape ({X.shape[0]},), got {y.shape}")
    if not np.isin(y, (0, 1, 2)).all():
        raise BadInputError(
            f"labels: values must be 0 (sell), 1 (flat), 2 (buy); got {np.unique(y)}"
        )
    mask = np.ones(len(y), dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    if mask.shape != y.shape:
        raise BadInputError(f"valid_mask: expected shape {y.shape}, got {mask.shape}")
    tr, va = time_split(len(y), config.valid_frac, config.gap)
    tr, va = tr[mask[tr]], va[mask[va]]
    if len(tr) < 10 or len(va) < 1:
        raise BadInputError(f"fit_policy: too few valid rows (train {len(tr)}, valid {len(va)})")
    params = {
        "objective": "multi:softprob",
        "num_class": 3,
        "max_depth": config.max_depth,
        "eta": config.eta,
        "min_child_weight": config.min_child_weight,
        "subsample": config.subsample,
        "seed": config.seed,
        "nthread": config.nthread,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
    }
    dtrain = xgb.DMatrix(X[tr], label=y[tr])
    dvalid = xgb.DMatrix(X[va], label=y[va])
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=config.n_estimators,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=config.early_stopping_rounds,
        verbose_eval=False,
    )
    best = getattr(booster, "best_iteration", None)
    if best is not None and best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]
    k = np.atleast_2d(np.asarray(posteriors)).shape[1]
    return PolicyHead(booster, config, n_states=k)


def evaluate_policy(
    head: PolicyHead,
    posteriors: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    valid_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Classification figures of the head on labelled rows: accuracy, how many rows signal
    buy/sell, mean |score|. Not a PnL: one signal per second over a multi-minute horizon is
    not one trade each, so what the signals earn is the trade simulator's to say
    (:mod:`training.simulation`)."""
    X = policy_inputs(posteriors, features)
    y = np.asarray(labels)
    if y.shape != (X.shape[0],):
        raise BadInputError(f"labels: expected shape ({X.shape[0]},), got {y.shape}")
    mask = np.ones(len(y), dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    X, y = X[mask], y[mask]
    if len(y) == 0:
        raise BadInputError("evaluate_policy: no valid rows")
    proba = head.predict_proba(X)
    act, score = head.decide_many(proba)
    return {
        "n": float(len(y)),
        "accuracy": float((proba.argmax(axis=1) == y).mean()),
        "signals": float((act != _FLAT).sum()),
        "buys": float((act == _BUY).sum()),
        "sells": float((act == _SELL).sum()),
        "mean_abs_score": float(np.abs(score).mean()),
    }
