"""The one cost model: fees per instrument, the round trip by execution style, perp funding.

Labels, the trade simulator, the sweep objective, ``nhmm train`` metrics and the backtest
summary all price a trade through :class:`CostModel`, so they cannot disagree on what a round
trip costs. Fees are basis points of the traded notional:

- a *passive* round trip (post-only entry and post-only exit, what the strategy does) pays
  ``2 x maker``;
- an *aggressive exit* (passive entry, market exit) pays ``maker + taker`` and crosses half the
  spread;
- a fully *aggressive* round trip pays ``2 x taker`` and the whole spread.

Perpetuals pay funding at every funding time (00/08/16 UTC) a position spans: a long pays the
rate, a short receives it. The rate settled at a funding time comes from the data where the
catalog has it (:meth:`CostModel.with_funding` over the period's ``FundingRateUpdate``s, the
rule in :func:`settled_funding`), else the configured ``funding_bps`` (Binance's baseline,
1 bp per 8 h, by default for perps).

>>> spot = CostModel.tier("spot")
>>> spot.round_trip_bps(), spot.round_trip_bps("aggressive_exit", spread_bp=2.0)
(20.0, 21.0)
>>> usdm = CostModel.tier("usdm")
>>> usdm.round_trip_bps(), usdm.funding_bps_between(1, 0, 9 * 3600 * 10**9)
(4.0, 1.0)
>>> usdm.with_funding([_Update(10, 0.0003)]).funding_bps_between(1, 0, 9 * 3600 * 10**9)
3.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from decimal import Decimal
from typing import Any
from typing import Literal
from typing import NamedTuple

import numpy as np

from training.errors import BadInputError

__all__ = [
    "EXEC_STYLES",
    "FEE_TIERS",
    "FUNDING_PERIOD_NS",
    "CostModel",
    "ExecStyle",
    "settled_funding",
]

ExecStyle = Literal["passive", "aggressive_exit", "aggressive"]
#: Execution styles of a round trip, cheapest first.
EXEC_STYLES: tuple[str, ...] = ("passive", "aggressive_exit", "aggressive")
#: Binance default fee tiers (maker bp, taker bp): spot 0.1 %/0.1 % (0.075 % paying in BNB),
#: USD-M futures 0.02 %/0.05 % (0.018 %/0.045 % with BNB).
FEE_TIERS: dict[str, tuple[float, float]] = {
    "spot": (10.0, 10.0),
    "spot-bnb": (7.5, 7.5),
    "usdm": (2.0, 5.0),
    "usdm-bnb": (1.8, 4.5),
}
#: Binance USD-M funding every 8 hours, at 00:00, 08:00 and 16:00 UTC.
FUNDING_PERIOD_NS = 8 * 3600 * 1_000_000_000
#: Binance's baseline funding rate (interest 0.01 % per 8 h) used when the data has none.
DEFAULT_FUNDING_BPS = 1.0


class _Update(NamedTuple):
    """The fields :func:`settled_funding` reads of a Nautilus ``FundingRateUpdate``."""

    ts_event: int
    rate: float
    interval: int | None = None


#: How far from its funding time a settlement record may be stamped (Binance's public files
#: carry ``calc_time``s a few milliseconds late, e.g. ``1723132800001``).
_RECORD_SLACK_NS = 60 * 1_000_000_000


def settled_funding(updates: Iterable[Any]) -> tuple[tuple[int, float], ...]:
    """``(funding time ns, rate bp)`` per funding time the updates cover: the rate in force at
    that time: a settlement record stamped then, give or take a minute (Binance's public
    ``fundingRate`` rows, which carry an ``interval``), else the last estimate stamped in the
    period before it (a recording's ``@markPrice`` ``r``, Tardis' ``funding_rate``: the running
    estimate of the next settlement). A funding time with neither is left to the configured
    rate.

    >>> h = 3600 * 10**9
    >>> settled_funding([_Update(7 * h, 0.0002), _Update(9 * h, -0.0001), _Update(16 * h, 5e-4, 480)])
    ((28800000000000, 2.0), (57600000000000, 5.0))
    """
    ups = sorted((int(u.ts_event), float(Decimal(str(u.rate)) * 10_000), u.interval is not None)
                 for u in updates)  # fmt: skip
    if not ups:
        return ()
    ts = np.array([u[0] for u in ups], dtype=np.int64)
    out: list[tuple[int, float]] = []
    first = int(ts[0]) // FUNDING_PERIOD_NS * FUNDING_PERIOD_NS
    last = (int(ts[-1]) // FUNDING_PERIOD_NS + 1) * FUNDING_PERIOD_NS  # the next after the data
    for t in range(first, last + 1, FUNDING_PERIOD_NS):
        lo, near, before, after = np.searchsorted(
            ts, [t - FUNDING_PERIOD_NS, t - _RECORD_SLACK_NS, t, t + _RECORD_SLACK_NS + 1]
        )
        records = [u for u in ups[near:after] if u[2]]  # settlement records stamped at t
        estimates = [u for u in ups[lo:before] if not u[2]]
        if records or estimates:
            out.append((t, (records or estimates)[-1][1]))
    return tuple(out)


@dataclass(frozen=True)
class CostModel:
    """Maker/taker fees (bp of notional), and for perpetuals the funding rate per period (bp; a
    long pays a positive rate): ``funding_rates`` (funding time ns, bp) settled from the data
    where it has them (:meth:`with_funding`), ``funding_bps`` at every other funding time."""

    maker_bps: float
    taker_bps: float
    perp: bool = False
    funding_bps: float = 0.0
    funding_rates: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("maker_bps", "taker_bps", "funding_bps"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BadInputError(
                    f"CostModel.{name}: must be a finite number, got {v!r}", field=name
                )
        rates = tuple((int(t), float(r)) for t, r in self.funding_rates)
        if not all(math.isfinite(r) for _, r in rates) or any(
            t % FUNDING_PERIOD_NS for t, _ in rates
        ):
            raise BadInputError(
                "CostModel.funding_rates: (funding time ns on the 8-hour grid, finite bp) pairs",
                field="funding_rates",
            )
        object.__setattr__(self, "funding_rates", tuple(sorted(rates)))
        if self.taker_bps < 0 or self.maker_bps < -self.taker_bps:
            raise BadInputError(
                f"CostModel: taker_bps must be >= 0 and maker_bps >= -taker_bps "
                f"(got {self.maker_bps}, {self.taker_bps})",
                field="maker_bps",
            )

    # -- construction

    @classmethod
    def tier(cls, name: str, funding_bps: float | None = None) -> CostModel:
        """A Binance default tier (:data:`FEE_TIERS`); ``usdm*`` tiers are perpetuals."""
        if name not in FEE_TIERS:
            raise BadInputError(f"fee tier: {name!r} not in {sorted(FEE_TIERS)}", field="fee_tier")
        maker, taker = FEE_TIERS[name]
        perp = name.startswith("usdm")
        funding = (DEFAULT_FUNDING_BPS if perp else 0.0) if funding_bps is None else funding_bps
        return cls(maker, taker, perp, funding)

    @classmethod
    def for_instrument(
        cls,
        instrument: Any,
        *,
        maker_bps: float | None = None,
        taker_bps: float | None = None,
        fee_tier: str | None = None,
        funding_bps: float | None = None,
    ) -> CostModel:
        """The instrument's own maker/taker fees (Nautilus ``maker_fee``/``taker_fee``), a
        ``fee_tier`` instead, and explicit ``maker_bps``/``taker_bps`` over either."""
        perp = str(instrument.id).split(".")[0].endswith("-PERP")
        if fee_tier is not None:
            base = cls.tier(fee_tier)
            maker, taker = base.maker_bps, base.taker_bps
        else:
            maker = float(instrument.maker_fee) * 1e4
            taker = float(instrument.taker_fee) * 1e4
        funding = (DEFAULT_FUNDING_BPS if perp else 0.0) if funding_bps is None else funding_bps
        return cls(
            maker if maker_bps is None else float(maker_bps),
            taker if taker_bps is None else float(taker_bps),
            perp,
            float(funding) if perp else 0.0,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostModel:
        return cls(
            float(d["maker_bps"]),
            float(d["taker_bps"]),
            bool(d.get("perp", False)),
            float(d.get("funding_bps", 0.0)),
            tuple((int(t), float(r)) for t, r in d.get("funding_rates", ())),
        )

    def with_funding(self, updates: Iterable[Any]) -> CostModel:
        """This model with the funding rates settled from a period's ``FundingRateUpdate``s
        (:func:`settled_funding`; e.g. ``MarketCatalog.load_funding`` of each day). Spot, or
        no updates: unchanged."""
        rates = settled_funding(updates) if self.perp else ()
        return replace(self, funding_rates=rates) if rates else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- prices of trading

    def fee_bps(self, maker: bool) -> float:
        """One side's fee (bp of notional)."""
        return self.maker_bps if maker else self.taker_bps

    def round_trip_bps(self, style: str = "passive", spread_bp: Any = 0.0) -> Any:
        """Fees and spread crossed by one round trip (bp of notional), per sample when
        ``spread_bp`` is an array.

        >>> CostModel(2.0, 5.0).round_trip_bps("aggressive", spread_bp=np.array([1.0, 3.0]))
        array([11., 13.])
        """
        sp = np.asarray(spread_bp, dtype=np.float64)
        if style == "passive":
            out = 2.0 * self.maker_bps + 0.0 * sp
        elif style == "aggressive_exit":
            out = self.maker_bps + self.taker_bps + 0.5 * sp
        elif style == "aggressive":
            out = 2.0 * self.taker_bps + sp
        else:
            raise BadInputError(f"style: {style!r} not in {EXEC_STYLES}", field="style")
        return float(out) if out.ndim == 0 else out

    def funding_bps_between(self, side: Any, t0_ns: Any, t1_ns: Any) -> Any:
        """Funding paid (bp of notional; negative: received) by a position of ``side`` (+1 long,
        -1 short) held from ``t0_ns`` to ``t1_ns``: the sum of the rates settled at the funding
        times in ``(t0, t1]``. Zero for spot. Works on arrays.

        >>> CostModel.tier("usdm").funding_bps_between(np.array([1, -1]), 0, FUNDING_PERIOD_NS)
        array([ 1., -1.])
        """
        if not self.perp:
            return 0.0 * np.asarray(side, dtype=np.float64) if np.ndim(side) else 0.0
        k0 = np.asarray(t0_ns, dtype=np.int64) // FUNDING_PERIOD_NS
        k1 = np.maximum(np.asarray(t1_ns, dtype=np.int64) // FUNDING_PERIOD_NS, k0)
        total = self.funding_bps * (k1 - k0)
        if self.funding_rates:  # the data's rates where it has them: a cumulative sum over them
            ks = np.array([t // FUNDING_PERIOD_NS for t, _ in self.funding_rates], dtype=np.int64)
            extra = np.r_[0.0, np.cumsum([r - self.funding_bps for _, r in self.funding_rates])]
            total = total + extra[np.searchsorted(ks, k1, "right")] - extra[
                np.searchsorted(ks, k0, "right")]  # fmt: skip
        out = np.asarray(side, dtype=np.float64) * total
        return float(out) if out.ndim == 0 else out

    def funding_paid_quote(self, ts_ns: Any, position: Any, mark: Any) -> np.ndarray:
        """The funding a position path has paid by each sample (quote, cumulative; negative:
        received): at every funding time after the first sample, the position of the last
        sample before it, at that sample's ``mark``, times the rate settled then. What a
        Nautilus backtest, whose venue settles no funding, is charged afterwards.

        >>> h = 3600 * 10**9
        >>> CostModel.tier("usdm").funding_paid_quote([7 * h, 9 * h], [2.0, 0.0], [100.0, 100.0])
        array([0.  , 0.02])
        """
        ts = np.asarray(ts_ns, dtype=np.int64)
        pos = np.asarray(position, dtype=np.float64)
        mark = np.asarray(mark, dtype=np.float64)
        paid = np.zeros(len(ts))
        if not self.perp or len(ts) < 2:
            return paid
        priced = np.maximum.accumulate(np.where(np.isfinite(mark), np.arange(len(ts)), 0))
        k = ts // FUNDING_PERIOD_NS
        for i in np.flatnonzero(k[1:] > k[:-1]):  # samples i | i+1 straddle a funding time
            px = mark[priced[i]]  # the last finite mark (a sample without a book has none)
            if pos[i] != 0.0 and math.isfinite(px):
                bp = self.funding_bps_between(1.0, ts[i], ts[i + 1])
                paid[i + 1 :] += pos[i] * px * bp * 1e-4
        return paid

    def close_out_quote(
        self, position: float, mid: float, best_bid: float, best_ask: float
    ) -> float:
        """What closing ``position`` at once costs against its mark at ``mid`` (quote): the
        distance to the touch it crosses plus the taker fee. Charged to a position still open
        at the end of a simulated or backtested period, so the period's PnL is what could have
        been banked, not a mark.

        >>> CostModel(2.0, 5.0).close_out_quote(-2.0, 100.0, 99.0, 101.0)  # 2 x (1 + 0.0505)
        2.101
        """
        if position == 0.0:
            return 0.0
        touch = best_bid if position > 0 else best_ask
        return abs(position) * (abs(mid - touch) + touch * self.taker_bps * 1e-4)

    def fee_quote(self, notional: Any, maker: bool = True) -> Any:
        """The fee of one fill in quote currency."""
        return np.abs(notional) * self.fee_bps(maker) * 1e-4
