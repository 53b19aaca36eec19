"""Serving fixtures: two small real bundles (K=3 diag HMM + XGBoost head) in a tmp registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.bundle import ModelBundle, feature_histograms
from training.features import schema_for
from training.hmm import ForwardFilter, HMMParams, sample_hmm
from training.policy import PolicyConfig, fit_policy
from training.registry import Registry


def make_bundle(seed: int, n: int = 1500) -> tuple[ModelBundle, np.ndarray]:
    """A bundle whose HMM generated its own training data; returns it and that data."""
    schema = schema_for("spot")
    d = len(schema.names)
    rng = np.random.default_rng(seed)
    k = 3
    trans = np.full((k, k), 0.02) + np.eye(k) * (1 - 0.02 * k)
    params = HMMParams(
        startprob=np.full(k, 1 / k),
        transmat=trans / trans.sum(axis=1, keepdims=True),
        means=rng.normal(0.0, 1.5, (k, d)),
        covars=rng.uniform(0.5, 1.5, (k, d)),
        covariance_type="diag",
    )
    X, states = sample_hmm(params, n, seed=seed)
    post = ForwardFilter(params).run(X).posteriors
    labels = np.where(states == 0, 0, np.where(states == 1, 2, 1))
    flip = rng.random(n) < 0.2
    labels[flip] = rng.integers(0, 3, flip.sum())
    pc = PolicyConfig(n_estimators=15, max_depth=3, early_stopping_rounds=5)
    head = fit_policy(post, X, labels, pc)
    bundle = ModelBundle.from_parts(
        schema=schema,
        hmm=params,
        policy=head,
        policy_config=pc,
        thresholds={"buy": pc.buy_threshold, "sell": pc.sell_threshold},
        histograms=feature_histograms(X, schema.names, bins=16),
        metadata={"seed": seed, "symbol_days": ["SYNTH/2024-01-01"]},
    )
    return bundle, X


@pytest.fixture(scope="session")
def bundles() -> list[tuple[ModelBundle, np.ndarray]]:
    """Two different bundles (seeds 1 and 2) with their training data."""
    return [make_bundle(1), make_bundle(2)]


@pytest.fixture(scope="module")
def registry_root(
    tmp_path_factory: pytest.TempPathFactory, bundles: list[tuple[ModelBundle, np.ndarray]]
) -> Path:
    """A fresh registry per test module: v0001 (live) and v0002 (candidate)."""
    root = tmp_path_factory.mktemp("serving_registry")
    reg = Registry(root)
    reg.register(bundles[0][0])
    reg.promote()
    reg.register(bundles[1][0])
    return root
