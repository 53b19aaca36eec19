"""How the regime strategy closes a position: one working exit order, passive or crossing.

HOLD and SIGNAL exits rest as a passive post-only order at the touch, re-quoted until filled
(:meth:`ExitOrders._work_exit`), and cross after ``exit_cross_s``; KILL and STOP exits cross at
once (:meth:`ExitOrders._cross_exit`: an IOC limit ``max_slippage_bps`` through the opposite
touch, walking the book, re-sent each sample until flat). A mixin of
:class:`node.strategy.PolicyHMMStrategy`: it works the strategy's orders through Nautilus.
"""

from __future__ import annotations

from typing import Any

from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce

from training.simulation.execution import cross_price
from training.simulation.execution import limit_price
from training.simulation.execution import requote_due

__all__ = ["ExitOrders"]


class ExitOrders:
    """The exit half of :class:`node.strategy.PolicyHMMStrategy` (its state: ``_exit_reason``,
    ``_exit_order``, ``_exit_quote_ns``, ``exits``)."""

    def _avg_px(self, position: float) -> float | None:
        """The open ``position``'s average entry price: the one persisted at our fills when it
        is this position's (spot fees paid in base may shave 0.1 %), else Nautilus's. Only the
        persisted one survives a restart: Nautilus starts its positions from zero, so after
        one its spot position is not ours (the inherited part is missing)."""
        entry = self.guards.peak.entry
        if entry is not None and position != 0.0:
            gap = abs(entry["position"] - position)
            if gap <= max(float(self.instrument.size_increment) / 2, 2e-3 * abs(position)):
                return entry["avg_px"]
        positions = self.cache.positions_open(instrument_id=self.instrument_id)
        return float(positions[0].avg_px_open) if positions else None

    def _cross_exit(self, s: Any, position: float) -> None:
        """Close ``position`` now with an IOC limit ``max_slippage_bps`` through the opposite
        touch (it walks the book up to that price; what it leaves is re-sent at the next
        sample), every resting order of ours cancelled. Waits while an IOC is on its way."""
        order = self._live(self._exit_order)
        if order is not None and not order.is_closed and order.time_in_force == TimeInForce.IOC:
            return
        side = "sell" if position > 0 else "buy"
        price = cross_price(side, s.best_bid, s.best_ask, float(self.instrument.price_increment),
                            self.cfg.max_slippage_bps)  # fmt: skip
        self._send_exit(s, side, price, position, requote=order is not None, aggressive=True)

    def _work_exit(self, s: Any, position: float) -> None:
        """Keep one passive post-only order closing ``position`` at the touch; re-quote it when
        the touch moved (at most every ``exit_requote_s``) or when it is gone (filled in part,
        rejected for crossing, cancelled): :func:`~training.simulation.execution.requote_due`."""
        side = "sell" if position > 0 else "buy"
        tick = float(self.instrument.price_increment)
        price = limit_price(side, s.microprice, s.best_bid, s.best_ask, tick)
        order = self._live(self._exit_order)
        ioc = order is not None and order.time_in_force == TimeInForce.IOC
        if order is not None and (order.is_inflight or (ioc and not order.is_closed)):
            return
        is_open = order is not None and order.is_open
        if not requote_due(
            float(order.price) if is_open else None,
            float(order.leaves_qty) if is_open else None,
            price,
            float(self.instrument.make_qty(abs(position))),
            s.ts_ns,
            self._exit_quote_ns,
            self.cfg.exit_requote_s,
        ):
            return
        self._send_exit(s, side, price, position, requote=order is not None, aggressive=False)

    def _send_exit(self, s: Any, side: str, price: float, position: float, *, requote: bool,
                   aggressive: bool) -> None:  # fmt: skip
        """Record the exit and (trading) replace every order of ours with it: an IOC limit
        (``aggressive``) or a post-only GTC limit at ``price`` for the whole ``position``."""
        inst = self.instrument
        qty = inst.make_qty(abs(position))
        self.exits.append(
            {"ts": s.ts_ns, "reason": self._exit_reason, "side": side, "price": price,
             "quantity": float(qty), "requote": requote, "aggressive": aggressive}
        )  # fmt: skip
        if self.cfg.log_decisions:
            self.log.info(f"EXIT {self._exit_reason} {side} {qty}@{price} "
                          f"{'IOC' if aggressive else 'passive'}")  # fmt: skip
        if not self.cfg.trading_enabled or qty.as_double() <= 0:
            return
        iid = self.instrument_id
        for working in (*self.cache.orders_open(instrument_id=iid),
                        *self.cache.orders_inflight(instrument_id=iid)):  # fmt: skip
            self._cancel(working)
        self._entry_order = None
        new = self.order_factory.limit(
            instrument_id=self.instrument_id,
            order_side=OrderSide.BUY if side == "buy" else OrderSide.SELL,
            quantity=qty,
            price=inst.make_price(price),
            time_in_force=TimeInForce.IOC if aggressive else TimeInForce.GTC,
            post_only=False if aggressive else self.cfg.post_only,
            reduce_only=aggressive and self.cfg.market != "spot",
        )
        self.submit_order(new)
        self._exit_order, self._exit_quote_ns = new, s.ts_ns
        self.exit_orders_submitted += 1
