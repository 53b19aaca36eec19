"""``PolicyHMMStrategy``: FEATURES_V1 online -> forward-filtered regime -> policy -> decision rules.

What to do on a sample is decided by the pure decision rules
(:func:`training.simulation.rules.decide`, which the trade simulator replays); this class feeds
them the Nautilus state (position, equity, kill switch, working orders) and executes the decision
with orders. At most one entry works at a time; it is cancelled when it has not filled within
``entry_ttl_s``, when the signal turns flat or opposite, when KILL or DD trips, or when an exit
starts. Risk runs on every sample, ready or not: while the features warm up (after a restart or
a gap) or the book is withdrawn, the rules still see the position, the kill switch and DD
(``Answer.not_ready``), so a position is closed and a resting entry cancelled whatever the
feature engine's state; only entries wait for ready features.

Each ready feature sample goes to the model client (in process or Serve, the strategy does not
know which) through :class:`node.inference.InferenceQueue`: in order, one call in flight, the
answer delivered when it arrives (live: an ``ainfer`` task off the event loop; in a backtest: a
time alert ``modelled_latency_ms`` after the sample), and decided in
:meth:`PolicyHMMStrategy._on_answer` against the book, position and equity of that moment. A
``timeout`` or ``error`` answer is the LATENCY guardrail's case. The decision passes
the guardrails, and an allowed buy/sell becomes a post-only limit order near the microprice (or
only a logged decision when ``trading_enabled`` is off). Every sample lands in the state timeline, every block is counted
by reason with its feature vector, every entry keeps its feature vector.

An open position is held for ``hold_s`` (the label horizon the model was trained to predict),
extended by confident same-side signals (optionally cut short by an opposite signal or a stop
loss). HOLD and SIGNAL exits rest as a passive post-only order at the touch, re-quoted until
filled (:meth:`node.exits.ExitOrders._work_exit`), and cross after ``exit_cross_s``; KILL and STOP
exits cross at once (:meth:`node.exits.ExitOrders._cross_exit`: an IOC limit ``max_slippage_bps``
through the opposite touch, walking the book, re-sent each sample until flat). Exits reduce risk,
so CONF, COOLDOWN, SPREAD, VWAP, LATENCY and DRIFT never hold them back; KILL flattens (the kill
switch stops entries and closes what is open). While an exit works, no entry is made.
"""

from __future__ import annotations

import datetime
import math
from decimal import Decimal
from typing import TYPE_CHECKING
from typing import Any

from nautilus_trader.common.component import TestClock
from nautilus_trader.model.data import DataType
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.config import PolicyHMMStrategyConfig
from node.config import guard_limits
from node.config import label_horizon_s
from node.config import rule_config
from node.exits import ExitOrders
from node.feature_actor import NautilusFeatureFeed
from node.guardrails import Guardrails
from node.inference import InferenceQueue
from node.killswitch import kill_switch_path
from serving.client import InProcessModelClient
from serving.client import ModelClient
from training.simulation.execution import HoldTimer
from training.simulation.execution import carry_entry
from training.simulation.rules import Answer
from training.simulation.rules import Decision
from training.simulation.rules import Market
from training.simulation.rules import RuleConfig
from training.simulation.rules import RuleState
from training.simulation.rules import decide
from training.simulation.scale import ScaleUp

if TYPE_CHECKING:
    from node.ensemble_policy import ShadowPolicy
    from training.features import FeatureSchema

__all__ = ["PolicyHMMStrategy"]


_DAY_NS = 86_400 * 1_000_000_000


def _day_str(ts_ns: int) -> str:
    """UTC calendar day of an exchange timestamp.

    >>> _day_str(1_704_067_200_000_000_000)
    '2024-01-01'
    """
    return datetime.datetime.fromtimestamp(ts_ns // 10**9, datetime.UTC).date().isoformat()


class PolicyHMMStrategy(ExitOrders, Strategy):
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
        self.guards = Guardrails(guard_limits(config), kill_path)
        self.inference: InferenceQueue | None = None  # made at start: it needs the clock
        self._session: int | None = None
        self._day_index = -1
        self._day = ""
        self.timeline: list[dict[str, Any]] = []
        self.blocks: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []
        self.decisions = 0
        self.funding_updates = 0  # funding rates fed to the features (perps)
        self.orders_submitted = 0  # entry orders
        self.exit_orders_submitted = 0  # exit orders, re-quotes included
        self.model_versions: set[str] = set()
        self.status_counts: dict[str, int] = {"ok": 0, "timeout": 0, "error": 0}
        self.instrument = None
        self.base0: float | None = None  # spot base balance at the baseline (persisted)
        self.hold_s = self._hold_seconds(config, model)
        self.hold = HoldTimer(self.hold_s)
        self.exits: list[dict[str, Any]] = []
        self._exit_reason: str | None = None
        self._exit_order: Any = None  # the working exit order (a Nautilus Order)
        self._exit_quote_ns = 0
        self._exit_ns: int | None = None  # when the working exit reason started
        self._priced: Any = None  # the last sample with a usable book
        self.scale = ScaleUp()  # the size ramp (off unless scale_up_cycles > 0)
        self._entry_order: Any = None  # the resting entry order (cancelled after entry_ttl_s)
        self._entry_ns = 0
        self.rules: RuleConfig | None = None

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
        self.rules = rule_config(self.cfg, self.instrument, self.hold_s)
        self.inference = InferenceQueue(
            self.model,
            self.schema.version,
            self.clock,
            self._on_answer,
            budget_ms=self.cfg.latency_budget_ms,
            modelled_latency_ms=self.cfg.modelled_latency_ms,
            log_error=self.log.error,
        )
        self._subscribe()

    def _subscribe(self) -> None:
        """The market data the features are computed from: book deltas, trades, perp funding."""
        self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP, managed=False)
        self.subscribe_trade_ticks(self.instrument_id)
        if self.cfg.market != "spot":
            self._subscribe_funding()

    def _subscribe_funding(self) -> None:
        """A perp's funding rate feeds ``funding_rate_bp``: in a backtest the catalog's
        ``FundingRateUpdate`` objects; live, the rate inside Binance's mark price stream (the
        adapter publishes no ``FundingRateUpdate``; :meth:`on_data`)."""
        if isinstance(self.clock, TestClock):
            self.subscribe_funding_rates(self.instrument_id)
            return
        from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate

        data_type = DataType(
            BinanceFuturesMarkPriceUpdate, metadata={"instrument_id": self.instrument_id}
        )
        self.subscribe_data(data_type, instrument_id=self.instrument_id)

    def on_stop(self) -> None:
        if self.inference is not None:
            self.inference.close()
        self.cancel_all_orders(self.instrument_id)
        self.guards.stop()

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.feed.on_order_book_deltas(deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.feed.on_trade_tick(tick)

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.funding_updates += 1
        self.feed.on_funding_rate(funding_rate)

    def on_data(self, data: Any) -> None:
        rate = getattr(data, "funding_rate", None)  # Binance's mark price update (live)
        if rate is not None:
            self.funding_updates += 1
            self.feed.on_funding(data.ts_event, float(rate))

    def on_order_filled(self, event: OrderFilled) -> None:
        """Carry the position's average entry price through the fill and persist it, so STOP
        still measures a position a stopped node left open (:meth:`_avg_px`)."""
        if event.instrument_id != self.instrument_id:
            return
        store = self.guards.peak
        held, avg = (store.entry["position"], store.entry["avg_px"]) if store.entry else (0.0, None)
        signed = float(event.last_qty) * (1.0 if event.order_side == OrderSide.BUY else -1.0)
        half_step = float(self.instrument.size_increment) / 2
        avg = carry_entry(held, avg, signed, float(event.last_px), tol=half_step)
        store.set_entry(round(held + signed, self.instrument.size_precision), avg)

    # -- state

    @property
    def last_priced(self) -> Any:
        """The last sample with a usable book (``None`` before one): what prices a close."""
        return self._priced

    def position(self) -> float:
        """The strategy's position: (spot, once the baseline is known) the base balance minus
        the baseline inventory, so a position left open by a stopped node is still seen after a
        restart (Nautilus starts its own positions from zero); else Nautilus's net position."""
        if self.base0 is not None:
            account = self.portfolio.account(self.instrument_id.venue)
            money = (
                None if account is None else account.balance_total(self.instrument.base_currency)
            )
            if money is not None:
                return round(money.as_double() - self.base0, self.instrument.size_precision)
        return float(self.portfolio.net_position(self.instrument_id) or Decimal(0))

    def equity(self, mid: float) -> float:
        """The strategy's equity at ``mid``: quote balance, plus (spot) the base balance bought
        or sold since the baseline, or (perp) the open positions' unrealised PnL.

        A spot account's starting base inventory is left out: its price drift is not the
        strategy's doing, and DD (which watches this number) must not stop on it. The baseline
        (that inventory, its price, the quote balance) is taken at the first sample ever and
        persisted with the peak (:class:`node.killswitch.PeakStore`): a restart with an open
        position values it as before the stop, so DD does not move.
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
                self.base0 = self.guards.peak.set_baseline(base, mid, value)["base"]
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
        if self._begin(s):
            self.inference.put(s)

    def _begin(self, s: Any) -> bool:
        """Session bookkeeping; ``False`` when ``s`` only gets the risk rules (features not
        ready or no usable book), ``True`` when it is for the model."""
        if s.session != self._session:
            self._session = s.session
            if self.shadow is not None:
                self.shadow.reset()
        if not (s.ready and s.book_ok):
            self._risk_only(s)
            return False
        self._priced = s
        return True

    def _on_answer(self, s: Any, cr: Any, answer_ms: float) -> None:
        """Decide on sample ``s`` with the model's answer ``cr`` (a ``ClientResult``), which
        arrived ``answer_ms`` after the sample (what the LATENCY guard sees), against the book
        of this moment."""
        z = s.z
        self.status_counts[cr.status] += 1
        result = cr.result  # a late answer (status timeout) still carries the posterior
        if result is not None:
            self.model_versions.add(result.model_version)
        elif cr.error and self.cfg.log_decisions:
            self.log.warning(f"inference {cr.status}: {cr.error}")
        latency_ms = answer_ms if cr.ok else None  # None: the LATENCY guardrail's case
        s = self._book_now(s)
        equity = self.equity(s.mid)
        position = self.position()
        action = result.action if result is not None else "flat"
        adapting = bool(result.adapting) if result is not None else False
        answer = Answer(
            action,
            float(result.confidence) if result is not None else 0.0,
            adapting,
            latency_ms,
            answered=result is not None,
        )
        market = Market(s.ts_ns, s.mid, s.spread_bp, s.realised_vol_bp, s.microprice, s.vwap,
                         s.best_bid, s.best_ask)  # fmt: skip
        d = decide(market, answer, self._rule_state(position, equity), self.rules)
        self._apply(d, s, position, action)
        if action != "flat":
            self.decisions += 1  # the model asked to trade (an exit may take it over)
        if d.blocked:
            self.blocks.append(
                {"ts": s.ts_ns, "reason": d.verdict, "side": action, "features": z.tolist()}
            )
            if self.cfg.log_decisions:
                self.log.info(f"BLOCK {d.verdict} {action} {d.detail} x={z.round(3)}")
        elif d.entry is not None:
            self._enter(s, d.entry)
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
                "verdict": d.verdict,
                "status": cr.status,
                "latency_ms": cr.latency_ms,
                "answer_ms": answer_ms,
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

    def _book_now(self, s: Any) -> Any:
        """Sample ``s`` with the top of the book as it is now (the answer's arrival), when the
        book is usable; its time and features stay the sample's."""
        top = self.feed.top()
        return s if top is None else s._replace(**top._asdict())

    def _risk_only(self, s: Any) -> None:
        """A sample whose features are not ready: the rules see the position, the kill switch
        and DD (no model answer, no entry, nothing counted) and their exits and cancels run.
        A sample without a usable book (crossed or empty after a gap) is priced at the last
        sample that had one: an aggressive exit then still goes out, capped from that touch,
        and is re-sent at the next sample if the market has moved beyond the cap."""
        if s.book_ok and s.best_bid > 0 and math.isfinite(s.best_ask):
            self._priced = s
        elif self._priced is None:
            return  # no book seen yet: nothing can be priced
        else:
            s = self._priced._replace(ts_ns=s.ts_ns)
        equity = self.equity(s.mid)  # takes the baseline at the first sample ever
        position = self.position()
        market = Market(s.ts_ns, s.mid, s.spread_bp, s.realised_vol_bp, s.microprice, s.vwap,
                        s.best_bid, s.best_ask)  # fmt: skip
        d = decide(market, Answer.not_ready(), self._rule_state(position, equity), self.rules)
        self._apply(d, s, position, "flat")

    # -- the rules' state in, their decision out

    def _live(self, order: Any) -> Any:
        """The cache's current view of one of our orders (``None`` stays ``None``)."""
        return None if order is None else (self.cache.order(order.client_order_id) or order)

    def _rule_state(self, position: float, equity: float) -> RuleState:
        """The decision rules' view of this strategy: position, equity and its stored peak, the
        kill switch, the cooldown clock, the holding deadline, the working exit and entry, the
        size ramp (which sees the position first: a cycle may have opened or closed)."""
        rules = self.rules
        self.scale = self.scale.at(position, rules.scale_up_cycles, rules.max_scale)
        kill = self.guards.kill
        tripped = kill.tripped
        entry_ns = entry_side = None
        order = self._live(self._entry_order)
        if order is not None and not order.is_closed:  # working, or on its way (one at a time)
            entry_ns = self._entry_ns
            entry_side = "buy" if order.side == OrderSide.BUY else "sell"
        return RuleState(
            position=position,
            avg_px=self._avg_px(position),
            equity=equity,
            peak=self.guards.peak.peak,
            killed=tripped,
            kill_reason=kill.reason if tripped else "",
            last_order_ns=self.guards.last_order_ns,
            hold_until_ns=self.hold.until_ns,
            exit_reason=self._exit_reason,
            entry_ns=entry_ns,
            entry_side=entry_side,
            exit_ns=self._exit_ns,
            size_scale=self.scale.level,
        )

    def _apply(self, d: Decision, s: Any, position: float, action: str) -> None:
        """Carry out the decision's state changes and exit orders (the entry is :meth:`_enter`)."""
        self.guards.peak.update(d.peak)
        self.scale = self.scale.after(
            d.verdict, d.counted, d.exit_reason, self.rules.scale_up_cycles
        )
        if d.trip is not None and not self.guards.kill.tripped:
            self.guards.kill.trip(d.trip)
        self.hold.until_ns = d.hold_until_ns
        if d.counted:
            self.guards.count(d.verdict)
        if d.cancel_entry:
            self._cancel(self._live(self._entry_order))
        if position == 0.0:
            self._exit_reason, self._exit_order, self._exit_ns = None, None, None
            return
        if d.cancel_exit:
            self._cancel(self._live(self._exit_order))
            self._exit_reason, self._exit_order = None, None
        self._exit_reason, self._exit_ns = d.exit_reason, d.exit_ns
        if d.exit_reason is None:
            return
        if d.aggressive:
            self._cross_exit(s, position)
        else:
            self._work_exit(s, position)

    def _cancel(self, order: Any) -> None:
        """Cancel ``order`` unless it is gone or its cancel is already on the way."""
        if order is None or order.is_closed or order.status == OrderStatus.PENDING_CANCEL:
            return
        if order.status in (OrderStatus.INITIALIZED, OrderStatus.DENIED):
            return
        self.cancel_order(order)

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
        self._entry_order = None
        order = self.order_factory.limit(
            instrument_id=self.instrument_id,
            order_side=OrderSide.BUY if plan.side == "buy" else OrderSide.SELL,
            quantity=inst.make_qty(plan.quantity),
            price=inst.make_price(plan.price),
            time_in_force=TimeInForce.GTC,
            post_only=self.cfg.post_only,
        )
        self.submit_order(order)
        self._entry_order, self._entry_ns = order, s.ts_ns
        self.orders_submitted += 1
