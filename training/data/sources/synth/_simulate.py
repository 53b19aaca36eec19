"""The synthetic market's simulator: the hidden regime chain and one UTC day of L2 deltas + trades.

Everything is vectorised with numpy over *messages* (a per-``step_ms`` activity grid), with a
Python loop only over regime segments (a few hundred a day). See the package doc for the model.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from dataclasses import field

import numpy as np
from scipy.signal import lfilter

from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import BUYER
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import SELL
from training.data.columns import SELLER
from training.data.columns import UPDATE
from training.data.columns import DeltaColumns
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.sources.synth.labels import RegimeLabels
from training.data.sources.synth.presets import SynthConfig
from training.errors import BadInputError

__all__ = ["DayState", "SynthDay", "regime_segments", "simulate_day"]

NS = 1_000_000_000


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
class DayState:
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


def simulate_day(
    config: SynthConfig,
    day_index: int,
    segments: tuple[np.ndarray, np.ndarray, np.ndarray],
    state: DayState,
    tick: float,
    step: float,
    price_precision: int,
    size_precision: int,
) -> SynthDay:
    """Day ``day_index`` of the chain ``segments`` on the instrument grid (``tick``, ``step``);
    ``state`` carries the price walk, trade sign and ids into the next day."""
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
        raise BadInputError(
            f"SynthConfig.start_price: price path fell below {L} levels on day {day_index}; "
            "raise start_price",
            field="start_price",
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
