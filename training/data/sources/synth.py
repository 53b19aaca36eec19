"""A synthetic regime market: L2 deltas and trades driven by a hidden Markov chain of regimes.

Ground truth for the HMM. A jump chain over regimes (default ``calm``, ``trending``,
``volatile``; exponential dwell times with a floor, no self-transitions) drives, per regime:
message rate, fair-value dynamics (mean-reverting / drifting / wild, in bp of price, calibrated
on real BTCUSDT: about 0.6 / 1.1 / 3.3 bp per second), spread, depth and its side skew, queue
refresh rate, trade rate and trade-sign persistence. The book is a 20-level (``levels``) ladder
per side on a grid of ``level_bp`` (whole instrument ticks), so the mid jumps several ticks at
once and the ladder re-centres as it moves; every message is a batch of deltas
(deletes, then adds, then size updates, then the trade's consumption of the best level) ending
in ``F_LAST``, and each day opens with CLEAR + a full ``F_SNAPSHOT`` book.

Everything is vectorised with numpy over *messages* (a per-``step_ms`` activity grid), with a
Python loop only over regime segments (a few hundred a day). Sizes live on the step grid as
integer units; a trade multiplies the best level's size by a factor in (0, 1) and the trade
size is exactly the consumed amount, so book and trades agree. Same config (and seed) →
byte-identical columns.

Labels (``MarketCatalog.labels_path(symbol_day)``, Parquet): one row per regime segment that
covers the day, at the segment start clipped to the day start — ``ts_event`` int64 ns,
``regime`` int8, ``regime_name`` string. The regime of any time ``t`` is the row with the
largest ``ts_event <= t`` (:meth:`RegimeLabels.regime_at`). Segment boundaries sit on the step
grid and every event of a step carries the step's regime.

>>> cfg = SynthConfig(day_seconds=600, seed=3)
>>> day = next(generate(cfg))
>>> day.day, int(day.events.deltas.action[0]), int(day.events.deltas.flags[-1]) & F_LAST
(datetime.date(2024, 1, 1), 4, 128)
>>> bool((day.labels.regime_at(day.events.deltas.ts_event) >= 0).all())
True
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.signal import lfilter

from training.data.columns import (
    ADD,
    BUY,
    BUYER,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    SELL,
    SELLER,
    UPDATE,
    DeltaColumns,
    MarketEvents,
    QuoteColumns,
    TradeColumns,
)

if TYPE_CHECKING:
    from nautilus_trader.model.instruments import Instrument

    from training.data.catalog import MarketCatalog
    from training.data.report import ImportReport

NS = 1_000_000_000
CALM, TRENDING, VOLATILE = 0, 1, 2


@dataclass(frozen=True)
class RegimeParams:
    """What one regime does to the market (units: bp of price, ladder levels, seconds, base size).

    The fair value's log-price (in bp) is a random walk with volatility ``vol_bp`` per
    sqrt(second) and drift ``drift_bp`` per second (sign drawn per segment), plus a
    mean-reverting deviation (``noise_bp`` per sqrt(second), half-life ``half_life_s``; ``None``:
    none). The spread is ``1 + Poisson(spread_extra)`` ladder levels, redrawn with probability
    ``spread_change`` per message; ``depth`` is the mean size of a level (deeper levels larger),
    ``depth_tilt`` skews it toward the drift side; ``refresh`` size updates per side per
    message; ``sign_stay`` is P(next trade has the previous sign) and ``sign_bias`` P(a trade
    follows the drift direction regardless).
    """

    name: str
    mean_minutes: float
    msg_rate: float
    vol_bp: float
    drift_bp: float
    noise_bp: float
    half_life_s: float | None
    spread_extra: float
    spread_change: float
    depth: float
    depth_tilt: float
    refresh: float
    trade_rate: float
    sign_stay: float
    sign_bias: float


# Calibrated on real Binance BTCUSDT (../shared/data, Aug 2024, a gently trending 11 minutes:
# 1-s return std 1.1 bp spot / 1.2 bp perp, 1-min 6.8-10.6 bp, drift ~0.06 bp/s): trending
# moves like that window with a stronger drift (0.1 bp/s), calm about half as much and
# mean-reverting at the second scale, volatile three times as much. Spreads in 0.2 bp levels:
# ~0.2 / 0.4 / 1 bp (the real top of book is one 0.01 tick, ~0.002 bp).
REALISTIC_REGIMES: tuple[RegimeParams, ...] = (
    RegimeParams("calm", 20.0, 12.0, vol_bp=0.2, drift_bp=0.0, noise_bp=0.7,
        half_life_s=1.0, spread_extra=0.1, spread_change=0.05, depth=1.0, depth_tilt=0.0,
        refresh=1.0, trade_rate=3.0, sign_stay=0.5, sign_bias=0.0),
    RegimeParams("trending", 12.0, 20.0, vol_bp=1.1, drift_bp=0.1, noise_bp=0.0,
        half_life_s=None, spread_extra=1.0, spread_change=0.1, depth=0.6, depth_tilt=0.5,
        refresh=1.5, trade_rate=8.0, sign_stay=0.85, sign_bias=0.5),
    RegimeParams("volatile", 6.0, 40.0, vol_bp=3.3, drift_bp=0.0, noise_bp=0.0,
        half_life_s=None, spread_extra=4.0, spread_change=0.2, depth=0.15, depth_tilt=0.0,
        refresh=2.0, trade_rate=15.0, sign_stay=0.6, sign_bias=0.0),
)  # fmt: skip
# The first market of this project (preset ``micro``, ``level_bp=0``): prices move a few ticks
# on a dense one-tick ladder, 0.003-0.014 bp per sqrt(second) at 42,000 — far below fees.
_TICK_BP = 0.01 / 42_000.0 * 1e4
MICRO_REGIMES: tuple[RegimeParams, ...] = (
    RegimeParams("calm", 20.0, 12.0, vol_bp=0.0, drift_bp=0.0, noise_bp=1.5 * _TICK_BP,
        half_life_s=1.0, spread_extra=0.1, spread_change=0.05, depth=1.0, depth_tilt=0.0,
        refresh=1.0, trade_rate=3.0, sign_stay=0.5, sign_bias=0.0),
    RegimeParams("trending", 12.0, 20.0, vol_bp=1.5 * _TICK_BP, drift_bp=_TICK_BP, noise_bp=0.0,
        half_life_s=None, spread_extra=1.0, spread_change=0.1, depth=0.6, depth_tilt=0.5,
        refresh=1.5, trade_rate=8.0, sign_stay=0.85, sign_bias=0.5),
    RegimeParams("volatile", 6.0, 40.0, vol_bp=6.0 * _TICK_BP, drift_bp=0.0, noise_bp=0.0,
        half_life_s=None, spread_extra=5.0, spread_change=0.2, depth=0.15, depth_tilt=0.0,
        refresh=2.0, trade_rate=15.0, sign_stay=0.6, sign_bias=0.0),
)  # fmt: skip
DEFAULT_REGIMES = REALISTIC_REGIMES
# Jump chain (row: from, column: to; zero diagonal): calm and trending alternate mostly,
# volatile bursts come from either and relax mostly to calm.
DEFAULT_TRANSITIONS: tuple[tuple[float, ...], ...] = (
    (0.0, 0.6, 0.4),
    (0.6, 0.0, 0.4),
    (0.7, 0.3, 0.0),
)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic market; the same config always gives the same bytes.

    ``day_seconds`` < 86400 simulates only the first part of each UTC day (tests, demos).
    The book's levels sit ``level_bp`` of ``start_price`` apart (a whole number of instrument
    ticks, at least one; ``0``: every tick), so a realistic bp-scale move shifts the ladder by a
    few levels per message, not by thousands of ticks. ``preset("micro")`` is the old tick-scale
    market.
    Regime dwell times are ``min_segment_s + Exp(mean - min_segment_s)`` seconds. ``ts_init``
    is ``ts_event`` plus a uniform ``latency_ms`` jitter, made non-decreasing (one TCP stream),
    so a crowded burst can see a little more latency than the range.
    """

    symbol: str = "BTCUSDT"
    market: Literal["spot", "usdm"] = "spot"
    days: int = 1
    seed: int = 0
    start: str = "2024-01-01"
    day_seconds: int = 86_400
    step_ms: int = 25
    levels: int = 20
    level_bp: float = 0.2
    start_price: float = 42_000.0
    min_segment_s: float = 60.0
    latency_ms: tuple[float, float] = (1.0, 20.0)
    regimes: tuple[RegimeParams, ...] = DEFAULT_REGIMES
    transitions: tuple[tuple[float, ...], ...] = DEFAULT_TRANSITIONS

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"SynthConfig.{name}: {why}")

        if self.market not in ("spot", "usdm"):
            raise bad("market", f"must be 'spot' or 'usdm', got {self.market!r}")
        if self.days < 1:
            raise bad("days", f"must be >= 1, got {self.days}")
        try:
            datetime.date.fromisoformat(self.start)
        except ValueError as exc:
            raise bad("start", f"not an ISO date: {self.start!r}") from exc
        if not 0 < self.day_seconds <= 86_400:
            raise bad("day_seconds", f"must be in (0, 86400], got {self.day_seconds}")
        if self.step_ms < 1 or (self.day_seconds * 1000) % self.step_ms:
            raise bad("step_ms", f"must be >= 1 and divide the day, got {self.step_ms}")
        if self.levels < 2:
            raise bad("levels", f"must be >= 2, got {self.levels}")
        if not (math.isfinite(self.level_bp) and 0 <= self.level_bp <= 100):
            raise bad("level_bp", f"must be in [0, 100], got {self.level_bp}")
        if not (math.isfinite(self.start_price) and self.start_price > 0):
            raise bad("start_price", f"must be positive, got {self.start_price}")
        lo, hi = self.latency_ms
        if not 0 <= lo <= hi:
            raise bad("latency_ms", f"need 0 <= low <= high, got {self.latency_ms}")
        k = len(self.regimes)
        if k < 2:
            raise bad("regimes", "need at least two regimes")
        for i, r in enumerate(self.regimes):
            if r.mean_minutes * 60 <= self.min_segment_s:
                raise bad(f"regimes[{i}].mean_minutes", "must exceed min_segment_s")
            if r.msg_rate <= 0 or r.msg_rate * self.step_ms / 1000 > 1:
                raise bad(f"regimes[{i}].msg_rate", f"must be in (0, {1000 / self.step_ms}]")
            if not 0 <= r.trade_rate <= r.msg_rate:
                raise bad(f"regimes[{i}].trade_rate", "must be in [0, msg_rate]")
            for f in ("vol_bp", "drift_bp", "noise_bp"):
                if not (math.isfinite(getattr(r, f)) and getattr(r, f) >= 0):
                    raise bad(f"regimes[{i}].{f}", f"must be finite and >= 0, got {getattr(r, f)}")
            if r.half_life_s is not None and not r.half_life_s > 0:
                raise bad(f"regimes[{i}].half_life_s", f"must be > 0 or None, got {r.half_life_s}")
            if r.depth <= 0 or not 0 <= r.depth_tilt < 1:
                raise bad(f"regimes[{i}].depth", "depth > 0 and 0 <= depth_tilt < 1 required")
        t = np.asarray(self.transitions, dtype=np.float64)
        if t.shape != (k, k) or (t < 0).any() or np.diag(t).any():
            raise bad("transitions", f"must be {k}x{k}, non-negative, zero diagonal")
        if not np.allclose(t.sum(axis=1), 1.0):
            raise bad("transitions", "rows must sum to 1")

    @property
    def steps_per_day(self) -> int:
        return self.day_seconds * 1000 // self.step_ms

    @property
    def regime_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regimes)

    def first_day(self) -> datetime.date:
        return datetime.date.fromisoformat(self.start)

    def level_ticks(self, tick: float) -> int:
        """Instrument ticks between adjacent book levels.

        >>> SynthConfig().level_ticks(0.01), SynthConfig(level_bp=0).level_ticks(0.01)
        (84, 1)
        """
        return max(1, round(self.level_bp * 1e-4 * self.start_price / tick))


PRESETS: dict[str, dict[str, object]] = {
    "realistic": {},
    "micro": {"level_bp": 0.0, "regimes": MICRO_REGIMES},
}


def preset(name: str, **overrides: object) -> SynthConfig:
    """A named market (``realistic``: the default; ``micro``: tick-scale moves) with overrides.

    >>> preset("micro", days=2).level_bp, preset("realistic").regimes[1].drift_bp
    (0.0, 0.1)
    """
    if name not in PRESETS:
        raise ValueError(f"preset: {name!r} not in {sorted(PRESETS)}")
    return SynthConfig(**{**PRESETS[name], **overrides})  # type: ignore[arg-type]


class RegimeLabels(NamedTuple):
    """Ground-truth regimes of one day as step changes: ``regime[i]`` holds from ``ts_event[i]``."""

    ts_event: np.ndarray
    regime: np.ndarray
    names: tuple[str, ...] = ()

    def regime_at(self, ts: np.ndarray | int) -> np.ndarray:
        """Regime (int8) in force at each timestamp; raises before the first label.

        >>> RegimeLabels(np.array([0, 10]), np.array([2, 0], dtype=np.int8)).regime_at(
        ...     np.array([0, 9, 10, 99])).tolist()
        [2, 2, 0, 0]
        """
        t = np.asarray(ts, dtype=np.int64)
        idx = np.searchsorted(self.ts_event, t, side="right") - 1
        if (idx < 0).any():
            raise ValueError(f"timestamp {int(t[idx < 0].min())} precedes the first label")
        return self.regime[idx]


@dataclass(frozen=True)
class SynthDay:
    """One generated UTC day: events and their ground-truth regimes."""

    day: datetime.date
    events: MarketEvents
    labels: RegimeLabels
    messages: int
    regime_seconds: dict[str, float] = field(default_factory=dict)


# -- regime chain ------------------------------------------------------------------------------


def regime_segments(
    config: SynthConfig, total_steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of the hidden chain covering ``total_steps``: (start step, regime, drift sign).

    The drift sign (+1/-1) is drawn per segment and is 0 for regimes without drift.
    """
    k = len(config.regimes)
    trans = np.asarray(config.transitions, dtype=np.float64)
    steps_per_s = 1000.0 / config.step_ms
    starts, regs, dirs = [], [], []
    pos, r = 0, int(rng.integers(k))
    while pos < total_steps:
        p = config.regimes[r]
        dur_s = config.min_segment_s + rng.exponential(p.mean_minutes * 60 - config.min_segment_s)
        sign = 1 if rng.random() < 0.5 else -1
        starts.append(pos)
        regs.append(r)
        dirs.append(sign if p.drift_bp > 0 or p.sign_bias > 0 else 0)
        pos += max(1, round(dur_s * steps_per_s))
        r = int(rng.choice(k, p=trans[r]))
    return (
        np.asarray(starts, dtype=np.int64),
        np.asarray(regs, dtype=np.int8),
        np.asarray(dirs, dtype=np.int8),
    )


# -- one day -----------------------------------------------------------------------------------


def _ranges(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-row ``counts``: (row index repeated, 0..count-1 within the row)."""
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    within = np.arange(len(rows)) - np.repeat(starts, counts)
    return rows, within


@dataclass
class _State:
    """What carries over from one day to the next."""

    walk_bp: float = 0.0
    dev_bp: float = 0.0
    sign: int = 1
    trade_id: int = 1
    sequence: int = 1


class _Events:
    """Column lists of one day's deltas before sorting into message order."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        msg: np.ndarray,
        group: int,
        side: np.ndarray | int,
        action: int,
        price: np.ndarray,
        units: np.ndarray,
        trade_factor: np.ndarray | None = None,
    ) -> None:
        n = len(msg)
        self.parts.append(
            (
                msg.astype(np.int64),
                np.full(n, group, dtype=np.int8),
                np.broadcast_to(np.asarray(side, dtype=np.uint8), (n,)).copy(),
                np.full(n, action, dtype=np.uint8),
                price.astype(np.int64),
                units.astype(np.int64),
                np.zeros(n) if trade_factor is None else trade_factor.astype(np.float64),
            )
        )

    def columns(self) -> list[np.ndarray]:
        return [np.concatenate(c) for c in zip(*self.parts, strict=True)]


def _simulate_day(
    config: SynthConfig,
    day_index: int,
    segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    state: _State,
    tick: float,
    step: float,
    price_precision: int,
    size_precision: int,
) -> SynthDay:
    cfg, L = config, config.levels
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1, day_index]))
    n_steps, dt = cfg.steps_per_day, cfg.step_ms / 1000.0
    g0 = day_index * n_steps
    seg_starts, seg_regs, seg_dirs = segments
    regs = cfg.regimes
    lt = cfg.level_ticks(tick)
    level_price = lt * tick

    def per_regime(attr: str) -> np.ndarray:
        return np.asarray([getattr(r, attr) or 0.0 for r in regs], dtype=np.float64)

    msg_rate = per_regime("msg_rate")
    p_active = msg_rate * dt

    # which steps carry a message
    step_seg = np.searchsorted(seg_starts, g0 + np.arange(n_steps), side="right") - 1
    active = rng.random(n_steps) < p_active[seg_regs[step_seg]]
    active[0] = True
    k = np.flatnonzero(active)
    m_count = len(k)
    seg = step_seg[k]
    reg = seg_regs[seg].astype(np.int64)
    drift_dir = seg_dirs[seg].astype(np.float64)

    # fair value per message (log-price in bp from the start): one vectorised block per segment
    eps = rng.standard_normal((2, m_count))
    y = np.empty(m_count)
    run_starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    run_ends = np.r_[run_starts[1:], m_count]
    walk, dev = state.walk_bp, state.dev_bp
    for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        p = regs[int(reg[a])]
        root_dt = 1.0 / math.sqrt(p.msg_rate)
        mu = p.drift_bp * float(drift_dir[a]) / p.msg_rate
        if not (p.half_life_s and p.noise_bp > 0):
            walk, dev = walk + dev, 0.0  # no mean reversion here: the deviation stays in price
        rw = walk + np.cumsum(mu + p.vol_bp * root_dt * eps[0, a:b])
        if p.half_life_s and p.noise_bp > 0:
            phi = 0.5 ** (1.0 / (p.half_life_s * p.msg_rate))
            ou = lfilter([p.noise_bp * root_dt], [1.0, -phi], eps[1, a:b], zi=[phi * dev])[0]
            dev = float(ou[-1])
            y[a:b] = rw + ou
        else:
            y[a:b] = rw
        walk = float(rw[-1])
    state.walk_bp, state.dev_bp = walk, dev
    x = (config.start_price / level_price) * np.exp(y * 1e-4)

    # spread: redrawn with a per-regime probability, held otherwise
    change = rng.random(m_count) < per_regime("spread_change")[reg]
    change[run_starts] = True
    draws = 1 + rng.poisson(per_regime("spread_extra")[reg])
    spread = draws[np.maximum.accumulate(np.where(change, np.arange(m_count), 0))]
    bid = np.floor(x - spread / 2.0).astype(np.int64)
    ask = bid + spread
    if bid.min() - L < 1:
        raise ValueError(
            f"SynthConfig.start_price: price path fell below {L} levels on day {day_index}; "
            "raise start_price"
        )

    # level sizes (integer units of the step) for fresh levels
    depth, tilt = per_regime("depth"), per_regime("depth_tilt")
    profile = 0.5 + 0.1 * np.arange(L)

    def fresh_units(msg: np.ndarray, side: np.ndarray | int, level: np.ndarray) -> np.ndarray:
        r = reg[msg]
        s = np.where(np.asarray(side) == BUY, 1.0, -1.0)
        mean = depth[r] * profile[level] * (1.0 + tilt[r] * drift_dir[msg] * s)
        size = rng.gamma(2.0, 1.0, len(msg)) * mean / 2.0
        return np.maximum(1, np.round(size / step)).astype(np.int64)

    ev = _Events()
    # message 0: CLEAR + snapshot
    lv = np.arange(L)
    m0 = np.zeros(L, dtype=np.int64)
    ev.add(np.zeros(1, dtype=np.int64), 0, 0, CLEAR, np.zeros(1), np.zeros(1))
    ev.add(m0, 0, BUY, ADD, bid[0] - lv, fresh_units(m0, BUY, lv))
    ev.add(m0, 0, SELL, ADD, ask[0] + lv, fresh_units(m0, SELL, lv))

    # shifts of the ladders: deletes first (group 1), then adds (group 2)
    msgs = np.arange(1, m_count)
    for side, best in ((BUY, bid), (SELL, ask)):
        d = np.diff(best)
        n = np.minimum(np.abs(d), L)
        rows, i = _ranges(n)
        m, prev, new, up = msgs[rows], best[rows], best[rows + 1], d[rows] > 0
        if side == BUY:  # bids descend from the best
            del_p = np.where(up, prev - (L - 1) + i, prev - i)
            add_p = np.where(up, new - i, new - (L - 1) + i)
            add_lvl = new - add_p
        else:  # asks ascend from the best
            del_p = np.where(up, prev + i, prev + (L - 1) - i)
            add_p = np.where(up, new + (L - 1) - i, new + i)
            add_lvl = add_p - new
        ev.add(m, 1, side, DELETE, del_p, np.zeros(len(m)))
        ev.add(m, 2, side, ADD, add_p, fresh_units(m, side, add_lvl))

    # queue refreshes (group 3): at least one update per message
    refresh = per_regime("refresh")[reg[1:]]
    nb, na = rng.poisson(refresh), rng.poisson(refresh)
    empty = (nb + na) == 0
    coin = rng.random(len(empty)) < 0.5
    nb += empty & coin
    na += empty & ~coin
    for side, counts, best, sgn in ((BUY, nb, bid, -1), (SELL, na, ask, 1)):
        rows, _ = _ranges(counts)
        m = msgs[rows]
        level = (L * rng.random(len(m)) ** 2).astype(np.int64)
        ev.add(m, 3, side, UPDATE, best[m] + sgn * level, fresh_units(m, side, level))

    # trades (group 4): consume part of the best level on the passive side
    p_trade = per_regime("trade_rate")[reg[1:]] / msg_rate[reg[1:]]
    tm = msgs[rng.random(len(msgs)) < p_trade]
    t_reg = reg[tm]
    flips = rng.random(len(tm)) > per_regime("sign_stay")[t_reg]
    chain = state.sign * np.where(np.cumsum(flips) % 2 == 0, 1, -1)
    follow = rng.random(len(tm)) < per_regime("sign_bias")[t_reg]
    sign = np.where(follow & (drift_dir[tm] != 0), drift_dir[tm], chain).astype(np.int64)
    if len(tm):
        state.sign = int(chain[-1])
    factor = rng.uniform(0.15, 0.85, len(tm))
    t_side = np.where(sign > 0, SELL, BUY)  # a buyer lifts the ask
    t_price = np.where(sign > 0, ask[tm], bid[tm])
    ev.add(tm, 4, t_side, UPDATE, t_price, np.zeros(len(tm)), factor)

    msg, group, side_c, action, price_t, units, tfac = ev.columns()
    order = np.lexsort((np.arange(len(msg)), group, msg))
    msg, group, side_c, action = msg[order], group[order], side_c[order], action[order]
    price_t, units, tfac = price_t[order], units[order], tfac[order]

    # sizes after trades: per (side, price) run since the last fresh size, multiply factors
    is_trade = group == 4
    live = np.flatnonzero((action == ADD) | (action == UPDATE))
    o = live[np.lexsort((live, price_t[live], side_c[live]))]
    fresh = ~is_trade[o]
    grp = np.cumsum(fresh) - 1
    fresh_pos = np.flatnonzero(fresh)
    logf = np.cumsum(np.where(is_trade[o], np.log(np.where(is_trade[o], tfac[o], 1.0)), 0.0))
    base_units = units[o][fresh_pos][grp]
    run_logf = logf - logf[fresh_pos][grp]
    new_units = np.where(
        fresh, units[o], np.maximum(1, np.round(base_units * np.exp(run_logf)))
    ).astype(np.int64)
    prev_units = np.r_[0, new_units[:-1]]
    units[o] = new_units
    consumed = np.zeros(len(msg), dtype=np.int64)
    consumed[o] = np.where(fresh, 0, prev_units - new_units)
    keep = ~is_trade | (consumed > 0)
    t_idx = np.flatnonzero(is_trade & keep)

    # timestamps: a message at its step start plus a random offset; receive after a latency
    step_ns = cfg.step_ms * 1_000_000
    day0 = cfg.first_day() + datetime.timedelta(days=day_index)
    day_start = int(datetime.datetime.combine(day0, datetime.time(), datetime.UTC).timestamp()) * NS
    offset = rng.integers(0, step_ns, m_count)
    offset[0] = 0
    ts_msg = day_start + k.astype(np.int64) * step_ns + offset
    lat_lo, lat_hi = (int(v * 1_000_000) for v in cfg.latency_ms)
    ts_recv = np.maximum.accumulate(ts_msg + rng.integers(lat_lo, lat_hi + 1, m_count))

    # trades, taken from the sorted arrays before dropping consumption-free ones
    n_t = len(t_idx)
    trades = TradeColumns(
        ts_event=ts_msg[msg[t_idx]],
        ts_init=ts_recv[msg[t_idx]],
        price=np.round(price_t[t_idx] * lt * tick, price_precision),
        size=np.round(consumed[t_idx] * step, size_precision),
        aggressor=np.where(side_c[t_idx] == SELL, BUYER, SELLER).astype(np.uint8),
        trade_id=(state.trade_id + np.arange(n_t)).astype(np.int64),
    )

    # deltas
    msg, side_c, action = msg[keep], side_c[keep], action[keep]
    price_t, units = price_t[keep], units[keep]
    n_d = len(msg)
    flags = np.zeros(n_d, dtype=np.uint8)
    flags[np.r_[msg[1:] != msg[:-1], True]] |= F_LAST
    flags[msg == 0] |= F_SNAPSHOT
    is_clear = action == CLEAR
    deltas = DeltaColumns(
        ts_event=ts_msg[msg],
        ts_init=ts_recv[msg],
        action=action,
        side=side_c,
        price=np.where(is_clear, 0.0, np.round(price_t * lt * tick, price_precision)),
        size=np.where(is_clear | (action == DELETE), 0.0, np.round(units * step, size_precision)),
        flags=flags,
        sequence=(state.sequence + np.arange(n_d)).astype(np.uint64),
    )
    state.sequence += n_d
    state.trade_id += n_t

    # labels: segments covering the day
    first = int(step_seg[0])
    last = int(step_seg[-1])
    lab_steps = np.maximum(seg_starts[first : last + 1] - g0, 0)
    labels = RegimeLabels(
        ts_event=(day_start + lab_steps * step_ns).astype(np.int64),
        regime=seg_regs[first : last + 1].astype(np.int8),
        names=cfg.regime_names,
    )
    counts = np.bincount(seg_regs[step_seg], minlength=len(regs)) * dt
    return SynthDay(
        day=day0,
        events=MarketEvents(deltas, trades, QuoteColumns.empty()),
        labels=labels,
        messages=m_count,
        regime_seconds={r.name: float(c) for r, c in zip(regs, counts, strict=True)},
    )


# -- public API --------------------------------------------------------------------------------


def _grid(instrument: Instrument) -> tuple[float, float, int, int]:
    return (
        float(instrument.price_increment),
        float(instrument.size_increment),
        int(instrument.price_precision),
        int(instrument.size_precision),
    )


def synth_instrument(config: SynthConfig) -> Instrument:
    """The real Binance instrument (bundled exchangeInfo) the synthetic market trades."""
    from training.data.instruments import binance_instrument

    return binance_instrument(config.symbol, config.market)


def generate(config: SynthConfig, instrument: Instrument | None = None) -> Iterator[SynthDay]:
    """Yield one :class:`SynthDay` per configured day, in order (lazily: one day in memory)."""
    inst = synth_instrument(config) if instrument is None else instrument
    tick, step, pp, sp = _grid(inst)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    segments = regime_segments(config, config.days * config.steps_per_day, rng)
    state = _State()
    for d in range(config.days):
        yield _simulate_day(config, d, segments, state, tick, step, pp, sp)


def write_labels(path: Path, labels: RegimeLabels) -> None:
    names = np.asarray(labels.names, dtype=object)[labels.regime.astype(np.int64)]
    table = pa.table(
        {
            "ts_event": pa.array(labels.ts_event, type=pa.int64()),
            "regime": pa.array(labels.regime, type=pa.int8()),
            "regime_name": pa.array(names.tolist(), type=pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def load_labels(
    catalog: MarketCatalog | str | Path, symbol: str, day: datetime.date
) -> RegimeLabels:
    """Ground-truth regimes of one synthetic symbol-day (see the module doc for the layout)."""
    from training.data.catalog import MarketCatalog

    cat = catalog if isinstance(catalog, MarketCatalog) else MarketCatalog(catalog)
    found = [sd for sd in cat.symbol_days(symbol) if sd.day == day]
    if not found:
        raise FileNotFoundError(f"no partition {symbol} {day} in catalog {cat.root}")
    path = cat.labels_path(found[0])
    if not path.is_file():
        raise FileNotFoundError(f"no regime labels for {found[0]} at {path}")
    t = pq.read_table(path)
    regime = t.column("regime").to_numpy().astype(np.int8)
    names = t.column("regime_name").to_pylist()
    by_code = {int(c): n for c, n in zip(regime.tolist(), names, strict=True)}
    k = max(by_code) + 1 if by_code else 0
    return RegimeLabels(
        ts_event=t.column("ts_event").to_numpy().astype(np.int64),
        regime=regime,
        names=tuple(by_code.get(i, f"regime{i}") for i in range(k)),
    )


def synth(
    config: SynthConfig,
    catalog_root: str | Path,
    name: str | None = None,
    progress: bool = False,
) -> ImportReport:
    """Generate ``config.days`` days into the catalog at ``catalog_root``, with labels.

    Each day is written atomically by ``MarketCatalog.write`` and its labels beside it (temp
    file + rename); the report goes to ``CATALOG/reports/<name>.json`` (``report.extra`` holds
    the config, per-regime seconds, message count and label paths).
    """
    from tqdm import tqdm

    from training.data.catalog import MarketCatalog, SymbolDay
    from training.data.report import ImportReport

    t0 = time.perf_counter()
    cat = MarketCatalog(catalog_root)
    inst = synth_instrument(config)
    name = name or f"synth-{config.symbol}-{config.market}-seed{config.seed}"
    report = ImportReport(name=name, sources=[f"synth:seed={config.seed}"])
    report.instrument_ids = [inst.id.value]
    regime_s = dict.fromkeys(config.regime_names, 0.0)
    label_paths: list[str] = []
    gen_s = write_s = 0.0
    messages = 0
    days = generate(config, inst)
    for _ in tqdm(range(config.days), desc="synth days", unit="day", disable=not progress):
        g = time.perf_counter()
        day = next(days)
        w = time.perf_counter()
        gen_s += w - g
        written = cat.write(inst, day.events)
        sd = SymbolDay(inst.id.value, day.day)
        if written != [sd]:
            raise RuntimeError(f"expected partition {sd}, catalog wrote {written}")
        path = cat.labels_path(sd)
        write_labels(path, day.labels)
        write_s += time.perf_counter() - w
        ev = day.events
        report.deltas += len(ev.deltas)
        report.trades += len(ev.trades)
        report.events += len(ev)
        report.add_ts(int(ev.deltas.ts_event[0]))
        report.add_ts(int(max(ev.deltas.ts_event[-1], ev.trades.ts_event.max(initial=0))))
        report.symbol_days.append(str(sd))
        label_paths.append(str(path.relative_to(cat.root)))
        messages += day.messages
        for k, v in day.regime_seconds.items():
            regime_s[k] += v
    report.finish(time.perf_counter() - t0)
    cfg = asdict(config)
    cfg["regimes"] = [asdict(r) for r in config.regimes]
    report.extra = {
        "config": cfg,
        "messages": messages,
        "regime_seconds": regime_s,
        "labels": label_paths,
        "generate_s": round(gen_s, 3),
        "write_s": round(write_s, 3),
    }
    cat.write_report(name, report)
    return report


@click.command(name="synth")
@click.option("--symbol", default="BTCUSDT", show_default=True, help="Binance symbol.")
@click.option("--market", type=click.Choice(["spot", "usdm"]), default="spot", show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", default="2024-01-01", show_default=True, help="First UTC day.")
@click.option(
    "--day-seconds",
    type=click.IntRange(1, 86_400),
    default=86_400,
    show_default=True,
    help="Simulate only the first N seconds of each day (quick runs).",
)
@click.option("--start-price", type=float, default=42_000.0, show_default=True)
@click.option(
    "--preset",
    "preset_name",
    type=click.Choice(sorted(PRESETS)),
    default="realistic",
    show_default=True,
    help="realistic: bp-scale moves calibrated on real BTCUSDT; micro: tick-scale moves.",
)
@click.option("--name", default=None, help="Report name (default synth-SYMBOL-MARKET-seedS).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
def cli(
    symbol: str,
    market: Literal["spot", "usdm"],
    days: int,
    seed: int,
    start: str,
    day_seconds: int,
    start_price: float,
    preset_name: str,
    name: str | None,
    out: Path,
) -> None:
    """Generate a synthetic regime market (L2 deltas + trades + ground-truth labels) into OUT."""
    try:
        config = preset(
            preset_name,
            symbol=symbol,
            market=market,
            days=days,
            seed=seed,
            start=start,
            day_seconds=day_seconds,
            start_price=start_price,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    report = synth(config, out, name=name, progress=True)
    click.echo(str(Path(out).resolve() / "reports" / f"{report.name}.json"))
