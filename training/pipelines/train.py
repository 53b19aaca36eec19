"""Fit one model (HMM + policy head) on catalog symbol-days, test it, build its bundle.

The last ``test_days`` selected days are the test period (with one day, its last
``holdout_frac`` after a purge gap of one label horizon): nothing is fitted or chosen on them.
The HMM is fitted on FEATURES_V1 z-vectors of the samples the strategy acts on (ready, book ok),
the policy head on the HMM's *filtered* posteriors (never smoothed: the live strategy only ever
has filtered ones), with labels priced by the instrument's cost model. The test period is then
traded by the trade simulator (:mod:`training.pipelines.evaluation`): its ``test`` block (net
PnL per day with a day-block bootstrap CI, round trips, fees, gross edge and costs per round
trip) is what the bundle carries beside the training metrics. ``nhmm train``
(:mod:`training.cli.train`) registers the result as ``candidate``; the sweep reuses
:func:`fit_model` and :func:`evaluate_model`.

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
from training.models.online import ReservoirConfig
from training.models.online import training_memory
from training.models.policy import PolicyConfig
from training.models.policy import PolicyHead
from training.models.policy import evaluate_policy
from training.models.policy import fit_policy
from training.pipelines.evaluation import rules_for
from training.pipelines.evaluation import simulate_set
from training.pipelines.evaluation import summarise_test
from training.pipelines.feature_set import FeatureSet
from training.pipelines.feature_set import load_feature_sets
from training.simulation.rules import RuleConfig

__all__ = [
    "HORIZON_GRID",
    "FittedModel",
    "TrainConfig",
    "build_bundle",
    "choose_horizon_s",
    "evaluate_model",
    "fit_model",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fit depends on; stored in the bundle's metadata.

    ``hmm.order_feature`` is filled in from the schema (realised vol) when left ``None``, so
    state 0 is always the calmest regime. ``auto_horizon`` replaces ``labels.horizon_s`` by
    :func:`choose_horizon_s` on the training rows. ``rules`` are the strategy's decision rules the
    simulator trades the test period with (``None``: the defaults on the instrument, holding for
    the label horizon); ``labels.costs`` is the cost model of labels and simulator alike.
    """

    hmm: HMMConfig = field(default_factory=HMMConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    holdout_frac: float = 0.2
    hist_bins: int = 32
    test_days: int = 1
    rules: RuleConfig | None = None
    auto_horizon: bool = False

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
    train_set: FeatureSet,
    schema: FeatureSchema,
    config: TrainConfig,
    progress: bool = False,
    hmm_fit: HMMFit | None = None,
) -> FittedModel:
    """HMM on the z-features, then the policy head on [filtered posterior, features].
    ``hmm_fit``: an HMM already fitted on ``train_set`` with ``config.hmm`` (it does not depend
    on the labels), reused so that several label horizons need one HMM fit."""
    fit = hmm_fit or fit_hmm(
        train_set.X, train_set.lengths, _hmm_config(config, schema), progress=progress
    )
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


#: The simulator's figures :func:`evaluate_model` reports (see ``SimResult.metrics``).
SIM_METRICS = ("net_pnl", "net_pnl_per_day", "net_bp_per_day", "round_trips",
               "round_trips_per_day", "fees", "gross_edge_bp_per_rt", "cost_bp_per_rt",
               "hit_rate")  # fmt: skip


def evaluate_model(
    model: FittedModel, holdout: FeatureSet, config: TrainConfig, sim: list | None = None
) -> dict[str, float]:
    """Out-of-sample metrics: log-likelihood, BIC, filtered-state entropy, policy accuracy and
    signal counts, regime accuracy where ground truth exists, and the trade simulator's
    tradeable figures (:data:`SIM_METRICS`: net PnL per day after the cost model, round trips,
    gross edge and costs per round trip). ``config.rules`` must be set (:func:`train` does);
    the simulation itself is appended to ``sim`` when given."""
    params = model.params
    run = ForwardFilter(params).run(holdout.X, holdout.lengths)
    labels = make_labels(holdout.ts, holdout.mid, holdout.spread_bp, config.labels, holdout.lengths)
    pol = evaluate_policy(model.policy, run.posteriors, holdout.X, labels.classes, labels.valid)
    occupancy = np.bincount(run.states, minlength=params.n_states) / max(len(run.states), 1)
    metrics = {
        "k": float(params.n_states),
        "valid_samples": float(len(holdout)),
        "valid_loglik_per_sample": float(run.loglik.mean()),
        "valid_bic": float(bic(params, holdout.X, holdout.lengths)),
        "posterior_entropy": posterior_entropy(run.posteriors),
        "state_occupancy_min": float(occupancy.min()),
        "policy_accuracy": pol["accuracy"],
        "signals": pol["signals"],
    }
    if holdout.regime is not None:
        metrics["regime_accuracy"] = regime_accuracy(holdout.regime, run.states, params.n_states)
    if config.rules is None:
        raise ValueError("evaluate_model: config.rules is None (train() fills it in)")
    result = simulate_set(params, model.policy, holdout, config.rules, config.labels.costs)
    m = result.metrics()
    metrics.update({k: float(m[k]) for k in SIM_METRICS})
    if sim is not None:
        sim.append(result)
    return metrics


def build_bundle(
    model: FittedModel,
    schema: FeatureSchema,
    train_set: FeatureSet,
    config: TrainConfig,
    metrics: dict[str, float],
    extra_metadata: dict[str, Any] | None = None,
) -> ModelBundle:
    """The pickle-free bundle: schema, HMM, policy, thresholds, drift histograms, metadata
    (``symbol_days``: the symbol-days the model was fitted on, so a backtest on any of them is
    marked in-sample) and the online-EM memory (statistics and a reservoir of the training
    rows, so ``partial_fit`` children continue it instead of forgetting)."""
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
        # no session long enough for one reservoir segment (a smoke-test model): no memory
        online=training_memory(model.params, train_set.X, train_set.lengths)
        if max(train_set.lengths, default=0) >= ReservoirConfig().segment_len
        else None,
    )


#: Horizons :func:`choose_horizon_s` picks from (s).
HORIZON_GRID: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0)
#: How many passive round trips the median absolute move over the horizon must be worth: 1, chosen
#: by ``bench/bench_defaults.py`` on seeds the acceptance never sees (by mean - 1 SE; 1 and 2 have
#: the same mean there within noise, 1 the smaller SE; 4 lost).
HORIZON_COST_MULTIPLE = 1.0


def choose_horizon_s(
    train_set: FeatureSet,
    costs: Any,
    style: str = "passive",
    multiple: float = HORIZON_COST_MULTIPLE,
) -> float:
    """The label horizon (= holding time) ``nhmm train`` uses by default: the shortest one in
    :data:`HORIZON_GRID` at which the median absolute mid move over the horizon, on the
    TRAINING rows, is at least ``multiple`` (:data:`HORIZON_COST_MULTIPLE`) round trips of the
    cost model.

    Why: a label is buy/sell only where the move beats the round trip, so below that horizon
    most labels are flat or sit at the cost boundary, and the head learns to trade noise that
    fees eat (measured on main: the old 10 s default never traded at spot fees and lost at perp
    fees). Longer horizons than that lost net PnL in ``bench/bench_defaults.py`` (fewer, slower
    calls). Chosen from the training rows only, never from the test period.

    >>> ts = np.arange(4000) * 10**9
    >>> fs = FeatureSet((), ts, np.zeros((4000, 1)), 100 * np.exp(np.cumsum(np.full(4000, 1e-4)) - 1e-4),
    ...                 np.ones(4000), (4000,))
    >>> costs = type("C", (), {"round_trip_bps": lambda self, s: 20.0})()  # the move: 1 bp/s
    >>> choose_horizon_s(fs, costs), choose_horizon_s(fs, costs, multiple=2.0)
    (30.0, 60.0)
    """
    from training.models.labels import forward_returns

    need = multiple * float(costs.round_trip_bps(style))
    for h in HORIZON_GRID:
        ret, valid = forward_returns(train_set.ts, train_set.mid, h, train_set.lengths)
        if valid.sum() >= 100 and np.median(np.abs(ret[valid])) * 1e4 >= need:
            return h
    return HORIZON_GRID[-1]


def _period(test: FeatureSet, train_set: FeatureSet, holdout_frac: float) -> str:
    days = [sd.day.isoformat() for sd in test.symbol_days]
    if set(test.symbol_days) & set(train_set.symbol_days):
        span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"  # test_days=0: several
        return (
            f"tail of {span} (its last {holdout_frac:.0%}, after a purge gap of one label "
            f"horizon): the rest of {'that day' if len(days) == 1 else 'the period'} is "
            "training data"
        )
    return "days " + ", ".join(days)


def train(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None,
    config: TrainConfig,
    progress: bool = False,
    schema: Any = None,
) -> tuple[ModelBundle, dict[str, Any]]:
    """Fit on every selected day but the last ``config.test_days`` (one day: all but its tail),
    trade the test period in the simulator; returns the bundle and its ``test`` block.
    ``schema`` picks the features (default FEATURES_V1; a ``BarFeatureSchema``: 1m klines)."""
    schema, train_set, test = load_feature_sets(
        catalog,
        symbol,
        days,
        schema=schema,
        holdout_frac=config.holdout_frac,
        test_days=config.test_days,
        gap_s=0.0 if config.auto_horizon else config.labels.horizon_s,
    )
    period = sorted(set(train_set.symbol_days) | set(test.symbol_days))
    costs = config.labels.costs.with_funding(catalog.funding_of(period))
    config = dataclasses.replace(config, labels=dataclasses.replace(config.labels, costs=costs))
    if config.auto_horizon:
        h = choose_horizon_s(train_set, config.labels.costs, config.labels.style)
        config = dataclasses.replace(
            config, labels=dataclasses.replace(config.labels, horizon_s=h), auto_horizon=False
        )
        if set(test.symbol_days) == set(train_set.symbol_days):  # one day: purge one horizon
            cut = int(np.searchsorted(train_set.ts, test.ts[0] - round(h * 1e9)))
            train_set, _ = train_set.split(cut)
    if config.rules is None:
        inst = catalog.instrument(train_set.symbol_days[0].instrument_id)
        config = dataclasses.replace(config, rules=rules_for(inst, config.labels.horizon_s))
    model = fit_model(train_set, schema, config, progress=progress)
    sims: list = []
    metrics = evaluate_model(model, test, config, sims)
    block = summarise_test(
        sims[0],
        _period(test, train_set, config.holdout_frac),
        [f"{sd.instrument_id}/{sd.day.isoformat()}" for sd in test.symbol_days],
    )
    block.update({k: v for k, v in metrics.items() if k not in block})
    bundle = build_bundle(model, schema, train_set, config, {}, extra_metadata={"test": block})
    return bundle, block
