"""FEATURES_V1: the one streaming feature engine used online (Nautilus actor) and offline (catalog).

Numpy only. The engine keeps its own L2 book (price -> size per side), samples it on an
exchange-time clock and standardises every feature causally (rolling mean/std of PREVIOUS samples).

Clock. Sample ``k`` is stamped ``t_k = k * interval`` and carries the state after every event
processed before the first event whose ``ts_event >= t_k``; it is emitted when that event arrives
(before the event is applied), so live and backtest behave the same and no timer is needed.
Events are processed in delivery order (Nautilus: ``ts_init``); when delivery order and
``ts_event`` disagree, a late event counts towards the next sample. Crossing several boundaries
at once emits each of them (zero returns); crossing more than ``max_gap_intervals`` starts a new
session instead (warm-up restarts, ``session`` increments, no stale samples are emitted).

Book-derived features hold their last valid value while the book is empty, one-sided or crossed
(``book_ok`` is then False and the return is 0). Nothing non-finite ever leaves the engine.
Perpetual-only features: ``time_to_funding`` (seconds to the next 00/08/16 UTC funding divided by
8 h, in (0, 1]) and ``funding_rate_bp`` (last rate fed through :meth:`FeatureEngine.on_funding`,
0.0 until known; offline from the catalog's funding updates, which importers keep, online from
Nautilus ``FundingRateUpdate``s).

>>> from training.data.columns import ADD, BUY, BUYER, SELL
>>> from training.features.schema import schema_for
>>> eng = FeatureEngine(schema_for("spot", min_periods_s=2.0))
>>> out = eng.on_deltas(0, [ADD, ADD], [BUY, SELL], [100.0, 100.02], [1.0, 3.0])
>>> out = eng.on_trade(1_500_000_000, 100.01, 0.5, BUYER)
>>> [round(s.mid, 2) for s in out], round(out[0].spread_bp, 4), out[0].ready
([100.01], 1.9998, False)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from bisect import insort
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from training.data.columns import BUY
from training.data.columns import BUYER
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import SELL
from training.data.columns import SELLER
from training.data.columns import DeltaColumns
from training.data.columns import TradeColumns
from training.features._rolling import Standardiser
from training.features._rolling import ret_stats
from training.features.schema import FeatureSchema

__all__ = ["SAMPLE_SCALARS", "BookTop", "FeatureEngine", "FeatureSample", "samples_to_columns"]

_NS = 1_000_000_000
_FUNDING_PERIOD_NS = 8 * 3600 * _NS


class FeatureSample(NamedTuple):
    """One sample: raw and standardised vectors plus the book values the strategy and labels use.

    ``ready`` is False during a session's warm-up (``z`` is then all 0.0); ``book_ok`` is False
    when the book was empty, one-sided or crossed at the sample (book values are then held).
    """

    ts_ns: int
    raw: np.ndarray
    z: np.ndarray
    ready: bool
    session: int
    book_ok: bool
    mid: float
    spread_bp: float
    best_bid: float
    best_ask: float
    microprice: float
    vwap: float
    realised_vol_bp: float


SAMPLE_SCALARS: tuple[str, ...] = FeatureSample._fields[3:]


class BookTop(NamedTuple):
    """The top of a usable book, named as in :class:`FeatureSample`."""

    mid: float
    spread_bp: float
    best_bid: float
    best_ask: float
    microprice: float

    @classmethod
    def of(cls, bid: float, bid_qty: float, ask: float, ask_qty: float) -> BookTop:
        """The top from the best levels; the one place mid, spread and microprice are defined.

        >>> top = BookTop.of(100.0, 3.0, 100.02, 1.0)  # 3 bid vs 1 ask: the micro leans up
        >>> round(top.mid, 6), round(top.spread_bp, 4), round(top.microprice, 6)
        (100.01, 1.9998, 100.015)
        """
        mid = 0.5 * (bid + ask)
        micro = (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)
        return cls(mid, (ask - bid) / mid * 1e4, bid, ask, micro)


def samples_to_columns(samples: list[FeatureSample], n_features: int) -> dict[str, np.ndarray]:
    """Stack samples into columns: ``ts``, ``raw`` (n, F), ``z`` (n, F) and one per scalar."""
    n = len(samples)
    out: dict[str, np.ndarray] = {
        "ts": np.fromiter((s.ts_ns for s in samples), dtype=np.int64, count=n),
        "raw": np.stack([s.raw for s in samples]) if n else np.zeros((0, n_features)),
        "z": np.stack([s.z for s in samples]) if n else np.zeros((0, n_features)),
    }
    for i, name in enumerate(SAMPLE_SCALARS, start=3):
        dtype = bool if name in ("ready", "book_ok") else np.int64 if name == "session" else float
        out[name] = np.fromiter((s[i] for s in samples), dtype=dtype, count=n)
    return out


class FeatureEngine:
    """Event-by-event FEATURES_V1: feed book messages and trades, get samples back.

    Per-message entry points (``on_deltas``, ``on_trade``, ``on_funding``) serve the Nautilus
    actor; ``run`` is the batch entry point over numpy columns for offline extraction. Both go
    through the same ``_advance`` / ``_apply_deltas`` / ``_add_trades`` code.
    """

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self._interval = schema.interval_ns
        self._nf = len(schema.names)
        self._perp = schema.market == "perp"
        self._top_n = schema.top_n
        self._rv_w = schema.samples(schema.rv_window_s)
        self._ac_w = schema.samples(schema.autocorr_window_s)
        self._tw = schema.samples(schema.trade_window_s)
        self._vw = schema.samples(schema.vwap_window_s)
        self._ofi_a = 0.5 ** (schema.sample_interval_s / schema.ofi_halflife_s)
        self._warm = schema.warmup_samples
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_px: list[float] = []  # sorted ascending, same keys as bids
        self._ask_px: list[float] = []
        self.next_t: int | None = None
        self.session = 0
        self.resets = 0
        self.nonfinite = 0
        self.samples_emitted = 0
        self._funding_bp = 0.0
        self._reset_session()

    # ---- session state -------------------------------------------------------------------
    def _reset_session(self) -> None:
        self._n = 0
        self._rets: deque[float] = deque(maxlen=max(self._rv_w, self._ac_w))
        self._tbuckets: deque[tuple[int, int, float, float]] = deque(maxlen=self._tw)
        self._vbuckets: deque[tuple[float, float, int]] = deque()
        self._v_pq = self._v_q = 0.0
        self._v_n = 0
        self._nb = self._ns = self._cnt = 0
        self._bn = self._sn = self._pq = self._vol = 0.0
        self._ofi_e = self._ofi_d = 0.0
        self._prev: tuple[float, float, float, float, float] | None = None
        self._hold = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # mid spread bid ask micro imb micro_bp
        self._std = Standardiser(
            self.schema.samples(self.schema.standardise_window_s),
            self._nf,
            self.schema.std_floor,
            self.schema.z_clip,
        )

    def top(self) -> BookTop | None:
        """The book's top as it is now (between samples too); ``None`` when it is empty,
        one-sided or crossed."""
        if not (self._bid_px and self._ask_px):
            return None
        bid, ask = self._bid_px[-1], self._ask_px[0]
        if not 0.0 < bid < ask:
            return None
        top = BookTop.of(bid, self.bids[bid], ask, self.asks[ask])
        return top if all(map(math.isfinite, top)) else None

    # ---- per-message entry points (online) -----------------------------------------------
    def on_deltas(
        self,
        ts_event: int,
        actions: Sequence[int],
        sides: Sequence[int],
        prices: Sequence[float],
        sizes: Sequence[float],
    ) -> list[FeatureSample]:
        """One exchange message of L2 deltas (codes as in ``training.data.columns``)."""
        out = self._advance(ts_event) if self.next_t is None or ts_event >= self.next_t else []
        self._apply_deltas(actions, sides, prices, sizes)
        return out

    def on_trade(
        self, ts_event: int, price: float, size: float, aggressor: int
    ) -> list[FeatureSample]:
        """One trade; ``aggressor`` BUYER (1) / SELLER (2) / 0 unknown (counts for VWAP only)."""
        out = self._advance(ts_event) if self.next_t is None or ts_event >= self.next_t else []
        self._add_trades((price,), (size,), (aggressor,))
        return out

    def on_funding(self, ts_event: int, rate: float) -> list[FeatureSample]:
        """Latest funding rate (fraction per period, e.g. 0.0001); perps only use it."""
        out = self._advance(ts_event) if self.next_t is None or ts_event >= self.next_t else []
        if math.isfinite(rate):
            self._funding_bp = rate * 1e4
        return out

    # ---- batch entry point (offline) -----------------------------------------------------
    def run(self, deltas: DeltaColumns, trades: TradeColumns) -> list[FeatureSample]:
        """Process columns as Nautilus delivers them; returns the samples emitted.

        Delivery order is ``ts_init`` (stable; on ties deltas before trades, the order they are
        given to a ``BacktestEngine``); deltas are delivered per exchange message at their
        ``F_LAST`` delta (``buffer_deltas=True``); trailing deltas without ``F_LAST`` are never
        delivered. Book and trade state do not interact between samples, so between two clock
        triggers all deltas and all trades are applied as two runs of the same inner code.
        """
        nt = len(trades)
        last_flags = np.flatnonzero(deltas.flags & F_LAST)
        nd = int(last_flags[-1]) + 1 if len(last_flags) else 0
        keys = np.concatenate([deltas.ts_init[:nd], trades.ts_init])
        order = np.argsort(keys, kind="stable")
        is_delta = order < nd
        d_seq = order[is_delta]
        t_seq = order[~is_delta] - nd
        # units = trades + F_LAST deltas, in delivery order
        d_is_last = (deltas.flags[d_seq] & F_LAST) != 0 if nd else np.zeros(0, bool)
        unit_mask = ~is_delta
        unit_mask[np.flatnonzero(is_delta)[d_is_last]] = True
        units = np.flatnonzero(unit_mask)
        # deltas / trades delivered after each merged position
        d_cum = np.zeros(len(order), np.int64)
        if nd:
            pos_last = np.flatnonzero(is_delta)[d_is_last]
            d_cum[pos_last] = np.flatnonzero(d_is_last) + 1
            d_cum = np.maximum.accumulate(d_cum)
        t_cum = np.cumsum(~is_delta)
        u_ts = np.empty(len(units), np.int64)
        u_is_trade = ~is_delta[units]
        u_ts[u_is_trade] = trades.ts_event[t_seq]
        if nd:
            u_ts[~u_is_trade] = deltas.ts_event[d_seq[d_is_last]]
        # which units advance the clock (vectorised replica of the check in on_deltas/on_trade)
        step = (u_ts // self._interval + 1) * self._interval
        before = np.maximum.accumulate(np.concatenate([[self.next_t or 0], step]))[:-1]
        trig = u_ts >= before
        if self.next_t is None and len(units):
            trig[0] = True
        d_before = np.concatenate([[0], d_cum[units]])[:-1]
        t_before = np.concatenate([[0], t_cum[units]])[:-1]

        d_act = deltas.action[d_seq].tolist()
        d_side = deltas.side[d_seq].tolist()
        d_px = deltas.price[d_seq].tolist()
        d_sz = deltas.size[d_seq].tolist()
        t_px = trades.price[t_seq].tolist()
        t_sz = trades.size[t_seq].tolist()
        t_ag = trades.aggressor[t_seq].tolist()
        out: list[FeatureSample] = []
        d0 = t0 = 0
        for ts, d1, t1 in zip(
            u_ts[trig].tolist(), d_before[trig].tolist(), t_before[trig].tolist(), strict=True
        ):
            if d1 > d0:
                self._apply_deltas(d_act[d0:d1], d_side[d0:d1], d_px[d0:d1], d_sz[d0:d1])
                d0 = d1
            if t1 > t0:
                self._add_trades(t_px[t0:t1], t_sz[t0:t1], t_ag[t0:t1])
                t0 = t1
            out.extend(self._advance(ts))
        d1 = int(d_cum[-1]) if len(order) else 0
        if d1 > d0:
            self._apply_deltas(d_act[d0:d1], d_side[d0:d1], d_px[d0:d1], d_sz[d0:d1])
        if nt > t0:
            self._add_trades(t_px[t0:], t_sz[t0:], t_ag[t0:])
        return out

    # ---- shared inner code -----------------------------------------------------------------
    def _apply_deltas(
        self,
        actions: Sequence[int],
        sides: Sequence[int],
        prices: Sequence[float],
        sizes: Sequence[float],
    ) -> None:
        bids = self.bids
        asks = self.asks
        bpx = self._bid_px
        apx = self._ask_px
        for a, s, p, q in zip(actions, sides, prices, sizes, strict=True):
            if a == CLEAR:
                bids.clear()
                asks.clear()
                bpx.clear()
                apx.clear()
            elif s == BUY:
                if a == DELETE or not q > 0.0:
                    if bids.pop(p, None) is not None:
                        del bpx[bisect_left(bpx, p)]
                elif p in bids:
                    bids[p] = q
                elif p - p == 0.0:  # a new finite level
                    insort(bpx, p)
                    bids[p] = q
            elif s == SELL:
                if a == DELETE or not q > 0.0:
                    if asks.pop(p, None) is not None:
                        del apx[bisect_left(apx, p)]
                elif p in asks:
                    asks[p] = q
                elif p - p == 0.0:
                    insort(apx, p)
                    asks[p] = q

    def _add_trades(
        self, prices: Sequence[float], sizes: Sequence[float], aggressors: Sequence[int]
    ) -> None:
        nb, ns, cnt = self._nb, self._ns, self._cnt
        bn, sn, pq, vol = self._bn, self._sn, self._pq, self._vol
        for p, q, a in zip(prices, sizes, aggressors, strict=True):
            v = p * q
            if a == BUYER:
                nb += 1
                bn += v
            elif a == SELLER:
                ns += 1
                sn += v
            cnt += 1
            pq += v
            vol += q
        self._nb, self._ns, self._cnt = nb, ns, cnt
        self._bn, self._sn, self._pq, self._vol = bn, sn, pq, vol

    def _advance(self, ts: int) -> list[FeatureSample]:
        """Emit every sample whose boundary ``ts`` has reached (caller checked ``ts >= next_t``)."""
        interval = self._interval
        if self.next_t is None:
            self.next_t = (ts // interval + 1) * interval
            return []
        n = (ts - self.next_t) // interval + 1
        if n > self.schema.max_gap_intervals:
            self.session += 1
            self.resets += 1
            self._reset_session()
            self.next_t = (ts // interval + 1) * interval
            return []
        out = []
        for _ in range(n):
            out.append(self._sample(self.next_t))
            self.next_t += interval
        return out

    def _sample(self, t: int) -> FeatureSample:
        top_n = self._top_n
        bid_px = self._bid_px[: -top_n - 1 : -1]
        ask_px = self._ask_px[:top_n]
        book_ok = bool(bid_px and ask_px) and 0.0 < bid_px[0] < ask_px[0]
        ret = 0.0
        ofi_e = 0.0
        if book_ok:
            bids, asks = self.bids, self.asks
            bid, ask = bid_px[0], ask_px[0]
            bq, aq = bids[bid], asks[ask]
            mid, spread_bp, _, _, micro = BookTop.of(bid, bq, ask, aq)
            sb = sum([bids[p] for p in bid_px])
            sa = sum([asks[p] for p in ask_px])
            imb = (sb - sa) / (sb + sa)
            micro_bp = (micro - mid) / mid * 1e4
            book_ok = all(map(math.isfinite, (mid, spread_bp, micro, imb, micro_bp)))
        if book_ok:
            if self._prev is not None:
                pmid, pbid, pbq, pask, paq = self._prev
                ret = math.log(mid / pmid) * 1e4
                ofi_e = (
                    (bq if bid >= pbid else 0.0)
                    - (pbq if bid <= pbid else 0.0)
                    - (aq if ask <= pask else 0.0)
                    + (paq if ask >= pask else 0.0)
                )
            self._prev = (mid, bid, bq, ask, aq)
            self._hold = (mid, spread_bp, bid, ask, micro, imb, micro_bp)
            a = self._ofi_a
            self._ofi_e = a * self._ofi_e + (1.0 - a) * ofi_e
            self._ofi_d = a * self._ofi_d + (1.0 - a) * 0.5 * (bq + aq)
        else:
            mid, spread_bp, bid, ask, micro, imb, micro_bp = self._hold
            self._ofi_e *= self._ofi_a
        ofi = self._ofi_e / self._ofi_d if self._ofi_d > 0.0 else 0.0

        rets = self._rets
        rets.append(ret)
        rv, ac1, ac2 = ret_stats(rets, self._rv_w, self._ac_w)

        # trade buckets: close the current interval
        self._tbuckets.append((self._nb, self._ns, self._bn, self._sn))
        vb = self._vbuckets
        vb.append((self._pq, self._vol, self._cnt))
        self._v_pq += self._pq
        self._v_q += self._vol
        self._v_n += self._cnt
        if len(vb) > self._vw:
            opq, oq, on = vb.popleft()
            self._v_pq -= opq
            self._v_q -= oq
            self._v_n -= on
        if self._v_n == 0:
            self._v_pq = self._v_q = 0.0
        self._nb = self._ns = self._cnt = 0
        self._bn = self._sn = self._pq = self._vol = 0.0
        nb = ns = 0
        bn = sn = 0.0
        for b in self._tbuckets:
            nb += b[0]
            ns += b[1]
            bn += b[2]
            sn += b[3]
        tsi = (nb - ns) / (nb + ns) if nb + ns else 0.0
        vtd = (bn - sn) / (bn + sn) if bn + sn > 0.0 else 0.0
        vwap = self._v_pq / self._v_q if self._v_n and self._v_q > 0.0 else mid

        vals = [ret, spread_bp, imb, micro_bp, rv, tsi, ofi, ac1, ac2, vtd]
        if self._perp:
            to_funding = _FUNDING_PERIOD_NS - t % _FUNDING_PERIOD_NS
            vals.append(to_funding / _FUNDING_PERIOD_NS)
            vals.append(self._funding_bp)
        raw = np.array(vals, dtype=np.float64)
        finite = np.isfinite(raw)
        if not finite.all():
            self.nonfinite += 1
            raw[~finite] = 0.0
        ready = self._n >= self._warm
        z = self._std.z(raw) if ready else np.zeros(self._nf)
        self._std.push(raw)
        self._n += 1
        self.samples_emitted += 1
        scalars = [mid, spread_bp, bid, ask, micro, vwap, rv]
        if not all(map(math.isfinite, scalars)):
            self.nonfinite += 1
            scalars = [v if math.isfinite(v) else 0.0 for v in scalars]
        return FeatureSample(t, raw, z, ready, self.session, book_ok, *scalars)
