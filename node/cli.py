"""``nhmm backtest``: the strategy over catalog symbol-days; writes a RUN_DIR.

Thin and light at import (``nhmm --help`` loads it): Nautilus, pandas and the backtest runner
are imported inside the command. The work is :func:`node.backtest.run_backtest`.
"""

from __future__ import annotations

import datetime

import click

from node.execution import VWAP_MODES
from training.cli.options import catalog_option
from training.cli.options import days_option
from training.cli.options import out_option
from training.cli.options import registry_option
from training.cli.options import symbol_option

__all__ = ["backtest"]

#: The summary figures printed after a run.
_SHOWN = ("net_pnl", "sharpe", "max_drawdown", "trades", "turnover", "events", "wall_s")


@click.command("backtest")
@catalog_option()
@symbol_option
@days_option
@click.option("--model", "model_ref", default="live", show_default=True)
@registry_option
@out_option("RUN_DIR.")
@click.option(
    "--serve",
    "serve_url",
    default=None,
    help="Serve URL (http://127.0.0.1:8000); default: in process.",
)
@click.option("--budget-ms", type=float, default=None, help="LATENCY budget in ms [default: 50].")
@click.option("--shadow", multiple=True, help="Model ref run in shadow, never traded (repeatable).")
@click.option("--min-conf", type=float, default=0.6, show_default=True)
@click.option("--trading/--no-trading", default=True, show_default=True)
@click.option("--prob-slippage", type=float, default=0.1, show_default=True)
@click.option("--latency-ms", type=float, default=5.0, show_default=True)
@click.option("--hold-s", type=float, default=None, help="Hold time [default: the label horizon].")
@click.option("--stop-loss-bps", type=float, default=0.0, show_default=True, help="0 = off.")
@click.option("--signal-exit/--no-signal-exit", default=False, show_default=True)
@click.option("--vwap-mode", type=click.Choice(VWAP_MODES), default="trend", show_default=True)
def backtest(
    catalog_root: str,
    symbol: str,
    days: tuple[datetime.date, ...],
    model_ref: str,
    registry_root: str | None,
    out_dir: str,
    serve_url: str | None,
    budget_ms: float | None,
    shadow: tuple[str, ...],
    min_conf: float,
    trading: bool,
    prob_slippage: float,
    latency_ms: float,
    hold_s: float | None,
    stop_loss_bps: float,
    signal_exit: bool,
    vwap_mode: str,
) -> None:
    """Backtest the strategy on catalog symbol-days; writes reports and summary.json to --out."""
    from node.backtest import VenueOptions
    from node.backtest import run_backtest
    from node.config import PolicyHMMStrategyConfig
    from training.artifacts.registry import Registry
    from training.data.catalog import MarketCatalog

    if budget_ms is not None and not budget_ms > 0:
        raise click.BadParameter(f"must be > 0, got {budget_ms}", param_hint="--budget-ms")
    try:
        cfg = PolicyHMMStrategyConfig(
            instrument_id=symbol,
            min_conf=min_conf,
            trading_enabled=trading,
            hold_s=hold_s,
            stop_loss_bps=stop_loss_bps,
            signal_exit=signal_exit,
            vwap_mode=vwap_mode,
        )
    except ValueError as exc:  # the config's own validation of the options above
        raise click.UsageError(str(exc)) from exc
    summary = run_backtest(
        MarketCatalog(catalog_root),
        symbol,
        list(days) or None,
        model_ref,
        Registry(registry_root),
        out_dir,
        cfg,
        VenueOptions(prob_slippage=prob_slippage, latency_ms=latency_ms),
        serve_url=serve_url,
        budget_ms=budget_ms,
        shadow=shadow,
    )
    for key in _SHOWN:
        value = summary[key]
        click.echo(f"{key:>14}: {'n/a' if value is None else format(value, '.6g')}")
    click.echo(f"{'guardrails':>14}: {summary['guardrails']}")
    for v, info in (summary.get("shadow") or {}).get("versions", {}).items():
        click.echo(f"{'shadow':>14}: {v} agreement {info['agreement']} paper {info['paper']}")
