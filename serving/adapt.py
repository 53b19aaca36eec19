"""Guarded online adaptation of a registry version: online EM that continues the parent's
memory, the child registered with its own lineage, nothing overwritten.

Used by the Serve partial-fit deployment for both ``POST /v1/partial_fit`` and drift-triggered
auto-adaptation, and by the backtest's adaptation report. :func:`partial_fit_bundle` is one
update of a bundle: the parent's statistics (``online.npz``; a bundle without one starts from
its own parameters standing for ``OnlineEMConfig.prior_samples`` rows), its training
reservoir for the guard, and its policy head re-checked on the child's posteriors.

A registered child records its parent, the hash of the rows it saw (the parent's data hash
chained with the window's), the guard's account, and its updated memory. It does not inherit
the parent's metrics (they were measured on another model) and keeps the parent's drift
reference (the training histograms): a window of one regime is no reference for a market.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.model import InferenceError
from serving.model import SchemaVersionMismatch
from training.artifacts.bundle import ModelBundle
from training.artifacts.registry import Registry
from training.artifacts.registry import UnknownModelError
from training.models.online import Actions
from training.models.online import OnlineEMConfig
from training.models.online import OnlineMemory
from training.models.online import PartialFitResult
from training.models.online import partial_fit as online_partial_fit
from training.models.policy import PolicyConfig
from training.models.policy import PolicyHead
from training.models.policy import policy_inputs

__all__ = [
    "INHERITED",
    "FitOutcome",
    "child_metadata",
    "fit_child",
    "partial_fit_bundle",
    "policy_actions",
]

#: Metadata a child keeps from its parent: what the lineage was trained on and how. Everything
#: else (metrics, test and search scores, data hash, candidates) described the parent.
INHERITED: tuple[str, ...] = ("symbol_days", "config")


@dataclass(frozen=True)
class FitOutcome:
    """The guard's verdict on one update; ``version`` is the registered child (``None`` when
    refused), ``promoted`` whether ``alias`` now points at it. Times are server-side, in ms;
    ``guard`` is :meth:`PartialFitResult.record`."""

    accepted: bool
    reason: str
    parent: str
    version: str | None
    alias: str | None
    promoted: bool
    heldout_ll_before: float | None
    heldout_ll_after: float | None
    n_samples: int
    fit_ms: float
    total_ms: float
    guard: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def policy_actions(head: PolicyHead) -> Actions:
    """A policy head as ``actions(posteriors, features) -> codes`` (0 sell, 1 flat, 2 buy), what
    :func:`~training.models.online.partial_fit` compares parent and child with."""

    def actions(posteriors: np.ndarray, features: np.ndarray) -> np.ndarray:
        return head.decide_many(head.predict_proba(policy_inputs(posteriors, features)))[0]

    return actions


@functools.lru_cache(maxsize=4)
def _head(policy_ubj: bytes, config: str) -> PolicyHead:
    return PolicyHead.from_bytes(policy_ubj, PolicyConfig(**json.loads(config)))


def _policy_head(bundle: ModelBundle) -> PolicyHead:
    """The bundle's policy head, built once per head: a lineage shares its root's head."""
    return _head(bytes(bundle.policy_ubj), json.dumps(bundle.policy_config, sort_keys=True))


def partial_fit_bundle(
    bundle: ModelBundle, X: np.ndarray, config: OnlineEMConfig | None = None
) -> tuple[PartialFitResult, OnlineMemory]:
    """One guarded update of ``bundle``'s HMM from the rows ``X``, continuing its memory.

    Returns the result and the memory the child carries (the parent's when refused)."""
    params = bundle.hmm_params()
    memory = bundle.online_memory()
    reservoir = None if memory is None else memory.reservoir
    result, stats = online_partial_fit(
        params,
        X,
        config or OnlineEMConfig(),
        stats=None if memory is None else memory.stats,
        reservoir=reservoir,
        actions=None if reservoir is None else policy_actions(_policy_head(bundle)),
    )
    return result, OnlineMemory(stats, reservoir)


def child_metadata(
    parent: Mapping[str, Any], X: np.ndarray, result: PartialFitResult | None
) -> dict[str, Any]:
    """The child's own metadata: :data:`INHERITED` keys, ``data_hash`` = SHA-256 of the
    parent's data hash and the window's rows (the chain of every row the lineage saw), and the
    guard's account under ``partial_fit``.

    >>> m = child_metadata({"config": {}, "metrics": {"x": 1.0}, "data_hash": "ab"},
    ...                    np.zeros((3, 2)), None)
    >>> sorted(m), m["partial_fit"]["parent_data_hash"], len(m["data_hash"])
    (['config', 'data_hash', 'partial_fit'], 'ab', 64)
    """
    window = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()).hexdigest()
    parent_hash = str(parent.get("data_hash", ""))
    out = {k: parent[k] for k in INHERITED if k in parent}
    out["data_hash"] = hashlib.sha256(f"{parent_hash}:{window}".encode()).hexdigest()
    out["partial_fit"] = {
        "parent_data_hash": parent_hash,
        "window_hash": window,
        **({} if result is None else result.record()),
    }
    return out


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def fit_child(
    registry: Registry,
    parent_ref: str,
    X: Sequence[Sequence[float]] | np.ndarray,
    schema_version: str | None = None,
    alias: str | None = None,
    only_if_alias_at_parent: bool = False,
    extra_metadata: Mapping[str, Any] | None = None,
    config: OnlineEMConfig | None = None,
) -> FitOutcome:
    """One guarded online-EM update of ``parent_ref``; if accepted register the child (parent
    recorded, with its memory) and point ``alias`` at it. With ``only_if_alias_at_parent`` the
    alias moves only while it still names the parent (auto-adapt must not undo a person's
    promote). A refused child registers nothing and moves no alias.

    Raises :class:`UnknownModelError` for an unknown ``parent_ref`` and :class:`InferenceError`
    naming the field for a wrong schema version or malformed rows.
    """
    t0 = time.perf_counter()
    parent = registry.resolve(parent_ref)
    bundle = registry.load(parent)
    schema = bundle.feature_schema()
    if schema_version is not None and schema_version != schema.version:
        raise SchemaVersionMismatch(
            "schema_version", f"{schema_version!r} != model schema {schema.version!r}"
        )
    d = len(schema.names)
    if not isinstance(X, np.ndarray):
        for i, row in enumerate(X):
            if len(row) != d:
                raise InferenceError(f"X[{i}]", f"expected {d} values, got {len(row)}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != d:
        raise InferenceError("X", f"expected rows of {d} values, got shape {X.shape}")
    t_fit = time.perf_counter()
    try:
        result, memory = partial_fit_bundle(bundle, X, config)
    except (ValueError, FloatingPointError) as exc:  # rows the model cannot score
        raise InferenceError("X", str(exc)) from exc
    fit_ms = (time.perf_counter() - t_fit) * 1e3
    version = None
    promoted = False
    if result.accepted:
        metadata = child_metadata(bundle.metadata, X, result)
        metadata.update(extra_metadata or {})
        child = dataclasses.replace(
            bundle, hmm=dict(result.params.to_arrays()), metadata=metadata
        ).with_online(memory)
        move = alias is not None
        if move and only_if_alias_at_parent:
            try:
                move = registry.resolve(alias) == parent
            except UnknownModelError:
                move = False
        version = registry.register(child, alias=alias if move else None, parent=parent)
        promoted = move
    return FitOutcome(
        accepted=result.accepted,
        reason=result.reason,
        parent=parent,
        version=version,
        alias=alias if promoted else None,
        promoted=promoted,
        heldout_ll_before=_finite(result.heldout_ll_before),
        heldout_ll_after=_finite(result.heldout_ll_after),
        n_samples=result.n_samples,
        fit_ms=fit_ms,
        total_ms=(time.perf_counter() - t0) * 1e3,
        guard=result.record(),
    )
