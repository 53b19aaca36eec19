"""Preparing a sweep once: symbol-days, cached features, walk-forward folds, drawn trials.

The last ``test_days`` selected days are the test period, set apart here: no fold, no trial and
no choice ever sees them. On the other (search) days, fold ``i`` trains on every symbol-day up
to day ``i`` and validates on day ``i + 1`` (never the reverse):
:class:`training.selection.WalkForward` over the search days. The purge: a training block's
labels end one label horizon before its end (a label needing a price past the block is invalid,
:func:`training.models.labels.forward_returns`), so no training label sees a validation price.
Features come from one continuous engine over each symbol's days (the cache keys on that), as
the backtest and the live node compute them. The sweep id is derived from the data and the
settings, so a rerun gets the same id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.errors import BadInputError
from training.features import FeatureSchema
from training.features.cache import cached_features
from training.features.cache import load_tables
from training.pipelines.feature_set import FeatureSet
from training.pipelines.sweep.space import SweepConfig
from training.pipelines.sweep.space import sample_trials
from training.selection import WalkForward

__all__ = ["SweepPlan", "feature_set", "plan_sweep", "sweep_id", "walk_forward_folds"]


def walk_forward_folds(
    symbol_days: list[SymbolDay],
) -> list[tuple[list[SymbolDay], list[SymbolDay]]]:
    """Fold ``i``: train on symbol-days of days ``<= D[i]``, validate on those of ``D[i+1]``.

    >>> import datetime
    >>> sds = [SymbolDay("X.B", datetime.date(2024, 1, d)) for d in (1, 2, 3)]
    >>> [(len(t), v[0].day.day) for t, v in walk_forward_folds(sds)]
    [(1, 2), (2, 3)]
    """
    days = sorted({sd.day for sd in symbol_days})
    if len(days) < 2:
        raise BadInputError(f"walk-forward needs >= 2 days, got {len(days)}", field="days")
    ordered = sorted(symbol_days, key=lambda sd: (sd.day, sd.instrument_id))
    return [
        ([sd for sd in ordered if sd.day <= train[-1]], [sd for sd in ordered if sd.day in valid])
        for train, valid in WalkForward(test_size=1).folds(days)
    ]


def feature_set(
    tables: dict[SymbolDay, pa.Table], sds: list[SymbolDay], schema: FeatureSchema
) -> FeatureSet:
    """The :class:`FeatureSet` of ``sds``: one sequence per symbol, days in order (``lengths``
    split them for the HMM)."""
    by_symbol = sorted(sds, key=lambda sd: (sd.instrument_id, sd.day))
    return FeatureSet.from_tables({sd: tables[sd] for sd in by_symbol}, schema)


def sweep_id(keys: list[str], cfg: SweepConfig) -> str:
    blob = json.dumps(
        {
            "data": keys,
            "seed": cfg.seed,
            "n": cfg.num_samples,
            "space": dataclasses.asdict(cfg.space),
            "scheduler": cfg.scheduler,
            "min_occupancy": cfg.min_occupancy,
            "n_iter": cfg.hmm_n_iter,
            "fees": [cfg.maker_bps, cfg.taker_bps, cfg.fee_tier],
            "test_days": cfg.test_days,
        },
        sort_keys=True,
    )
    return "sweep-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep's trials need, prepared once: folds in memory, trials drawn."""

    catalog: MarketCatalog
    symbol_days: list[SymbolDay]
    sweep_id: str
    schema: FeatureSchema
    tables: dict[SymbolDay, pa.Table]
    folds: list[tuple[FeatureSet, FeatureSet]]
    test_days: list[SymbolDay]
    trials: list[dict[str, Any]]
    settings: dict[str, Any]
    cache_hits: int
    cache_misses: int


def plan_sweep(
    catalog_root: str | Path,
    config: SweepConfig,
    *,
    cache_dir: str | Path | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
) -> SweepPlan:
    """Select symbol-days, extract their features (Ray tasks, cached), build the walk-forward
    folds and draw the trials."""
    from cluster import ClusterConfig
    from cluster import connect
    from training.costs import CostModel
    from training.pipelines.evaluation import rules_for

    catalog = MarketCatalog(catalog_root)
    all_sds = catalog.select(config.symbols or None, config.days or None)
    days = sorted({sd.day for sd in all_sds})
    if config.test_days >= len(days) - 1:
        raise BadInputError(
            f"test_days: {config.test_days} of {len(days)} days leaves fewer than 2 to search "
            "(walk-forward needs a training and a validation day)",
            field="test_days",
        )
    test_set = set(days[-config.test_days :])
    sds = [sd for sd in all_sds if sd.day not in test_set]
    test_sds = [sd for sd in all_sds if sd.day in test_set]
    fold_sds = walk_forward_folds(sds)
    connect(ClusterConfig(num_cpus=num_cpus), address=address)
    cache = cached_features(catalog, all_sds, cache_dir=cache_dir, progress=verbose > 0)
    schema, tables = load_tables(cache.paths)
    inst = catalog.instrument(sds[0].instrument_id)
    costs = CostModel.for_instrument(
        inst, maker_bps=config.maker_bps, taker_bps=config.taker_bps, fee_tier=config.fee_tier
    )
    return SweepPlan(
        catalog=catalog,
        symbol_days=sds,
        sweep_id=sweep_id([p.name for p in cache.paths.values()], config),
        schema=schema,
        tables=tables,
        folds=[
            (feature_set(tables, tr, schema), feature_set(tables, va, schema))
            for tr, va in fold_sds
        ],
        test_days=test_sds,
        trials=sample_trials(config.num_samples, config.seed, config.space),
        settings={
            "costs": costs,
            "rules": rules_for(inst, hold_s=60.0),
            "hmm_n_iter": config.hmm_n_iter,
            "min_occupancy": config.min_occupancy,
        },
        cache_hits=cache.hits,
        cache_misses=cache.misses,
    )
