"""One UTC day of one or more runs as the rollup's tables, per symbol.

Each table has a fixed schema (so every day's file reads into one dataset) and a ``run`` column
naming the RUN_DIR a row came from; the partition keys (``symbol``, ``date``) live in the path
only. A run's timeline columns outside :data:`node.run_dir.TIMELINE_SCHEMA` are left out; columns
an older run lacks are null.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from node.run_dir import NON_BLOCK_VERDICTS
from node.run_dir import REASON_CODES
from node.run_dir import TIMELINE_SCHEMA
from node.run_dir import utc_day
from ops._run_events import DECISION_SCHEMA
from ops._run_events import FILL_SCHEMA
from ops._run_events import ORDER_SCHEMA
from ops._run_events import RunEvents

__all__ = ["GUARDRAIL_SCHEMA", "SCHEMAS", "TABLES", "day_tables"]

_RUN = pa.field("run", pa.string())
GUARDRAIL_SCHEMA = pa.schema([("verdict", pa.string()), ("count", pa.int64()), _RUN])
#: Table name -> its schema, in the order the rollup writes them.
SCHEMAS: dict[str, pa.Schema] = {
    "timeline": TIMELINE_SCHEMA.append(_RUN),
    "decisions": DECISION_SCHEMA.append(_RUN),
    "orders": ORDER_SCHEMA.append(_RUN),
    "fills": FILL_SCHEMA.append(_RUN),
    "guardrails": GUARDRAIL_SCHEMA,
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)


def _on_day(table: pa.Table, day: str) -> pa.Table:
    """The rows of ``table`` whose ``ts`` falls on UTC ``day``."""
    days = utc_day(table.column("ts").to_numpy()) if table.num_rows else np.array([], object)
    return table.filter(pa.array(days == day, pa.bool_()))


def _timeline_on_day(timeline: pa.Table, day: str) -> pa.Table:
    if "day" in timeline.column_names:
        rows = timeline.filter(pc.equal(timeline.column("day"), day))
    else:
        rows = _on_day(timeline, day)
    cols = {}
    for f in TIMELINE_SCHEMA:
        cols[f.name] = (rows.column(f.name).cast(f.type) if f.name in rows.column_names
                        else pa.nulls(rows.num_rows, f.type))  # fmt: skip
    if "day" not in rows.column_names:
        cols["day"] = pa.array([day] * rows.num_rows, pa.string())
    return pa.table(cols, schema=TIMELINE_SCHEMA)


def _guardrails(timeline: pa.Table) -> pa.Table:
    """Verdict counts of the day's samples: every block code and OK/FLAT (zeros included)."""
    counts = Counter(timeline.column("verdict").to_pylist()) if timeline.num_rows else Counter()
    keys = dict.fromkeys((*REASON_CODES, *NON_BLOCK_VERDICTS, *sorted(k for k in counts if k)))
    return pa.table({"verdict": list(keys), "count": [counts.get(k, 0) for k in keys]},
                    schema=GUARDRAIL_SCHEMA.remove(2))  # fmt: skip


def _with_run(table: pa.Table, run: str) -> pa.Table:
    return table.append_column(_RUN, pa.array([run] * table.num_rows, pa.string()))


def _sorted(tables: list[pa.Table], name: str) -> pa.Table:
    table = pa.concat_tables(tables).cast(SCHEMAS[name])
    if name == "guardrails" or table.num_rows == 0:
        return table
    return table.take(pc.sort_indices(table, [("ts", "ascending"), ("run", "ascending")]))


def day_tables(
    runs: Sequence[tuple[str, RunEvents]], date: datetime.date
) -> dict[str, dict[str, pa.Table]]:
    """``symbol -> table name -> table`` of ``date`` for the ``(run id, events)`` given;
    a symbol with no timeline row that day is left out."""
    day = date.isoformat()
    parts: dict[str, dict[str, list[pa.Table]]] = {}
    for run, ev in runs:
        timeline = _timeline_on_day(ev.timeline, day)
        if timeline.num_rows == 0:
            continue
        by_name = parts.setdefault(ev.symbol, {name: [] for name in TABLES})
        for name, table in (("timeline", timeline), ("decisions", _on_day(ev.decisions, day)),
                            ("orders", _on_day(ev.orders, day)), ("fills", _on_day(ev.fills, day)),
                            ("guardrails", _guardrails(timeline))):  # fmt: skip
            by_name[name].append(_with_run(table, run))
    return {sym: {n: _sorted(ts, n) for n, ts in by.items()} for sym, by in sorted(parts.items())}
