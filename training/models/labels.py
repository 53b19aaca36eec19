"""Trade labels from the future: forward log return over a horizon against the cost of trading.

``label(t)`` depends only on ``mid[t]``, ``spread_bp[t]`` and ``mid`` at the first sample at or
after ``t + horizon`` — never on anything earlier, nor on anything later than that sample.
Samples whose horizon runs past the end of the data, or whose horizon would cross into another
session (``lengths``), are marked invalid (not NaN-filled).

The cost a move must beat is the round trip of :class:`training.costs.CostModel` in the
strategy's execution style (``passive``: post-only entry and exit, ``2 x maker``; an aggressive
exit adds the taker fee and half the spread), plus perp funding when the horizon spans a funding
time, plus ``min_edge_bps``.

>>> ts = np.arange(5) * 1_000_000_000
>>> costs = CostModel(maker_bps=1.0, taker_bps=1.0)
>>> lab = make_labels(ts, np.array([100.0, 100.0, 100.2, 99.9, 99.9]), np.full(5, 2.0),
...                   LabelConfig(horizon_s=2.0, costs=costs))
>>> lab.classes.tolist(), lab.valid.tolist(), float(lab.cost_bp[0])
([2, 0, 0, 1, 1], [True, True, True, False, False], 2.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from training.costs import EXEC_STYLES
from training.costs import CostModel
from training.errors import BadInputError

SELL, FLAT, BUY = 0, 1, 2
CLASS_NAMES = ("sell", "flat", "buy")


@dataclass(frozen=True)
class LabelConfig:
    """Horizon and costs: the round trip of ``costs`` in execution ``style`` (the strategy's is
    ``passive``), and ``min_edge_bps`` demanded on top (2 bp by default: a move that only just
    pays the fees is not worth a trade; chosen in ``bench/bench_head.py`` on development seeds).
    The default costs are Binance spot's default tier (10 bp a side); the pipelines always pass
    the instrument's own."""

    horizon_s: float = 300.0
    costs: CostModel = field(default_factory=lambda: CostModel.tier("spot"))
    style: str = "passive"
    min_edge_bps: float = 2.0

    def __post_init__(self) -> None:
        if not self.horizon_s > 0:
            raise BadInputError(f"LabelConfig.horizon_s must be > 0, got {self.horizon_s}")
        if self.min_edge_bps < 0:
            raise BadInputError("LabelConfig.min_edge_bps must be >= 0")
        if self.style not in EXEC_STYLES:
            raise BadInputError(f"LabelConfig.style: {self.style!r} not in {EXEC_STYLES}")
        if isinstance(self.costs, dict):  # from a bundle's metadata
            object.__setattr__(self, "costs", CostModel.from_dict(self.costs))


@dataclass(frozen=True, eq=False)
class Labels:
    """Per-sample labels: ``classes`` (0 sell, 1 flat, 2 buy; flat where invalid), ``valid``,
    ``forward_return_bp`` (0 where invalid) and ``cost_bp`` (the round trip's fees and spread,
    without funding or ``min_edge_bps``)."""

    classes: np.ndarray
    valid: np.ndarray
    forward_return_bp: np.ndarray
    cost_bp: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)


def _check_inputs(ts_ns: np.ndarray, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ts = np.asarray(ts_ns)
    if ts.ndim != 1 or not np.issubdtype(ts.dtype, np.integer):
        raise BadInputError(
            f"ts_ns: expected 1-D integer nanoseconds, got {ts.dtype} shape {ts.shape}"
        )
    ts = ts.astype(np.int64, copy=False)
    m = np.asarray(mid, dtype=np.float64)
    if m.shape != ts.shape:
        raise BadInputError(f"mid: expected shape {ts.shape} like ts_ns, got {m.shape}")
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise BadInputError(f"ts_ns: not sorted at index {i} ({ts[i]} < {ts[i - 1]})")
    bad = np.flatnonzero(~(np.isfinite(m) & (m > 0)))
    if bad.size:
        raise BadInputError(
            f"mid: non-finite or non-positive value {m[bad[0]]} at index {int(bad[0])}"
        )
    return ts, m


def forward_returns(
    ts_ns: np.ndarray,
    mid: np.ndarray,
    horizon_s: float,
    lengths: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log return from each sample to the first sample at or after ``t + horizon_s``.

    Returns ``(returns, valid)``; where no such sample exists ``valid`` is False and the return 0.
    ``lengths`` splits the rows into separate sessions (e.g. symbol-days): a horizon never
    reaches into the next session.

    >>> r, v = forward_returns(np.array([0, 1, 2]) * 10**9, np.array([1.0, 2.0, 4.0]), 1.0)
    >>> np.round(r, 4).tolist(), v.tolist()
    ([0.6931, 0.6931, 0.0], [True, True, False])
    """
    ts, m = _check_inputs(ts_ns, mid)
    if not horizon_s > 0:
        raise BadInputError(f"horizon_s must be > 0, got {horizon_s}")
    h_ns = round(horizon_s * 1e9)
    n = len(ts)
    if lengths is None:
        ends = np.full(n, n)
    else:
        lens = np.asarray(lengths, dtype=np.int64)
        if (lens <= 0).any() or lens.sum() != n:
            raise BadInputError(
                f"lengths: must be positive and sum to {n}, got sum {int(lens.sum())}"
            )
        ends = np.repeat(np.cumsum(lens), lens)
    j = np.searchsorted(ts, ts + h_ns, side="left")
    valid = j < ends
    ret = np.zeros(len(ts))
    ret[valid] = np.log(m[j[valid]] / m[valid])
    return ret, valid


def make_labels(
    ts_ns: np.ndarray,
    mid: np.ndarray,
    spread_bp: np.ndarray,
    config: LabelConfig = LabelConfig(),
    lengths: Sequence[int] | None = None,
) -> Labels:
    """Buy if the forward return beats the cost (round trip + funding a long pays + min edge),
    sell if it is below minus (round trip + funding a short pays + min edge), else flat.
    ``lengths``: sessions a horizon must not cross."""
    ret, valid = forward_returns(ts_ns, mid, config.horizon_s, lengths)
    sp = np.asarray(spread_bp, dtype=np.float64)
    if sp.shape != ret.shape:
        raise BadInputError(f"spread_bp: expected shape {ret.shape} like ts_ns, got {sp.shape}")
    bad = np.flatnonzero(~(np.isfinite(sp) & (sp >= 0)))
    if bad.size:
        raise BadInputError(
            f"spread_bp: non-finite or negative value {sp[bad[0]]} at index {int(bad[0])}"
        )
    fwd_bp = ret * 1e4
    cost = np.asarray(config.costs.round_trip_bps(config.style, sp), dtype=np.float64)
    ts = np.asarray(ts_ns, dtype=np.int64)
    funding_long = config.costs.funding_bps_between(
        np.ones(len(ts)), ts, ts + round(config.horizon_s * 1e9)
    )
    classes = np.full(len(ret), FLAT, dtype=np.int8)
    classes[valid & (fwd_bp > cost + funding_long + config.min_edge_bps)] = BUY
    classes[valid & (-fwd_bp > cost - funding_long + config.min_edge_bps)] = SELL
    return Labels(classes=classes, valid=valid, forward_return_bp=fwd_bp, cost_bp=cost)
