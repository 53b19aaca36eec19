"""Guardrails checked before any order: KILL, LATENCY, DRIFT, CONF, SPREAD, DD, POS, COOLDOWN.

The checks themselves are pure (:func:`training.simulation.rules.check_guards`, part of the
decision rules the simulator replays); :class:`Guardrails` holds the pieces of state the node
keeps (last order time, the equity peak, the kill switch) and counts verdicts by reason (the
codes are the RUN_DIR's, :data:`node.run_dir.REASON_CODES`). The kill switch, the drawdown
peak and the equity baseline persist on disk (:mod:`node.killswitch`), so a restart neither
re-enables trading nor forgets the peak nor moves the equity DD watches.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from node.killswitch import KillSwitch
from node.killswitch import PeakStore
from node.killswitch import peak_path
from node.run_dir import ALLOWED
from node.run_dir import REASON_CODES
from training.simulation.rules import GuardInput
from training.simulation.rules import GuardLimits
from training.simulation.rules import Verdict
from training.simulation.rules import check_guards
from training.simulation.rules import max_spread_bp

__all__ = [
    "GuardInput",
    "GuardLimits",
    "Guardrails",
    "Verdict",
    "max_spread_bp",
]


class Guardrails:
    """Checks a :class:`GuardInput` against :class:`GuardLimits`; counts every verdict by reason.

    The equity peak and baseline are stored beside the kill switch
    (``<kill switch stem>.peak.json``, :class:`node.killswitch.PeakStore`).
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

    def count(self, reason: str) -> None:
        """Count a verdict reason decided outside :meth:`check` (e.g. by the decision rules)."""
        self.counts[reason] += 1

    def check(self, g: GuardInput, count: bool = True) -> Verdict:
        """The first guardrail that blocks (in :data:`~node.run_dir.GUARD_REASONS` order), or
        allowed; counted unless ``count`` is False. A DD block trips the kill switch."""
        peak = self.peak.update(g.equity)
        verdict = check_guards(
            g,
            self.limits,
            killed=self.kill.tripped,
            kill_reason=self.kill.reason,
            peak=peak,
            last_order_ns=self.last_order_ns,
        )
        if verdict.reason == "DD":
            self.kill.trip("DD")
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
