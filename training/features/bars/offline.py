"""Offline FEATURES_BARS_V1: the catalog's ``BinanceBar``s -> a bar-feature table (Parquet).

``nhmm data import-binance`` writes 1m klines as ``BinanceBar``s (one Parquet file per UTC day
under ``CATALOG/data/binance_bar/<bar_type>/``, no partition manifest). They are read here
column-wise with pyarrow (prices decoded bit-identically to ``as_double()``, the extra volumes
parsed from the stored decimal strings exactly as ``float(Decimal)``), so the table equals what
``node.bar_feed`` computes from the same bars replayed by a Nautilus ``BacktestEngine``.

Table layout, as FEATURES_V1 (:mod:`training.features.offline`): ``ts`` (int64 ns, the bar's
``ts_event``), ``z_<name>`` (0.0 during warm-up), ``raw_<name>``, ``ready``, ``session``, the bar
values ``open high low close volume vwap realised_vol_bp``, and the market view the training
pipeline and trade simulator read: ``mid`` and ``microprice`` (the close), ``best_bid`` /
``best_ask`` (a one-tick book centred on the close: a bar carries no book, and one tick is the
narrowest spread there can be), ``spread_bp`` (that tick in bp), ``book_ok`` (True), and
``next_sell_low`` / ``next_buy_high`` (the next bar's low / high in the same session, what an
order placed at this bar's close could meet; NaN at a session's end). The schema JSON is in the
Parquet metadata under the same key as FEATURES_V1 (``nhmm.feature_schema``).

Days of a symbol go through ONE engine in day order (a contiguous stream is one session; a gap
of more than ``max_gap_bars`` starts a new one), as FEATURES_V1's ``extract_many`` does.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.adapters.binance import BinanceBar
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier
from tqdm import tqdm

from training.data.catalog import NS_PER_DAY
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.fixed import decode_fixed
from training.data.sources.binance_public.bars import bar_type_for
from training.errors import BadInputError
from training.errors import NotFoundError
from training.features.bars.engine import BAR_SAMPLE_SCALARS
from training.features.bars.engine import BarColumns
from training.features.bars.engine import BarFeatureEngine
from training.features.bars.engine import BarSample
from training.features.bars.engine import bar_samples_to_columns
from training.features.bars.schema import BarFeatureSchema
from training.features.bars.schema import bar_schema
from training.features.offline import SCHEMA_KEY
from training.features.offline import market_of
from training.features.offline import raw_columns
from training.features.offline import write_table
from training.features.offline import z_columns

__all__ = [
    "bar_days",
    "bar_feature_path",
    "bar_features_table",
    "bar_files",
    "extract_bar_features",
    "load_bar_columns",
    "load_bars",
    "market_view",
    "read_bar_features",
]

_EPOCH = datetime.date(1970, 1, 1)


def _bar_dir(catalog: MarketCatalog, instrument: Instrument) -> Path:
    bar_type = urisafe_identifier(bar_type_for(instrument))
    return catalog.root / "data" / class_to_filename(BinanceBar) / bar_type


def _day_span(path: Path) -> tuple[str, str] | None:
    """ISO days a catalog file covers, from its ``<start>_<end>.parquet`` name (None: unknown)."""
    parts = path.stem.split("_")
    return (parts[0][:10], parts[1][:10]) if len(parts) == 2 else None


def _day(ns: int) -> datetime.date:
    return _EPOCH + datetime.timedelta(days=int(ns) // NS_PER_DAY)


def bar_days(
    catalog: MarketCatalog, symbol: str, days: Iterable[datetime.date] | None = None
) -> list[SymbolDay]:
    """The UTC days of ``ts_event`` holding 1m bars of ``symbol`` (all, or ``days``, which must
    all be there: :class:`~training.errors.NotFoundError` names the missing ones)."""
    instrument = catalog.instrument(symbol)
    held: set[datetime.date] = set()
    for path in sorted(_bar_dir(catalog, instrument).glob("*.parquet")):
        ts = pq.read_table(path, columns=["ts_event"]).column("ts_event").to_numpy()
        held.update(_day(ns) for ns in np.unique(ts.astype(np.int64) // NS_PER_DAY * NS_PER_DAY))
    if not held:
        raise NotFoundError(f"no 1m bars of {instrument.id} in {catalog.root}", field="symbol")
    chosen = held
    if days is not None:
        wanted = set(days)
        missing = sorted(wanted - held)
        if missing:
            listed = ", ".join(d.isoformat() for d in missing)
            raise NotFoundError(f"no 1m bars of {instrument.id} on {listed}", field="days")
        chosen = wanted
    return [SymbolDay(instrument.id.value, d) for d in sorted(chosen)]


def bar_files(catalog: MarketCatalog, sd: SymbolDay) -> list[Path]:
    """The catalog's kline files that may hold ``sd``'s bars (by their ``<start>_<end>`` names;
    a file named otherwise is read whatever it covers): what :func:`load_bar_columns` reads and
    the feature cache's key hashes."""
    iso = sd.day.isoformat()
    return [
        path
        for path in sorted(
            _bar_dir(catalog, catalog.instrument(sd.instrument_id)).glob("*.parquet")
        )
        if (span := _day_span(path)) is None or span[0] <= iso <= span[1]
    ]


def load_bar_columns(catalog: MarketCatalog, sd: SymbolDay) -> BarColumns:
    """One symbol-day's bars as columns, by ``ts_event`` (pyarrow, no Nautilus objects)."""
    tables = [pq.read_table(path) for path in bar_files(catalog, sd)]
    if not tables:
        raise NotFoundError(f"no 1m bars of {sd}", field="days")
    t = pa.concat_tables(tables)
    ts = t.column("ts_event").to_numpy().astype(np.int64)
    keep = np.flatnonzero(ts // NS_PER_DAY == (sd.day - _EPOCH).days)
    keep = keep[np.argsort(ts[keep], kind="stable")]
    t = t.take(pa.array(keep))

    def fixed(name: str) -> np.ndarray:
        return decode_fixed(t.column(name).combine_chunks())

    def decimal(name: str) -> np.ndarray:  # float(str) == float(Decimal(str)), correctly rounded
        return np.array([float(v) for v in t.column(name).to_pylist()], dtype=np.float64)

    return BarColumns(
        ts=ts[keep],
        open=fixed("open"),
        high=fixed("high"),
        low=fixed("low"),
        close=fixed("close"),
        volume=fixed("volume"),
        quote_volume=decimal("quote_volume"),
        taker_buy_volume=decimal("taker_buy_base_volume"),
        trades=t.column("count").to_numpy().astype(np.int64),
    )


def load_bars(catalog: MarketCatalog, sds: list[SymbolDay]) -> list[BinanceBar]:
    """The Nautilus ``BinanceBar``s of ``sds`` (one instrument), by ``ts_event``: what a
    ``BacktestEngine`` replays (``ParquetDataCatalog.query``)."""
    if not sds:
        return []
    instrument = catalog.instrument(sds[0].instrument_id)
    wanted = {sd.day for sd in sds}
    # a day either side: the query bounds ts_init, the days are of ts_event
    first, last = ((d - _EPOCH).days for d in (min(wanted), max(wanted)))
    bars = catalog.nautilus.query(
        BinanceBar,
        identifiers=[str(bar_type_for(instrument))],
        start=(first - 1) * NS_PER_DAY,
        end=(last + 2) * NS_PER_DAY - 1,
    )
    out = [b for b in bars if _day(b.ts_event) in wanted]
    out.sort(key=lambda b: b.ts_event)
    return out  # type: ignore[return-value]


def market_view(cols: dict[str, np.ndarray], tick: float) -> dict[str, np.ndarray]:
    """The pipeline's market columns of bar samples on an instrument with price step ``tick``.

    >>> v = market_view({"close": np.array([10.0, 10.5, 11.0]), "low": np.array([9.0, 10.0, 10.5]),
    ...                  "high": np.array([10.0, 11.0, 11.5]), "session": np.array([0, 0, 1])}, 0.5)
    >>> v["best_bid"].tolist(), v["next_sell_low"].tolist(), float(v["spread_bp"][0])
    ([9.75, 10.25, 10.75], [10.0, nan, nan], 500.0)
    """
    close = cols["close"]
    same = np.r_[cols["session"][1:] == cols["session"][:-1], False]
    nxt = np.r_[np.arange(1, len(close)), 0] if len(close) else np.zeros(0, np.int64)
    return {
        "mid": close,
        "microprice": close,
        "best_bid": close - 0.5 * tick,
        "best_ask": close + 0.5 * tick,
        "spread_bp": tick / close * 1e4,
        "book_ok": np.ones(len(close), dtype=bool),
        "next_sell_low": np.where(same, cols["low"][nxt], np.nan),
        "next_buy_high": np.where(same, cols["high"][nxt], np.nan),
    }


def bar_features_table(samples: list[BarSample], schema: BarFeatureSchema, tick: float) -> pa.Table:
    """Samples -> Arrow table (module docstring layout), the schema JSON in its metadata."""
    cols = bar_samples_to_columns(samples, len(schema.names))
    arrays: dict[str, pa.Array] = {"ts": pa.array(cols["ts"], pa.int64())}
    for j, name in enumerate(z_columns(schema)):  # type: ignore[arg-type]
        arrays[name] = pa.array(cols["z"][:, j])
    for j, name in enumerate(raw_columns(schema)):  # type: ignore[arg-type]
        arrays[name] = pa.array(cols["raw"][:, j])
    for name in BAR_SAMPLE_SCALARS:
        arrays[name] = pa.array(cols[name])
    for name, values in market_view(cols, tick).items():
        arrays[name] = pa.array(values)
    meta = {SCHEMA_KEY: json.dumps(schema.to_dict(), sort_keys=True).encode()}
    return pa.table(arrays).replace_schema_metadata(meta)


def read_bar_features(path: str | Path) -> tuple[BarFeatureSchema, pa.Table]:
    """A bar-feature file and its schema; a FEATURES_V1 (or any other) table is refused."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if SCHEMA_KEY not in meta:
        raise BadInputError(
            f"{path}: no {SCHEMA_KEY.decode()} metadata (not a feature table)", field="path"
        )
    return BarFeatureSchema.from_dict(json.loads(meta[SCHEMA_KEY])), table


def bar_feature_path(out_dir: str | Path, sd: SymbolDay) -> Path:
    """``OUT/bar_features/<instrument_id>/<YYYY-MM-DD>.parquet``."""
    return Path(out_dir) / "bar_features" / sd.instrument_id / f"{sd.day.isoformat()}.parquet"


def extract_bar_features(
    catalog: MarketCatalog,
    symbol: str,
    days: Iterable[datetime.date] | None = None,
    schema: BarFeatureSchema | None = None,
    out_dir: str | Path | None = None,
    continuous: bool = True,
    progress: bool = True,
) -> dict[SymbolDay, pa.Table | Path]:
    """Bar features of ``symbol``'s days in day order: tables, or paths when ``out_dir`` is set.

    ``continuous`` (default) keeps one engine across the days; ``False`` starts a fresh one per
    day. ``schema`` defaults to FEATURES_BARS_V1 for the instrument's market.
    """
    sds = bar_days(catalog, symbol, days)
    market = market_of(sds[0].instrument_id)
    schema = schema or bar_schema(market)
    if schema.market != market:
        raise BadInputError(
            f"schema.market: {schema.market!r} does not fit {sds[0].instrument_id}", field="schema"
        )
    tick = float(catalog.instrument(sds[0].instrument_id).price_increment)
    engine = BarFeatureEngine(schema)
    out: dict[SymbolDay, pa.Table | Path] = {}
    bar = tqdm(sds, desc=f"bar features {symbol}", unit="day", disable=not progress)
    for sd in bar:
        if not continuous:
            engine = BarFeatureEngine(schema)
        table = bar_features_table(engine.run(load_bar_columns(catalog, sd)), schema, tick)
        bar.set_postfix(bars=table.num_rows)
        out[sd] = write_table(table, bar_feature_path(out_dir, sd)) if out_dir else table
    return out
