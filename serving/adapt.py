"""Guarded online adaptation of a registry version: online EM on a window of recent rows, the
child registered with its parent recorded, nothing overwritten.

Used by the Serve partial-fit deployment for both ``POST /v1/partial_fit`` and drift-triggered
auto-adaptation. For the features that drifted, the child's drift reference histograms are the
window it was adapted to (on the parent's bin edges), so its own monitor measures traffic
against what it last saw.

>>> parent = {"x": {"edges": np.array([0.0, 1.0, 2.0]), "counts": np.array([9, 1])}}
>>> child_histograms(parent, ["x"], np.full((20, 1), 1.5))["x"]["counts"].tolist()
[0, 20]
>>> child_histograms(parent, ["x"], np.full((20, 1), 0.5))["x"]["counts"].tolist()
[9, 1]
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.drift import kl_divergence
from serving.model import InferenceError
from serving.model import SchemaVersionMismatch
from training.artifacts.histograms import histogram_counts
from training.artifacts.registry import Registry
from training.artifacts.registry import UnknownModelError
from training.models.online import partial_fit as online_partial_fit

__all__ = ["FitOutcome", "child_histograms", "fit_child"]


@dataclass(frozen=True)
class FitOutcome:
    """The guard's verdict on one update; ``version`` is the registered child (``None`` when
    refused), ``promoted`` whether ``alias`` now points at it. Times are server-side, in ms."""

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def child_histograms(
    parent: Mapping[str, Mapping[str, np.ndarray]],
    names: Sequence[str],
    X: np.ndarray,
    kl_threshold: float = 0.5,
    alpha: float = 0.5,
) -> dict[str, dict[str, np.ndarray]]:
    """The child's drift reference: for each feature whose window ``X`` drifted from the
    parent's histogram (smoothed ``KL(window || parent) > kl_threshold``), the histogram of
    ``X`` on the parent's edges; the parent's histogram for the others (a short window is
    regime-biased: adopting it for undrifted features would make the child see drift in
    ordinary regime switches)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(names):
        edges = np.asarray(parent[name]["edges"], dtype=np.float64)
        ref = np.asarray(parent[name]["counts"], dtype=np.float64)
        counts = histogram_counts(edges, X[:, j])
        live = (counts + alpha) / (counts.sum() + alpha * len(counts))
        base = (ref + alpha) / (ref.sum() + alpha * len(ref))
        if kl_divergence(live, base) > kl_threshold:
            out[name] = {"edges": edges, "counts": counts, "probs": counts / max(1, counts.sum())}
        else:
            out[name] = {k: np.asarray(v) for k, v in parent[name].items()}
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
    kl_threshold: float = 0.5,
) -> FitOutcome:
    """One guarded online-EM update of ``parent_ref``; if accepted register the child (parent
    recorded) and point ``alias`` at it. With ``only_if_alias_at_parent`` the alias moves only
    while it still names the parent (auto-adapt must not undo a person's promote).

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
        result, _ = online_partial_fit(bundle.hmm_params(), X)
    except ValueError as exc:
        raise InferenceError("X", str(exc)) from exc
    fit_ms = (time.perf_counter() - t_fit) * 1e3
    version = None
    promoted = False
    if result.accepted:
        inherited = {
            k: v
            for k, v in bundle.metadata.items()
            if k not in ("created_at", "parent", "code_version", "partial_fit", "adaptation")
        }
        inherited["partial_fit"] = {
            "n_samples": result.n_samples,
            "heldout_ll_before": result.heldout_ll_before,
            "heldout_ll_after": result.heldout_ll_after,
            "step_size": result.step_size,
        }
        inherited.update(extra_metadata or {})
        child = dataclasses.replace(
            bundle,
            hmm=dict(result.params.to_arrays()),
            histograms=child_histograms(bundle.histograms, schema.names, X, kl_threshold),
            metadata=inherited,
        )
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
    )
