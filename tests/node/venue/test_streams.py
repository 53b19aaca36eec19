"""The venue's WebSockets on the wire: market streams (gap-free, consistent with the snapshot,
shifted to wall-clock time, aggTrade and markPrice for USD-M), injected gaps and drops, user
streams over the WebSocket API and listen keys, the queue rule on the real recording, and a
clean shutdown."""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest
from nautilus_trader.adapters.binance.common.schemas.market import BinanceAggregatedTradeMsg
from nautilus_trader.adapters.binance.common.schemas.market import BinanceOrderBookMsg
from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesMarkPriceMsg
from nautilus_trader.adapters.binance.futures.schemas.user import BinanceFuturesAccountUpdateMsg
from nautilus_trader.adapters.binance.futures.schemas.user import BinanceFuturesOrderUpdateMsg
from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotAccountUpdateMsg
from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotOrderUpdateData

from node.venue.recording import TRADE
from node.venue.recording import Recording
from tests.node.venue.wire import Wire
from tests.node.venue.wire import next_json
from tests.node.venue.wire import sign
from tests.node.venue.wire import venue_session


async def _market(w: Wire, *streams: str) -> aiohttp.ClientWebSocketResponse:
    ws = await w.session.ws_connect(f"{w.urls.ws}/stream?streams={streams[0]}")
    await ws.send_str(
        msgspec.json.encode({"method": "SUBSCRIBE", "params": list(streams), "id": 7}).decode()
    )
    while (reply := await next_json(ws)).get("id") != 7:  # data of the URL's stream may come first
        assert "stream" in reply
    assert reply == {"result": None, "id": 7}
    return ws


async def _frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    return [await next_json(ws) for _ in range(n)]


def test_spot_diffs_are_gap_free_and_continue_any_snapshot(spot_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, speed=20.0) as w:
            ws = await _market(w, "btcusdt@depth@100ms", "btcusdt@trade")
            await w.ok("POST", "/_venue/replay/start", signed=False)
            first = await _frames(ws, 40)
            snap = asyncio.create_task(
                w.ok("GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000}, signed=False)
            )
            buffered: list[dict[str, Any]] = []
            while not snap.done():  # the adapter buffers diffs while the snapshot is in flight
                buffered.append(await next_json(ws))
            later = await _frames(ws, 60)
            L = snap.result()["lastUpdateId"]
            diffs = [f["data"] for f in first + buffered + later if "@depth" in f["stream"]]
            assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))
            after = [d for d in diffs if d["u"] > L]
            assert (
                after and after[0]["U"] <= L + 1 <= after[0]["u"]
            )  # the snapshot is exactly bridged
            assert all(
                msgspec.convert(f["data"], BinanceOrderBookMsg.__annotations__["data"])
                for f in first
                if "@depth" in f["stream"]
            )
            trades = [f["data"] for f in first + later if f["stream"] == "btcusdt@trade"]
            assert trades and abs(trades[0]["T"] - time.time() * 1000) < 60_000  # shifted to now
            ws2 = await _market(w, "btcusdt@depth")  # any depth speed gets the same diffs
            d2 = (await next_json(ws2))["data"]
            assert d2["e"] == "depthUpdate"
            status = await w.ok("GET", "/_venue/status", signed=False)
            assert status["market_sockets"] == 2 and status["started"]

    asyncio.run(run())


def test_an_injected_gap_leaves_diffs_out_of_the_stream(spot_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, speed=20.0, start="now") as w:
            ws = await _market(w, "btcusdt@depth@100ms")
            before = [f["data"] for f in await _frames(ws, 5)]
            await w.ok("POST", "/_venue/market/gap", {"diffs": 3}, signed=False)
            after = [f["data"] for f in await _frames(ws, 10)]
            diffs = before + after
            breaks = [
                (a["u"], b["U"]) for a, b in itertools.pairwise(diffs) if b["U"] != a["u"] + 1
            ]
            assert len(breaks) == 1
            status = await w.ok("GET", "/_venue/status", signed=False)
            assert (status["gaps_injected"], status["diffs_skipped"]) == (1, 3)
            # the venue book still moved: a fresh snapshot is at or past the last diff sent
            snap = await w.ok("GET", "/api/v3/depth", {"symbol": "BTCUSDT"}, signed=False)
            assert snap["lastUpdateId"] >= diffs[-1]["u"]
            status, _body = await w.call("POST", "/_venue/market/gap", {"diffs": 0}, signed=False)
            assert status == 400

    asyncio.run(run())


def test_usdm_trades_become_agg_trades_and_mark_price_is_synthesised(
    usdm_recording: Recording,
) -> None:
    async def run() -> None:
        async with venue_session(usdm_recording, speed=10.0, funding_rate="0.00010000") as w:
            ws = await _market(w, "btcusdt@aggTrade", "btcusdt@markPrice@1s")
            t0 = time.time() * 1000
            await w.ok("POST", "/_venue/replay/start", signed=False)
            frames = await _frames(ws, 200)
            aggs = [
                msgspec.convert(f, BinanceAggregatedTradeMsg)
                for f in frames
                if f["stream"] == "btcusdt@aggTrade"
            ]
            marks = [
                msgspec.convert(f, BinanceFuturesMarkPriceMsg)
                for f in frames
                if f["stream"] == "btcusdt@markPrice@1s"
            ]
            recorded = [
                msgspec.json.decode(m.data) for m in usdm_recording.messages if m.kind == TRADE
            ]
            assert [(a.data.a, a.data.p, a.data.q, a.data.m) for a in aggs] == [
                (t["t"], t["p"], t["q"], t["m"]) for t in recorded[: len(aggs)]]  # fmt: skip
            offset = aggs[0].data.T - recorded[0]["T"]
            assert abs(aggs[0].data.T - t0) < 2000 and all(
                a.data.T - t["T"] == offset for a, t in zip(aggs, recorded, strict=False)
            )
            assert len(marks) >= 2 and all(m.data.E % 1000 == 0 for m in marks)
            assert all(m.data.T % (8 * 3600 * 1000) == 0 and m.data.T > m.data.E for m in marks)
            assert 55_000 < float(marks[0].data.p) < 70_000 and marks[0].data.r == "0.00010000"

    asyncio.run(run())


async def _logon(
    w: Wire, ws: aiohttp.ClientWebSocketResponse, rid: str, good: bool = True
) -> dict[str, Any]:
    ts = int(time.time() * 1000)
    sig = sign(w.secret, f"apiKey={w.key}&timestamp={ts}") if good else "AAAA"
    await ws.send_str(
        msgspec.json.encode(
            {
                "id": rid,
                "method": "session.logon",
                "params": {"apiKey": w.key, "timestamp": ts, "signature": sig},
            }
        ).decode()
    )
    return await next_json(ws)


async def _call(
    ws: aiohttp.ClientWebSocketResponse, rid: str, method: str, **params: Any
) -> dict[str, Any]:
    await ws.send_str(msgspec.json.encode({"id": rid, "method": method, "params": params}).decode())
    return await next_json(ws)


@pytest.mark.parametrize("key_kind", ["hmac", "ed25519"])
def test_spot_user_stream_over_the_websocket_api(spot_recording: Recording, key_kind: str) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, key_kind) as w:
            ws = await w.session.ws_connect(w.urls.ws_api, headers={"X-MBX-APIKEY": w.key})
            bad = await _logon(w, ws, "0", good=False)
            assert bad["error"]["code"] == -1022
            assert (await _logon(w, ws, "1"))["result"]["apiKey"] == w.key
            sub = await _call(ws, "2", "userDataStream.subscribe")
            assert sub["status"] == 200 and sub["result"]["subscriptionId"] == 0
            await w.order_ok(
                side="BUY", type="MARKET", quantity="0.01000000", newClientOrderId="M-1"
            )
            events = [await next_json(ws) for _ in range(3)]
            assert {e["subscriptionId"] for e in events} == {0}
            new, trade = (
                msgspec.convert(e["event"], BinanceSpotOrderUpdateData) for e in events[:2]
            )
            assert (new.x.value, trade.x.value, trade.X.value, trade.c) == (
                "NEW",
                "TRADE",
                "FILLED",
                "M-1",
            )
            assert spot_recording.asks[0][0] == trade.L and trade.N == "BTC" and not trade.m
            acct = msgspec.convert(events[2]["event"], BinanceSpotAccountUpdateMsg)
            assert {b.a for b in acct.B} == {"BTC", "USDT"}
            # a paused user stream holds events, in order, until resumed
            await w.ok("POST", "/_venue/user/pause", signed=False)
            bid = spot_recording.bids[0][0]
            await w.order_ok(
                side="BUY",
                type="LIMIT_MAKER",
                quantity="0.01000000",
                price=bid,
                newClientOrderId="P-1",
            )
            with pytest.raises(asyncio.TimeoutError):
                await next_json(ws, timeout=0.3)
            await w.ok("POST", "/_venue/user/resume", signed=False)
            held = msgspec.convert((await next_json(ws))["event"], BinanceSpotOrderUpdateData)
            assert (held.x.value, held.c, held.w) == ("NEW", "P-1", True)
            await next_json(ws)  # its balance lock
            await w.order_ok("DELETE", origClientOrderId="P-1")
            cancel = msgspec.convert((await next_json(ws))["event"], BinanceSpotOrderUpdateData)
            assert (cancel.x.value, cancel.C) == ("CANCELED", "P-1") and cancel.c != "P-1"
            released = msgspec.convert((await next_json(ws))["event"], BinanceSpotAccountUpdateMsg)
            assert {b.a: b.l for b in released.B}["USDT"] == "0.00000000"
            assert (await _call(ws, "3", "userDataStream.unsubscribe", subscriptionId="0"))[
                "status"
            ] == 200
            await ws.close()

    asyncio.run(run())


def test_usdm_user_stream_ed25519_listen_key_from_the_websocket_api(
    usdm_recording: Recording,
) -> None:
    async def run() -> None:
        async with venue_session(usdm_recording, "ed25519") as w:
            api = await w.session.ws_connect(w.urls.ws_api, headers={"X-MBX-APIKEY": w.key})
            no = await _call(api, "0", "userDataStream.start")
            assert no["error"]["code"] == -2015  # not logged on yet
            assert (await _logon(w, api, "1"))["status"] == 200
            key = (await _call(api, "2", "userDataStream.start"))["result"]["listenKey"]
            async with w.session.get(f"{w.urls.ws_stream}/ws?listenKey=wrong") as resp:
                assert resp.status == 400
            ws = await w.session.ws_connect(f"{w.urls.ws_stream}/ws?listenKey={key}")
            await w.order_ok(
                side="SELL",
                type="MARKET",
                quantity="0.010",
                positionSide="BOTH",
                reduceOnly="False",
            )
            new, trade, acct = [await next_json(ws) for _ in range(3)]
            new_m, trade_m = (
                msgspec.convert(e, BinanceFuturesOrderUpdateMsg) for e in (new, trade)
            )
            assert (new_m.o.x.value, trade_m.o.x.value, trade_m.o.X.value) == (
                "NEW",
                "TRADE",
                "FILLED",
            )
            assert (
                usdm_recording.bids[0][0] == trade_m.o.L
                and trade_m.o.N == "USDT"
                and trade_m.o.gtd == 0
            )
            position = msgspec.convert(acct, BinanceFuturesAccountUpdateMsg).a.P[0]
            assert position.pa == "-0.010" and Decimal(position.ep) == Decimal(
                usdm_recording.bids[0][0]
            )
            await ws.close()
            await api.close()

    asyncio.run(run())


def test_a_resting_order_fills_by_the_queue_rule_on_the_recording(
    spot_recording: Recording,
) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, speed=float("inf")) as w:
            price, ahead = spot_recording.bids[0]
            await w.order_ok(side="BUY", type="LIMIT_MAKER", quantity="0.01000000", price=price)
            await w.ok("POST", "/_venue/replay/start", signed=False)
            for _ in range(400):
                if w.venue.matcher.fills or w.venue.replayer.finished.is_set():
                    break
                await asyncio.sleep(0.05)
            fill = w.venue.matcher.fills[0]
            assert fill.maker and fill.price == Decimal(price)
            filled_at = fill.time_ms - w.venue.replayer.offset_ms  # recorded exchange time
            # an oracle from the recording itself: the fill can come no earlier than the first
            # sell at or below the price, no later than a trade through it or the volume at it
            # covering everything that was ahead plus the order
            p, need = float(price), float(ahead) + 0.01
            earliest = through = covered = None
            volume = 0.0
            for m in spot_recording.messages:
                if m.kind != TRADE:
                    continue
                t = msgspec.json.decode(m.data)
                px = float(t["p"])
                if not t["m"] or px > p:
                    continue
                earliest = earliest or t["T"]
                if px < p:
                    through = through or t["T"]
                else:
                    volume += float(t["q"])
                    if volume >= need and covered is None:
                        covered = t["T"]
                if through and covered:
                    break
            assert earliest <= filled_at <= min(x for x in (through, covered) if x)

    asyncio.run(run())


def test_drops_and_a_clean_shutdown(spot_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, start="now", speed=5.0) as w:
            market = await _market(w, "btcusdt@bookTicker", "btcusdt@depth@100ms")
            other = await _market(w, "btcusdt@trade")
            user = await w.session.ws_connect(w.urls.ws_api, headers={"X-MBX-APIKEY": w.key})
            await _logon(w, user, "1")
            assert (await w.ok("POST", "/_venue/market/drop", {"which": "depth"}, signed=False))[
                "dropped"
            ] == 1
            while (await market.receive(timeout=5)).type != aiohttp.WSMsgType.CLOSE:
                pass
            assert not other.closed
            # what a paused user stream held is lost with the dropped connection, as on Binance
            await w.ok("POST", "/_venue/user/pause", signed=False)
            await w.order_ok(
                side="BUY",
                type="LIMIT_MAKER",
                quantity="0.01000000",
                price=spot_recording.bids[-1][0],
                newClientOrderId="LOST-1",
            )
            assert (await w.ok("POST", "/_venue/user/drop", signed=False))["dropped"] == 1
            while (await user.receive(timeout=5)).type != aiohttp.WSMsgType.CLOSE:
                pass
            state = await w.ok("GET", "/_venue/status", signed=False)
            assert (state["user_events_lost"], state["user_paused"]) == (2, False)  # NEW, lock
            status, _ = await w.call("POST", "/_venue/nothing/here", signed=False)
            assert status == 404
            port = int(w.urls.http.rsplit(":", 1)[1])
            venue = w.venue
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        assert venue.market.sockets == {} and venue.user.api_sockets == set()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(run())
