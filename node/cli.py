"""``nhmm backtest``: the strategy over catalog symbol-days; writes a RUN_DIR.

Thin and light at import (``nhmm --help`` loads it): Nautilus, pandas and the backtest runner
are imported inside the command. The work is :func:`node.backtest.run_backtest`.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from typing import Any

import click

from node.fills import FILL_MODELS
from training.cli.options import bars_option
from training.cli.options import catalog_option
from training.cli.options import days_option
from training.cli.options import out_option
from training.cli.options import registry_option
from training.cli.options import symbol_option
from training.simulation.execution import VWAP_MODES
from training.simulation.rules import GuardLimits
from training.simulation.rules import RuleConfig

if TYPE_CHECKING:
    from node.config import PolicyHMMStrategyConfig

__all__ = ["backtest", "strategy_config"]

#: The summary figures printed after a run.
_SHOWN = ("net_pnl", "open_position_end", "close_cost", "funding", "sharpe", "max_drawdown",
          "trades", "round_trips", "gross_edge_bp_per_rt", "cost_bp_per_rt", "net_bp_per_rt",
          "fees", "turnover", "passive_fill_rate", "events", "wall_s")  # fmt: skip


def strategy_config(
    symbol: str,
    min_conf: float,
    trading: bool,
    hold_s: float | None,
    stop_loss_bps: float,
    signal_exit: bool,
    vwap_mode: str,
    **changes: Any,
) -> PolicyHMMStrategyConfig:
    """The strategy config the backtest's options describe; ``nhmm node run`` takes the same
    options (one option set, one config). An invalid combination is a usage error."""
    from node.config import PolicyHMMStrategyConfig

    try:
        return PolicyHMMStrategyConfig(
            instrument_id=symbol,
            min_conf=min_conf,
            trading_enabled=trading,
            hold_s=hold_s,
            stop_loss_bps=stop_loss_bps,
            signal_exit=signal_exit,
            vwap_mode=vwap_mode,
            **changes,
        )
    except ValueError as exc:  # the config's own validation of the options
        raise click.UsageError(str(exc)) from exc


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
@click.option("--min-conf", type=float, default=GuardLimits().min_conf, show_default=True)
@click.option("--trading/--no-trading", default=True, show_default=True)
@click.option(
    "--fill-model",
    type=click.Choice(FILL_MODELS),
    default="queue",
    show_default=True,
    help="queue: resting orders wait behind the displayed size at their price, takers walk the "
    "book; touch: the first trade at the price fills all (optimistic, to compare).",
)
@click.option("--latency-ms", type=float, default=5.0, show_default=True,
              help="Order latency to the venue, each way.")  # fmt: skip
@click.option(
    "--model-latency-ms",
    type=float,
    default=None,
    help="How long after a sample the model's answer arrives [default: 0.1 in process, the "
    "measured call time over --serve].",
)
@click.option("--hold-s", type=float, default=None, help="Hold time [default: the label horizon].")
@click.option("--stop-loss-bps", type=float, default=0.0, show_default=True, help="0 = off.")
@click.option("--signal-exit/--no-signal-exit", default=False, show_default=True)
@click.option("--vwap-mode", type=click.Choice(VWAP_MODES), default="trend", show_default=True)
@click.option(
    "--risk-budget",
    type=float,
    default=RuleConfig().risk_budget,
    show_default=True,
    help="Quote per trade a one-sigma move over the hold may cost (sizes entries); 0 = the "
    "min-notional size.",
)
@click.option(
    "--scale-up-cycles",
    type=int,
    default=RuleConfig().scale_up_cycles,
    show_default=True,
    help="Clean round trips before the entry size steps up one multiple; 0 = off.",
)
@click.option("--max-scale", type=int, default=RuleConfig().max_scale, show_default=True,
              help="The largest multiple of the base entry size scale-up reaches.")  # fmt: skip
@click.option("--long-only/--no-long-only", default=RuleConfig().long_only, show_default=True,
              help="Sell signals never open a short (a spot account without base).")  # fmt: skip
@bars_option(
    "Trade a FEATURES_BARS_V1 model on the catalog's 1m klines (orders on bar closes) "
    "instead of the order book."
)
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
    fill_model: str,
    latency_ms: float,
    model_latency_ms: float | None,
    hold_s: float | None,
    stop_loss_bps: float,
    signal_exit: bool,
    vwap_mode: str,
    risk_budget: float,
    scale_up_cycles: int,
    max_scale: int,
    long_only: bool,
    bars: str | None,
) -> None:
    """Backtest the strategy on catalog symbol-days; writes reports and summary.json to --out."""
    from node.backtest import VenueOptions
    from node.backtest import run_backtest
    from training.artifacts.registry import Registry
    from training.data.catalog import MarketCatalog

    if budget_ms is not None and not budget_ms > 0:
        raise click.BadParameter(f"must be > 0, got {budget_ms}", param_hint="--budget-ms")
    cfg = strategy_config(symbol, min_conf, trading, hold_s, stop_loss_bps, signal_exit, vwap_mode,
                          risk_budget=risk_budget, scale_up_cycles=scale_up_cycles,
                          max_scale=max_scale, long_only=long_only,
                          modelled_latency_ms=model_latency_ms)  # fmt: skip
    venue = VenueOptions(fill_model=fill_model, latency_ms=latency_ms)
    args = (MarketCatalog(catalog_root), symbol, list(days) or None, model_ref,
            Registry(registry_root), out_dir, cfg, venue)  # fmt: skip
    if bars is not None:
        from node.bar_backtest import run_bar_backtest

        if serve_url or shadow:
            raise click.UsageError("--bars runs the model in process: no --serve or --shadow")
        summary = run_bar_backtest(*args)
    else:
        summary = run_backtest(*args, serve_url=serve_url, budget_ms=budget_ms, shadow=shadow)
    if summary["in_sample"]:
        click.echo(
            "WARNING: in-sample backtest: the model was trained on "
            + ", ".join(summary["in_sample_days"])
            + "; these figures say nothing about unseen data (summary.json: in_sample: true)",
            err=True,
        )
    for key in (k for k in _SHOWN if k in summary):  # a bar run has no passive fill rate
        value = summary[key]
        click.echo(f"{key:>20}: {'n/a' if value is None else format(value, '.6g')}")
    click.echo(f"{'in_sample':>20}: {str(summary['in_sample']).lower()}")
    test = summary.get("model_test")
    if test:
        lo, hi = test["net_pnl_per_day_ci"]
        click.echo(
            f"{'model test':>20}: {test['net_pnl_per_day']:.4g}/day simulated, CI [{lo:.4g}, "
            f"{hi:.4g}] ({test['period']})"
        )
    click.echo(f"{'guardrails':>20}: {summary['guardrails']}")
    for v, info in (summary.get("shadow") or {}).get("versions", {}).items():
        click.echo(f"{'shadow':>20}: {v} agreement {info['agreement']} paper {info['paper']}")
