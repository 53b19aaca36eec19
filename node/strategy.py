"""``PolicyHMMStrategy``: FEATURES_V1 online -> forward-filtered regime -> policy -> guardrails.

Each ready feature sample goes to the model with the previous filtered log posterior (kept here,
reset at every feature session), the decision passes the guardrails, and an allowed buy/sell
becomes a post-only limit order near the microprice (or only a logged decision when
``trading_enabled`` is off). Every sample lands in the state timeline, every block is counted
by reason with its feature vector, every entry keeps its feature vector.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import BookType, OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.config import PolicyHMMStrategyConfig
from node.execution import plan_order
from node.feature_actor import NautilusFeatureFeed
from node.guardrails import GuardInput, GuardLimits, Guardrails, Verdict
from node.inference import InferenceClient, InProcessModel

__all__ = ["PolicyHMMStrategy"]


def _limits(config: PolicyHMMStrategyConfig) -> GuardLimits:
    return GuardLimits(
        min_conf=config.min_conf,
        max_spread_bp_base=config.max_spread_bp_base,
        max_spread_vol_k=config.max_spread_vol_k,
        max_position=config.max_position,
        cooldown_s=config.cooldown_s,
        latency_budget_ms=config.latency_budget_ms,
        max_drawdown=config.max_drawdown,
    )


class PolicyHMMStrategy(Strategy):
    """The regime strategy; ``model`` defaults to the registry's ``config.model_ref`` in process."""

    def __init__(
        self, config: PolicyHMMStrategyConfig, model: InferenceClient | None = None
    ) -> None:
        super().__init__(config)
        self.cfg = config
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        if model is None:
            from training.registry import Registry

            if config.registry_root is None:
                raise ValueError("registry_root: required when no model is given")
            registry = Registry(config.registry_root)
            model = InProcessModel(
                registry.load(config.model_ref), registry.resolve(config.model_ref)
            )
        self.model = model
        schema = getattr(model, "schema", None)
        if schema is None:
            raise ValueError("model: needs a feature schema (.schema) to build the feature feed")
        self.feed = NautilusFeatureFeed(schema, self._on_sample)
        kill_path = config.kill_switch_path or str(Path(config.state_dir) / "kill_switch.json")
        self.guards = Guardrails(_limits(config), kill_path)
        self.log_posterior: np.ndarray | None = None
        self._session: int | None = None
        self.timeline: list[dict[str, Any]] = []
        self.blocks: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []
        self.decisions = 0
        self.orders_submitted = 0
        self.instrument = None

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
        """Quote balance + base balance and open positions marked at ``mid``."""
        account = self.portfolio.account(self.instrument_id.venue)
        if account is None:
            return 0.0
        inst = self.instrument
        quote = account.balance_total(inst.quote_currency)
        value = quote.as_double() if quote is not None else 0.0
        base_ccy = getattr(inst, "base_currency", None)
        if self.cfg.market == "spot" and base_ccy is not None:
            base = account.balance_total(base_ccy)
            value += (base.as_double() if base is not None else 0.0) * mid
        else:
            for pos in self.cache.positions_open(instrument_id=self.instrument_id):
                value += pos.signed_qty * (mid - pos.avg_px_open)
        return value

    # -- one sample

    def _on_sample(self, s: Any) -> None:
        if s.session != self._session:
            self._session = s.session
            self.log_posterior = None
        if not (s.ready and s.book_ok):
            return
        z = s.z
        t0 = time.perf_counter()
        try:
            result = self.model.infer(z, self.log_posterior)
        except Exception as exc:  # any failure is the LATENCY guardrail's case
            self.log.warning(f"inference failed: {exc!r}")
            result = None
        latency_ms = (time.perf_counter() - t0) * 1e3 if result is not None else None
        equity = self.equity(s.mid)
        self.guards.observe(equity)
        position = self.position()
        if result is not None:
            self.log_posterior = np.asarray(result["log_posterior"], dtype=np.float64)
            action = str(result["action"])
        else:
            action = "flat"
        verdict = Verdict(False, "FLAT") if action == "flat" else None
        qty = 0.0
        plan = None
        if result is None:
            verdict = self.guards.check(
                GuardInput(s.ts_ns, "buy", 0.0, position, 0.0, s.spread_bp,
                           s.realised_vol_bp, None, False, equity)
            )  # fmt: skip
        elif action != "flat":
            self.decisions += 1
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
            )
            qty = plan.quantity
            verdict = self.guards.check(
                GuardInput(
                    s.ts_ns,
                    action,
                    qty,
                    position,
                    float(result["confidence"]),
                    s.spread_bp,
                    s.realised_vol_bp,
                    latency_ms,
                    bool(result.get("adapting", False)),
                    equity,
                ),
                count=False,
            )
            if verdict.allowed and plan.skip is not None:
                verdict = Verdict(False, plan.skip)
            self.guards.count(verdict.reason)
        assert verdict is not None
        if not verdict.allowed and verdict.reason != "FLAT":
            self.blocks.append(
                {"ts": s.ts_ns, "reason": verdict.reason, "side": action, "features": z.tolist()}
            )
            if self.cfg.log_decisions:
                self.log.info(f"BLOCK {verdict.reason} {action} {verdict.detail} x={z.round(3)}")
        elif verdict.allowed and plan is not None:
            self._enter(s, plan)
        self.timeline.append(
            {
                "ts": s.ts_ns,
                "state": -1 if result is None else int(result["state"]),
                "posterior": [] if result is None else np.asarray(result["posterior"]).tolist(),
                "confidence": -1.0 if result is None else float(result["confidence"]),
                "action": action,
                "score": 0.0 if result is None else float(result["score"]),
                "verdict": "OK" if verdict.allowed else verdict.reason,
                "latency_ms": -1.0 if latency_ms is None else latency_ms,
                "equity": equity,
                "position": position,
                "mid": s.mid,
            }
        )

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
