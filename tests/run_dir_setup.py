"""A RUN_DIR built by hand for the ops tests: every file of the backtest contract
(:mod:`node.run_dir`), each acceptance check passing, so a test can break one thing at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from node.run_dir import BLOCK_SCHEMA
from node.run_dir import BLOCKS
from node.run_dir import ENTRIES
from node.run_dir import ENTRY_SCHEMA
from node.run_dir import REASON_CODES
from node.run_dir import TIMELINE
from node.run_dir import TIMELINE_SCHEMA

DAYS = ("2024-01-01", "2024-01-02")
ROWS_PER_DAY = 600
MAX_POSITION = 0.01
MAX_DRAWDOWN = 100.0
BLOCK_REASONS = REASON_CODES
#: The timeline columns the hand-built RUN_DIR has (``status`` is left out).
TIMELINE_COLUMNS = ("ts", "day", "state", "posterior", "confidence", "action", "score", "verdict",
                    "latency_ms", "equity", "position", "mid", "pnl", "features", "loglik",
                    "drift", "adapting")  # fmt: skip


def _day_ns(day: str) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def _scores(day: str) -> dict[str, list]:
    """The drift monitor's per-minute scores of a day (what the report's drift panel draws):
    no KL before its ``min_samples``, then a rising KL, adapting in the last minutes."""
    t0 = _day_ns(day) + 60 * 10**9
    n = ROWS_PER_DAY // 60
    return {
        "ts": [t0 + m * 60 * 10**9 for m in range(n)],
        "max_kl": [None if m < 3 else 0.1 * m for m in range(n)],
        "adapting": [m >= n - 2 for m in range(n)],
    }


def make_spec(seed: int = 3) -> dict[str, Any]:
    """Every RUN_DIR file as Python data (columns as lists); :func:`write_run` writes it."""
    rng = np.random.default_rng(seed)
    tl: dict[str, list] = {c: [] for c in TIMELINE_COLUMNS}
    entries: dict[str, list] = {c: [] for c in ENTRY_SCHEMA.names}
    blocks: dict[str, list] = {c: [] for c in BLOCK_SCHEMA.names}
    fills: list[dict[str, Any]] = []
    pnl = 0.0
    for d, day in enumerate(DAYS):
        t0 = _day_ns(day) + 60 * 10**9
        for i in range(ROWS_PER_DAY):
            ts = t0 + i * 10**9
            state = (i // 50 + d) % 3
            post = [0.05, 0.05, 0.05]
            post[state] = 0.9
            feats = rng.normal(size=4).tolist()
            if i % 10 == 0:
                verdict, action = "OK", "buy"
            elif i % 10 in (1, 2):
                verdict, action = "COOLDOWN", "buy"
            elif i % 10 == 3:
                verdict, action = "POS", "sell"
            else:
                verdict, action = "FLAT", "flat"
            no_result = i == 7  # an inference failure: no posterior, state -1
            pnl += 0.002 + rng.normal(0.0, 0.01)
            row = {
                "ts": ts,
                "day": day,
                "state": -1 if no_result else state,
                "posterior": [] if no_result else post,
                "confidence": -1.0 if no_result else 0.9,
                "action": action,
                "score": 0.3,
                "verdict": verdict,
                "latency_ms": -1.0 if no_result else 0.2,
                "equity": 100_000.0 + pnl,
                "position": 0.003 * ((i // 100) % 2),
                "mid": 42_000.0 + rng.normal(0.0, 1.0),
                "pnl": pnl,
                "features": feats,
                "loglik": None if no_result else -4.0,
                "drift": None if no_result else 0.01,
                "adapting": False,
            }
            for k, v in row.items():
                tl[k].append(v)
            if verdict == "OK":
                for k, v in zip(entries, (ts, "buy", 42_000.0, 0.0003, True, feats), strict=True):
                    entries[k].append(v)
            elif verdict != "FLAT":
                for k, v in zip(blocks, (ts, verdict, action, feats), strict=True):
                    blocks[k].append(v)
        for j, side in enumerate(("BUY", "SELL", "BUY", "SELL")):
            when = np.datetime64(day, "s") + np.timedelta64(120 + 60 * j, "s")
            fills.append(
                {
                    "order_side": side,
                    "last_qty": "0.003",
                    "last_px": "42000.00",
                    "commission": "0.01 USDT",
                    "ts_event": f"{when}+00:00",
                }
            )
    counts = dict.fromkeys(BLOCK_REASONS, 0)
    for r in blocks["reason"]:
        counts[r] += 1
    counts["OK"] = len(entries["ts"])
    drift = {
        "n_samples": ROWS_PER_DAY,
        "n_window": ROWS_PER_DAY,
        "kl": {"f0": 0.01},
        "max_kl": 0.01,
        "drifted": [],
        "loglik_changes": 0,
        "loglik_mean": -4.2,
        "adapting": False,
    }
    partial_fit = {
        "accepted": True,
        "reason": "improved",
        "n_samples": ROWS_PER_DAY,
        "heldout_ll_before": -4.3,
        "heldout_ll_after": -4.2,
        "error": None,
    }
    return {
        "timeline": tl,
        "entries": entries,
        "blocks": blocks,
        "fills": fills,
        "guardrails": counts,
        "config": {
            "strategy": {
                "instrument_id": "BTCUSDT.BINANCE",
                "max_position": MAX_POSITION,
                "max_drawdown": MAX_DRAWDOWN,
                "min_conf": 0.6,
            },
            "venue": {"fill_model": "queue", "latency_ms": 5.0},
            "instrument": {"id": "BTCUSDT.BINANCE", "min_notional": 10.0},
        },
        "adaptation": {
            "days": [
                {
                    "day": day,
                    "drift": copy.deepcopy(drift),
                    "scores": _scores(day),
                    "partial_fit": dict(partial_fit),
                }
                for day in DAYS
            ]
        },
        "summary": {
            "net_pnl": pnl,
            "trades": 8.0,
            "samples": len(tl["ts"]),
            "symbol": "BTCUSDT",
            "days": list(DAYS),
            "model_version": "v0001-test",
        },
    }


def write_run(spec: dict[str, Any], out: Path) -> Path:
    """Write ``spec`` as a RUN_DIR (a ``None`` JSON entry is left out; ``truth``, a list of
    regimes per timeline row, becomes ``truth.parquet``)."""
    out.mkdir(parents=True, exist_ok=True)
    if spec.get("truth") is not None:
        pq.write_table(
            pa.table({"ts": pa.array(spec["timeline"]["ts"], pa.int64()),
                      "regime": pa.array(spec["truth"], pa.int32())}), out / "truth.parquet",
        )  # fmt: skip
    tables = {TIMELINE: TIMELINE_SCHEMA, ENTRIES: ENTRY_SCHEMA, BLOCKS: BLOCK_SCHEMA}
    for name, schema in tables.items():
        cols = spec[name.removesuffix(".parquet")]
        pq.write_table(
            pa.table({c: pa.array(v, schema.field(c).type) for c, v in cols.items()}), out / name
        )
    fills = spec["fills"]
    cols = ("order_side", "last_qty", "last_px", "commission", "ts_event")
    pq.write_table(
        pa.table({c: pa.array([f[c] for f in fills], pa.string()) for c in cols}),
        out / "fills.parquet",
    )
    for name in ("guardrails", "config", "adaptation", "summary"):
        if spec.get(name) is not None:
            (out / f"{name}.json").write_text(json.dumps(spec[name], indent=2))
    return out
