"""Small real pieces for tests and benchmarks: a self-consistent bundle and a local Serve.

:func:`make_bundle` builds a K=3 diag HMM + XGBoost head whose HMM generated its own training
data; :func:`local_serve` runs the application on an embedded local Ray and yields its URL.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from training.artifacts.bundle import ModelBundle
from training.artifacts.histograms import feature_histograms
from training.features import schema_for
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMParams
from training.models.hmm import sample_hmm
from training.models.policy import PolicyConfig
from training.models.policy import fit_policy

__all__ = ["free_port", "local_serve", "make_bundle"]


def make_bundle(seed: int, n: int = 1500) -> tuple[ModelBundle, np.ndarray]:
    """A FEATURES_V1 spot bundle whose HMM generated its own training data; returns both.

    >>> bundle, X = make_bundle(1, n=300)
    >>> X.shape, bundle.hmm_params().n_states
    ((300, 10), 3)
    """
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


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_serve(
    registry_root: str | Path,
    args: dict[str, Any] | None = None,
    num_cpus: int = 2,
    app_name: str = "nhmm",
    address: str | None = None,
) -> Iterator[str]:
    """Ray + Serve running :func:`serving.app.build_app` on a free loopback port; yields
    ``http://127.0.0.1:PORT`` and shuts Serve down (and disconnects) on exit.

    Embedded local Ray by default; ``address`` connects to a running Ray instead (e.g. a
    ``ray start --head`` with a dashboard for jobs and a metrics export port).
    """
    import ray
    from ray import serve

    from serving.app import build_app

    port = free_port()
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(
            build_app({"registry": str(registry_root), **(args or {})}),
            name=app_name,
            route_prefix="/",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
