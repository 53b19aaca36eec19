"""``nhmm acceptance``, ``report``, ``killswitch`` and ``rollup``: the ops commands.

Thin and light at import (``nhmm --help`` loads it): the work is in :mod:`ops.acceptance`,
:mod:`ops.report`, :mod:`ops.killswitch` and :mod:`ops.rollup`, imported inside the commands.
An unreadable RUN_DIR is a :class:`node.run_dir.RunDirError` (an ``NhmmError``): one line,
exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ops.acceptance.config import AcceptanceConfig
from training.errors import BadInputError

if TYPE_CHECKING:
    import datetime

__all__ = ["acceptance", "killswitch", "report", "rollup"]

_RUN_DIR = click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))


@click.command("acceptance")
@_RUN_DIR
@click.option("--min-entropy-bits", type=float, default=AcceptanceConfig.min_state_entropy_bits,
              show_default=True, help="Floor on the state-histogram entropy.")  # fmt: skip
@click.option("--pnl-rule", type=click.Choice(["mean", "lower"]), default="mean",
              show_default=True, help="Pass on mean PnL change >= 0, or on the CI lower bound.")  # fmt: skip
@click.option("--pnl-interval-s", type=float, default=60.0, show_default=True)
@click.option("--ci-level", type=float, default=0.95, show_default=True)
def acceptance(
    run_dir: Path, min_entropy_bits: float, pnl_rule: str, pnl_interval_s: float, ci_level: float
) -> None:
    """Per symbol-day acceptance checks on RUN_DIR; writes RUN_DIR/acceptance.json.

    Exit code 0 only if every check passes (1 if any fails, 2 if RUN_DIR cannot be read).
    """
    from ops.acceptance import print_checks
    from ops.acceptance import run_acceptance

    cfg = AcceptanceConfig(
        min_state_entropy_bits=min_entropy_bits,
        pnl_rule=pnl_rule,
        pnl_interval_s=pnl_interval_s,
        ci_level=ci_level,
    )
    passed, checks = run_acceptance(run_dir, cfg)
    print_checks(checks, run_dir)
    if not passed:
        raise SystemExit(1)


@click.command("report")
@_RUN_DIR
def report(run_dir: Path) -> None:
    """Render RUN_DIR/report.html: one self-contained page (charts inline, no network)."""
    from ops.report import render_report

    out = render_report(run_dir)
    click.echo(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


_STATE_DIR = click.option(
    "--state-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The strategy's state_dir (holds kill_switch.json).",
)


def _state(state_dir: Path) -> dict:
    """The kill switch state; a corrupt file is named, exit 1 (the files are left as they are)."""
    from ops.killswitch import kill_switch_state

    try:
        return kill_switch_state(state_dir)
    except BadInputError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("killswitch")
def killswitch() -> None:
    """Show, engage or reset the node's persisted kill switch."""


@killswitch.command("status")
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(state_dir: Path, as_json: bool) -> None:
    """Print whether trading is disabled, why and since when, and the drawdown peak."""
    from ops.killswitch import describe

    state = _state(state_dir)
    click.echo(json.dumps(state, sort_keys=True) if as_json else "\n".join(describe(state)))


@killswitch.command("engage")
@_STATE_DIR
@click.option("--reason", default="MANUAL", show_default=True)
def engage(state_dir: Path, reason: str) -> None:
    """Trip the kill switch: the node submits nothing until a person resets it."""
    from ops import killswitch as ks

    before = _state(state_dir)
    kill_path = ks.engage(state_dir, reason)
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
    from ops import killswitch as ks

    cleared = ks.to_clear(_state(state_dir), clear_peak)
    if not cleared:
        click.echo("nothing to clear: not tripped, no running marker")
        return
    if not yes:
        click.confirm(f"Re-enable trading in {state_dir}? This clears: " + "; ".join(cleared),
                      abort=True)  # fmt: skip
    ks.reset(state_dir, clear_peak)
    for item in cleared:
        click.echo(f"cleared: {item}")


@click.command("rollup")
@click.option("--date", "day", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="The UTC day to roll up (YYYY-MM-DD).")  # fmt: skip
@click.option("--run", "runs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A RUN_DIR (repeatable).")  # fmt: skip
@click.option("--state-dir", type=click.Path(exists=True, file_okay=False),
              help="Roll up every RUN_DIR in this directory (two levels down).")  # fmt: skip
@click.option("--to", "to", required=True, metavar="s3://BUCKET/PREFIX | PATH",
              help="Destination root (S3 endpoint and keys from the environment).")  # fmt: skip
def rollup(day: datetime.datetime, runs: tuple[str, ...], state_dir: str | None, to: str) -> None:
    """Write one UTC day of runs (timeline, decisions, orders, fills, guardrail counts) as
    Hive-partitioned Parquet (symbol=/date=); re-running replaces that day's partitions."""
    from tqdm import tqdm

    from ops import rollup as ru

    if bool(runs) == bool(state_dir):
        raise click.UsageError("give --run RUN_DIR (repeatable) or --state-dir DIR, not both")
    found = list(runs) if runs else ru.find_runs(state_dir)
    with tqdm(unit="step", desc=f"rollup {day.date()}", file=sys.stderr) as bar:
        manifests = ru.rollup(day.date(), found, to, progress=lambda _step: bar.update())
    for m in manifests:
        rows = ", ".join(f"{name} {t['rows']}" for name, t in m["tables"].items())
        click.echo(f"{m['symbol']} {m['date']}: {rows} -> {to}")
