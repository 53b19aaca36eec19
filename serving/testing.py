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
from training.models.online import training_memory
from training.models.policy import PolicyConfig
from training.models.policy import fit_policy

__all__ = ["free_port", "local_serve", "make_bundle"]


def make_bundle(
    seed: int, n: int = 1500, memory: bool = True, market: str = "spot"
) -> tuple[ModelBundle, np.ndarray]:
    """A FEATURES_V1 bundle of ``market`` whose HMM generated its own training data; returns both.
    With ``memory`` it carries the online-EM memory ``nhmm train`` stores (statistics and a
    reservoir of the rows), so ``partial_fit`` on it runs the whole guard, policy re-check
    included.

    >>> bundle, X = make_bundle(1, n=300)
    >>> X.shape, bundle.hmm_params().n_states
    ((300, 10), 3)
    """
    schema = schema_for(market)
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
    pc = PolicyConfig(n_estimators=15, max_depth=3, early_stopping_rounds=5, subsample=1.0,
                      buy_threshold=0.45, sell_threshold=0.45)  # fmt: skip
    head = fit_policy(post, X, labels, pc)
    bundle = ModelBundle.from_parts(
        schema=schema,
        hmm=params,
        policy=head,
        policy_config=pc,
        thresholds={"buy": pc.buy_threshold, "sell": pc.sell_threshold},
        histograms=feature_histograms(X, schema.names, bins=16),
        metadata={"seed": seed, "symbol_days": ["SYNTH/2024-01-01"]},
        online=training_memory(params, X) if memory else None,
    )
    return bundle, X


_PORT_LOW, _PORT_HIGH = 20000, 32767  # above Ray's worker ports (10002-19999)
_handed_out: set[int] = set()


def _ephemeral_range() -> range:
    """The kernel's range for outgoing connections' local ports (Linux; a default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A TCP port free on this machine now, outside the kernel's ephemeral range.

    A port from ``bind(0)`` is ephemeral: between our release and the server's bind, any
    outgoing connection (Ray opens hundreds) may take it. Ports drawn at random from a
    range the kernel never hands out, and never twice per process, do not race that way.
    """
    rng = np.random.default_rng()
    ephemeral = _ephemeral_range()
    for port in rng.permutation(np.arange(_PORT_LOW, _PORT_HIGH + 1)):
        port = int(port)
        if port in _handed_out or port in ephemeral:
            continue
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {_PORT_LOW}-{_PORT_HIGH}")


@contextmanager
def local_serve(
    registry_root: str | Path,
    args: dict[str, Any] | None = None,
    num_cpus: int = 2,
    app_name: str = "nhmm",
    address: str | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """Ray + Serve running :func:`serving.app.build_app` on a free loopback port; yields
    ``http://127.0.0.1:PORT`` and shuts Serve down (and disconnects) on exit.

    Embedded local Ray by default; ``address`` connects to a running Ray instead (e.g. a
    ``ray start --head`` with a dashboard for jobs and a metrics export port). With ``port``
    as well, Serve is kept on that Ray (started on ``port`` if it is not running): on exit
    only the application is deleted, so the next ``local_serve`` there deploys without
    starting Serve again.
    """
    import ray
    from ray import serve

    from serving.app import build_app

    keep = address is not None and port is not None
    port = port or free_port()
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
        if keep:
            serve.delete(app_name)
        else:
            serve.shutdown()
        ray.shutdown()
