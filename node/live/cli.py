"""``nhmm node run`` (also ``python node/run.py``): the paper / live node.

Light at import (``nhmm --help`` loads it): Nautilus, the model and the venue load inside the
command. The strategy options are ``nhmm backtest``'s own (the same click options, taken from
:data:`node.cli.backtest`), so a paper run and a backtest are configured alike. An
:class:`~training.errors.NhmmError` (a refusal, a missing key, bad input) is one line, exit 2.

The ``--rollup-to`` hook runs ``nhmm rollup`` in a child process: the node package never
imports :mod:`ops` (imports run ops -> node), and a failed rollup cannot stop the node.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from node.cli import backtest as _backtest
from training.cli import NhmmCommand
from training.cli.options import symbol_option

__all__ = ["STRATEGY_OPTIONS", "node", "parity", "rollup_hook", "run"]

#: ``nhmm backtest`` options the node takes as they are (one option set, one config).
STRATEGY_OPTIONS = ("model_ref", "registry_root", "serve_url", "budget_ms", "min_conf", "trading",
                    "hold_s", "stop_loss_bps", "signal_exit", "vwap_mode", "risk_budget",
                    "scale_up_cycles", "max_scale", "long_only")  # fmt: skip


def rollup_hook(to: str, echo: Any = click.echo) -> Any:
    """A day hook that rolls ``(day, RUN_DIR)`` up into ``to`` with ``nhmm rollup``."""

    def hook(day: datetime.date, run_dir: Path) -> None:
        cmd = [sys.executable, "-m", "training.cli", "rollup", "--date", day.isoformat(),
               "--run", str(run_dir), "--to", to]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        echo(f"rollup {day} -> {to}: {status} {tail[0] if done.returncode else ''}".rstrip())

    return hook


def _out_option(help: str) -> Any:
    """``--out DIR`` (optional; the command says where it goes by default)."""
    return click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help=help)  # fmt: skip


def _strategy_options(f: Any) -> Any:
    for param in reversed([p for p in _backtest.params if p.name in STRATEGY_OPTIONS]):
        f.__click_params__ = [*getattr(f, "__click_params__", []), param]
    return f


@click.command("run", cls=NhmmCommand)
@click.option(
    "--testnet",
    "environment",
    flag_value="testnet",
    default=True,
    help="Binance testnet (spot) / futures testnet [default].",
)
@click.option(
    "--demo", "environment", flag_value="demo", help="Binance demo trading (use for USD-M paper)."
)
@click.option(
    "--live",
    "environment",
    flag_value="live",
    help="Real money: needs live keys, TRADING_ENABLED=true and --i-understand-live-trading.",
)
@click.option("--i-understand-live-trading", "confirmed", is_flag=True, default=False)
@click.option("--account", type=click.Choice(["spot", "usdm"]), default="spot", show_default=True)
@symbol_option
@click.option(
    "--replay",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Rehearse on these recordings through the in-process loopback venue (repeatable).",
)
@click.option(
    "--speed", type=float, default=1.0, show_default=True, help="Replay pace (1 = real time)."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("node_state"),
    show_default=True,
    help="Kill switch, crash marker and runs.",
)
@_out_option("RUN_DIR [default: STATE_DIR/runs/<UTC start>].")
@click.option(
    "--max-notional",
    type=float,
    default=1000.0,
    show_default=True,
    help="Hard cap per order, quote (Nautilus RiskEngine).",
)
@click.option(
    "--max-position", type=float, default=None, help="Position cap, base units [default: 0.01]."
)
@click.option(
    "--max-submit-rate",
    default="10/00:00:01",
    show_default=True,
    help="Orders per interval (Nautilus RiskEngine, N/HH:MM:SS).",
)
@click.option("--flatten", is_flag=True, default=False, help="Close the position at shutdown.")
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port."
)
@click.option(
    "--rollup-to",
    default=None,
    metavar="s3://BUCKET/PREFIX | PATH",
    help="Roll each finished UTC day up here (nhmm rollup).",
)
@click.option("--duration", "duration_s", type=float, default=None, help="Stop after S seconds.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False),
    default=".env",
    show_default=True,
    help="Read variables from this file (values already set win).",
)
@click.option("--log-level", default="INFO", show_default=True)
@_strategy_options
def run(environment: str, confirmed: bool, account: str, symbol: str, replay: tuple[str, ...],
        speed: float, state_dir: Path, out_dir: Path | None, max_notional: float,
        max_position: float | None, max_submit_rate: str, flatten: bool, metrics_port: int | None,
        rollup_to: str | None, duration_s: float | None, env_file: str, log_level: str,
        **strategy: Any) -> None:  # fmt: skip
    """Paper or live trading on Binance (or a rehearsal on a recording with --replay)."""
    import os

    from dotenv import load_dotenv

    from node.cli import strategy_config
    from node.live.config import LiveConfig
    from node.live.runner import run_live

    if Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    sizing = ("risk_budget", "scale_up_cycles", "max_scale", "long_only")
    changes = {k: strategy[k] for k in sizing}
    if max_position is not None:
        changes["max_position"] = max_position
    if strategy["budget_ms"] is not None:
        changes["latency_budget_ms"] = strategy["budget_ms"]
    scfg = strategy_config(
        symbol, *(strategy[k] for k in ("min_conf", "trading", "hold_s", "stop_loss_bps",
                                        "signal_exit", "vwap_mode")), **changes
    )  # fmt: skip
    cfg = LiveConfig(
        symbol=symbol, strategy=scfg, environment=environment, account=account,  # type: ignore[arg-type]
        model_ref=strategy["model_ref"], registry_root=strategy["registry_root"],
        serve_url=strategy["serve_url"], replay=tuple(replay), speed=speed, state_dir=state_dir,
        out=out_dir, max_notional_per_order=max_notional, max_order_submit_rate=max_submit_rate,
        flatten=flatten, metrics_port=metrics_port, log_level=log_level,
    )  # fmt: skip
    hook = rollup_hook(rollup_to) if rollup_to else None
    run_live(cfg, os.environ, confirmed=confirmed, on_day=hook, duration_s=duration_s,
             echo=click.echo)  # fmt: skip


@click.group("node")
def node() -> None:
    """The paper / live trading node."""


node.add_command(run)


@node.command("parity", cls=NhmmCommand)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("backtest_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_out_option("Where parity.json / parity.md go [default: RUN_DIR].")
@click.option("--min-fraction", type=click.FloatRange(0.0, 1.0), default=0.99, show_default=True,
              help="Exit 1 when fewer samples agree.")  # fmt: skip
def parity(run_dir: Path, backtest_dir: Path, out_dir: Path | None, min_fraction: float) -> None:
    """Compare a `node/run.py --replay` RUN_DIR with an `nhmm backtest` RUN_DIR of the same
    recording: same (state, action) sample by sample; every difference with its cause."""
    from node.live.parity import parity as compare_runs
    from node.live.parity import write_parity

    report = compare_runs(run_dir, backtest_dir)
    js, md = write_parity(report, out_dir or run_dir)
    click.echo(f"parity: same (state, action) on {report.agree}/{report.samples} samples "
               f"({report.fraction:.2%}); {report.pairs} in both runs")  # fmt: skip
    for cause, n in report.by_cause().items():
        click.echo(f"{cause:>20}: {n}")
    click.echo(f"{js}\n{md}")
    if report.fraction < min_fraction:
        raise SystemExit(1)
