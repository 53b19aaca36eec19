"""Ground-truth regime labels of a synthetic symbol-day: one Parquet file beside the partition.

``MarketCatalog.labels_path(symbol_day)`` holds one row per regime segment that covers the day,
at the segment start clipped to the day start — ``ts_event`` int64 ns, ``regime`` int8,
``regime_name`` string. The regime of any time ``t`` is the row with the largest
``ts_event <= t`` (:meth:`RegimeLabels.regime_at`).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.errors import BadInputError
from training.errors import NotFoundError
from training.io import atomic_path

if TYPE_CHECKING:
    from training.data.catalog import MarketCatalog

__all__ = ["LabelsNotFoundError", "RegimeLabels", "load_labels", "write_labels"]


class LabelsNotFoundError(NotFoundError, FileNotFoundError):
    """No such symbol-day, or no labels file for it (real data has none)."""


class RegimeLabels(NamedTuple):
    """Ground-truth regimes of one day as step changes: ``regime[i]`` holds from ``ts_event[i]``."""

    ts_event: np.ndarray
    regime: np.ndarray
    names: tuple[str, ...] = ()

    def regime_at(self, ts: np.ndarray | int) -> np.ndarray:
        """Regime (int8) in force at each timestamp; raises before the first label.

        >>> RegimeLabels(np.array([0, 10]), np.array([2, 0], dtype=np.int8)).regime_at(
        ...     np.array([0, 9, 10, 99])).tolist()
        [2, 2, 0, 0]
        """
        t = np.asarray(ts, dtype=np.int64)
        idx = np.searchsorted(self.ts_event, t, side="right") - 1
        if (idx < 0).any():
            first = int(t[idx < 0].min())
            raise BadInputError(f"timestamp {first} precedes the first label", field="ts_event")
        return self.regime[idx]


def write_labels(path: Path, labels: RegimeLabels) -> None:
    """Write ``labels`` as Parquet to ``path`` atomically (:func:`training.io.atomic_path`)."""
    names = np.asarray(labels.names, dtype=object)[labels.regime.astype(np.int64)]
    table = pa.table(
        {
            "ts_event": pa.array(labels.ts_event, type=pa.int64()),
            "regime": pa.array(labels.regime, type=pa.int8()),
            "regime_name": pa.array(names.tolist(), type=pa.string()),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def load_labels(
    catalog: MarketCatalog | str | Path, symbol: str, day: datetime.date
) -> RegimeLabels:
    """Ground-truth regimes of one synthetic symbol-day (see the module doc for the layout)."""
    from training.data.catalog import MarketCatalog

    cat = catalog if isinstance(catalog, MarketCatalog) else MarketCatalog(catalog)
    try:
        sd = cat.select(symbol, [day])[0]
    except NotFoundError as exc:
        raise LabelsNotFoundError(str(exc), field=exc.field) from exc
    path = cat.labels_path(sd)
    if not path.is_file():
        raise LabelsNotFoundError(f"no regime labels for {sd} at {path}", field="days")
    t = pq.read_table(path)
    regime = t.column("regime").to_numpy().astype(np.int8)
    names = t.column("regime_name").to_pylist()
    by_code = {int(c): n for c, n in zip(regime.tolist(), names, strict=True)}
    k = max(by_code) + 1 if by_code else 0
    return RegimeLabels(
        ts_event=t.column("ts_event").to_numpy().astype(np.int64),
        regime=regime,
        names=tuple(by_code.get(i, f"regime{i}") for i in range(k)),
    )
