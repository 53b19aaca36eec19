"""Preparing a sweep once: symbol-days, cached features, walk-forward folds, drawn trials.

The last ``test_days`` selected days are the test period, set apart here: no fold, no trial and
no choice ever sees them. On the other (search) days, fold ``i`` trains on every symbol-day up
to day ``i`` and validates on day ``i + 1`` (never the reverse):
:class:`training.selection.WalkForward` over the search days. The purge: a training block's
labels end one label horizon before its end (a label needing a price past the block is invalid,
:func:`training.models.labels.forward_returns`), so no training label sees a validation price.
Features come from one continuous engine over each symbol's days (the cache keys on that), as
the backtest and the live node compute them. With ``SweepConfig.bars`` the symbol-days are the
catalog's 1m-kline days and the features FEATURES_BARS_V1 (same cache, folds, trials and
objective); every label horizon must then be a whole number of bars. The sweep id is derived from the data and the
settings, so a rerun gets the same id.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.errors import BadInputError
from training.errors import NotFoundError
from training.features import FeatureSchema
from training.features.bars.schema import BarFeatureSchema
from training.features.cache import cached_features
from training.features.cache import load_tables
from training.pipelines.feature_set import FeatureSet
from training.pipelines.sweep.space import SweepConfig
from training.pipelines.sweep.space import sample_trials
from training.selection import WalkForward
from training.simulation.rules import RuleConfig

__all__ = [
    "SweepPlan",
    "bar_symbol_days",
    "feature_set",
    "plan_sweep",
    "sweep_id",
    "sweep_rules",
    "walk_forward_folds",
]


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
    tables: dict[SymbolDay, pa.Table],
    sds: list[SymbolDay],
    schema: FeatureSchema | BarFeatureSchema,
) -> FeatureSet:
    """The :class:`FeatureSet` of ``sds``: one sequence per symbol, days in order (``lengths``
    split them for the HMM)."""
    by_symbol = sorted(sds, key=lambda sd: (sd.instrument_id, sd.day))
    return FeatureSet.from_tables({sd: tables[sd] for sd in by_symbol}, schema)


def bar_symbol_days(
    catalog: MarketCatalog, symbols: tuple[str, ...], days: tuple[datetime.date, ...]
) -> list[SymbolDay]:
    """The days holding 1m klines of ``symbols`` (default: every instrument with klines) on
    ``days`` (default: all), by day; what :meth:`MarketCatalog.select` is for the book."""
    from training.features.bars.offline import bar_days

    ids = symbols or tuple(sorted(i.id.value for i in catalog.nautilus.instruments()))
    out: list[SymbolDay] = []
    for symbol in ids:
        catalog.instrument(symbol)  # an unknown symbol: NotFoundError naming it
        try:
            out += bar_days(catalog, symbol)
        except NotFoundError as e:  # no klines of this symbol
            if symbols:
                raise BadInputError(
                    f"bars: {e} (import klines with `nhmm data import-binance`, or sweep the "
                    "book without --bars)",
                    field="bars",
                ) from e
    if not out:
        raise BadInputError(
            f"bars: catalog {catalog.root} holds no 1m klines (import them with `nhmm data "
            "import-binance`, or sweep the book without --bars)",
            field="bars",
        )
    if days:
        missing = sorted(set(days) - {sd.day for sd in out})
        if missing:
            listed = ", ".join(d.isoformat() for d in missing)
            raise NotFoundError(f"no 1m bars on {listed} in {catalog.root}", field="days")
        out = [sd for sd in out if sd.day in set(days)]
    return sorted(out, key=lambda sd: (sd.day, sd.instrument_id))


def sweep_rules(instrument: Any, price: float, bars: bool) -> RuleConfig:
    """The strategy's default rules (:func:`~training.pipelines.evaluation.rules_for`) for the
    sweep's objective on ``instrument`` trading near ``price``; each trial sets the hold.

    The default guard limits are BTCUSDT-sized; two of them would bar every order elsewhere and
    are widened (never narrowed): ``max_position`` to 1.5 default orders (a position counts in
    the base asset: 0.01 ADA is no order), and on bars ``max_spread_bp_base`` to 1.5 ticks (a
    bar's one-tick spread is synthetic, no market is tighter; as ``nhmm quickstart`` sets it).

    >>> from nautilus_trader.test_kit.providers import TestInstrumentProvider as P
    >>> lim = sweep_rules(P.adabtc_binance(), 2.85e-5, bars=True).limits
    >>> round(lim.max_position, 2), round(lim.max_spread_bp_base, 2)  # 1.5 x 3.86 ADA; 1.5 ticks
    (5.79, 5.26)
    >>> lim = sweep_rules(P.btcusdt_binance(), 50_000.0, bars=False).limits
    >>> lim.max_position, lim.max_spread_bp_base  # the defaults fit BTCUSDT: unchanged
    (0.01, 2.0)
    """
    from training.pipelines.evaluation import rules_for
    from training.simulation.execution import order_size

    rules = rules_for(instrument, hold_s=60.0)
    lim = rules.limits
    qty = order_size(
        price, rules.min_notional, rules.notional_multiple, rules.size_increment, rules.min_quantity
    )
    spread = max(lim.max_spread_bp_base, 1.5 * rules.tick / price * 1e4) if bars else None
    limits = dataclasses.replace(
        lim,
        max_position=max(lim.max_position, 1.5 * qty),
        max_spread_bp_base=spread or lim.max_spread_bp_base,
    )
    return dataclasses.replace(rules, limits=limits)


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
            **({"bars": cfg.bars} if cfg.bars else {}),  # book sweeps keep their ids
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
    schema: FeatureSchema | BarFeatureSchema
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

    catalog = MarketCatalog(catalog_root)
    if config.bars:
        all_sds = bar_symbol_days(catalog, config.symbols, config.days)
    else:
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
    cache = cached_features(
        catalog, all_sds, cache_dir=cache_dir, progress=verbose > 0, bars=bool(config.bars)
    )
    schema, tables = load_tables(cache.paths)
    config.space.check_horizons(schema.sample_interval_s)
    inst = catalog.instrument(sds[0].instrument_id)
    last = [sd for sd in sds if sd.instrument_id == sds[0].instrument_id][-1]
    price = float(np.nanmedian(tables[last].column("mid").to_numpy(zero_copy_only=False)))
    costs = CostModel.for_instrument(
        inst, maker_bps=config.maker_bps, taker_bps=config.taker_bps, fee_tier=config.fee_tier
    ).with_funding(catalog.funding_of(sd for sd in all_sds if sd.instrument_id == str(inst.id)))
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
            "rules": sweep_rules(inst, price, bars=bool(config.bars)),
            "hmm_n_iter": config.hmm_n_iter,
            "min_occupancy": config.min_occupancy,
        },
        cache_hits=cache.hits,
        cache_misses=cache.misses,
    )
