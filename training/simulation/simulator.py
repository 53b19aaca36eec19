"""The trade simulator: a day of samples and model answers -> fills, round trips, net PnL.

It replays the strategy's pure decision rules (:func:`training.simulation.rules.decide`) over
feature samples, with the execution the Nautilus strategy has: one passive post-only entry at a
time (cancelled after ``entry_ttl_s``, or when the signal turns flat or opposite, or on KILL/DD),
positions up to ``max_position``, held for ``hold_s`` and extended by confident same-side
signals, cooldown, passive HOLD/SIGNAL exits at the touch re-quoted every ``exit_requote_s``;
KILL and STOP exits (and passive exits past ``exit_cross_s``) cross at once: filled at the
opposite touch of the sample, at the taker fee. Risk runs on rows whose features are not ready
too (``Answer.not_ready``): exits and cancels, never an entry. A resting order fills only when the market trades THROUGH its price after it
was sent and has reached the venue: a seller-initiated trade below a resting buy (a
buyer-initiated one above a resting sell), or the opposite touch strictly through it at a later
sample. Fees are the maker fee of
:class:`training.costs.CostModel` for resting orders, the taker fee for crossing exits; funding is charged for perps at each
funding time a position spans. Model answers are computed vectorised (the causal forward filter
per session, the policy on all rows at once); the rules run per sample.

PnL is marked to mid like the backtest's equity: an open position at the end is valued at the
last mid (no exit fee charged for it). ``net_bp`` figures are bp of the mean entry notional.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from training.costs import CostModel
from training.simulation.execution import carry_entry
from training.simulation.execution import limit_price
from training.simulation.execution import requote_due
from training.simulation.rules import Answer
from training.simulation.rules import Market
from training.simulation.rules import RuleConfig
from training.simulation.rules import RuleState
from training.simulation.rules import decide
from training.simulation.scale import ScaleUp
from training.simulation.stats import round_trips

__all__ = ["MARKET_COLUMNS", "SimMarket", "SimResult", "model_answers", "simulate"]

#: Per-sample columns the simulator reads (feature tables carry them all).
MARKET_COLUMNS = ("ts", "mid", "spread_bp", "realised_vol_bp", "microprice", "vwap",
                  "best_bid", "best_ask", "next_sell_low", "next_buy_high", "ready", "book_ok",
                  "session")  # fmt: skip
_ACTIONS = ("sell", "flat", "buy")
_SIDES = {1: "buy", -1: "sell"}
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, eq=False)
class SimMarket:
    """Per-sample market columns in time order (``next_sell_low``/``next_buy_high``: lowest
    seller-initiated / highest buyer-initiated trade price between this sample and the next,
    NaN when none); ``tradable`` = ready and book_ok (the rows the strategy acts on)."""

    cols: dict[str, np.ndarray]

    @classmethod
    def from_table(cls, table: Any) -> SimMarket:
        """From a feature table (pyarrow) or a dict of arrays holding :data:`MARKET_COLUMNS`."""
        get = (lambda c: table[c]) if isinstance(table, dict) else (
            lambda c: table.column(c).to_numpy(zero_copy_only=False))  # fmt: skip
        cols = {c: np.asarray(get(c)) for c in MARKET_COLUMNS}
        return cls(cols)

    def __len__(self) -> int:
        return len(self.cols["ts"])

    @property
    def tradable(self) -> np.ndarray:
        return self.cols["ready"].astype(bool) & self.cols["book_ok"].astype(bool)

    def take(self, rows: np.ndarray) -> SimMarket:
        return SimMarket({k: v[rows] for k, v in self.cols.items()})


def model_answers(
    params: Any, policy: Any, X: np.ndarray, sessions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(action codes 0 sell / 1 flat / 2 buy, regime confidence)`` of the model on the rows
    ``X`` the strategy infers on: the causal forward filter restarted at each session, the policy
    head on ``[filtered posterior, features]`` for all rows at once."""
    from training.models.hmm import ForwardFilter
    from training.models.policy import policy_inputs

    X = np.asarray(X, dtype=np.float64)
    if len(X) == 0:
        return np.zeros(0, dtype=np.int8), np.zeros(0)
    s = np.asarray(sessions)
    cuts = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
    lengths = np.diff(cuts).tolist()
    run = ForwardFilter(params).run(X, lengths)
    proba = policy.predict_proba(policy_inputs(run.posteriors, X))
    act, _ = policy.decide_many(proba)
    return act.astype(np.int8), np.asarray(run.confidence, dtype=np.float64)


@dataclass
class SimResult:
    """Fills, round trips, the mark-to-market equity per sample and verdict counts."""

    ts: np.ndarray
    equity: np.ndarray
    fills: dict[str, np.ndarray]
    trips: dict[str, np.ndarray]
    counts: dict[str, int]
    costs: CostModel
    entries: int = 0
    funding: float = 0.0
    #: The position still open after the last sample, and what closing it cost (taken from the
    #: last equity value: the period's PnL is bankable, not a mark at mid).
    open_position: float = 0.0
    close_cost: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unit_notional(self) -> float:
        """The mean notional of one fill (one order): the unit of the ``_bp`` figures."""
        q = self.fills["qty"]
        return float(np.mean(q * self.fills["px"])) if len(q) else 0.0

    def daily(self) -> dict[str, float]:
        """Mark-to-market net PnL (quote) per UTC day of the samples."""
        if len(self.ts) == 0:
            return {}
        day = self.ts // _DAY_NS
        last = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
        eq = np.r_[0.0, self.equity[last]]
        return {
            datetime.datetime.fromtimestamp(int(day[i]) * 86_400, datetime.UTC)
            .date()
            .isoformat(): (float(v))
            for i, v in zip(last, np.diff(eq), strict=True)
        }

    def hourly(self) -> np.ndarray:
        """Mark-to-market net PnL per clock hour (for an interval on a single day)."""
        if len(self.ts) == 0:
            return np.zeros(0)
        hour = self.ts // (3600 * 10**9)
        last = np.flatnonzero(np.r_[hour[1:] != hour[:-1], True])
        return np.diff(np.r_[0.0, self.equity[last]])

    def metrics(self) -> dict[str, float]:
        """Net PnL (quote, and bp of the mean entry notional) in total and per day, fills,
        round trips, turnover, fees, funding, gross edge and costs per round trip (bp)."""
        t = self.trips
        n_rt = len(t["gross"])
        notional = t["notional"]
        unit = self.unit_notional
        days = self.daily()
        net = float(self.equity[-1]) if len(self.equity) else 0.0
        n_days = max(len(days), 1)
        fees = float(self.fills["fee"].sum())
        rt_cost = (t["fees"] + t.get("funding", 0.0)) / np.maximum(notional, 1e-300) * 1e4
        gross_bp = t["gross"] / np.maximum(notional, 1e-300) * 1e4
        return {
            "net_pnl": net,
            "net_pnl_per_day": net / n_days,
            "net_bp": net / unit * 1e4 if unit > 0 else 0.0,
            "net_bp_per_day": (net / unit * 1e4 if unit > 0 else 0.0) / n_days,
            "days": float(len(days)),
            "fills": float(len(self.fills["qty"])),
            "entries": float(self.entries),
            "round_trips": float(n_rt),
            "round_trips_per_day": n_rt / n_days,
            "turnover": float((self.fills["qty"] * self.fills["px"]).sum()),
            "fees": fees,
            "funding": float(self.funding),
            "open_position_end": float(self.open_position),
            "close_cost": float(self.close_cost),
            "gross_edge_bp_per_rt": float(gross_bp.mean()) if n_rt else 0.0,
            "cost_bp_per_rt": float(rt_cost.mean()) if n_rt else 0.0,
            "net_bp_per_rt": float((gross_bp - rt_cost).mean()) if n_rt else 0.0,
            "hit_rate": float((t["gross"] - t["fees"] > 0).mean()) if n_rt else 0.0,
        }


class _Order:
    __slots__ = ("price", "qty", "side", "ts")

    def __init__(self, side: int, price: float, qty: float, ts: int) -> None:
        self.side, self.price, self.qty, self.ts = side, price, qty, ts


def _fills(order: _Order, i: int, c: dict[str, np.ndarray]) -> bool:
    """Whether ``order`` (sent at or before sample ``i - 1``) traded through between samples
    ``i - 1`` and ``i``."""
    if order.side > 0:
        low = c["next_sell_low"][i - 1]
        return bool(low < order.price or c["best_ask"][i] < order.price)
    high = c["next_buy_high"][i - 1]
    return bool(high > order.price or c["best_bid"][i] > order.price)


def simulate(
    market: SimMarket,
    actions: np.ndarray,
    confidence: np.ndarray,
    rules: RuleConfig,
    costs: CostModel,
    *,
    exit_requote_s: float = 1.0,
    fast: bool = True,
) -> SimResult:
    """Replay the rules over ``market`` with the model's ``actions``/``confidence`` given for the
    tradable rows only (:func:`model_answers` on them). ``fast`` skips :func:`decide` on samples
    where it provably returns FLAT with no state change (flat answer, no position, no order, no
    kill switch, equity at its peak); ``fast=False`` calls it on every tradable sample."""
    c = market.cols
    n = len(market)
    tradable = market.tradable
    idx = np.flatnonzero(tradable)
    if len(actions) != len(idx) or len(confidence) != len(idx):
        raise ValueError(f"actions/confidence: expected {len(idx)} rows (tradable), got "
                         f"{len(actions)}/{len(confidence)}")  # fmt: skip
    act = np.full(n, 1, dtype=np.int8)
    conf = np.zeros(n)
    act[idx], conf[idx] = actions, confidence
    ts, mid = c["ts"].astype(np.int64), c["mid"].astype(np.float64)
    fl: dict[str, list[float]] = {k: [] for k in ("ts", "side", "qty", "px", "fee")}
    equity = np.zeros(n)
    counts: dict[str, int] = {}
    pos = cash = funding = 0.0
    avg: float | None = None
    t_open = 0
    peak: float | None = None
    killed, kill_reason = False, ""
    last_order: int | None = None
    hold_until: int | None = None
    exit_reason: str | None = None
    exit_ns: int | None = None
    entry: _Order | None = None
    exit_o: _Order | None = None
    entries = 0
    scale = ScaleUp()
    maker, taker = costs.maker_bps * 1e-4, costs.taker_bps * 1e-4
    ask, bid = c["best_ask"].astype(np.float64), c["best_bid"].astype(np.float64)
    book_ok = c["book_ok"].astype(bool) & np.isfinite(mid) & np.isfinite(ask) & (bid > 0)
    priced = -1  # the last row with a usable book: prices a row without one (as the strategy)

    def fill(o: _Order, t: int, rate: float = maker) -> None:
        nonlocal pos, cash, avg, t_open, funding
        fee = o.qty * o.price * rate
        fl["ts"].append(t)
        fl["side"].append(o.side)
        fl["qty"].append(o.qty)
        fl["px"].append(o.price)
        fl["fee"].append(fee)
        cash -= fee
        if pos == 0.0:
            t_open = t
        if pos == 0.0 or np.sign(pos) == o.side:
            new = pos + o.side * o.qty
            avg = carry_entry(pos, avg, o.side * o.qty, o.price)
            pos = round(new / rules.size_increment) * rules.size_increment
        else:
            closed = min(o.qty, abs(pos))
            cash += closed * (o.price - avg) * np.sign(pos)
            pos += o.side * o.qty
            pos = round(pos / rules.size_increment) * rules.size_increment  # the size grid
            if abs(pos) < 1e-12:
                f = costs.funding_bps_between(-o.side, t_open, t) * closed * o.price * 1e-4
                cash -= f
                funding += f
                pos, avg = 0.0, None

    for i in range(n):
        if i > 0:
            if entry is not None and _fills(entry, i, c):
                fill(entry, int(ts[i]))
                entry = None
            if exit_o is not None and _fills(exit_o, i, c):
                fill(exit_o, int(ts[i]))
                exit_o = None
        eq = cash + (pos * (mid[i] - avg) if pos != 0.0 else 0.0)
        equity[i] = eq
        a = int(act[i])
        if book_ok[i]:
            priced = i
        scale = scale.at(pos, rules.scale_up_cycles, rules.max_scale)
        if not tradable[i]:  # risk only: something open, and a book to price it
            if (pos == 0.0 and entry is None and exit_o is None) or priced < 0:
                continue
        elif (
            fast
            and a == 1
            and pos == 0.0
            and entry is None
            and exit_o is None
            and peak is not None
            and eq <= peak
            and (killed or peak - eq <= rules.limits.max_drawdown)
        ):
            continue  # decide() would return FLAT and change nothing  # fmt: skip
        j = priced
        m = Market(int(ts[i]), float(mid[j]), float(c["spread_bp"][j]),
                   float(c["realised_vol_bp"][j]), float(c["microprice"][j]), float(c["vwap"][j]),
                   float(bid[j]), float(ask[j]))  # fmt: skip
        state = RuleState(pos, avg, eq, peak, killed, kill_reason, last_order, hold_until,
                          exit_reason, entry.ts if entry is not None else None,
                          entry_side=None if entry is None else _SIDES[entry.side],
                          exit_ns=exit_ns, size_scale=scale.level)  # fmt: skip
        answer = Answer(_ACTIONS[a], float(conf[i])) if tradable[i] else Answer.not_ready()
        d = decide(m, answer, state, rules)
        scale = scale.after(d.verdict, d.counted, d.exit_reason, rules.scale_up_cycles)
        peak = d.peak
        if d.trip is not None and not killed:
            killed, kill_reason = True, d.trip
        hold_until = d.hold_until_ns
        if d.counted:
            counts[d.verdict] = counts.get(d.verdict, 0) + 1
        if d.cancel_entry:
            entry = None
        if pos == 0.0:
            exit_reason, exit_o, exit_ns = None, None, None
        else:
            if d.cancel_exit:
                exit_o, entry = None, None
            exit_reason, exit_ns = d.exit_reason, d.exit_ns
            if exit_reason is not None and d.aggressive:  # an IOC: takes the touch now
                side = -1 if pos > 0 else 1
                px = float(ask[j] if side > 0 else bid[j])
                fill(_Order(side, px, abs(pos), m.ts_ns), m.ts_ns, taker)
                exit_o, entry = None, None
            elif exit_reason is not None:
                side = -1 if pos > 0 else 1
                px = limit_price("buy" if side > 0 else "sell", m.microprice, m.best_bid,
                                 m.best_ask, rules.tick)  # fmt: skip
                qty = abs(pos)
                if requote_due(
                    exit_o.price if exit_o else None,
                    exit_o.qty if exit_o else None,
                    px,
                    qty,
                    m.ts_ns,
                    exit_o.ts if exit_o else 0,
                    exit_requote_s,
                ):
                    exit_o, entry = _Order(side, px, qty, m.ts_ns), None  # fmt: skip
        if d.entry is not None:
            entry = _Order(1 if d.entry.side == "buy" else -1, d.entry.price, d.entry.quantity,
                           m.ts_ns)  # fmt: skip
            exit_o = None
            last_order = d.last_order_ns
            entries += 1
    close_cost = 0.0
    if pos != 0.0 and priced >= 0 and n:  # still open at the end: closed at the touch, taker
        close_cost = costs.close_out_quote(pos, float(mid[priced]), float(bid[priced]),
                                           float(ask[priced]))  # fmt: skip
        equity[-1] -= close_cost
    fills = {k: np.asarray(v, dtype=np.int64 if k in ("ts", "side") else np.float64)
             for k, v in fl.items()}  # fmt: skip
    trips = round_trips(fills["ts"], fills["side"], fills["qty"], fills["px"], fills["fee"])
    trips["funding"] = np.asarray(
        [costs.funding_bps_between(s, a, b) * nt * 1e-4
         for s, a, b, nt in zip(trips["side"], trips["ts_open"], trips["ts_close"],
                                trips["notional"], strict=True)], dtype=np.float64,
    )  # fmt: skip
    return SimResult(ts, equity, fills, trips, counts, costs, entries, funding,
                     open_position=pos, close_cost=close_cost)  # fmt: skip
