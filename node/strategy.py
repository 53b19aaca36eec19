"""``PolicyHMMStrategy``: FEATURES_V1 online -> forward-filtered regime -> policy -> guardrails.

Each ready feature sample goes to the model client (in process or Serve, the strategy does not
know which) with the previous filtered log posterior (kept here, reset at every feature
session); a ``timeout`` or ``error`` answer is the LATENCY guardrail's case. The decision passes
the guardrails, and an allowed buy/sell becomes a post-only limit order near the microprice (or
only a logged decision when ``trading_enabled`` is off). Every sample lands in the state timeline, every block is counted
by reason with its feature vector, every entry keeps its feature vector.

An open position is held for ``hold_s`` (the label horizon the model was trained to predict),
extended by confident same-side signals (optionally cut short by an opposite signal or a stop
loss), and then closed by a passive post-only order at the touch,
re-quoted until filled (:meth:`PolicyHMMStrategy._work_exit`). Exits reduce risk, so CONF,
COOLDOWN, SPREAD, VWAP, LATENCY and DRIFT never hold them back; KILL flattens (the kill switch
stops entries and closes what is open). While an exit works, no entry is made.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from typing import Any

from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.config import PolicyHMMStrategyConfig
from node.config import label_horizon_s
from node.execution import HoldTimer
from node.execution import exit_reason
from node.execution import limit_price
from node.execution import plan_order
from node.feature_actor import NautilusFeatureFeed
from node.guardrails import GuardInput
from node.guardrails import GuardLimits
from node.guardrails import Guardrails
from node.guardrails import Verdict
from node.killswitch import kill_switch_path
from node.run_dir import ALLOWED
from node.run_dir import NO_TRADE
from serving.client import InProcessModelClient
from serving.client import ModelClient

if TYPE_CHECKING:
    from node.ensemble_policy import ShadowPolicy
    from training.features import FeatureSchema

__all__ = ["PolicyHMMStrategy"]


def _limits(config: PolicyHMMStrategyConfig) -> GuardLimits:
    """The config's guardrail numbers (the config names every limit as :class:`GuardLimits`)."""
    return GuardLimits(**{f.name: getattr(config, f.name) for f in dataclasses.fields(GuardLimits)})


_DAY_NS = 86_400 * 1_000_000_000


def _day_str(ts_ns: int) -> str:
    """UTC calendar day of an exchange timestamp.

    >>> _day_str(1_704_067_200_000_000_000)
    '2024-01-01'
    """
    return datetime.datetime.fromtimestamp(ts_ns // 10**9, datetime.UTC).date().isoformat()


class PolicyHMMStrategy(Strategy):
    """The regime strategy. ``model`` is any :class:`serving.client.ModelClient` (default: the
    registry's ``config.model_ref`` in process); ``schema`` is the feature schema the model
    expects (default ``model.schema``, which the in-process client has; give it for HTTP).
    ``shadow`` candidate versions are asked on every sample and never traded.
    """

    def __init__(
        self,
        config: PolicyHMMStrategyConfig,
        model: ModelClient | None = None,
        schema: FeatureSchema | None = None,
        shadow: ShadowPolicy | None = None,
    ) -> None:
        super().__init__(config)
        self.cfg = config
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        if model is None:
            if config.registry_root is None:
                raise ValueError("registry_root: required when no model is given")
            model = InProcessModelClient(config.model_ref, config.registry_root)
        self.model = model
        schema = schema if schema is not None else getattr(model, "schema", None)
        if schema is None:
            raise ValueError("schema: required for a model client without one (HTTP)")
        self.schema = schema
        self.shadow = shadow
        self.feed = NautilusFeatureFeed(schema, self._on_sample)
        kill_path = config.kill_switch_path or kill_switch_path(config.state_dir)
        self.guards = Guardrails(_limits(config), kill_path)
        self.log_posterior: list[float] | None = None
        self._session: int | None = None
        self._day_index = -1
        self._day = ""
        self.timeline: list[dict[str, Any]] = []
        self.blocks: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []
        self.decisions = 0
        self.orders_submitted = 0  # entry orders
        self.exit_orders_submitted = 0  # exit orders, re-quotes included
        self.model_versions: set[str] = set()
        self.status_counts: dict[str, int] = {"ok": 0, "timeout": 0, "error": 0}
        self.instrument = None
        self.base0: float | None = None  # spot base balance at the first sample
        self.hold_s = self._hold_seconds(config, model)
        self.hold = HoldTimer(self.hold_s)
        self.exits: list[dict[str, Any]] = []
        self._exit_reason: str | None = None
        self._exit_order: Any = None  # the working exit order (a Nautilus Order)
        self._exit_quote_ns = 0

    @staticmethod
    def _hold_seconds(config: PolicyHMMStrategyConfig, model: Any) -> float:
        """``config.hold_s``, else the in-process bundle's label horizon, else the default."""
        if config.hold_s is not None:
            return float(config.hold_s)
        bundle = getattr(getattr(model, "model", None), "bundle", None)
        horizon = label_horizon_s(bundle.metadata) if bundle is not None else None
        return horizon if horizon is not None else float(config.default_hold_s)

    # -- lifecycle

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.instrument_id)
        if self.instrument is None:
            raise RuntimeError(f"instrument_id: {self.instrument_id} not in the cache")
        self.guards.start()
        self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP, managed=False)
        self.subscribe_trade_ticks(self.instrument_id)

    def on_stop(self) -> None:
        self.cancel_all_orders(self.instrument_id)
        self.guards.stop()

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.feed.on_order_book_deltas(deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.feed.on_trade_tick(tick)

    # -- state

    def position(self) -> float:
        return float(self.portfolio.net_position(self.instrument_id) or Decimal(0))

    def equity(self, mid: float) -> float:
        """The strategy's equity at ``mid``: quote balance, plus (spot) the base balance bought
        or sold since the first sample, or (perp) the open positions' unrealised PnL.

        A spot account's starting base inventory is left out: its price drift is not the
        strategy's doing, and DD (which watches this number) must not stop on it.
        """
        account = self.portfolio.account(self.instrument_id.venue)
        if account is None:
            return 0.0
        inst = self.instrument
        quote = account.balance_total(inst.quote_currency)
        value = quote.as_double() if quote is not None else 0.0
        base_ccy = getattr(inst, "base_currency", None)
        if self.cfg.market == "spot" and base_ccy is not None:
            money = account.balance_total(base_ccy)
            base = money.as_double() if money is not None else 0.0
            if self.base0 is None:
                self.base0 = base
            value += (base - self.base0) * mid
        else:
            for pos in self.cache.positions_open(instrument_id=self.instrument_id):
                value += pos.signed_qty * (mid - pos.avg_px_open)
        return value

    # -- one sample

    def _day_of(self, ts_ns: int) -> str:
        index = ts_ns // _DAY_NS
        if index != self._day_index:
            self._day_index, self._day = index, _day_str(ts_ns)
        return self._day

    def _on_sample(self, s: Any) -> None:
        if s.session != self._session:
            self._session = s.session
            self.log_posterior = None
            if self.shadow is not None:
                self.shadow.reset()
        if not (s.ready and s.book_ok):
            return
        z = s.z
        cr = self.model.infer(z, self.log_posterior, self.schema.version)
        self.status_counts[cr.status] += 1
        result = cr.result  # a late answer (status timeout) still carries the posterior
        if result is not None:
            self.log_posterior = result.log_posterior
            self.model_versions.add(result.model_version)
        elif cr.error and self.cfg.log_decisions:
            self.log.warning(f"inference {cr.status}: {cr.error}")
        latency_ms = None  # None: the LATENCY guardrail's case
        if cr.ok:
            modelled = self.cfg.modelled_latency_ms
            latency_ms = cr.latency_ms if modelled is None else float(modelled)
        equity = self.equity(s.mid)
        self.guards.observe(equity)
        position = self.position()
        action = result.action if result is not None else "flat"
        adapting = bool(result.adapting) if result is not None else False
        confident = result is not None and float(result.confidence) >= self.cfg.min_conf
        exiting = self._manage_exit(s, position, action, confident)
        wanted = action
        if exiting or (position > 0 and action == "sell") or (position < 0 and action == "buy"):
            wanted = "flat"  # closing: the exit handles it, no entry
        if action != "flat":
            self.decisions += 1  # the model asked to trade (an exit may take it over)
        qty = 0.0
        plan = None
        if wanted == "flat":
            verdict = Verdict(False, NO_TRADE)
            if not cr.ok:
                verdict = self.guards.check(
                    GuardInput(s.ts_ns, "buy", 0.0, position, 0.0, s.spread_bp,
                               s.realised_vol_bp, None, adapting, equity)
                )  # fmt: skip
        else:
            assert result is not None
            inst = self.instrument
            plan = plan_order(
                action,
                s.microprice,
                s.vwap,
                s.best_bid,
                s.best_ask,
                anchor_bps=self.cfg.vwap_anchor_bps,
                tick=float(inst.price_increment),
                min_notional=float(inst.min_notional) if inst.min_notional is not None else 0.0,
                multiple=self.cfg.notional_multiple,
                size_increment=float(inst.size_increment),
                min_quantity=float(inst.min_quantity) if inst.min_quantity is not None else 0.0,
                vwap_mode=self.cfg.vwap_mode,
            )
            qty = plan.quantity
            verdict = self.guards.check(
                GuardInput(
                    s.ts_ns,
                    action,
                    qty,
                    position,
                    float(result.confidence),
                    s.spread_bp,
                    s.realised_vol_bp,
                    latency_ms,
                    adapting,
                    equity,
                ),
                count=False,
            )
            if verdict.allowed and plan.skip is not None:
                verdict = Verdict(False, plan.skip)
            self.guards.count(verdict.reason)
        if not verdict.allowed and verdict.reason != NO_TRADE:
            self.blocks.append(
                {"ts": s.ts_ns, "reason": verdict.reason, "side": action, "features": z.tolist()}
            )
            if self.cfg.log_decisions:
                self.log.info(f"BLOCK {verdict.reason} {action} {verdict.detail} x={z.round(3)}")
        elif verdict.allowed and plan is not None:
            self._enter(s, plan)
        day = self._day_of(s.ts_ns)
        self.timeline.append(
            {
                "ts": s.ts_ns,
                "day": day,
                "state": -1 if result is None else result.state,
                "posterior": [] if result is None else result.posterior,
                "confidence": -1.0 if result is None else result.confidence,
                "action": action,
                "score": 0.0 if result is None else result.score,
                "verdict": ALLOWED if verdict.allowed else verdict.reason,
                "status": cr.status,
                "latency_ms": cr.latency_ms,
                "loglik": None if result is None else result.loglik,
                "drift": None if result is None else result.drift,
                "adapting": adapting,
                "features": z.tolist(),
                "equity": equity,
                "position": position,
                "mid": s.mid,
            }
        )
        if self.shadow is not None:
            self.shadow.observe(s.ts_ns, day, z, s.mid, action)

    # -- exits

    def _avg_px(self) -> float | None:
        positions = self.cache.positions_open(instrument_id=self.instrument_id)
        return float(positions[0].avg_px_open) if positions else None

    def _manage_exit(self, s: Any, position: float, action: str, confident: bool) -> bool:
        """Start, extend away, or keep working the exit of the open position; True while an
        exit works. A ``confident`` (>= ``min_conf``) same-side signal extends the hold and
        cancels a HOLD/SIGNAL exit; an opposite signal exits (with ``signal_exit``); KILL and
        STOP exits run until flat."""
        extended = self.hold.update(position, action if confident else "flat", s.ts_ns)
        if position == 0.0:
            self._exit_reason, self._exit_order = None, None
            return False
        if extended and self._exit_reason in ("HOLD", "SIGNAL"):
            self.cancel_all_orders(self.instrument_id)
            self._exit_reason, self._exit_order = None, None
        reason = exit_reason(
            position,
            action if self.cfg.signal_exit else "flat",
            s.ts_ns,
            self.hold.until_ns,
            s.mid,
            self._avg_px(),
            self.cfg.stop_loss_bps,
            self.guards.kill.tripped,
        )
        if reason is not None and reason != self._exit_reason:
            sticky = self._exit_reason in ("KILL", "STOP")
            if self._exit_reason is None or (reason in ("KILL", "STOP") and not sticky):
                self._exit_reason = reason
        if self._exit_reason is None:
            return False
        self._work_exit(s, position)
        return True

    def _work_exit(self, s: Any, position: float) -> None:
        """Keep one passive post-only order closing ``position`` at the touch; re-quote it when
        the touch moved (at most every ``exit_requote_s``) or when it is gone (filled in part,
        rejected for crossing, cancelled)."""
        inst = self.instrument
        side = "sell" if position > 0 else "buy"
        tick = float(inst.price_increment)
        price = limit_price(side, s.microprice, s.best_bid, s.best_ask, tick)
        qty = inst.make_qty(abs(position))
        order = None
        if self._exit_order is not None:
            order = self.cache.order(self._exit_order.client_order_id) or self._exit_order
        if order is not None:
            if order.is_inflight:
                return
            if order.is_open:
                same = float(order.price) == price and order.leaves_qty == qty
                if same or s.ts_ns - self._exit_quote_ns < self.cfg.exit_requote_s * 1e9:
                    return
        self.exits.append(
            {"ts": s.ts_ns, "reason": self._exit_reason, "side": side, "price": price,
             "quantity": float(qty), "requote": order is not None}
        )  # fmt: skip
        if self.cfg.log_decisions:
            self.log.info(f"EXIT {self._exit_reason} {side} {qty}@{price}")
        if not self.cfg.trading_enabled or qty.as_double() <= 0:
            return
        self.cancel_all_orders(self.instrument_id)
        new = self.order_factory.limit(
            instrument_id=self.instrument_id,
            order_side=OrderSide.BUY if side == "buy" else OrderSide.SELL,
            quantity=qty,
            price=inst.make_price(price),
            time_in_force=TimeInForce.GTC,
            post_only=self.cfg.post_only,
        )
        self.submit_order(new)
        self._exit_order, self._exit_quote_ns = new, s.ts_ns
        self.exit_orders_submitted += 1

    # -- entries

    def _enter(self, s: Any, plan: Any) -> None:
        inst = self.instrument
        self.entries.append(
            {
                "ts": s.ts_ns,
                "side": plan.side,
                "price": plan.price,
                "quantity": plan.quantity,
                "submitted": self.cfg.trading_enabled,
                "features": s.z.tolist(),
            }
        )
        self.guards.order_sent(s.ts_ns)
        if self.cfg.log_decisions:
            self.log.info(f"ENTRY {plan.side} {plan.quantity}@{plan.price} x={s.z.round(3)}")
        if not self.cfg.trading_enabled:
            return
        self.cancel_all_orders(self.instrument_id)
        order = self.order_factory.limit(
            instrument_id=self.instrument_id,
            order_side=OrderSide.BUY if plan.side == "buy" else OrderSide.SELL,
            quantity=inst.make_qty(plan.quantity),
            price=inst.make_price(plan.price),
            time_in_force=TimeInForce.GTC,
            post_only=self.cfg.post_only,
        )
        self.submit_order(order)
        self.orders_submitted += 1
