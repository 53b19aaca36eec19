"""A RUN_DIR as typed event tables: the orders sent, the fills, every decision.

The RUN_DIR keeps what the strategy decided (``entries``, ``blocks``, ``exits``) and Nautilus's
fills report (every column a string); the rollup (:mod:`ops.rollup`) writes these tables and the
metrics feed (:mod:`ops.prometheus.feed`) replays them, so both read a run the same way.
Orders are the entries submitted (``submitted``) and, when the run traded, the exit quotes with a
quantity (the strategy records an exit quote also when trading is off, and submits nothing then).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from node import run_dir
from node.killswitch import KillSwitch
from node.killswitch import kill_switch_path
from node.run_dir import RunDirError

__all__ = [
    "DECISION_SCHEMA",
    "FILL_SCHEMA",
    "ORDER_SCHEMA",
    "RunEvents",
    "load_events",
]

ORDER_SCHEMA = pa.schema([("ts", pa.int64()), ("kind", pa.string()), ("side", pa.string()),
                          ("price", pa.float64()), ("quantity", pa.float64()),
                          ("reason", pa.string()), ("requote", pa.bool_())])  # fmt: skip
FILL_SCHEMA = pa.schema([("ts", pa.int64()), ("side", pa.string()), ("quantity", pa.float64()),
                         ("price", pa.float64()), ("notional", pa.float64()),
                         ("commission", pa.float64()), ("commission_currency", pa.string()),
                         ("liquidity", pa.string()), ("client_order_id", pa.string()),
                         ("venue_order_id", pa.string()), ("trade_id", pa.string())])  # fmt: skip
DECISION_SCHEMA = pa.schema([("ts", pa.int64()), ("kind", pa.string()), ("verdict", pa.string()),
                             ("side", pa.string()), ("price", pa.float64()),
                             ("quantity", pa.float64()), ("submitted", pa.bool_()),
                             ("features", pa.list_(pa.float64()))])  # fmt: skip


@dataclass(frozen=True)
class RunEvents:
    """A RUN_DIR's timeline and event tables, each sorted by ``ts`` (ns, exchange time)."""

    root: Path
    symbol: str
    instrument_id: str
    market: str
    strategy: dict[str, Any]
    model_version: str | None
    timeline: pa.Table
    orders: pa.Table
    fills: pa.Table
    decisions: pa.Table
    kill_switch: dict[str, Any]


def _sorted(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    rows.sort(key=lambda r: r["ts"])  # stable: same-ts rows keep their order
    return pa.Table.from_pylist(rows, schema=schema)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if df.empty else df.to_dict("records")


def _fills(df: pd.DataFrame, path: Path) -> pa.Table:
    """Nautilus's fills report (strings) as :data:`FILL_SCHEMA`; a bad cell names its row."""
    if df.empty or "ts_event" not in df.columns:
        return FILL_SCHEMA.empty_table()
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        try:
            qty, px = float(r["last_qty"]), float(r["last_px"])
            amount, _, ccy = str(r.get("commission") or "0").partition(" ")
            rows.append({
                "ts": int(pd.Timestamp(r["ts_event"]).value),
                "side": str(r["order_side"]).lower(),
                "quantity": qty,
                "price": px,
                "notional": abs(qty * px),
                "commission": float(amount),
                "commission_currency": ccy or None,
                "liquidity": str(r.get("liquidity_side") or "NO_LIQUIDITY_SIDE"),
                "client_order_id": r.get("client_order_id"),
                "venue_order_id": r.get("venue_order_id"),
                "trade_id": r.get("trade_id"),
            })  # fmt: skip
        except (KeyError, ValueError) as exc:
            raise RunDirError(f"{path}: row {i}: unreadable fill ({exc!r})") from exc
    return _sorted(rows, FILL_SCHEMA)


def _exits(root: Path) -> list[dict[str, Any]]:
    path = root / run_dir.EXITS
    if not path.is_file():  # runs written before exits were recorded
        return []
    return pq.read_table(path).to_pylist()


def _orders_and_decisions(
    entries: list[dict[str, Any]],
    blocks: list[dict[str, Any]],
    exits: list[dict[str, Any]],
    trading: bool,
) -> tuple[pa.Table, pa.Table]:
    orders, decisions = [], []
    for e in entries:
        if e["submitted"]:
            orders.append({"ts": e["ts"], "kind": "entry", "side": e["side"], "price": e["price"],
                           "quantity": e["quantity"], "reason": None, "requote": False})  # fmt: skip
        decisions.append({"ts": e["ts"], "kind": "entry", "verdict": run_dir.ALLOWED,
                          "side": e["side"], "price": e["price"], "quantity": e["quantity"],
                          "submitted": bool(e["submitted"]), "features": e["features"]})  # fmt: skip
    for b in blocks:
        decisions.append({"ts": b["ts"], "kind": "block", "verdict": b["reason"], "side": b["side"],
                          "price": None, "quantity": None, "submitted": False,
                          "features": b["features"]})  # fmt: skip
    for x in exits:
        sent = trading and x["quantity"] > 0
        if sent:
            orders.append({"ts": x["ts"], "kind": "exit", "side": x["side"], "price": x["price"],
                           "quantity": x["quantity"], "reason": x["reason"],
                           "requote": bool(x["requote"])})  # fmt: skip
        decisions.append({"ts": x["ts"], "kind": "exit", "verdict": x["reason"], "side": x["side"],
                          "price": x["price"], "quantity": x["quantity"], "submitted": sent,
                          "features": None})  # fmt: skip
    return _sorted(orders, ORDER_SCHEMA), _sorted(decisions, DECISION_SCHEMA)


def load_events(path: str | Path) -> RunEvents:
    """Read a RUN_DIR (:func:`node.run_dir.load_run`) into :class:`RunEvents`."""
    run = run_dir.load_run(path)
    config = run.config or {}
    strategy = dict(config.get("strategy") or {})
    instrument = config.get("instrument") or {}
    instrument_id = str(instrument.get("id") or strategy.get("instrument_id") or "")
    if not instrument_id:
        raise RunDirError(f"{run.root / run_dir.CONFIG}: no instrument id (instrument.id)")
    market = str(instrument.get("market") or strategy.get("market") or "spot")
    trading = bool(strategy.get("trading_enabled", False))
    entries, blocks = _records(run.entries), _records(run.blocks)
    for rows in (entries, blocks):
        for r in rows:
            r["features"] = np.asarray(r["features"], dtype=np.float64).tolist()
    orders, decisions = _orders_and_decisions(entries, blocks, _exits(run.root), trading)
    kill_file = kill_switch_path(run.root)
    return RunEvents(
        root=run.root,
        symbol=instrument_id.split(".")[0],
        instrument_id=instrument_id,
        market="perp" if market == "perp" else "spot",
        strategy=strategy,
        model_version=(config.get("model") or {}).get("version")
        or (run.summary or {}).get("model_version"),
        timeline=run.timeline,
        orders=orders,
        fills=_fills(run.fills, run.root / run_dir.FILLS),
        decisions=decisions,
        kill_switch=KillSwitch(kill_file).state() if kill_file.is_file() else {"tripped": False},
    )
