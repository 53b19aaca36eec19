"""``nhmm killswitch status|engage|reset --state-dir DIR``: the person's side of the kill switch.

The strategy keeps its kill switch (``kill_switch.json``) and drawdown peak
(``kill_switch.peak.json``) in its ``state_dir`` (:mod:`node.guardrails`). After a crash or a
drawdown stop the node stays disabled until someone resets it here; ``reset`` also clears the
crash marker, so the next start does not trip again, and with ``--clear-peak`` forgets the
drawdown peak (otherwise a restart below the old peak trips DD again at once).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import click

from node.guardrails import KILL_SWITCH_FILE, KillSwitch, PeakStore, peak_path

__all__ = ["kill_switch_state", "killswitch", "paths"]


def paths(state_dir: str | Path) -> tuple[Path, Path]:
    """``(kill switch file, peak file)`` in ``state_dir``, named as the strategy names them.

    >>> [p.name for p in paths("/tmp/node")]
    ['kill_switch.json', 'kill_switch.peak.json']
    """
    kill = Path(state_dir) / KILL_SWITCH_FILE
    return kill, peak_path(kill)


def kill_switch_state(state_dir: str | Path) -> dict[str, Any]:
    """The persisted state: ``tripped``, ``reason``, ``since`` (ISO time or None), ``running``
    (a crash marker when the node is not running), ``peak`` (None if never stored)."""
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


def _echo_state(state: dict[str, Any]) -> None:
    if not state["exists"]:
        click.echo(f"{state['file']}: no kill switch file (node never started here): not tripped")
    elif state["tripped"]:
        click.echo(f"TRIPPED  reason={state['reason'] or '?'}  since={state['since']}")
    else:
        click.echo("not tripped: trading allowed")
    click.echo(f"running marker: {'set' if state['running'] else 'clear'}")
    click.echo(f"drawdown peak: {'none' if state['peak'] is None else f'{state["peak"]:.8g}'}")


_STATE_DIR = click.option(
    "--state-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The strategy's state_dir (holds kill_switch.json).",
)


@click.group("killswitch")
def killswitch() -> None:
    """Show, engage or reset the node's persisted kill switch."""


@killswitch.command("status")
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(state_dir: Path, as_json: bool) -> None:
    """Print whether trading is disabled, why and since when, and the drawdown peak."""
    state = _load(state_dir)
    if as_json:
        click.echo(json.dumps(state, sort_keys=True))
    else:
        _echo_state(state)


@killswitch.command("engage")
@_STATE_DIR
@click.option("--reason", default="MANUAL", show_default=True)
def engage(state_dir: Path, reason: str) -> None:
    """Trip the kill switch: the node submits nothing until a person resets it."""
    before = _load(state_dir)
    kill_path, _ = paths(state_dir)
    KillSwitch(kill_path).trip(reason)
    if before["tripped"]:
        click.echo(f"was already tripped ({before['reason']}); reason now {reason}")
    click.echo(f"kill switch ENGAGED ({reason}) at {kill_path}")


@killswitch.command("reset")
@_STATE_DIR
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--clear-peak", is_flag=True, help="Also forget the stored drawdown peak.")
def reset(state_dir: Path, yes: bool, clear_peak: bool) -> None:
    """Re-enable trading: clear the kill switch and the crash marker (and the peak if asked).

    Run it while the node is stopped: clearing the marker of a running node hides a later crash.
    """
    state = _load(state_dir)
    cleared = []
    if state["tripped"]:
        cleared.append(f"kill switch (reason {state['reason'] or '?'}, since {state['since']})")
    if state["running"]:
        cleared.append("running marker (left by a crash, or by a node still running)")
    if clear_peak and state["peak"] is not None:
        cleared.append(f"drawdown peak {state['peak']:.8g}")
    if not cleared:
        click.echo("nothing to clear: not tripped, no running marker")
        return
    if not yes:
        click.confirm(f"Re-enable trading in {state_dir}? This clears: " + "; ".join(cleared),
                      abort=True)  # fmt: skip
    kill_path, peak_path = paths(state_dir)
    ks = KillSwitch(kill_path)
    ks.reset()
    ks.stop()
    if clear_peak:
        peak_path.unlink(missing_ok=True)
    for item in cleared:
        click.echo(f"cleared: {item}")


def _load(state_dir: Path) -> dict[str, Any]:
    try:
        return kill_switch_state(state_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
