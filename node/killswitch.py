"""The persisted kill switch, drawdown peak and equity baseline: file names, JSON state, writes.

A restart neither re-enables trading nor forgets the peak nor moves the equity DD watches: they
live on disk in the strategy's ``state_dir`` (the backtest's RUN_DIR), ``kill_switch.json`` and
``kill_switch.peak.json`` (the peak with the equity baseline: the spot base inventory the
strategy found at its first start, its price and the quote balance then).
After a crash (a run marker left behind) the node starts disabled until a person calls
:meth:`KillSwitch.reset` (``nhmm killswitch reset``). Every write replaces the file atomically,
so a reader (the node, or ``nhmm killswitch`` beside it) never sees half a file.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from node._json import read_json_object
from training.errors import BadInputError
from training.io import atomic_write_json

__all__ = [
    "KILL_SWITCH_FILE",
    "KillSwitch",
    "PeakStore",
    "kill_switch_path",
    "paths",
    "peak_path",
]

#: The kill switch's file name in a strategy's ``state_dir``.
KILL_SWITCH_FILE = "kill_switch.json"


def kill_switch_path(state_dir: str | Path) -> Path:
    """The kill switch file of a strategy whose ``state_dir`` is ``state_dir``.

    >>> kill_switch_path("/node").as_posix()
    '/node/kill_switch.json'
    """
    return Path(state_dir) / KILL_SWITCH_FILE


def peak_path(kill_switch_path: str | Path) -> Path:
    """Where the drawdown peak lives: beside the kill switch, ``<stem>.peak.json``.

    >>> peak_path("/node/kill_switch.json").name
    'kill_switch.peak.json'
    """
    kill = Path(kill_switch_path)
    return kill.with_name(kill.stem + ".peak.json")


def paths(state_dir: str | Path) -> tuple[Path, Path]:
    """``(kill switch file, peak file)`` in ``state_dir``, named as the strategy names them.

    >>> [p.name for p in paths("/tmp/node")]
    ['kill_switch.json', 'kill_switch.peak.json']
    """
    kill = kill_switch_path(state_dir)
    return kill, peak_path(kill)


class KillSwitch:
    """A kill switch persisted at ``path`` (JSON ``{"tripped", "reason", "ts", "running"}``).

    :meth:`start` marks the node running; a marker left by a run that never called
    :meth:`stop` (a crash) trips the switch with reason ``CRASH``. Only :meth:`reset` (a person)
    clears it. A corrupt file raises :class:`~training.errors.BadInputError` naming it.
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
            self._cached, self._seen = read_json_object(self.path), seen
        return dict(self._cached)

    def _write(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.path, state, indent=None)  # rare writes: flushed to disk

    def state(self) -> dict[str, Any]:
        """The persisted state (a copy): ``tripped``, ``reason``, ``ts``, ``running``; just
        ``{"tripped": False}`` while no file exists."""
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
        self._write(state)

    def stop(self) -> None:
        state = self._state()
        state["running"] = False
        self._write(state)

    def trip(self, reason: str) -> None:
        state = self._state()
        state.update(tripped=True, reason=reason, ts=time.time())
        self._write(state)

    def reset(self) -> None:
        """A person re-enables trading."""
        state = self._state()
        state.update(tripped=False, reason="", ts=time.time())
        self._write(state)


class PeakStore:
    """The equity peak for DD, the equity baseline and the open position's entry, persisted at
    ``path`` so a restart keeps them (``{"peak", "ts", "baseline": {"base", "price", "quote"},
    "entry": {"position", "avg_px"}}``).

    The baseline is the spot base inventory the strategy found at its first start (with its
    price and the quote balance then): equity counts only base bought or sold since, so a restart
    with an open position neither trips DD (long) nor inflates the peak (short).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "kill_switch.peak.json"
    >>> store = PeakStore(path)
    >>> store.set_baseline(1.0, 60_000.0, 100_000.0)
    {'base': 1.0, 'price': 60000.0, 'quote': 100000.0}
    >>> PeakStore(path).baseline["base"], PeakStore(path).update(5.0), PeakStore(path).peak
    (1.0, 5.0, 5.0)
    >>> PeakStore(path).baseline["quote"]  # a new peak keeps the baseline
    100000.0
    >>> store.set_entry(0.5, 61_000.0); PeakStore(path).entry
    {'position': 0.5, 'avg_px': 61000.0}

    The entry lets STOP measure a spot position a stopped node left open: Nautilus starts its
    positions from zero, so after a restart only this file knows what the position cost.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.peak: float | None = None
        self.baseline: dict[str, float] | None = None
        self.entry: dict[str, float] | None = None
        if self.path.exists():
            state = read_json_object(self.path)
            value = state.get("peak")
            self.peak = None if value is None else float(value)
            base = state.get("baseline")
            if base is not None:
                try:
                    self.baseline = {k: float(base[k]) for k in ("base", "price", "quote")}
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadInputError(
                        f"{self.path}: baseline needs numbers base, price, quote ({exc})",
                        field="baseline",
                    ) from exc
            entry = state.get("entry")
            if entry is not None:
                try:
                    self.entry = {k: float(entry[k]) for k in ("position", "avg_px")}
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadInputError(
                        f"{self.path}: entry needs numbers position, avg_px ({exc})",
                        field="entry",
                    ) from exc

    def _write(self, fsync: bool) -> None:
        state: dict[str, Any] = {"peak": self.peak, "ts": time.time()}
        if self.baseline is not None:
            state["baseline"] = self.baseline
        if self.entry is not None:
            state["entry"] = self.entry
        atomic_write_json(self.path, state, indent=None, fsync=fsync)

    def set_baseline(self, base: float, price: float, quote: float) -> dict[str, float]:
        """Store the equity baseline once (the first start); later calls return the stored one."""
        if self.baseline is None:
            values = {"base": float(base), "price": float(price), "quote": float(quote)}
            for k, v in values.items():
                if not math.isfinite(v):
                    raise ValueError(f"baseline {k}: not finite ({v!r})")
            self.baseline = values
            self._write(fsync=True)
        return self.baseline

    def set_entry(self, position: float, avg_px: float | None) -> None:
        """Store the open position and its average entry price (``avg_px=None``: flat)."""
        if avg_px is None:
            if self.entry is None:
                return
            self.entry = None
        else:
            if not (math.isfinite(position) and math.isfinite(avg_px)):
                raise ValueError(f"entry: not finite ({position!r} @ {avg_px!r})")
            self.entry = {"position": float(position), "avg_px": float(avg_px)}
        self._write(fsync=True)

    def update(self, equity: float) -> float:
        """Raise the peak to ``equity`` if higher (persisting it); return the peak."""
        if not math.isfinite(equity):
            raise ValueError(f"equity: not finite ({equity!r})")
        if self.peak is None or equity > self.peak:
            self.peak = equity
            self._write(fsync=False)  # a new peak can come every sample: atomic, not flushed
        return self.peak
