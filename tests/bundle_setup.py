"""Complete bundles built from real objects, for the artifact, registry and ``nhmm models`` tests.

Unlike :func:`serving.testing.make_bundle` (a model trained on the data its HMM generated), these
are random but fully-formed: a full-covariance HMM, a real XGBoost booster, histograms, and the
metadata fields the registry and CLI show.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb

from training.artifacts.bundle import ModelBundle
from training.artifacts.histograms import feature_histograms
from training.features import FeatureSchema
from training.models.hmm import HMMParams
from training.models.policy import PolicyConfig

__all__ = ["hmm_params", "make_bundle", "policy_bytes"]


def policy_bytes(seed: int = 0) -> bytes:
    """A real (tiny) XGBoost multi-class booster serialised as UBJ."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1, "seed": 0},
        xgb.DMatrix(X, label=y),
        num_boost_round=3,
    )
    return bytes(booster.save_raw(raw_format="ubj"))


def hmm_params(k: int = 3, d: int = 10, seed: int = 0) -> HMMParams:
    rng = np.random.default_rng(seed)
    trans = rng.uniform(0.1, 1.0, size=(k, k)) + np.eye(k) * 5
    a = rng.normal(size=(k, d, d))
    return HMMParams(
        startprob=np.full(k, 1.0 / k),
        transmat=trans / trans.sum(axis=1, keepdims=True),
        means=rng.normal(size=(k, d)),
        covars=a @ a.transpose(0, 2, 1) + np.eye(d) * 0.5,
        covariance_type="full",
    )


def make_bundle(seed: int = 0, *, policy: bytes | None = None, **metadata: Any) -> ModelBundle:
    """A complete bundle built from real objects (schema, HMM, XGBoost bytes, histograms)."""
    schema = FeatureSchema()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(500, len(schema.names)))
    return ModelBundle(
        schema=schema.to_dict(),
        scaler={"mean": X.mean(axis=0), "std": X.std(axis=0), "n": np.array(500, dtype=np.int64)},
        hmm=hmm_params(seed=seed).to_arrays(),
        policy_ubj=policy if policy is not None else policy_bytes(seed),
        policy_config=PolicyConfig(n_estimators=3, max_depth=2, buy_threshold=0.5).to_dict(),
        thresholds={"min_conf": 0.6, "score_buy": 0.55 + seed * 1e-3, "score_sell": 0.55},
        histograms=feature_histograms(X, schema.names, bins=16),
        metadata={
            "created_at": "2024-05-01T00:00:00+00:00",
            "symbol_days": ["BTCUSDT/2024-04-01", "BTCUSDT/2024-04-02"],
            "config": {"hmm": {"n_states": 3}, "seed": seed},
            "metrics": {"sharpe": 1.25, "hit_rate": 0.52, "n_trades": 42},
            "data_hash": "ab" * 32,
            **metadata,
        },
    )
