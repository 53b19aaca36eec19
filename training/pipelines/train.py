"""Fit one model (HMM + policy head) on catalog symbol-days, evaluate it, build its bundle.

The last selected day is held out for evaluation (with one day, its last ``holdout_frac``);
the HMM is fitted on FEATURES_V1 z-vectors of ready samples, the policy head on the HMM's
*filtered* posteriors (never smoothed: the live strategy only ever has filtered ones).
``nhmm train`` (:mod:`training.cli.train`) registers the result as ``candidate``; the sweep
reuses :func:`fit_model` and :func:`evaluate_model`.

Metrics: ``posterior_entropy`` / ``train_posterior_entropy`` are the normalised mean entropy of the
filtered posteriors (:func:`~training.models.hmm.posterior_entropy`, 0 certain .. 1 uniform), not
the acceptance check ``state_entropy`` (bits of the state histogram).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from training.artifacts.bundle import ModelBundle
from training.artifacts.bundle import code_version
from training.artifacts.bundle import feature_histograms
from training.data.catalog import MarketCatalog
from training.features import FeatureSchema
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMConfig
from training.models.hmm import HMMFit
from training.models.hmm import HMMParams
from training.models.hmm import bic
from training.models.hmm import fit_hmm
from training.models.hmm import posterior_entropy
from training.models.hmm import regime_accuracy
from training.models.labels import LabelConfig
from training.models.labels import make_labels
from training.models.policy import PolicyConfig
from training.models.policy import PolicyHead
from training.models.policy import evaluate_policy
from training.models.policy import fit_policy
from training.pipelines.feature_set import FeatureSet
from training.pipelines.feature_set import load_feature_sets

__all__ = [
    "FittedModel",
    "TrainConfig",
    "build_bundle",
    "evaluate_model",
    "fit_model",
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
        "train_posterior_entropy": posterior_entropy(run.posteriors),
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
        "posterior_entropy": posterior_entropy(run.posteriors),
        "state_occupancy_min": float(occupancy.min()),
        "policy_accuracy": pol["accuracy"],
        "net_pnl_bp": pol["net_pnl_bp"],
        "trades": pol["trades"],
        "hit_rate": pol["hit_rate"],
    }
    if holdout.regime is not None:
        metrics["regime_accuracy"] = regime_accuracy(holdout.regime, run.states, params.n_states)
    return metrics


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
            "code_version": code_version(),
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
