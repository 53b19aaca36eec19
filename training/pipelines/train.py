"""Fit one model (HMM + policy head) on catalog symbol-days, evaluate it, register it.

The last selected day is held out for evaluation (with one day, its last ``holdout_frac``);
the HMM is fitted on FEATURES_V1 z-vectors of ready samples, the policy head on the HMM's
*filtered* posteriors (never smoothed: the live strategy only ever has filtered ones).
``nhmm train`` registers the result as ``candidate``; the sweep reuses :func:`fit_model`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import Any

import click
import numpy as np
import pyarrow as pa

from training.artifacts.bundle import ModelBundle, feature_histograms
from training.cli.options import days_option
from training.data.catalog import MarketCatalog, SymbolDay
from training.features.engine import FeatureSchema
from training.features.offline import SCHEMA_KEY, extract_many, z_columns
from training.models.hmm import (
    ForwardFilter,
    HMMConfig,
    HMMFit,
    HMMParams,
    bic,
    fit_hmm,
    regime_accuracy,
    state_entropy,
)
from training.models.labels import LabelConfig, make_labels
from training.models.policy import PolicyConfig, PolicyHead, evaluate_policy, fit_policy

__all__ = [
    "FeatureSet",
    "FittedModel",
    "TrainConfig",
    "build_bundle",
    "evaluate_model",
    "fit_model",
    "load_feature_sets",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fit depends on; stored in the bundle's metadata.

    ``hmm.order_feature`` is filled in from the schema (realised vol) when left ``None``, so
    state 0 is always the calmest regime.
    """

    hmm: HMMConfig = field(default_factory=HMMConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    holdout_frac: float = 0.2
    hist_bins: int = 32

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Ready FEATURES_V1 samples of one or more contiguous symbol-days, in time order."""

    symbol_days: tuple[SymbolDay, ...]
    ts: np.ndarray
    X: np.ndarray
    mid: np.ndarray
    spread_bp: np.ndarray
    lengths: tuple[int, ...]
    regime: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_tables(cls, tables: dict[SymbolDay, pa.Table], schema: FeatureSchema) -> FeatureSet:
        zc = z_columns(schema)
        parts: list[dict[str, np.ndarray]] = []
        for table in tables.values():
            ready = table.column("ready").to_numpy(zero_copy_only=False).astype(bool)
            cols = {
                "ts": table.column("ts").to_numpy()[ready],
                "X": np.column_stack([table.column(c).to_numpy() for c in zc])[ready],
                "mid": table.column("mid").to_numpy()[ready],
                "spread_bp": table.column("spread_bp").to_numpy()[ready],
            }
            if "regime" in table.column_names:
                cols["regime"] = table.column("regime").to_numpy()[ready]
            parts.append(cols)
        has_regime = all("regime" in p for p in parts)
        return cls(
            symbol_days=tuple(tables),
            ts=np.concatenate([p["ts"] for p in parts]),
            X=np.concatenate([p["X"] for p in parts]),
            mid=np.concatenate([p["mid"] for p in parts]),
            spread_bp=np.concatenate([p["spread_bp"] for p in parts]),
            lengths=tuple(len(p["ts"]) for p in parts if len(p["ts"])),
            regime=np.concatenate([p["regime"] for p in parts]) if has_regime else None,
        )

    def split(self, at: int) -> tuple[FeatureSet, FeatureSet]:
        """Time split at row ``at`` (lengths are cut accordingly)."""
        bounds = np.cumsum((0, *self.lengths))

        def cut(a: int, b: int) -> tuple[int, ...]:
            return tuple(
                int(min(e, b) - max(s, a))
                for s, e in itertools.pairwise(bounds)
                if min(e, b) > max(s, a)
            )

        def part(a: int, b: int) -> FeatureSet:
            return FeatureSet(
                symbol_days=self.symbol_days,
                ts=self.ts[a:b],
                X=self.X[a:b],
                mid=self.mid[a:b],
                spread_bp=self.spread_bp[a:b],
                lengths=cut(a, b),
                regime=None if self.regime is None else self.regime[a:b],
            )

        return part(0, at), part(at, len(self))

    def digest(self) -> str:
        """SHA-256 of the samples (the model's data hash)."""
        h = hashlib.sha256()
        for a in (self.ts, self.X, self.mid, self.spread_bp):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def load_feature_sets(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None,
    schema: FeatureSchema | None = None,
    holdout_frac: float = 0.2,
) -> tuple[FeatureSchema, FeatureSet, FeatureSet]:
    """(schema, train, holdout): the last day is the holdout; with one day, its last part."""
    tables = extract_many(catalog, symbol, days, schema=schema, progress=False)
    first = next(iter(tables.values()))
    schema = schema or FeatureSchema.from_dict(json.loads(first.schema.metadata[SCHEMA_KEY]))
    if len(tables) == 1:
        full = FeatureSet.from_tables(tables, schema)
        if len(full) < 100:
            raise ValueError(f"{symbol}: only {len(full)} ready samples; need more data")
        train, holdout = full.split(int(len(full) * (1.0 - holdout_frac)))
        return schema, train, holdout
    items = list(tables.items())
    train = FeatureSet.from_tables(dict(items[:-1]), schema)
    holdout = FeatureSet.from_tables(dict(items[-1:]), schema)
    return schema, train, holdout


@dataclass(frozen=True, eq=False)
class FittedModel:
    """An HMM fit, its filtered posteriors on the training data, and the policy head."""

    hmm_fit: HMMFit
    policy: PolicyHead
    train_metrics: dict[str, float]

    @property
    def params(self) -> HMMParams:
        return self.hmm_fit.params


def _hmm_config(config: TrainConfig, schema: FeatureSchema) -> HMMConfig:
    if config.hmm.order_feature is not None:
        return config.hmm
    return dataclasses.replace(config.hmm, order_feature=schema.names.index("rv_bp"))


def fit_model(
    train_set: FeatureSet, schema: FeatureSchema, config: TrainConfig, progress: bool = False
) -> FittedModel:
    """HMM on the z-features, then the policy head on [filtered posterior, features]."""
    fit = fit_hmm(train_set.X, train_set.lengths, _hmm_config(config, schema), progress=progress)
    run = ForwardFilter(fit.params).run(train_set.X, train_set.lengths)
    labels = make_labels(
        train_set.ts, train_set.mid, train_set.spread_bp, config.labels, train_set.lengths
    )
    # the early-stopping split drops one label horizon so training labels never see it
    horizon = math.ceil(config.labels.horizon_s / schema.sample_interval_s)
    policy_config = dataclasses.replace(config.policy, gap=max(config.policy.gap, horizon))
    head = fit_policy(run.posteriors, train_set.X, labels.classes, policy_config, labels.valid)
    metrics = {
        "train_samples": float(len(train_set)),
        "train_loglik_per_sample": float(run.loglik.mean()),
        "train_state_entropy": state_entropy(run.posteriors),
    }
    return FittedModel(fit, head, metrics)


def evaluate_model(
    model: FittedModel, holdout: FeatureSet, config: TrainConfig
) -> dict[str, float]:
    """Held-out metrics: log-likelihood, BIC, filtered-state entropy, policy accuracy and net
    PnL of its signals after costs, and regime accuracy where ground truth exists."""
    params = model.params
    run = ForwardFilter(params).run(holdout.X, holdout.lengths)
    labels = make_labels(holdout.ts, holdout.mid, holdout.spread_bp, config.labels, holdout.lengths)
    pol = evaluate_policy(
        model.policy,
        run.posteriors,
        holdout.X,
        labels.classes,
        labels.forward_return_bp,
        labels.cost_bp,
        labels.valid,
    )
    occupancy = np.bincount(run.states, minlength=params.n_states) / max(len(run.states), 1)
    metrics = {
        "k": float(params.n_states),
        "valid_samples": float(len(holdout)),
        "valid_loglik_per_sample": float(run.loglik.mean()),
        "valid_bic": float(bic(params, holdout.X, holdout.lengths)),
        "state_entropy": state_entropy(run.posteriors),
        "state_occupancy_min": float(occupancy.min()),
        "policy_accuracy": pol["accuracy"],
        "net_pnl_bp": pol["net_pnl_bp"],
        "trades": pol["trades"],
        "hit_rate": pol["hit_rate"],
    }
    if holdout.regime is not None:
        metrics["regime_accuracy"] = regime_accuracy(holdout.regime, run.states, params.n_states)
    return metrics


def _code_version() -> str:
    try:
        return importlib_metadata.version("nautilus-hmm")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def build_bundle(
    model: FittedModel,
    schema: FeatureSchema,
    train_set: FeatureSet,
    config: TrainConfig,
    metrics: dict[str, float],
    extra_metadata: dict[str, Any] | None = None,
) -> ModelBundle:
    """The pickle-free bundle: schema, HMM, policy, thresholds, drift histograms, metadata."""
    pc = config.policy
    return ModelBundle.from_parts(
        schema=schema,
        hmm=model.params,
        policy=model.policy,
        policy_config=pc,
        thresholds={"buy": pc.buy_threshold, "sell": pc.sell_threshold},
        histograms=feature_histograms(train_set.X, schema.names, bins=config.hist_bins),
        metadata={
            "symbol_days": [
                f"{sd.instrument_id}/{sd.day.isoformat()}" for sd in train_set.symbol_days
            ],
            "config": config.to_dict(),
            "metrics": {**model.train_metrics, **metrics},
            "hmm_candidates": model.hmm_fit.candidates,
            "data_hash": train_set.digest(),
            "code_version": _code_version(),
            **(extra_metadata or {}),
        },
    )


def train(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None,
    config: TrainConfig,
    progress: bool = False,
) -> tuple[ModelBundle, dict[str, float]]:
    """Fit on every selected day but the last, evaluate on the last, return the bundle."""
    schema, train_set, holdout = load_feature_sets(
        catalog, symbol, days, holdout_frac=config.holdout_frac
    )
    model = fit_model(train_set, schema, config, progress=progress)
    metrics = evaluate_model(model, holdout, config)
    return build_bundle(model, schema, train_set, config, metrics), metrics


@click.command("train")
@click.option("--catalog", "catalog_root", required=True, type=click.Path(exists=True))
@click.option("--symbol", required=True, help="BTCUSDT, BTCUSDT-PERP or an instrument id.")
@days_option
@click.option("--k", "k_range", nargs=2, type=int, default=(3, 5), show_default=True)
@click.option(
    "--covariance", type=click.Choice(["full", "diag"]), default="full", show_default=True
)
@click.option("--n-init", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--horizon-s", type=float, default=10.0, show_default=True)
@click.option("--fee-bps", type=float, default=None, help="Default: the instrument's maker fee.")
@click.option("--registry", "registry_root", default=None, help="Overrides NHMM_REGISTRY.")
@click.option("--alias", default="candidate", show_default=True)
def train_command(
    catalog_root: str,
    symbol: str,
    days: tuple[datetime.date, ...],
    k_range: tuple[int, int],
    covariance: str,
    n_init: int,
    seed: int,
    horizon_s: float,
    fee_bps: float | None,
    registry_root: str | None,
    alias: str,
) -> None:
    """Fit HMM + policy head on a symbol's days, evaluate on the last day, register it."""
    from rich.console import Console
    from rich.table import Table

    from training.artifacts.registry import Registry

    catalog = MarketCatalog(catalog_root)
    if fee_bps is None:
        fee_bps = float(catalog.instrument(symbol).maker_fee) * 1e4
    config = TrainConfig(
        hmm=HMMConfig(
            k_range=(min(k_range), max(k_range)),
            covariance_type=covariance,  # type: ignore[arg-type]
            n_init=n_init,
            seed=seed,
        ),
        policy=PolicyConfig(seed=seed),
        labels=LabelConfig(horizon_s=horizon_s, fee_bps=fee_bps),
    )
    selected = list(days) or None
    t0 = time.perf_counter()
    bundle, metrics = train(catalog, symbol, selected, config, progress=True)
    registry = Registry(registry_root)
    version = registry.register(bundle, alias=alias)
    table = Table(title=f"{symbol}: {version} → {alias}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.6g}")
    table.add_row("wall_time_s", f"{time.perf_counter() - t0:.1f}")
    Console().print(table)
    click.echo(version)
