"""Offline FEATURES_V1: a catalog symbol-day -> a feature table (Parquet), same engine as online.

Columns: ``ts`` (int64 ns, the sample boundary), ``z_<name>`` (standardised, 0.0 during warm-up),
``raw_<name>``, ``ready``, ``session``, ``book_ok``, ``mid``, ``spread_bp``, ``best_bid``,
``best_ask``, ``microprice``, ``vwap``, ``realised_vol_bp`` and, when the catalog holds
ground-truth labels for the symbol-day (synthetic market), ``regime`` (int8) — the regime in force
just before the sample boundary, i.e. over the interval the sample summarises — and, for the
trade simulator, ``next_sell_low`` / ``next_buy_high``: the lowest seller-initiated and highest
buyer-initiated trade price from the sample to the next one (NaN when none), what a resting
order placed at the sample could have been filled by. z columns are
prefixed because ``spread_bp`` is both a feature and a book value. The schema is stored as JSON
in the Parquet metadata (key ``nhmm.feature_schema``); :func:`read_features` gives it back.

Sessions: :func:`extract_many` feeds the days of a symbol, in order, through ONE engine, so the
standardiser continues across consecutive days (a contiguous stream is one session; a time gap
longer than ``max_gap_intervals`` starts a new one). :func:`extract_features` on a single day
starts a fresh engine. Events are processed in Nautilus's delivery order (``ts_init``, deltas per
exchange message), so the table equals what the Nautilus feature feed computes in a backtest.
A perpetual's funding updates (:meth:`~training.data.catalog.MarketCatalog.load_funding`) go in
where a ``BacktestEngine`` delivers them: after every delta message and trade with the same or an
earlier ``ts_init`` (:func:`replay`), so ``funding_rate_bp`` is the online value too.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.columns import F_LAST
from training.data.columns import DeltaColumns
from training.data.columns import TradeColumns
from training.errors import BadInputError
from training.features.engine import SAMPLE_SCALARS
from training.features.engine import FeatureEngine
from training.features.engine import FeatureSample
from training.features.engine import samples_to_columns
from training.features.schema import FeatureSchema
from training.features.schema import schema_for
from training.io import atomic_path

SCHEMA_KEY = b"nhmm.feature_schema"

__all__ = [
    "SCHEMA_KEY",
    "day_funding",
    "extract_features",
    "extract_many",
    "feature_path",
    "features_table",
    "market_of",
    "raw_columns",
    "read_features",
    "regime_labels",
    "replay",
    "trade_extremes",
    "write_table",
    "z_columns",
]


def market_of(instrument_id: str) -> str:
    """``"perp"`` for ``...-PERP`` instruments, else ``"spot"``.

    >>> market_of("BTCUSDT-PERP.BINANCE"), market_of("BTCUSDT")
    ('perp', 'spot')
    """
    return "perp" if instrument_id.split(".")[0].endswith("-PERP") else "spot"


def z_columns(schema: FeatureSchema) -> list[str]:
    """Names of the standardised feature columns, in schema order (the HMM input)."""
    return [f"z_{n}" for n in schema.names]


def raw_columns(schema: FeatureSchema) -> list[str]:
    return [f"raw_{n}" for n in schema.names]


#: The venue latency (ns) an order placed at a sample needs before it can be filled: a trade
#: earlier than that cannot fill it (the backtest's default ``VenueOptions.latency_ms``).
ORDER_LATENCY_NS = 5_000_000


def trade_extremes(
    ts: np.ndarray,
    trade_ts: np.ndarray,
    price: np.ndarray,
    aggressor: np.ndarray,
    event_ts: np.ndarray | None = None,
    latency_ns: int = ORDER_LATENCY_NS,
) -> tuple[np.ndarray, np.ndarray]:
    """``(next_sell_low, next_buy_high)`` per sample: the extreme seller-/buyer-initiated trade
    price that an order placed at the sample could meet, NaN when none. A sample is emitted on
    the first event at or after its boundary (``event_ts``: every event's time; default the
    trades'), and its order reaches the venue ``latency_ns`` later: sample ``i``'s window runs
    from then to the same moment of sample ``i + 1``.

    The trade at 1 emits sample 0 (it is before the order); those at 2, 3 and 12 (the one that
    emits sample 1) can meet sample 0's order:

    >>> lo, hi = trade_extremes(np.array([0, 10]), np.array([1, 2, 3, 12]),
    ...                         np.array([99.0, 98.0, 101.0, 97.0]), np.array([2, 2, 1, 2]),
    ...                         latency_ns=0)
    >>> lo.tolist(), hi.tolist()
    ([97.0, nan], [101.0, nan])
    """
    from training.data.columns import BUYER
    from training.data.columns import SELLER

    n = len(ts)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    t = np.asarray(trade_ts, dtype=np.int64)
    events = np.sort(np.asarray(t if event_ts is None else event_ts, dtype=np.int64))
    if n and len(events):
        first = np.searchsorted(events, np.asarray(ts, dtype=np.int64), side="left")
        starts = events[np.minimum(first, len(events) - 1)] + latency_ns
        starts = np.maximum.accumulate(starts)
        i = np.searchsorted(starts, t, side="left") - 1  # starts[i] < trade <= starts[i + 1]
        ok = i >= 0
        agg = np.asarray(aggressor)
        px = np.asarray(price, dtype=np.float64)
        np.minimum.at(low, i[ok & (agg == SELLER)], px[ok & (agg == SELLER)])
        np.maximum.at(high, i[ok & (agg == BUYER)], px[ok & (agg == BUYER)])
    low[np.isinf(low)] = np.nan
    high[np.isinf(high)] = np.nan
    return low, high


def features_table(
    samples: list[FeatureSample],
    schema: FeatureSchema,
    regime: np.ndarray | None = None,
    extremes: tuple[np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """Samples -> Arrow table with the schema JSON in its metadata."""
    cols = samples_to_columns(samples, len(schema.names))
    arrays: dict[str, pa.Array] = {"ts": pa.array(cols["ts"], pa.int64())}
    for j, name in enumerate(z_columns(schema)):
        arrays[name] = pa.array(cols["z"][:, j])
    for j, name in enumerate(raw_columns(schema)):
        arrays[name] = pa.array(cols["raw"][:, j])
    for name in SAMPLE_SCALARS:
        arrays[name] = pa.array(cols[name])
    if regime is not None:
        arrays["regime"] = pa.array(np.asarray(regime, dtype=np.int8))
    if extremes is not None:
        arrays["next_sell_low"] = pa.array(extremes[0], pa.float64())
        arrays["next_buy_high"] = pa.array(extremes[1], pa.float64())
    table = pa.table(arrays)
    meta = {SCHEMA_KEY: json.dumps(schema.to_dict(), sort_keys=True).encode()}
    return table.replace_schema_metadata(meta)


def regime_labels(catalog: MarketCatalog, sd: SymbolDay, ts: np.ndarray) -> np.ndarray | None:
    """Ground-truth regime over each sample's interval (the label in force at ``ts - 1``, not
    before the day's first label), or None when the symbol-day has no labels (real data)."""
    if not catalog.labels_path(sd).exists():
        return None
    from training.data.sources.synth import load_labels

    labels = load_labels(catalog, sd.instrument_id, sd.day)
    if len(labels.ts_event) == 0:
        raise BadInputError(f"{catalog.labels_path(sd)}: empty labels file", field="labels")
    t = np.maximum(np.asarray(ts, dtype=np.int64) - 1, labels.ts_event[0])
    return labels.regime_at(t).astype(np.int8)


def replay(
    engine: FeatureEngine,
    deltas: DeltaColumns,
    trades: TradeColumns,
    funding: Sequence[tuple[int, int, float]] = (),
) -> list[FeatureSample]:
    """``engine.run`` over one day's columns (sorted by ``ts_init``, as the catalog loads them)
    with the day's funding updates in between; ``funding`` rows are ``(ts_event, ts_init,
    rate)`` in delivery order. Each update goes in after every delta message (at its ``F_LAST``)
    and trade with ``ts_init`` up to its own: the order a ``BacktestEngine`` delivers them in
    when funding is added after deltas and trades (its sort by ``ts_init`` is stable).

    >>> from training.data.columns import ADD, BUY, SELL
    >>> book = DeltaColumns.from_rows([(0, 0, ADD, BUY, 100.0, 1.0, 0, 1),
    ...                                (0, 0, ADD, SELL, 100.1, 1.0, F_LAST, 1)])
    >>> eng = FeatureEngine(schema_for("perp", min_periods_s=2.0))
    >>> out = replay(eng, book, TradeColumns.empty(), [(1_000_000_000, 1_000_000_000, 1e-4),
    ...                                                 (2_500_000_000, 2_500_000_000, 2e-4)])
    >>> [(s.ts_ns, float(s.raw[-1])) for s in out]  # funding_rate_bp: 0.0 until the first
    [(1000000000, 0.0), (2000000000, 1.0)]
    """
    if not funding:
        return engine.run(deltas, trades)
    last = np.flatnonzero(deltas.flags & F_LAST)
    out: list[FeatureSample] = []
    d0 = t0 = 0
    for ts_event, ts_init, rate in funding:
        at = int(np.searchsorted(deltas.ts_init, ts_init, side="right"))
        j = int(np.searchsorted(last, at, side="left"))  # messages complete before ``at``
        d1 = max(int(last[j - 1]) + 1 if j else 0, d0)
        t1 = int(np.searchsorted(trades.ts_init, ts_init, side="right"))
        if d1 > d0 or t1 > t0:
            out += engine.run(deltas.take(slice(d0, d1)), trades.take(slice(t0, t1)))
            d0, t0 = d1, t1
        out += engine.on_funding(ts_event, rate)
    return out + engine.run(deltas.take(slice(d0, None)), trades.take(slice(t0, None)))


def day_funding(
    catalog: MarketCatalog, sd: SymbolDay, schema: FeatureSchema
) -> list[tuple[int, int, float]]:
    """The symbol-day's funding updates as ``(ts_event, ts_init, rate)`` (perps only)."""
    updates = catalog.load_funding(sd.instrument_id, sd.day) if schema.market == "perp" else []
    return [(u.ts_event, u.ts_init, float(u.rate)) for u in updates]


def _day_table(
    catalog: MarketCatalog, sd: SymbolDay, engine: FeatureEngine
) -> tuple[pa.Table, int]:
    """One symbol-day through ``engine``: its feature table and how many events it read."""
    ev = catalog.load(sd.instrument_id, sd.day)
    funding = day_funding(catalog, sd, engine.schema)
    samples = replay(engine, ev.deltas, ev.trades, funding)
    ts = np.fromiter((s.ts_ns for s in samples), np.int64, len(samples))
    tr = ev.trades
    funding_ts = np.array([f[0] for f in funding], dtype=np.int64)
    events_ts = np.r_[ev.deltas.ts_event, tr.ts_event, funding_ts]
    extremes = trade_extremes(ts, tr.ts_event, tr.price, tr.aggressor, events_ts)
    table = features_table(samples, engine.schema, regime_labels(catalog, sd, ts), extremes)
    return table, len(ev.deltas) + len(ev.trades) + len(funding)


def extract_features(
    catalog: MarketCatalog,
    symbol: str,
    day: datetime.date,
    schema: FeatureSchema | None = None,
) -> pa.Table:
    """One symbol-day from a fresh engine (``schema`` defaults to the instrument's market)."""
    [table] = extract_many(catalog, symbol, [day], schema, progress=False).values()
    return table  # type: ignore[return-value]


def _check_market(schema: FeatureSchema, sd: SymbolDay) -> None:
    if schema.market != market_of(sd.instrument_id):
        raise BadInputError(
            f"schema.market: {schema.market!r} does not fit {sd.instrument_id}", field="schema"
        )


def feature_path(out_dir: str | Path, sd: SymbolDay) -> Path:
    """``OUT/features/<instrument_id>/<YYYY-MM-DD>.parquet``."""
    return Path(out_dir) / "features" / sd.instrument_id / f"{sd.day.isoformat()}.parquet"


def write_table(table: pa.Table, path: Path) -> Path:
    """Write atomically (:func:`training.io.atomic_path`): a reader never sees half a file."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_features(path: str | Path) -> tuple[FeatureSchema, pa.Table]:
    """A feature file and the schema it was computed with."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if SCHEMA_KEY not in meta:
        raise BadInputError(
            f"{path}: no {SCHEMA_KEY.decode()} metadata (not a feature table)", field="path"
        )
    return FeatureSchema.from_dict(json.loads(meta[SCHEMA_KEY])), table


def extract_many(
    catalog: MarketCatalog,
    symbol: str,
    days: Iterable[datetime.date] | None = None,
    schema: FeatureSchema | None = None,
    out_dir: str | Path | None = None,
    continuous: bool = True,
    progress: bool = True,
) -> dict[SymbolDay, pa.Table | Path]:
    """Several days of one symbol, in day order; tables, or paths when ``out_dir`` is given.

    ``continuous`` (default) keeps one engine across the days (one session while the stream is
    contiguous); ``False`` starts a fresh engine per day (identical to :func:`extract_features`).
    """
    all_days = catalog.select(symbol, days)
    schema = schema or schema_for(market_of(all_days[0].instrument_id))
    _check_market(schema, all_days[0])
    engine = FeatureEngine(schema)
    out: dict[SymbolDay, pa.Table | Path] = {}
    bar = tqdm(all_days, desc=f"features {symbol}", unit="day", disable=not progress)
    for sd in bar:
        if not continuous:
            engine = FeatureEngine(schema)
        table, n_events = _day_table(catalog, sd, engine)
        bar.set_postfix(events=n_events, samples=table.num_rows)
        out[sd] = write_table(table, feature_path(out_dir, sd)) if out_dir is not None else table
    return out
