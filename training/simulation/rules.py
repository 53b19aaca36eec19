"""The strategy's decision rules as one pure function: :func:`decide`.

``decide(market, answer, state, config) -> Decision`` is everything the regime strategy decides
on one feature sample: the drawdown watch, the holding deadline and its extension by same-side
signals, why an open position must be closed (KILL, STOP, SIGNAL, HOLD; sticky for KILL/STOP)
and how (KILL and STOP cross at once, HOLD and SIGNAL rest passively and cross after
``exit_cross_s``), whether an entry is wanted, the guardrail verdict (codes
:data:`GUARD_REASONS`, then the execution skips VWAP and PRICE), the entry's price and size
(:func:`entry_size`: min notional, or a per-trade risk budget), the cooldown clock, and whether
the resting entry must go (outlived ``entry_ttl_s``; the signal turned flat or opposite; KILL or
DD; an exit is working). At most one entry works at a time. Risk runs on every sample, ready or
not: an ``Answer(ready=False)`` (features warming up, book withdrawn) still gets the drawdown
watch, the exits and the entry cancels, never an entry. The Nautilus strategy (``node.strategy``) executes
the decision with orders; the trade simulator (:mod:`training.simulation.simulator`) replays the
same function, so the two cannot drift apart.

>>> cfg = RuleConfig(limits=GuardLimits(min_conf=0.5, max_position=1.0), hold_s=60.0,
...                  tick=0.01, min_notional=5.0, size_increment=0.001)
>>> m = Market(ts_ns=10**9, mid=100.0, spread_bp=2.0, realised_vol_bp=1.0, microprice=100.002,
...            vwap=100.0, best_bid=99.99, best_ask=100.01)
>>> d = decide(m, Answer("buy", 0.9), RuleState(), cfg)
>>> d.verdict, d.entry.side, d.entry.price, d.entry.quantity, d.last_order_ns
('OK', 'buy', 100.0, 0.055, 1000000000)
>>> decide(m, Answer("buy", 0.4), RuleState(), cfg).verdict
'CONF'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field

from training.simulation.execution import AGGRESSIVE_EXITS
from training.simulation.execution import EXECUTION_SKIPS
from training.simulation.execution import VWAP_MODES
from training.simulation.execution import OrderPlan
from training.simulation.execution import exit_reason
from training.simulation.execution import hold_deadline
from training.simulation.execution import order_size
from training.simulation.execution import plan_order

__all__ = [
    "ALLOWED",
    "GUARD_REASONS",
    "NO_TRADE",
    "REASON_CODES",
    "Answer",
    "Decision",
    "GuardInput",
    "GuardLimits",
    "Market",
    "RuleConfig",
    "RuleState",
    "Verdict",
    "check_guards",
    "decide",
    "entry_size",
    "max_spread_bp",
]

#: Guardrail block reasons, in the order :func:`check_guards` checks them.
GUARD_REASONS: tuple[str, ...] = ("KILL", "LATENCY", "DRIFT", "CONF", "SPREAD", "DD", "POS",
                                  "COOLDOWN")  # fmt: skip
#: Every block reason a run counts: the guardrails' and the execution skips (VWAP, PRICE).
REASON_CODES: tuple[str, ...] = (*GUARD_REASONS, *EXECUTION_SKIPS)
#: The verdict of an allowed entry.
ALLOWED = "OK"
#: The verdict of a sample where no trade was wanted (not a block).
NO_TRADE = "FLAT"


@dataclass(frozen=True)
class Verdict:
    """``allowed`` or the ``reason`` code that blocked."""

    allowed: bool
    reason: str = ALLOWED
    detail: str = ""


@dataclass(frozen=True)
class GuardLimits:
    """The numbers the guardrails compare against."""

    min_conf: float = 0.7  # chosen by bench/bench_defaults.py (seeds 6-10, never 1-5)
    max_spread_bp_base: float = 2.0
    max_spread_vol_k: float = 0.5
    max_position: float = 0.01
    cooldown_s: float = 5.0
    latency_budget_ms: float = 50.0
    max_drawdown: float = 100.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"GuardLimits.{name}: must be finite and >= 0, got {v!r}")


@dataclass(frozen=True)
class GuardInput:
    """Everything one decision is checked on; ``latency_ms`` is ``None`` when inference failed."""

    ts_ns: int
    side: str
    quantity: float
    position: float
    confidence: float
    spread_bp: float
    realised_vol_bp: float
    latency_ms: float | None
    adapting: bool
    equity: float


def max_spread_bp(limits: GuardLimits, realised_vol_bp: float) -> float:
    """Dynamic SPREAD limit: ``base + k * realised_vol_bp`` (wider in volatile regimes).

    >>> max_spread_bp(GuardLimits(max_spread_bp_base=2.0, max_spread_vol_k=0.5), 4.0)
    4.0
    """
    return limits.max_spread_bp_base + limits.max_spread_vol_k * max(realised_vol_bp, 0.0)


def check_guards(
    g: GuardInput,
    limits: GuardLimits,
    *,
    killed: bool,
    kill_reason: str = "",
    peak: float,
    last_order_ns: int | None,
) -> Verdict:
    """The first guardrail that blocks (in :data:`GUARD_REASONS` order), or allowed. ``peak``
    is the equity peak including ``g.equity``."""
    if g.side not in ("buy", "sell"):
        raise ValueError(f"side: {g.side!r} is not 'buy' or 'sell'")
    lim = limits
    if killed:
        return Verdict(False, "KILL", kill_reason)
    if g.latency_ms is None:
        return Verdict(False, "LATENCY", "inference failed or timed out")
    if g.latency_ms > lim.latency_budget_ms:
        return Verdict(False, "LATENCY", f"{g.latency_ms:.2f} ms > {lim.latency_budget_ms}")
    if g.adapting:
        return Verdict(False, "DRIFT", "model adapting")
    if g.confidence < lim.min_conf:
        return Verdict(False, "CONF", f"{g.confidence:.3f} < {lim.min_conf}")
    limit = max_spread_bp(lim, g.realised_vol_bp)
    if g.spread_bp > limit:
        return Verdict(False, "SPREAD", f"{g.spread_bp:.3f} bp > {limit:.3f}")
    if peak - g.equity > lim.max_drawdown:
        return Verdict(False, "DD", f"drawdown {peak - g.equity:.2f} > {lim.max_drawdown}")
    signed = g.quantity if g.side == "buy" else -g.quantity
    if abs(g.position + signed) > lim.max_position + 1e-12:
        return Verdict(False, "POS", f"{g.position} + {signed} beyond {lim.max_position}")
    if last_order_ns is not None and g.ts_ns - last_order_ns < lim.cooldown_s * 1e9:
        return Verdict(False, "COOLDOWN", f"{(g.ts_ns - last_order_ns) / 1e9:.1f} s")
    return Verdict(True)


@dataclass(frozen=True)
class RuleConfig:
    """The strategy settings the rules use, and the instrument's order grid.

    ``exit_cross_s``: a HOLD or SIGNAL exit rests passively this long, then crosses (KILL and
    STOP cross at once); an aggressive exit is an IOC limit ``max_slippage_bps`` through the
    opposite touch. ``risk_budget`` (quote, 0 = off): size entries so that a one-sigma move over
    the hold (``realised_vol_bp * sqrt(hold_s)``, or the stop distance when a stop is set) costs
    about this much (:func:`entry_size`). ``scale_up_cycles`` (0 = off) and ``max_scale``: the
    size ramp of :class:`~training.simulation.scale.ScaleUp` (entries are ``RuleState.size_scale``
    x that size, capped by the room under ``max_position``). ``long_only``: a sell signal never
    opens a short (a spot account holding no base cannot sell what it lacks); it still counts
    as an opposite signal for an open long.
    """

    limits: GuardLimits = field(default_factory=GuardLimits)
    hold_s: float = 60.0
    stop_loss_bps: float = 0.0
    signal_exit: bool = False
    vwap_mode: str = "trend"
    vwap_anchor_bps: float = 10.0
    entry_ttl_s: float = 5.0
    tick: float = 0.01
    min_notional: float = 0.0
    notional_multiple: float = 1.1
    size_increment: float = 1e-5
    min_quantity: float = 0.0
    exit_cross_s: float = 30.0
    max_slippage_bps: float = 10.0
    risk_budget: float = 0.0
    scale_up_cycles: int = 0
    max_scale: int = 1
    long_only: bool = False

    def __post_init__(self) -> None:
        if self.scale_up_cycles < 0 or self.max_scale < 1:
            raise ValueError(
                f"RuleConfig: scale_up_cycles >= 0 and max_scale >= 1, got "
                f"{self.scale_up_cycles!r}, {self.max_scale!r}"
            )
        for name in ("stop_loss_bps", "max_slippage_bps", "risk_budget"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"RuleConfig.{name}: must be finite and >= 0, got {v!r}")
        for name in ("hold_s", "entry_ttl_s", "tick", "size_increment", "exit_cross_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"RuleConfig.{name}: must be finite and > 0, got {v!r}")
        if self.vwap_mode not in VWAP_MODES:
            raise ValueError(f"RuleConfig.vwap_mode: {self.vwap_mode!r} not in {VWAP_MODES}")

    @property
    def hold_ns(self) -> int:
        return round(self.hold_s * 1e9)


@dataclass(frozen=True)
class Market:
    """What the sample says about the market."""

    ts_ns: int
    mid: float
    spread_bp: float
    realised_vol_bp: float
    microprice: float
    vwap: float
    best_bid: float
    best_ask: float


@dataclass(frozen=True)
class Answer:
    """The model's answer: ``action`` (buy/sell/flat), regime ``confidence``, ``adapting``, and
    ``latency_ms`` (``None``: inference failed or timed out, the LATENCY guard's case).
    ``answered`` False: no result at all (action flat). ``ready`` False: the features are not
    ready (warm-up, book withdrawn) and the model was not asked: risk only, nothing counted."""

    action: str
    confidence: float
    adapting: bool = False
    latency_ms: float | None = 0.1
    answered: bool = True
    ready: bool = True

    @classmethod
    def not_ready(cls) -> Answer:
        """The answer of a sample whose features are not ready."""
        return cls("flat", 0.0, latency_ms=None, answered=False, ready=False)


@dataclass(frozen=True)
class RuleState:
    """Position and risk state before the sample: ``equity`` at this sample's mid, the stored
    equity ``peak`` (``None``: none yet), the kill switch, the cooldown clock, the holding
    deadline, the exit being worked and since when (``exit_ns``), the resting entry's
    submission time and side."""

    position: float = 0.0
    avg_px: float | None = None
    equity: float = 0.0
    peak: float | None = None
    killed: bool = False
    kill_reason: str = ""
    last_order_ns: int | None = None
    hold_until_ns: int | None = None
    exit_reason: str | None = None
    entry_ns: int | None = None
    entry_side: str | None = None
    exit_ns: int | None = None
    size_scale: int = 1


@dataclass(frozen=True)
class Decision:
    """What to do on this sample.

    ``verdict``: ``OK`` (enter ``entry``), ``FLAT`` (nothing wanted) or the block code;
    ``counted``: whether the verdict is counted in the guardrail counts (a plain ``FLAT`` is not);
    ``exit_reason``: the exit to work after this sample (``None``: none); ``cancel_exit``: a
    same-side signal extended the hold, so the working HOLD/SIGNAL exit is cancelled;
    ``aggressive``: the exit crosses now (KILL, STOP, or a passive exit past ``exit_cross_s``);
    ``cancel_entry``: the resting entry must go (TTL, flat or opposite signal, KILL/DD, an exit);
    ``trip``: the kill switch must trip with this reason; ``peak``, ``hold_until_ns``,
    ``last_order_ns``, ``exit_ns``: the new state.
    """

    verdict: str
    counted: bool
    detail: str
    entry: OrderPlan | None
    exit_reason: str | None
    cancel_exit: bool
    cancel_entry: bool
    trip: str | None
    peak: float
    hold_until_ns: int | None
    last_order_ns: int | None
    aggressive: bool = False
    exit_ns: int | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict == ALLOWED

    @property
    def blocked(self) -> bool:
        return self.verdict not in (ALLOWED, NO_TRADE)


def _exit(
    market: Market, answer: Answer, state: RuleState, cfg: RuleConfig, killed: bool
) -> tuple[str | None, bool, int | None]:
    """``(working exit reason, cancel_exit, hold deadline)`` after this sample."""
    confident = answer.answered and answer.confidence >= cfg.limits.min_conf
    until, extended = hold_deadline(
        state.position,
        answer.action if confident else "flat",
        market.ts_ns,
        state.hold_until_ns,
        cfg.hold_ns,
    )
    if state.position == 0.0 or abs(state.position) * market.mid < cfg.min_notional:
        return None, False, until  # flat, or dust no order can close (below min notional)
    current = state.exit_reason
    cancel = extended and current in ("HOLD", "SIGNAL")
    if cancel:
        current = None
    reason = exit_reason(
        state.position,
        answer.action if cfg.signal_exit else "flat",
        market.ts_ns,
        until,
        market.mid,
        state.avg_px,
        cfg.stop_loss_bps,
        killed,
    )
    if reason is not None and reason != current:
        sticky = current in ("KILL", "STOP")
        if current is None or (reason in ("KILL", "STOP") and not sticky):
            current = reason
    return current, cancel, until


def entry_size(price: float, realised_vol_bp: float, position: float, cfg: RuleConfig) -> float:
    """The entry's quantity at ``price``: the min-notional size (``min_notional *
    notional_multiple`` on the size grid) or, with a ``risk_budget``, the size whose one-sigma
    loss over the hold (``realised_vol_bp * sqrt(hold_s)`` bp, or ``stop_loss_bps`` when a stop
    is set) is the budget, rounded down to the size step, never below the min-notional size and
    capped at the room left under ``max_position`` (a full position is the POS guard's case).

    >>> cfg = RuleConfig(limits=GuardLimits(max_position=0.01), hold_s=100.0, min_notional=5.0,
    ...                  size_increment=0.0001, risk_budget=1.0)
    >>> entry_size(1000.0, 2.0, 0.0, cfg)  # 1 / (1000 * 20 bp) = 0.05, capped at 0.01
    0.01
    >>> entry_size(10_000.0, 20.0, 0.0, cfg)  # 1 / (10000 * 200 bp) = 0.005
    0.005
    >>> entry_size(10_000.0, 500.0, 0.0, cfg)  # 0.0002 is below min notional: 0.0006
    0.0006
    """
    base = order_size(price, cfg.min_notional, cfg.notional_multiple, cfg.size_increment,
                      cfg.min_quantity)  # fmt: skip
    if cfg.risk_budget <= 0:
        return base
    move_bps = cfg.stop_loss_bps if cfg.stop_loss_bps > 0 else (
        max(realised_vol_bp, 0.0) * math.sqrt(cfg.hold_s))  # fmt: skip
    room = cfg.limits.max_position - abs(position)
    qty = room if move_bps <= 0 else min(cfg.risk_budget / (price * move_bps * 1e-4), room)
    steps = math.floor(qty / cfg.size_increment + 1e-9)
    return max(float(round(steps * cfg.size_increment, 12)), base)


def decide(market: Market, answer: Answer, state: RuleState, cfg: RuleConfig) -> Decision:
    """The strategy's decision on one sample (see the module doc)."""
    lim = cfg.limits
    equity = state.equity
    peak = equity if state.peak is None else max(state.peak, equity)
    killed, kill_reason, trip = state.killed, state.kill_reason, None
    if peak - equity > lim.max_drawdown and not killed:
        killed, kill_reason, trip = True, "DD", "DD"
    exiting, cancel_exit, until = _exit(market, answer, state, cfg, killed)
    exit_ns = None
    if exiting is not None:
        same = exiting == state.exit_reason and state.exit_ns is not None
        exit_ns = state.exit_ns if same else market.ts_ns
    aggressive = exiting in AGGRESSIVE_EXITS or (
        exiting is not None and market.ts_ns - exit_ns >= cfg.exit_cross_s * 1e9)  # fmt: skip
    action = answer.action
    pos = state.position
    wanted = action
    opposite = (pos > 0 and action == "sell") or (pos < 0 and action == "buy")
    if exiting is not None or opposite or (cfg.long_only and action == "sell"):
        wanted = "flat"  # long_only: a sell never opens (or adds to) a short
    working = state.entry_ns is not None
    cancel_entry = working and (
        market.ts_ns - state.entry_ns >= cfg.entry_ttl_s * 1e9
        or killed
        or exiting is not None
        or action != state.entry_side
    )
    entry = None
    guards = dict(killed=killed, kill_reason=kill_reason, peak=peak,
                  last_order_ns=state.last_order_ns)  # fmt: skip
    if not answer.ready:
        verdict, counted = Verdict(False, NO_TRADE), False
    elif wanted == "flat":
        verdict, counted = Verdict(False, NO_TRADE), False
        if answer.latency_ms is None:  # a failed answer is the LATENCY guard's (or KILL's) case
            verdict = check_guards(
                GuardInput(market.ts_ns, "buy", 0.0, pos, 0.0, market.spread_bp,
                           market.realised_vol_bp, None, answer.adapting, equity),
                lim, **guards,
            )  # fmt: skip
            counted = True
    else:
        plan = plan_order(
            action,
            market.microprice,
            market.vwap,
            market.best_bid,
            market.best_ask,
            anchor_bps=cfg.vwap_anchor_bps,
            tick=cfg.tick,
            min_notional=cfg.min_notional,
            multiple=cfg.notional_multiple,
            size_increment=cfg.size_increment,
            min_quantity=cfg.min_quantity,
            vwap_mode=cfg.vwap_mode,
        )
        if plan.skip is None and cfg.risk_budget > 0:
            qty = entry_size(plan.price, market.realised_vol_bp, pos, cfg)
            plan = OrderPlan(plan.side, plan.price, qty)
        if plan.skip is None and state.size_scale > 1:  # the scale-up ramp, within the room
            room = math.floor((lim.max_position - abs(pos)) / cfg.size_increment + 1e-9)
            steps = min(round(plan.quantity / cfg.size_increment) * state.size_scale, room)
            qty = max(round(steps * cfg.size_increment, 12), plan.quantity)
            plan = OrderPlan(plan.side, plan.price, qty)
        verdict = check_guards(
            GuardInput(market.ts_ns, action, plan.quantity, pos, answer.confidence,
                       market.spread_bp, market.realised_vol_bp, answer.latency_ms,
                       answer.adapting, equity),
            lim, **guards,
        )  # fmt: skip
        if verdict.allowed and plan.skip is not None:
            verdict = Verdict(False, plan.skip)
        if verdict.allowed and working:  # one working entry at a time: wait for it to go
            verdict = Verdict(False, "COOLDOWN", "an entry is working")
        counted = True
        if verdict.allowed:
            entry = plan
    return Decision(
        verdict=verdict.reason,
        counted=counted,
        detail=verdict.detail,
        entry=entry,
        exit_reason=exiting,
        cancel_exit=cancel_exit,
        cancel_entry=cancel_entry,
        trip=trip,
        peak=peak,
        hold_until_ns=until,
        last_order_ns=market.ts_ns if entry is not None else state.last_order_ns,
        aggressive=aggressive,
        exit_ns=exit_ns,
    )
