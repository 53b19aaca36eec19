"""The training data view: ready FEATURES_V1 samples of contiguous symbol-days, and the holdout.

:func:`load_feature_sets` extracts a symbol's days (through :meth:`MarketCatalog.select`, so a
missing day or symbol is a :class:`~training.errors.NotFoundError` naming it) and holds out the
last day (with one day, its last ``holdout_frac``). :class:`FeatureSet` keeps the per-day
``lengths`` so the HMM and the labels never run across a day boundary.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.errors import BadInputError
from training.features import FeatureSchema
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
            raise BadInputError(
                f"{symbol}: only {len(full)} ready samples; need more data", field="days"
            )
        train, holdout = full.split(int(len(full) * (1.0 - holdout_frac)))
        return schema, train, holdout
    items = list(tables.items())
    train = FeatureSet.from_tables(dict(items[:-1]), schema)
    holdout = FeatureSet.from_tables(dict(items[-1:]), schema)
    return schema, train, holdout
