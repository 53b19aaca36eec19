"""RUN_DIRs for the ops tests: one built by hand (every file of the backtest contract, each check
passing, so a test can break one thing at a time) and one written by a real ``run_backtest``; the
model trained on synthetic days that the real backtests use."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops.acceptance import REASON_CODES
from tests.strategy_setup import LOOSE, make_synth_setup
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog

DAYS = ("2024-01-01", "2024-01-02")
ROWS_PER_DAY = 600
MAX_POSITION = 0.01
MAX_DRAWDOWN = 100.0
BLOCK_REASONS = REASON_CODES

TIMELINE_TYPES = {
    "ts": pa.int64(),
    "day": pa.string(),
    "state": pa.int32(),
    "posterior": pa.list_(pa.float64()),
    "confidence": pa.float64(),
    "action": pa.string(),
    "score": pa.float64(),
    "verdict": pa.string(),
    "latency_ms": pa.float64(),
    "equity": pa.float64(),
    "position": pa.float64(),
    "mid": pa.float64(),
    "pnl": pa.float64(),
    "features": pa.list_(pa.float64()),
    "loglik": pa.float64(),
    "drift": pa.float64(),
    "adapting": pa.bool_(),
}


def _day_ns(day: str) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def make_spec(seed: int = 3) -> dict[str, Any]:
    """Every RUN_DIR file as Python data (columns as lists); :func:`write_run` writes it."""
    rng = np.random.default_rng(seed)
    tl: dict[str, list] = {c: [] for c in TIMELINE_TYPES}
    entries: dict[str, list] = {
        c: [] for c in ("ts", "side", "price", "quantity", "submitted", "features")
    }
    blocks: dict[str, list] = {c: [] for c in ("ts", "reason", "side", "features")}
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
            "venue": {"prob_slippage": 0.1, "latency_ms": 5.0},
            "instrument": {"id": "BTCUSDT.BINANCE", "min_notional": 10.0},
        },
        "adaptation": {
            "days": [
                {"day": day, "drift": copy.deepcopy(drift), "partial_fit": dict(partial_fit)}
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
    """Write ``spec`` as a RUN_DIR (a ``None`` JSON entry is left out)."""
    out.mkdir(parents=True, exist_ok=True)
    tl = spec["timeline"]
    pq.write_table(
        pa.table({c: pa.array(tl[c], TIMELINE_TYPES[c]) for c in tl}), out / "timeline.parquet"
    )
    e = spec["entries"]
    entry_types = (
        pa.int64(),
        pa.string(),
        pa.float64(),
        pa.float64(),
        pa.bool_(),
        pa.list_(pa.float64()),
    )
    pq.write_table(
        pa.table({c: pa.array(e[c], t) for c, t in zip(e, entry_types, strict=True)}),
        out / "entries.parquet",
    )
    b = spec["blocks"]
    block_types = (pa.int64(), pa.string(), pa.string(), pa.list_(pa.float64()))
    pq.write_table(
        pa.table({c: pa.array(b[c], t) for c, t in zip(b, block_types, strict=True)}),
        out / "blocks.parquet",
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


@pytest.fixture
def good_spec() -> dict[str, Any]:
    return make_spec()


@pytest.fixture(scope="session")
def synth_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, Registry]:
    """Three 30-minute synthetic BTCUSDT spot days; ``candidate`` is trained on the first two
    (the third is left for a backtest)."""
    return make_synth_setup(tmp_path_factory.mktemp("ops_synth"))


@pytest.fixture(scope="session")
def backtest_run(
    tmp_path_factory: pytest.TempPathFactory, synth_model: tuple[MarketCatalog, Registry]
) -> Path:
    """A RUN_DIR from a real ``run_backtest`` on the third synthetic day, trading enabled."""
    from node.backtest import VenueOptions, run_backtest

    catalog, registry = synth_model
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    venue = VenueOptions(prob_slippage=0.5, latency_ms=10.0)
    out = tmp_path_factory.mktemp("ops_backtest") / "run"
    run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, out, cfg, venue)
    return out
