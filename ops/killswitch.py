"""The person's side of the kill switch (``nhmm killswitch``): its state, engaging, resetting.

The strategy keeps its kill switch and drawdown peak in its ``state_dir``; the files, their
names and their JSON belong to :mod:`node.killswitch`. After a crash or a drawdown stop the node
stays disabled until someone resets it here; a reset also clears the crash marker, so the next
start does not trip again, and optionally forgets the drawdown peak (otherwise a restart below
the old peak trips DD again at once).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from node.killswitch import KillSwitch
from node.killswitch import PeakStore
from node.killswitch import paths

__all__ = ["describe", "engage", "kill_switch_state", "reset", "to_clear"]


def kill_switch_state(state_dir: str | Path) -> dict[str, Any]:
    """The persisted state: ``tripped``, ``reason``, ``since`` (ISO time or None), ``running``
    (a crash marker when the node is not running), ``peak`` (None if never stored). A corrupt
    file raises :class:`~training.errors.BadInputError` naming it."""
    kill_path, peak_path = paths(state_dir)
    raw = KillSwitch(kill_path).state()
    ts = raw.get("ts")
    since = (
        datetime.datetime.fromtimestamp(float(ts), datetime.UTC).isoformat(timespec="seconds")
        if isinstance(ts, int | float) and raw.get("tripped")
        else None
    )
    return {
        "file": str(kill_path),
        "exists": kill_path.exists(),
        "tripped": bool(raw.get("tripped", False)),
        "reason": str(raw.get("reason", "")),
        "since": since,
        "running": bool(raw.get("running", False)),
        "peak": PeakStore(peak_path).peak,
    }


def describe(state: dict[str, Any]) -> list[str]:
    """``state`` (from :func:`kill_switch_state`) as the lines a person reads."""
    if not state["exists"]:
        head = f"{state['file']}: no kill switch file (node never started here): not tripped"
    elif state["tripped"]:
        head = f"TRIPPED  reason={state['reason'] or '?'}  since={state['since']}"
    else:
        head = "not tripped: trading allowed"
    peak = "none" if state["peak"] is None else f"{state['peak']:.8g}"
    return [
        head,
        f"running marker: {'set' if state['running'] else 'clear'}",
        f"drawdown peak: {peak}",
    ]


def engage(state_dir: str | Path, reason: str) -> Path:
    """Trip the kill switch in ``state_dir`` with ``reason``; returns its file."""
    kill_path, _ = paths(state_dir)
    KillSwitch(kill_path).trip(reason)
    return kill_path


def to_clear(state: dict[str, Any], clear_peak: bool) -> list[str]:
    """What :func:`reset` would clear, one phrase each (empty: nothing to do)."""
    cleared = []
    if state["tripped"]:
        cleared.append(f"kill switch (reason {state['reason'] or '?'}, since {state['since']})")
    if state["running"]:
        cleared.append("running marker (left by a crash, or by a node still running)")
    if clear_peak and state["peak"] is not None:
        cleared.append(f"drawdown peak {state['peak']:.8g}")
    return cleared


def reset(state_dir: str | Path, clear_peak: bool) -> None:
    """Re-enable trading: clear the kill switch and the crash marker (and the peak if asked).

    Run it while the node is stopped: clearing the marker of a running node hides a later crash.
    """
    kill_path, peak_path = paths(state_dir)
    ks = KillSwitch(kill_path)
    ks.reset()
    ks.stop()
    if clear_peak:
        peak_path.unlink(missing_ok=True)
