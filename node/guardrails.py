"""Guardrails checked before any order: KILL, LATENCY, DRIFT, CONF, SPREAD, DD, POS, COOLDOWN.

Pure checks over a :class:`GuardInput` give a :class:`Verdict`; :class:`Guardrails` holds the
few pieces of state (last order time, equity peak, kill switch) and counts blocks by reason
(the codes are the RUN_DIR's, :data:`node.run_dir.GUARD_REASONS`). The kill switch and the
drawdown peak persist on disk (:mod:`node.killswitch`), so a restart neither re-enables trading
nor forgets the peak.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from node.killswitch import KillSwitch
from node.killswitch import PeakStore
from node.killswitch import peak_path
from node.run_dir import ALLOWED
from node.run_dir import REASON_CODES

__all__ = [
    "GuardInput",
    "GuardLimits",
    "Guardrails",
    "Verdict",
    "max_spread_bp",
]


@dataclass(frozen=True)
class Verdict:
    """``allowed`` or the ``reason`` code (one of :data:`~node.run_dir.GUARD_REASONS`) that
    blocked."""

    allowed: bool
    reason: str = ALLOWED
    detail: str = ""


@dataclass(frozen=True)
class GuardLimits:
    """The numbers the guardrails compare against (see ``PolicyHMMStrategyConfig``)."""

    min_conf: float = 0.6
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


class Guardrails:
    """Checks a :class:`GuardInput` against :class:`GuardLimits`; counts every verdict by reason.

    The equity peak is stored beside the kill switch (``<kill switch stem>.peak.json``).
    A DD breach trips the kill switch, so trading stays off after a restart.
    """

    def __init__(self, limits: GuardLimits, kill_switch_path: str | Path) -> None:
        self.limits = limits
        self.kill = KillSwitch(kill_switch_path)
        self.peak = PeakStore(peak_path(self.kill.path))
        self.counts: Counter[str] = Counter()
        self.last_order_ns: int | None = None

    def start(self) -> None:
        self.kill.start()

    def observe(self, equity: float) -> None:
        """Track the equity peak every sample; a DD breach trips the kill switch."""
        peak = self.peak.update(equity)
        if peak - equity > self.limits.max_drawdown and not self.kill.tripped:
            self.kill.trip("DD")

    def stop(self) -> None:
        self.kill.stop()

    def _check(self, g: GuardInput) -> Verdict:
        lim = self.limits
        if self.kill.tripped:
            return Verdict(False, "KILL", self.kill.reason)
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
        peak = self.peak.update(g.equity)
        if peak - g.equity > lim.max_drawdown:
            self.kill.trip("DD")
            return Verdict(False, "DD", f"drawdown {peak - g.equity:.2f} > {lim.max_drawdown}")
        signed = g.quantity if g.side == "buy" else -g.quantity
        if abs(g.position + signed) > lim.max_position + 1e-12:
            return Verdict(False, "POS", f"{g.position} + {signed} beyond {lim.max_position}")
        if self.last_order_ns is not None and g.ts_ns - self.last_order_ns < lim.cooldown_s * 1e9:
            return Verdict(False, "COOLDOWN", f"{(g.ts_ns - self.last_order_ns) / 1e9:.1f} s")
        return Verdict(True)

    def count(self, reason: str) -> None:
        """Count a verdict reason decided outside :meth:`check` (e.g. the execution ``VWAP`` skip)."""
        self.counts[reason] += 1

    def check(self, g: GuardInput, count: bool = True) -> Verdict:
        """The first guardrail that blocks (in :data:`~node.run_dir.GUARD_REASONS` order), or
        allowed; counted
        unless ``count`` is False."""
        if g.side not in ("buy", "sell"):
            raise ValueError(f"side: {g.side!r} is not 'buy' or 'sell'")
        verdict = self._check(g)
        if count:
            self.counts[verdict.reason] += 1
        return verdict

    def order_sent(self, ts_ns: int) -> None:
        """Start the cooldown."""
        self.last_order_ns = ts_ns

    def count_dict(self) -> dict[str, int]:
        """Counts of every reason (zeros included) and ``OK``."""
        keys = dict.fromkeys((*REASON_CODES, ALLOWED, *self.counts))
        return {r: int(self.counts.get(r, 0)) for r in keys}
