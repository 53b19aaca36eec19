"""Binance JSON shapes for orders, fills and order events (spot and USD-M), as the adapter reads them.

Traps the adapter's msgspec schemas set: spot orders never carry ``workingType``; spot
``executionReport.C`` is a string (``""`` when unused); USD-M ``ORDER_TRADE_UPDATE.o`` must hold
``gtd``; enum fields only take values the adapter knows.
"""

from __future__ import annotations

from typing import Any

from node.venue._book import SymbolSpec
from node.venue._model import Fill
from node.venue._model import Order


def _q8(value: Any) -> str:
    return f"{value:.8f}"


def order_json(spec: SymbolSpec, o: Order) -> dict[str, Any]:
    """``GET/POST/DELETE order``, ``openOrders``, ``allOrders`` item."""
    out: dict[str, Any] = {
        "symbol": spec.symbol,
        "orderId": o.order_id,
        "clientOrderId": o.client_id,
        "price": spec.px(o.price),
        "origQty": spec.qty(o.qty),
        "executedQty": spec.qty(o.executed),
        "status": o.status,
        "timeInForce": o.tif,
        "type": o.type,
        "side": o.side_name,
        "stopPrice": spec.px(0),
        "time": o.time_ms,
        "updateTime": o.update_ms or o.time_ms,
    }
    if spec.market == "spot":
        out.update(
            orderListId=-1,
            cummulativeQuoteQty=_q8(o.quote),
            icebergQty=spec.qty(0),
            isWorking=o.is_open,
            workingTime=o.time_ms,
            origQuoteOrderQty=_q8(o.quote_qty),
            selfTradePreventionMode="EXPIRE_MAKER",
            transactTime=o.update_ms or o.time_ms,
        )
    else:
        out.update(
            avgPrice=spec.px(o.avg_price),
            cumQuote=_q8(o.quote),
            cumQty=spec.qty(o.executed),
            reduceOnly=o.reduce_only,
            closePosition=False,
            positionSide="BOTH",
            workingType="CONTRACT_PRICE",
            priceProtect=False,
            origType=o.type,
            priceMatch="NONE",
            selfTradePreventionMode="EXPIRE_MAKER",
            goodTillDate=o.good_till,
        )
    return out


def user_trade(spec: SymbolSpec, f: Fill) -> dict[str, Any]:
    """``myTrades`` (spot) / ``userTrades`` (USD-M) item."""
    o = f.order
    out: dict[str, Any] = {
        "symbol": spec.symbol,
        "id": f.trade_id,
        "orderId": o.order_id,
        "price": spec.px(f.price),
        "qty": spec.qty(f.qty),
        "quoteQty": _q8(f.price * f.qty),
        "commission": f"{f.commission:.8f}",
        "commissionAsset": f.commission_asset,
        "time": f.time_ms,
    }
    if spec.market == "spot":
        out.update(orderListId=-1, isBuyer=o.side_name == "BUY", isMaker=f.maker, isBestMatch=True)
    else:
        out.update(
            side=o.side_name,
            realizedPnl=f"{f.realized_pnl:.8f}",
            marginAsset=spec.quote,
            positionSide="BOTH",
            buyer=o.side_name == "BUY",
            maker=f.maker,
        )
    return out


def order_event(
    spec: SymbolSpec, o: Order, x: str, ts_ms: int, fill: Fill | None = None, cancel_id: str = ""
) -> dict[str, Any]:
    """``executionReport`` (spot) or ``ORDER_TRADE_UPDATE`` (USD-M) for execution type ``x``."""
    last_qty = spec.qty(fill.qty if fill else 0)
    last_px = spec.px(fill.price if fill else 0)
    if spec.market == "spot":
        ev: dict[str, Any] = {
            "e": "executionReport",
            "E": ts_ms,
            "s": spec.symbol,
            "c": cancel_id or o.client_id,
            "S": o.side_name,
            "o": o.type,
            "f": o.tif,
            "q": spec.qty(o.qty),
            "p": spec.px(o.price),
            "P": spec.px(0),
            "F": spec.qty(0),
            "g": -1,
            "C": o.client_id if cancel_id else "",
            "x": x,
            "X": o.status,
            "r": "NONE",
            "i": o.order_id,
            "l": last_qty,
            "z": spec.qty(o.executed),
            "L": last_px,
            "n": f"{fill.commission:.8f}" if fill else "0",
            "N": fill.commission_asset if fill else None,
            "T": fill.time_ms if fill else ts_ms,
            "t": fill.trade_id if fill else -1,
            "I": o.order_id * 10 + len(x),
            "w": o.is_open and not fill,
            "m": fill.maker if fill else False,
            "M": False,
            "O": o.time_ms,
            "Z": _q8(o.quote),
            "Y": _q8(fill.price * fill.qty) if fill else "0.00000000",
            "Q": _q8(o.quote_qty),
            "W": o.time_ms,
            "V": "EXPIRE_MAKER",
        }
        return ev
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": ts_ms,
        "T": fill.time_ms if fill else ts_ms,
        "o": {
            "s": spec.symbol,
            "c": o.client_id,
            "S": o.side_name,
            "o": o.type,
            "f": o.tif,
            "q": spec.qty(o.qty),
            "p": spec.px(o.price),
            "ap": spec.px(o.avg_price),
            "sp": "0",
            "x": x,
            "X": o.status,
            "i": o.order_id,
            "l": last_qty,
            "z": spec.qty(o.executed),
            "L": last_px,
            "n": f"{fill.commission:.8f}" if fill else "0",
            "N": fill.commission_asset if fill else spec.quote,
            "T": fill.time_ms if fill else ts_ms,
            "t": fill.trade_id if fill else 0,
            "b": "0",
            "a": "0",
            "m": fill.maker if fill else False,
            "R": o.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": o.type,
            "ps": "BOTH",
            "cp": False,
            "rp": f"{fill.realized_pnl:.8f}" if fill else "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": o.good_till,
        },
    }
