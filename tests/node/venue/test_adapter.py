"""The REAL Nautilus 1.231 Binance adapter (``TradingNode`` with ``BinanceLiveDataClientFactory``
and ``BinanceLiveExecClientFactory``, environment LIVE, every base URL on the loopback venue)
trading a recording: spot with an Ed25519 key (WebSocket-API user stream), USD-M with an HMAC
key (REST listen key). One node run per market (``tests/node/venue/node_probe.py``); the tests
read what it saw.

Book parity: every checkpoint of the node's own L2 book (sequence ``u`` and top 25 levels) is
compared with the book ``nhmm data import-ws`` puts in the catalog for the same recording,
rebuilt to the same ``u`` (``training.data.catalog.book_state``).
"""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from nautilus_trader.model.enums import LiquiditySide

from node.venue import VenueConfig
from node.venue import running
from node.venue.recording import Recording
from tests.node.venue.node_probe import TOP
from tests.node.venue.node_probe import ProbeLog
from tests.node.venue.node_probe import run_probe
from tests.node.venue.node_probe import venue_balances
from tests.node.venue.wire import keys
from tests.node.venue.wire import signed_query
from training.data.catalog import MarketCatalog
from training.data.catalog import book_state
from training.data.columns import BUY
from training.data.columns import SELL
from training.data.sources.binance_ws import import_ws

Run = tuple[ProbeLog, dict[str, Any], Recording, Path]
SPEED = 5.0


def _seed(http: str, market: str, key: str, secret: str, rec: Recording) -> None:
    """State the node must reconcile at start: a resting order far from the market (and on
    USD-M a 0.002 long)."""
    prefix = "/api/v3" if market == "spot" else "/fapi/v1"
    far = f"{(Decimal(rec.bids[0][0]) * Decimal('0.9')).quantize(Decimal('0.1')):.{rec.price_decimals}f}"
    orders = [{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "quantity": "0.001", "price": far, "newClientOrderId": "SEED-1"}]  # fmt: skip
    if market == "usdm":
        orders.append({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"})
    for params in orders:
        url = f"{http}{prefix}/order?{signed_query(secret, params)}"
        httpx.post(url, headers={"X-MBX-APIKEY": key}, timeout=10).raise_for_status()


def _run(market: str, key_kind: str, rec: Recording, catalog: Path) -> Run:
    api_key, secret = keys(key_kind)
    config = VenueConfig(recording=rec.files, api_key=api_key, speed=SPEED,
                         funding_rate="0.00010000")  # fmt: skip
    with running(config, rec) as venue:
        _seed(venue.urls.http, market, api_key.key, secret, rec)
        log, status = run_probe(venue, market, api_key.key, secret)
        status["account"] = venue.call(lambda: venue.venue.account)
    assert not [t for t in threading.enumerate() if t.name == "loopback-venue"]  # stopped clean
    return log, status, rec, catalog


@pytest.fixture(scope="module")
def spot_run(spot_recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Run:
    catalog = tmp_path_factory.mktemp("venue_spot_catalog")
    import_ws(spot_recording.files, catalog)
    return _run("spot", "ed25519", spot_recording, catalog)


@pytest.fixture(scope="module")
def usdm_run(usdm_recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Run:
    catalog = tmp_path_factory.mktemp("venue_usdm_catalog")
    import_ws(usdm_recording.files, catalog)
    return _run("usdm", "hmac", usdm_recording, catalog)


@pytest.fixture(params=["spot", "usdm"])
def run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(f"{request.param}_run")


def _events(log: ProbeLog, role: str, name: str) -> list[dict[str, Any]]:
    cid = log.orders[role]
    return [info for n, c, info in log.events if c == cid and n == name]


def test_node_connects_loads_the_instrument_and_reconciles(run: Run) -> None:
    log, status, rec, _ = run
    inst = log.instrument
    assert inst is not None and inst.raw_symbol.value == "BTCUSDT"
    assert (inst.price_precision, inst.size_precision) == (
        (8, 8) if rec.market == "spot" else (2, 3)
    )
    assert "SEED-1" in log.open_at_start  # the venue's open order, adopted at reconciliation
    assert log.position_at_start == (0.002 if rec.market == "usdm" else 0.0)
    assert log.quotes > 100 and log.trades > 20
    if rec.market == "usdm":
        assert log.marks >= 3  # the synthesised @markPrice@1s
    assert status["logons" if rec.market == "spot" else "user_events_sent"] >= 2


def test_node_book_equals_the_catalog_replay_of_the_recording(run: Run) -> None:
    log, _, rec, catalog = run
    symbol = "BTCUSDT" if rec.market == "spot" else "BTCUSDT-PERP"
    deltas = MarketCatalog(catalog).load(symbol, datetime.date(2024, 8, 8)).deltas
    seq = deltas.sequence.astype(np.int64)
    compared = 0
    for u, bids, asks in log.checkpoints:
        where = np.flatnonzero(seq == u)
        assert len(where), f"sequence {u} not in the catalog"
        side, price, size = book_state(deltas.take(slice(0, int(where[-1]) + 1)))
        want_bids = list(zip(price[side == BUY][:TOP], size[side == BUY][:TOP], strict=True))
        want_asks = list(zip(price[side == SELL][:TOP], size[side == SELL][:TOP], strict=True))
        assert (bids, asks) == (want_bids, want_asks), f"book differs at u={u}"
        compared += 1
    assert compared >= 10
    resynced = [b for b in log.checkpoint_batches if b > log.snapshot_batches[-1]]
    assert len(resynced) >= 3  # and after the forced resync too


def test_orders_ack_fill_and_post_only_reject_through_the_user_stream(run: Run) -> None:
    log, status, rec, _ = run
    before_user_drop = log.events[: log.user_dropped_at_event]
    for role in ("rest_buy", "rest_sell", "take"):
        # acked over the user stream (a cancel racing the node's reconciliation after the
        # user-stream drop can make Nautilus emit a second OrderAccepted later: not counted)
        acks = [c for n, c, _ in before_user_drop if n == "OrderAccepted"]
        assert acks.count(log.orders[role]) == 1, role
    rejected = _events(log, "reject", "OrderRejected")
    code = "-2010" if rec.market == "spot" else "-5022"
    assert len(rejected) == 1 and rejected[0]["due_post_only"] and code in rejected[0]["reason"]
    assert _events(log, "reject", "OrderAccepted") == []
    taken = _events(log, "take", "OrderFilled")
    assert [f["liquidity_side"] for f in taken] == [LiquiditySide.TAKER]
    maker = _events(log, "rest_buy", "OrderFilled") + _events(log, "rest_sell", "OrderFilled")
    assert maker and {f["liquidity_side"] for f in maker} == {LiquiditySide.MAKER}
    # whatever still rested was cancelled, the event arriving over the re-established user stream
    resting = [r for r in ("rest_buy", "rest_sell") if not _events(log, r, "OrderFilled")]
    late = [(n, c) for n, c, _ in log.events[log.user_dropped_at_event :]]
    assert all(("OrderCanceled", log.orders[r]) in late for r in resting)
    # the node's account ends where the venue's does
    assert {c: Decimal(v) for c, v in log.balances.items()} == venue_balances(status["account"])


def test_a_fill_lost_with_the_user_stream_is_reconciled_and_the_account_refreshed(
    run: Run,
) -> None:
    """The gap's fill reaches the node only through reconciliation after the re-subscribe,
    and the balances its lost account update carried only through the account the node reloads
    then (:func:`node.venue.adapter.reload_account_on_resubscribe`): the test above sees them
    agree."""
    log, status, _, _ = run
    assert status["user_events_lost"] >= 2  # the fill's order and account updates
    assert status["account_reads"] > log.account_reads_before_gap >= 1  # reloaded after it
    gap = _events(log, "gap_take", "OrderFilled")
    assert [(f["reconciliation"], f["last_qty"].as_double()) for f in gap] == [(True, 0.001)]


def test_market_drop_resyncs_the_book_without_a_crossed_book(run: Run) -> None:
    log, status, _, _ = run
    assert log.crossed == []
    assert status["market_dropped"] == 2  # both data sockets (quotes + depth, trades)
    assert len([b for b in log.snapshot_batches if b > log.drop_at_batch]) >= 1
    assert status["snapshots_served"] >= 2 and status["market_connections"] >= 4
