"""Balances (spot) and the margin wallet with a one-way position (USD-M), kept by the venue.

Spot follows Binance: a resting order locks what it may spend (quote for a buy, base for a
sell), the commission is taken from the asset received. USD-M: the commission and realised PnL
move the USDT wallet; one position per symbol (``positionSide`` BOTH), leverage from the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from node.venue._book import SymbolSpec
from node.venue._model import ZERO
from node.venue._model import ApiError
from node.venue._model import Fill
from node.venue._model import Order
from node.venue.queue import BUY

_CENTS = Decimal("1e-8")
INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")


def _s(value: Decimal) -> str:
    return f"{value.quantize(_CENTS):f}"


class SpotAccount:
    """Free and locked balance per asset."""

    def __init__(self, spec: SymbolSpec, balances: Mapping[str, str]) -> None:
        self.spec = spec
        self.free = {a: Decimal(v) for a, v in balances.items()}
        for asset in (spec.base, spec.quote):
            self.free.setdefault(asset, ZERO)
        self.locked = dict.fromkeys(self.free, ZERO)

    def check(self, order: Order, cost: Decimal) -> None:
        """Refuse an order the free balance cannot pay (``cost``: quote a buy may spend)."""
        if order.side == BUY:
            need, asset = cost, self.spec.quote
        else:
            need, asset = order.qty, self.spec.base
        if need > self.free[asset]:
            raise ApiError(*INSUFFICIENT)

    def commission(
        self, order: Order, price: Decimal, qty: Decimal, maker: bool
    ) -> tuple[Decimal, str]:
        fee = self.spec.maker_fee if maker else self.spec.taker_fee
        if order.side == BUY:
            return (qty * fee).quantize(_CENTS), self.spec.base
        return (price * qty * fee).quantize(_CENTS), self.spec.quote

    def on_new(self, order: Order) -> None:
        if order.type == "MARKET":
            return
        asset, amount = self._lock_of(order, order.qty)
        self._move(asset, amount)

    def on_fill(self, order: Order, fill: Fill) -> None:
        base, quote = self.spec.base, self.spec.quote
        if order.type != "MARKET":
            self._move(*self._lock_of(order, fill.qty), unlock=True)
        if order.side == BUY:
            self.free[quote] -= fill.price * fill.qty
            self.free[base] += fill.qty - fill.commission
        else:
            self.free[base] -= fill.qty
            self.free[quote] += fill.price * fill.qty - fill.commission

    def on_done(self, order: Order) -> None:
        """Release what an order still locks when it leaves the book."""
        if order.type != "MARKET" and order.remaining > 0:
            self._move(*self._lock_of(order, order.remaining), unlock=True)

    def _lock_of(self, order: Order, qty: Decimal) -> tuple[str, Decimal]:
        if order.side == BUY:
            return self.spec.quote, order.price * qty
        return self.spec.base, qty

    def _move(self, asset: str, amount: Decimal, unlock: bool = False) -> None:
        sign = -1 if unlock else 1
        self.free[asset] -= sign * amount
        self.locked[asset] += sign * amount

    def balances(self) -> list[dict[str, str]]:
        return [
            {"asset": a, "free": _s(self.free[a]), "locked": _s(self.locked[a])}
            for a in sorted(self.free)
        ]

    def event(self, ts_ms: int) -> dict[str, Any]:
        """``outboundAccountPosition`` for the traded assets."""
        assets = (self.spec.base, self.spec.quote)
        return {
            "e": "outboundAccountPosition",
            "E": ts_ms,
            "u": ts_ms,
            "B": [{"a": a, "f": _s(self.free[a]), "l": _s(self.locked[a])} for a in assets],
        }

    def rest(self, ts_ms: int) -> dict[str, Any]:
        """``GET /api/v3/account``."""
        bp = int(self.spec.maker_fee * 10_000)
        tp = int(self.spec.taker_fee * 10_000)
        return {
            "makerCommission": bp,
            "takerCommission": tp,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": _s(self.spec.maker_fee),
                "taker": _s(self.spec.taker_fee),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": ts_ms,
            "accountType": "SPOT",
            "balances": self.balances(),
            "permissions": ["SPOT"],
            "uid": 1,
        }


class FuturesAccount:
    """USDT wallet and one one-way position; margin = notional / leverage."""

    def __init__(self, spec: SymbolSpec, balances: Mapping[str, str], leverage: int) -> None:
        self.spec = spec
        self.asset = spec.quote
        self.wallet = Decimal(balances.get(self.asset, "0"))
        self.leverage = leverage
        self.amount = ZERO  # signed position size
        self.entry = ZERO
        self.realized = ZERO
        self.update_ms = 0

    def check(self, order: Order, price: Decimal, mark: Decimal, open_orders: list[Order]) -> None:
        signed = order.qty if order.side == BUY else -order.qty
        amt = self.amount
        reduces = amt != 0 and (amt > 0) != (signed > 0) and abs(signed) <= abs(amt)
        if order.reduce_only and not reduces:
            raise ApiError(-2022, "ReduceOnly Order is rejected.")
        if reduces:
            return  # needs no margin
        pending = sum((o.remaining * o.price for o in open_orders), ZERO)
        need = (order.qty * price + pending) / self.leverage
        if need > self.available(mark):
            raise ApiError(-2019, "Margin is insufficient.")

    def available(self, mark: Decimal) -> Decimal:
        return self.wallet + self.unrealized(mark) - abs(self.amount) * mark / self.leverage

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.entry) * self.amount if self.amount else ZERO

    def commission(
        self, order: Order, price: Decimal, qty: Decimal, maker: bool
    ) -> tuple[Decimal, str]:
        fee = self.spec.maker_fee if maker else self.spec.taker_fee
        return (price * qty * fee).quantize(_CENTS), self.asset

    def on_new(self, order: Order) -> None:
        pass

    def on_done(self, order: Order) -> None:
        pass

    def realize(self, side: int, price: Decimal, qty: Decimal) -> Decimal:
        """Move the position by a fill; returns the PnL it realises."""
        signed = qty if side == BUY else -qty
        amt, pnl = self.amount, ZERO
        if amt == 0 or (amt > 0) == (signed > 0):
            total = abs(amt) + qty
            self.entry = (abs(amt) * self.entry + qty * price) / total
            self.amount = amt + signed
            return pnl
        closed = min(qty, abs(amt))
        pnl = ((price - self.entry) * closed * (1 if amt > 0 else -1)).quantize(_CENTS)
        self.amount = amt + signed
        if self.amount == 0:
            self.entry = ZERO
        elif (self.amount > 0) != (amt > 0):
            self.entry = price  # flipped: the rest opens at the fill price
        return pnl

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.wallet += fill.realized_pnl - fill.commission
        self.realized += fill.realized_pnl
        self.update_ms = fill.time_ms

    def event(self, ts_ms: int, mark: Decimal) -> dict[str, Any]:
        """``ACCOUNT_UPDATE`` after an order event."""
        return {
            "e": "ACCOUNT_UPDATE",
            "E": ts_ms,
            "T": ts_ms,
            "a": {
                "m": "ORDER",
                "B": [{"a": self.asset, "wb": _s(self.wallet), "cw": _s(self.wallet), "bc": "0"}],
                "P": [
                    {
                        "s": self.spec.symbol,
                        "pa": self.spec.qty(self.amount),
                        "ep": _s(self.entry),
                        "bep": _s(self.entry),
                        "cr": _s(self.realized),
                        "up": _s(self.unrealized(mark)),
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                    }
                ],
            },
        }

    def rest(self, ts_ms: int, mark: Decimal) -> dict[str, Any]:
        """``GET /fapi/v2/account``."""
        w, up = _s(self.wallet), _s(self.unrealized(mark))
        margin = _s(self.wallet + self.unrealized(mark))
        pos_margin = _s(abs(self.amount) * mark / self.leverage)
        avail = _s(self.available(mark))
        asset = {
            "asset": self.asset,
            "walletBalance": w,
            "unrealizedProfit": up,
            "marginBalance": margin,
            "maintMargin": "0.00000000",
            "initialMargin": pos_margin,
            "positionInitialMargin": pos_margin,
            "openOrderInitialMargin": "0.00000000",
            "crossWalletBalance": w,
            "crossUnPnl": up,
            "availableBalance": avail,
            "maxWithdrawAmount": avail,
            "marginAvailable": True,
            "updateTime": ts_ms,
        }
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": ts_ms,
            "totalInitialMargin": pos_margin,
            "totalMaintMargin": "0.00000000",
            "totalWalletBalance": w,
            "totalUnrealizedProfit": up,
            "totalMarginBalance": margin,
            "totalPositionInitialMargin": pos_margin,
            "totalOpenOrderInitialMargin": "0.00000000",
            "totalCrossWalletBalance": w,
            "totalCrossUnPnl": up,
            "availableBalance": avail,
            "maxWithdrawAmount": avail,
            "assets": [asset],
            "positions": [],
        }

    def position_risk(self, ts_ms: int, mark: Decimal) -> list[dict[str, Any]]:
        """``GET /fapi/v3/positionRisk`` (one BOTH row; a flat one is skipped by the client)."""
        notional = self.amount * mark
        return [
            {
                "symbol": self.spec.symbol,
                "positionSide": "BOTH",
                "positionAmt": self.spec.qty(self.amount),
                "entryPrice": _s(self.entry),
                "breakEvenPrice": _s(self.entry),
                "markPrice": _s(mark),
                "unRealizedProfit": _s(self.unrealized(mark)),
                "liquidationPrice": "0",
                "isolatedMargin": "0",
                "notional": _s(notional),
                "marginAsset": self.asset,
                "isolatedWallet": "0",
                "initialMargin": _s(abs(notional) / self.leverage),
                "maintMargin": "0",
                "positionInitialMargin": _s(abs(notional) / self.leverage),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": self.update_ms,
            }
        ]
