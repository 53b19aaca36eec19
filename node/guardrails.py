"""Guardrails checked before any order: CONF, SPREAD, POS, COOLDOWN, LATENCY, DD, DRIFT, KILL.

Pure checks over a :class:`GuardInput` give a :class:`Verdict`; :class:`Guardrails` holds the
few pieces of state (last order time, equity peak, kill switch) and counts blocks by reason.
The kill switch and the drawdown peak live on disk, so a restart neither re-enables trading nor
forgets the peak: after a crash (a run marker left behind) the node starts disabled until a
person calls :meth:`KillSwitch.reset`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KILL_SWITCH_FILE",
    "REASONS",
    "GuardInput",
    "GuardLimits",
    "Guardrails",
    "KillSwitch",
    "PeakStore",
    "Verdict",
    "max_spread_bp",
    "peak_path",
]

#: The kill switch's file name in a strategy's ``state_dir``.
KILL_SWITCH_FILE = "kill_switch.json"

#: Block reasons in the order they are checked.
REASONS: tuple[str, ...] = (
    "KILL",
    "LATENCY",
    "DRIFT",
    "CONF",
    "SPREAD",
    "DD",
    "POS",
    "COOLDOWN",
)


@dataclass(frozen=True)
class Verdict:
    """``allowed`` or the ``reason`` code (one of :data:`REASONS`) that blocked."""

    allowed: bool
    reason: str = "OK"
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)  # atomic: never half-written


class KillSwitch:
    """A kill switch persisted at ``path`` (JSON ``{"tripped", "reason", "ts"}``).

    :meth:`start` marks the node running; a marker left by a run that never called
    :meth:`stop` (a crash) trips the switch with reason ``CRASH``. Only :meth:`reset` (a person)
    clears it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None
        self._cached: dict[str, Any] = {}

    def _state(self) -> dict[str, Any]:
        """The file's state, re-read only when the file changed (it is checked every sample and
        may be engaged from outside, e.g. ``nhmm killswitch engage``; writes replace the file)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {"tripped": False}
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            self._cached, self._seen = _read_json(self.path), seen
        return dict(self._cached)

    def state(self) -> dict[str, Any]:
        """The persisted state (a copy): ``tripped``, ``reason``, ``ts``, ``running``; just
        ``{"tripped": False}`` while no file exists. A corrupt file raises naming it."""
        return self._state()

    @property
    def tripped(self) -> bool:
        return bool(self._state().get("tripped", False))

    @property
    def reason(self) -> str:
        return str(self._state().get("reason", ""))

    def start(self) -> None:
        state = self._state()
        if state.get("running") and not state.get("tripped"):
            state.update(tripped=True, reason="CRASH", ts=time.time())
        state["running"] = True
        _write_json(self.path, state)

    def stop(self) -> None:
        state = self._state()
        state["running"] = False
        _write_json(self.path, state)

    def trip(self, reason: str) -> None:
        state = self._state()
        state.update(tripped=True, reason=reason, ts=time.time())
        _write_json(self.path, state)

    def reset(self) -> None:
        """A person re-enables trading."""
        state = self._state()
        state.update(tripped=False, reason="", ts=time.time())
        _write_json(self.path, state)


def peak_path(kill_switch_path: str | Path) -> Path:
    """Where the drawdown peak lives: beside the kill switch, ``<stem>.peak.json``.

    >>> peak_path("/node/kill_switch.json").name
    'kill_switch.peak.json'
    """
    kill = Path(kill_switch_path)
    return kill.with_name(kill.stem + ".peak.json")


class PeakStore:
    """The equity peak for DD, persisted at ``path`` so a restart keeps it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.peak: float | None = None
        if self.path.exists():
            value = _read_json(self.path).get("peak")
            self.peak = None if value is None else float(value)

    def update(self, equity: float) -> float:
        """Raise the peak to ``equity`` if higher (persisting it); return the peak."""
        if not math.isfinite(equity):
            raise ValueError(f"equity: not finite ({equity!r})")
        if self.peak is None or equity > self.peak:
            self.peak = equity
            _write_json(self.path, {"peak": equity, "ts": time.time()})
        return self.peak


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
        """The first guardrail that blocks (in :data:`REASONS` order), or allowed; counted
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
        keys = dict.fromkeys((*REASONS, "VWAP", "OK", *self.counts))
        return {r: int(self.counts.get(r, 0)) for r in keys}
