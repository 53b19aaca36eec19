"""The venue's REST side on the wire: signatures, Binance errors, orders and the reconciliation
lists, every response decoded with the installed adapter's own msgspec schemas."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import msgspec
from nautilus_trader.adapters.binance.common.schemas.account import BinanceOrder
from nautilus_trader.adapters.binance.common.schemas.account import BinanceUserTrade
from nautilus_trader.adapters.binance.common.schemas.market import BinanceDepth
from nautilus_trader.adapters.binance.futures.schemas.account import BinanceFuturesAccountInfo
from nautilus_trader.adapters.binance.futures.schemas.account import BinanceFuturesPositionRisk
from nautilus_trader.adapters.binance.futures.schemas.account import BinanceFuturesSymbolConfig
from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesExchangeInfo
from nautilus_trader.adapters.binance.spot.schemas.account import BinanceSpotAccountInfo
from nautilus_trader.adapters.binance.spot.schemas.market import BinanceSpotExchangeInfo

from node.venue.recording import Recording
from tests.node.venue.wire import Wire
from tests.node.venue.wire import venue_session


def _as(body: object, schema: type) -> object:
    return msgspec.convert(body, schema)


def test_spot_signed_routes_check_key_signature_and_time(spot_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, "hmac") as w:
            acct = _as(
                await w.ok("GET", "/api/v3/account", {"recvWindow": 5000}), BinanceSpotAccountInfo
            )
            assert {b.asset: b.free for b in acct.balances} == {
                "BTC": "1.00000000",
                "USDT": "100000.00000000",
            }
            bad_sig = w.secret + "x"
            w.secret, good = bad_sig, w.secret
            assert await w.call("GET", "/api/v3/account") == (
                400,
                {"code": -1022, "msg": "Signature for this request is not valid."},
            )
            w.secret = good
            status, body = await w.call("GET", "/api/v3/account", headers={})
            assert (status, body["code"]) == (401, -2015)
            status, body = await w.call(
                "GET", "/api/v3/account", ts=int(time.time() * 1000) - 60_000
            )
            assert (status, body["code"]) == (400, -1021)
            status, body = await w.call("GET", "/api/v3/account", signed=False)
            assert (status, body["code"]) == (400, -1102)
            status, body = await w.call("GET", "/api/v3/nothing", signed=False)
            assert (status, body["code"]) == (404, -1000)
            # public routes need no key (the data client has none)
            info = _as(
                await w.ok(
                    "GET",
                    "/api/v3/exchangeInfo",
                    {"symbols": '["BTCUSDT"]'},
                    signed=False,
                    headers={},
                ),
                BinanceSpotExchangeInfo,
            )
            assert [s.symbol for s in info.symbols] == ["BTCUSDT"]
            assert abs(info.serverTime - time.time() * 1000) < 5000
            depth = _as(
                await w.ok(
                    "GET",
                    "/api/v3/depth",
                    {"symbol": "BTCUSDT", "limit": 1000},
                    signed=False,
                    headers={},
                ),
                BinanceDepth,
            )
            assert depth.lastUpdateId == spot_recording.last_update_id
            assert [list(x) for x in depth.bids[:3]] == [list(x) for x in spot_recording.bids[:3]]
            fee = await w.ok("GET", "/sapi/v1/asset/tradeFee")
            assert fee == [
                {"symbol": "BTCUSDT", "makerCommission": "0.001", "takerCommission": "0.001"}
            ]

    asyncio.run(run())


def test_usdm_ed25519_account_and_a_foreign_key_is_refused(usdm_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(usdm_recording, "ed25519") as w:
            acct = _as(
                await w.ok("GET", "/fapi/v2/account", {"recvWindow": 5000}),
                BinanceFuturesAccountInfo,
            )
            assert acct.feeTier == 0 and acct.assets[0].walletBalance == "100000.00000000"
            risk = [
                _as(x, BinanceFuturesPositionRisk)
                for x in await w.ok("GET", "/fapi/v3/positionRisk")
            ]
            assert [r.positionAmt for r in risk] == ["0.000"]
            config = [
                _as(x, BinanceFuturesSymbolConfig)
                for x in await w.ok("GET", "/fapi/v1/symbolConfig")
            ]
            assert config[0].leverage == 20
            assert await w.ok("GET", "/fapi/v1/positionSide/dual") == {"dualSidePosition": False}
            info = _as(
                await w.ok("GET", "/fapi/v1/exchangeInfo", signed=False, headers={}),
                BinanceFuturesExchangeInfo,
            )
            assert [s.symbol for s in info.symbols] == ["BTCUSDT"]
            from node.venue import generate_ed25519

            w.secret = generate_ed25519()[1]  # a valid signature, by another key
            status, body = await w.call("GET", "/fapi/v2/account")
            assert (status, body["code"]) == (400, -1022)

    asyncio.run(run())


async def _orders_round_trip(w: Wire, market: str) -> None:
    rec = w.venue.recording
    bid, ask = Decimal(rec.bids[0][0]), Decimal(rec.asks[0][0])
    qty = "0.00100000" if market == "spot" else "0.001"
    maker = {"type": "LIMIT_MAKER"} if market == "spot" else {"type": "LIMIT", "timeInForce": "GTX"}
    # post-only that would cross: Binance's exact error, no order, no event
    status, body = await w.order(
        side="BUY", quantity=qty, price=str(ask), newClientOrderId="X-1", **maker
    )
    expected = (-2010, "Order would immediately match and take.") if market == "spot" else (
        -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")  # fmt: skip
    assert (status, body["code"], body["msg"]) == (400, *expected)
    assert w.venue.matcher.orders == {}
    # a resting post-only order, found by every reconciliation query
    body = await w.order_ok(
        side="BUY", quantity=qty, price=str(bid), newClientOrderId="R-1", **maker
    )
    placed = _as(body, BinanceOrder)
    assert placed.status.value == "NEW" and placed.clientOrderId == "R-1"
    got = _as(await w.order_ok("GET", origClientOrderId="R-1"), BinanceOrder)
    assert got.orderId == placed.orderId and got.price is not None and Decimal(got.price) == bid
    opened = await w.ok("GET", f"{w.prefix}/openOrders")
    assert [_as(o, BinanceOrder).clientOrderId for o in opened] == ["R-1"]
    assert w.venue.matcher.queue.size_ahead(placed.orderId) == float(rec.bids[0][1])
    # cancel: CANCELED, then a second cancel is unknown, a query of nothing does not exist
    body = await w.order_ok("DELETE", orderId=placed.orderId, origClientOrderId="R-1")
    assert _as(body, BinanceOrder).status.value == "CANCELED"
    status, body = await w.order("DELETE", orderId=placed.orderId)
    assert (status, body["code"]) == (400, -2011)
    status, body = await w.order("GET", orderId=1)
    assert (status, body["code"]) == (400, -2013)
    # filters: an off-tick price
    off_tick = str(bid - Decimal("0.001"))
    status, body = await w.order(
        side="BUY", type="LIMIT", timeInForce="GTC", quantity=qty, price=off_tick
    )
    assert status == 400 and body["code"] in (-1013, -4014)
    # a crossing limit order walks the asks: one fill per level, at the level's price
    size = Decimal(rec.asks[0][1]) + Decimal("0.001")
    body = await w.order_ok(side="BUY", type="LIMIT", timeInForce="IOC", quantity=f"{size:f}",
                            price=rec.asks[5][0], newClientOrderId="T-1")  # fmt: skip
    assert _as(body, BinanceOrder).status.value == "FILLED"
    path = f"{w.prefix}/{'myTrades' if market == 'spot' else 'userTrades'}"
    trades = [_as(t, BinanceUserTrade) for t in await w.ok("GET", path, {"symbol": "BTCUSDT"})]
    assert [(Decimal(t.price), Decimal(t.qty)) for t in trades] == [
        (ask, Decimal(rec.asks[0][1])), (Decimal(rec.asks[1][0]), Decimal("0.001"))]  # fmt: skip
    assert {t.isMaker if market == "spot" else t.maker for t in trades} == {False}
    listed = await w.ok("GET", f"{w.prefix}/allOrders", {"symbol": "BTCUSDT", "limit": 1000})
    assert [(o["clientOrderId"], o["status"]) for o in listed] == [
        ("R-1", "CANCELED"),
        ("T-1", "FILLED"),
    ]
    assert all(_as(o, BinanceOrder) for o in listed)


def test_spot_orders_errors_and_reconciliation_lists(spot_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(spot_recording, "hmac") as w:
            await _orders_round_trip(w, "spot")
            acct = await w.ok("GET", "/api/v3/account")
            free = {b["asset"]: Decimal(b["free"]) for b in acct["balances"]}
            fills = w.venue.matcher.fills
            cost = sum(f.price * f.qty for f in fills)
            got = sum(f.qty for f in fills) * (1 - Decimal("0.001"))  # taker fee in the base asset
            assert free["USDT"] == (Decimal(100_000) - cost).quantize(Decimal("1e-8"))
            assert free["BTC"] == (1 + got).quantize(Decimal("1e-8"))
            status, body = await w.call("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
            assert (status, body["code"]) == (400, -2011)  # nothing to cancel
            # more than the free balance
            status, body = await w.order(side="SELL", type="MARKET", quantity="5.00000000")
            assert (status, body["msg"]) == (
                400,
                "Account has insufficient balance for requested action.",
            )

    asyncio.run(run())


def test_usdm_orders_position_and_listen_key(usdm_recording: Recording) -> None:
    async def run() -> None:
        async with venue_session(usdm_recording, "hmac") as w:
            await _orders_round_trip(w, "usdm")
            risk = [
                _as(x, BinanceFuturesPositionRisk)
                for x in await w.ok("GET", "/fapi/v3/positionRisk")
            ]
            fills = w.venue.matcher.fills
            assert Decimal(risk[0].positionAmt) == sum(f.qty for f in fills) > 0
            # close it with a reduce-only market sell: PnL realised at the bid, fees paid
            await w.order_ok(
                side="SELL", type="MARKET", quantity=risk[0].positionAmt, reduceOnly="True"
            )
            status, body = await w.order(
                side="SELL", type="MARKET", quantity="0.001", reduceOnly="True"
            )
            assert (status, body["code"]) == (400, -2022)  # flat: nothing to reduce
            acct = _as(await w.ok("GET", "/fapi/v2/account"), BinanceFuturesAccountInfo)
            buys, sells = fills[:-1], fills[-1:]
            pnl = sum(f.qty * f.price for f in sells) - sum(f.qty * f.price for f in buys)
            fees = sum(f.commission for f in fills)
            assert Decimal(acct.assets[0].walletBalance) == (100_000 + pnl - fees).quantize(
                Decimal("1e-8")
            )
            assert sells[0].realized_pnl == pnl.quantize(Decimal("1e-8"))
            key = (await w.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
            assert (await w.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"] == key
            assert await w.ok("PUT", "/fapi/v1/listenKey", signed=False) == {}
            status, body = await w.call("POST", "/fapi/v1/listenKey", signed=False, headers={})
            assert (status, body["code"]) == (401, -2015)
            assert await w.ok("DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"}) == {
                "code": 200, "msg": "The operation of cancel all open order is done."}  # fmt: skip

    asyncio.run(run())
