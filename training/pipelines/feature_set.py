"""The training data view: the samples the strategy acts on, of contiguous symbol-days.

:func:`load_feature_sets` extracts a symbol's days through ONE continuous feature engine (as the
backtest and the live node run it; through :meth:`MarketCatalog.select`, so a missing day or
symbol is a :class:`~training.errors.NotFoundError` naming it) and holds out the last
``test_days`` days as the test period (with one day, its last ``holdout_frac``, after a purge gap
of one label horizon). :class:`FeatureSet` keeps only the rows the strategy would act on
(``ready`` and ``book_ok``) and ``lengths`` per feature session (a time gap, or a table that does
not continue the previous one's session), so the HMM filter and the labels never run across a
session gap; ``tables`` keeps the full feature tables for the trade simulator.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.errors import BadInputError
from training.features import FeatureSchema
from training.features.bars.schema import BarFeatureSchema
from training.features.bars.schema import schema_from_dict
from training.features.offline import SCHEMA_KEY
from training.features.offline import extract_many
from training.features.offline import z_columns

__all__ = ["FeatureSet", "load_feature_sets"]


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
    tables: tuple[pa.Table, ...] = ()

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_tables(cls, tables: dict[SymbolDay, pa.Table], schema: FeatureSchema) -> FeatureSet:
        zc = z_columns(schema)
        parts: list[dict[str, np.ndarray]] = []
        max_gap = schema.max_gap_intervals * schema.interval_ns
        prev: tuple[int, int] | None = None  # (session, ts) of the previous table's last row
        offset = 0
        for table in tables.values():
            ready = table.column("ready").to_numpy(zero_copy_only=False).astype(bool)
            if "book_ok" in table.column_names:
                ready &= table.column("book_ok").to_numpy(zero_copy_only=False).astype(bool)
            ts_all = table.column("ts").to_numpy()
            sess = (table.column("session").to_numpy().astype(np.int64)
                    if "session" in table.column_names else np.zeros(len(ts_all), np.int64))  # fmt: skip
            if len(ts_all):
                continues = (
                    prev is not None and prev[0] == sess[0] and ts_all[0] - prev[1] <= max_gap
                )
                if not continues:
                    offset += 1_000_000  # another engine or a gap: a new session
                prev = (int(sess[-1]), int(ts_all[-1]))
            cols = {
                "session": (sess + offset)[ready],
                "ts": table.column("ts").to_numpy()[ready],
                "X": np.column_stack([table.column(c).to_numpy() for c in zc])[ready],
                "mid": table.column("mid").to_numpy()[ready],
                "spread_bp": table.column("spread_bp").to_numpy()[ready],
            }
            if "regime" in table.column_names:
                cols["regime"] = table.column("regime").to_numpy()[ready]
            parts.append(cols)
        has_regime = all("regime" in p for p in parts)
        session = np.concatenate([p["session"] for p in parts])
        ts = np.concatenate([p["ts"] for p in parts])
        cuts = np.flatnonzero(np.r_[True, (session[1:] != session[:-1])
                                    | (np.diff(ts) > max_gap), True])  # fmt: skip
        return cls(
            symbol_days=tuple(tables),
            ts=ts,
            X=np.concatenate([p["X"] for p in parts]),
            mid=np.concatenate([p["mid"] for p in parts]),
            spread_bp=np.concatenate([p["spread_bp"] for p in parts]),
            lengths=tuple(int(v) for v in np.diff(cuts)) if len(ts) else (),
            regime=np.concatenate([p["regime"] for p in parts]) if has_regime else None,
            tables=tuple(tables.values()),
        )

    def split(self, at: int, gap: int = 0) -> tuple[FeatureSet, FeatureSet]:
        """Time split at row ``at`` (lengths are cut accordingly); the ``gap`` rows before
        ``at`` are purged from the first part."""
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
                tables=self.tables,
            )

        return part(0, max(0, at - gap)), part(at, len(self))

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
    schema: FeatureSchema | BarFeatureSchema | None = None,
    holdout_frac: float = 0.2,
    test_days: int = 1,
    gap_s: float = 0.0,
) -> tuple[FeatureSchema | BarFeatureSchema, FeatureSet, FeatureSet]:
    """``(schema, train, test)``: the last ``test_days`` days are the test period, features from
    one engine across all days (FEATURES_V1 from the book and trades, or FEATURES_BARS_V1 from
    1m klines when ``schema`` is a :class:`BarFeatureSchema`); with one day (or ``test_days=0``,
    any number of days) the test is the last ``holdout_frac`` of the samples and the ``gap_s``
    before it (set it to the label horizon) is purged from training."""
    if isinstance(schema, BarFeatureSchema):  # 1m klines: the catalog's bars, the bar engine
        from training.features.bars.offline import extract_bar_features

        tables = extract_bar_features(catalog, symbol, days, schema=schema, progress=False)
    else:
        tables = extract_many(catalog, symbol, days, schema=schema, progress=False)
    first = next(iter(tables.values()))
    schema = schema or schema_from_dict(json.loads(first.schema.metadata[SCHEMA_KEY]))
    if test_days < 0:
        raise BadInputError(f"test_days: must be >= 0, got {test_days}", field="test_days")
    if len(tables) == 1 or test_days == 0:  # 0: the tail of the whole period, not whole days
        full = FeatureSet.from_tables(tables, schema)
        if len(full) < 100 and test_days:
            raise BadInputError(
                f"{symbol}: only {len(full)} ready samples; need more data", field="days"
            )
        gap = math.ceil(gap_s / schema.sample_interval_s)
        train, test = full.split(int(len(full) * (1.0 - holdout_frac)), gap=gap)
        return schema, train, test
    if test_days >= len(tables):
        raise BadInputError(
            f"test_days: {test_days} leaves no day to train on ({len(tables)} days selected)",
            field="test_days",
        )
    items = list(tables.items())
    train = FeatureSet.from_tables(dict(items[:-test_days]), schema)
    test = FeatureSet.from_tables(dict(items[-test_days:]), schema)
    return schema, train, test
