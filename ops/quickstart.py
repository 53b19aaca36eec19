"""``nhmm quickstart``: Binance 1-minute klines -> a model -> a held-out backtest -> a report.

One command for the walkthrough's first line: import the kline CSV(s) into a catalog
(``BinanceBar``s), train the HMM + policy head on FEATURES_BARS_V1 with the last
``holdout_frac`` of the bars held out (after a purge gap of one label horizon), register the
model, backtest the held-out tail in Nautilus on the bars (:mod:`node.bar_backtest`: the same
strategy, rules and guardrails, the instrument's fees), then ``nhmm acceptance`` and ``nhmm
report`` on that run. It lives in ``ops`` because it drives node and ops (imports run ops -> node
-> serving -> training).

``--quote`` is the size of one order in the quote currency (100 on BTCUSDT: 100 USDT); the
position limit is 1.5 orders and the drawdown stop one order's notional. A bar carries no book:
the strategy sees a one-tick spread around the close, so the SPREAD guard's base is set above one
tick (it would otherwise block every entry on a coarse tick). Fewer than :data:`SMOKE_BARS` bars
(the shared ADABTC sample has 21) train a SMOKE TEST model with windows of a bar or two: it proves
the path runs and is no evidence of anything, and the output says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from training.cli import NhmmCommand

__all__ = ["SMOKE_BARS", "SMOKE_WINDOWS", "quickstart", "run_quickstart"]

#: Below this many bars (one day of 1m klines) the quickstart trains a smoke-test model.
SMOKE_BARS = 1440
#: The smoke test's windows: every raw lookback one bar, z over the previous 8 bars.
SMOKE_WINDOWS = {
    "standardise_window_bars": 8,
    "min_periods_bars": 1,
    "rv_window_bars": 1,
    "autocorr_window_bars": 1,
    "flow_window_bars": 1,
    "vwap_window_bars": 1,
}


def _check_quote(instrument: Any, quote: float) -> None:
    from training.errors import BadInputError

    min_notional = float(instrument.min_notional or 0.0)
    if not quote > 0 or quote < min_notional:
        raise BadInputError(
            f"quote: {quote:g} is below {instrument.id}'s min notional {min_notional:g} "
            f"{instrument.quote_currency}",
            field="quote",
        )


def _strategy_config(instrument: Any, quote: float, price: float) -> Any:
    """The strategy config of one ``quote``-sized order at ``price`` on ``instrument``.

    >>> from nautilus_trader.test_kit.providers import TestInstrumentProvider
    >>> c = _strategy_config(TestInstrumentProvider.btcusdt_binance(), 100.0, 50_000.0)
    >>> c.notional_multiple, c.max_position, c.max_drawdown, c.trading_enabled  # 100 USDT orders
    (10.0, 0.003, 100.0, True)
    """
    from node.config import PolicyHMMStrategyConfig

    min_notional = float(instrument.min_notional or 0.0)
    tick_bp = float(instrument.price_increment) / price * 1e4
    return PolicyHMMStrategyConfig(
        instrument_id=str(instrument.id),
        trading_enabled=True,
        notional_multiple=quote / min_notional if min_notional > 0 else 1.0,
        max_position=1.5 * quote / price,
        max_drawdown=quote,
        max_spread_bp_base=max(2.0, 1.5 * tick_bp),
    )


def _train_config(
    smoke: bool, horizon_s: float, holdout: float, costs: Any, rules: Any, seed: int
) -> Any:
    from training.models.hmm import HMMConfig
    from training.models.labels import LabelConfig
    from training.models.policy import PolicyConfig
    from training.pipelines.train import TrainConfig

    hmm = HMMConfig(k_range=(3, 4), n_init=2, seed=seed)  # a quick start: nhmm sweep searches
    policy = PolicyConfig(seed=seed)
    if smoke:  # a handful of rows: two diagonal states, a head that can split them
        hmm = HMMConfig(k_range=(2, 2), covariance_type="diag", n_init=2, seed=seed)
        policy = PolicyConfig(seed=seed, valid_frac=0.15, min_child_weight=1.0)
    return TrainConfig(
        hmm=hmm,
        policy=policy,
        labels=LabelConfig(horizon_s=horizon_s, costs=costs),
        holdout_frac=holdout,
        test_days=0,
        rules=rules,
    )


def run_quickstart(
    csv_files: list[Path],
    symbol: str,
    quote: float,
    out: Path,
    *,
    market: str = "auto",
    holdout_frac: float = 0.2,
    horizon_bars: int = 5,
    seed: int = 0,
    progress: bool = True,
    echo: Any = print,
) -> dict[str, Any]:
    """Import -> train (held-out tail) -> register -> bar backtest of the tail -> acceptance ->
    report, under ``out``; returns what was written and the held-out figures (also written to
    ``out/quickstart.json``)."""
    from node.backtest import VenueOptions
    from node.bar_backtest import run_bar_backtest
    from ops.acceptance import run_acceptance
    from ops.report import render_report
    from training.artifacts.registry import Registry
    from training.costs import CostModel
    from training.data.catalog import MarketCatalog
    from training.data.sources.binance_public import import_binance
    from training.features.bars import bar_schema
    from training.features.offline import market_of
    from training.io import atomic_write_json
    from training.pipelines.feature_set import load_feature_sets
    from training.pipelines.train import train

    out = Path(out)
    paths = {"catalog": out / "catalog", "registry": out / "registry", "run": out / "run"}
    if paths["run"].exists() and any(paths["run"].iterdir()):
        from training.errors import ConflictError

        # a run dir holds the strategy's kill switch and drawdown peak: never start on old state
        raise ConflictError(
            f"out: {paths['run']} already holds a run; choose another --out or remove it",
            field="out",
        )
    echo(
        f"[1/5] nhmm data import-binance {' '.join(map(str, csv_files))} --kind klines "
        f"--symbol {symbol} --out {paths['catalog']}"
    )
    report, _ = import_binance(
        csv_files,
        paths["catalog"],
        kind="klines",
        market=market,
        symbol=symbol,
        name="quickstart",
        progress=progress,
    )
    n_bars = int(report.extra.get("bars", 0))
    catalog = MarketCatalog(paths["catalog"])
    instrument = catalog.instrument(symbol)
    _check_quote(instrument, quote)
    smoke = n_bars < SMOKE_BARS
    schema = bar_schema(market_of(instrument.id.value), **(SMOKE_WINDOWS if smoke else {}))
    horizon_s = horizon_bars * schema.bar_interval_s
    if smoke:
        echo(
            f"      SMOKE TEST: {n_bars} bars (< {SMOKE_BARS}): windows of a bar or two, a "
            "2-state model; it shows the path runs, it is NOT evidence of an edge"
        )

    echo(f"[2/5] train on FEATURES_BARS_V1, last {holdout_frac:.0%} of the bars held out")
    _, train_set, test = load_feature_sets(
        catalog,
        symbol,
        None,
        schema=schema,
        holdout_frac=holdout_frac,
        test_days=0,
        gap_s=horizon_s,
    )
    if len(test) == 0 or len(train_set) == 0:
        from training.errors import BadInputError

        raise BadInputError(
            f"{symbol}: {n_bars} bars leave no training or held-out rows", field="csv"
        )
    from node.config import rule_config

    cfg = _strategy_config(instrument, quote, float(train_set.mid[-1]))
    costs = CostModel.for_instrument(instrument)
    config = _train_config(
        smoke, horizon_s, holdout_frac, costs, rule_config(cfg, instrument, horizon_s), seed
    )
    bundle, test_block = train(catalog, symbol, None, config, progress=progress, schema=schema)
    bundle = bundle.with_metadata(train_end_ns=int(train_set.ts[-1]), smoke_test=smoke)
    registry = Registry(str(paths["registry"]))
    version = registry.register(bundle, alias="candidate")
    echo(f"      registered {version} -> candidate in {paths['registry']}")

    echo(f"[3/5] backtest the held-out tail in Nautilus on 1m bars -> {paths['run']}")
    price = float(train_set.mid[-1])
    venue = VenueOptions(starting_quote=100 * quote, starting_base=10 * cfg.max_position, seed=seed)
    summary = run_bar_backtest(
        catalog,
        symbol,
        None,
        version,
        registry,
        paths["run"],
        cfg,
        venue,
        trade_from_ns=int(test.ts[0]),
    )
    echo(f"[4/5] nhmm acceptance {paths['run']}")
    passed, checks = run_acceptance(paths["run"])
    echo(f"[5/5] nhmm report {paths['run']}")
    html = render_report(paths["run"])
    result = {
        "smoke_test": smoke,
        "bars": n_bars,
        "price": price,
        "symbol": str(instrument.id),
        "model_version": version,
        "paths": {
            **paths,
            "model": paths["registry"],
            "acceptance": paths["run"] / "acceptance.json",
            "report": html,
        },
        "held_out": {
            "period": test_block["period"],
            "samples": len(test),
            "simulated_net_pnl": test_block["net_pnl"],
            "simulated_ci": test_block["net_pnl_per_day_ci"],
            "backtest_net_pnl": summary["net_pnl"],
            "backtest_fills": summary["trades"],
            "in_sample": summary["in_sample"],
            "quote_ccy": str(instrument.quote_currency),
        },
        "acceptance": {
            "passed": passed,
            "n_checks": len(checks),
            "n_passed": sum(c.passed for c in checks),
        },
    }
    atomic_write_json(out / "quickstart.json", result, default=str)
    return result


def _print_table(result: dict[str, Any]) -> None:
    import shutil

    from rich.console import Console
    from rich.table import Table

    h = result["held_out"]
    ccy = h["quote_ccy"]
    tag = "SMOKE TEST, not evidence" if result["smoke_test"] else "out-of-sample"
    table = Table(title=f"nhmm quickstart: {result['symbol']} ({result['bars']} bars)")
    table.add_column("what", no_wrap=True)
    table.add_column("where / value")
    for name in ("catalog", "model", "run", "acceptance", "report"):
        table.add_row(name, str(result["paths"][name]))
    table.add_row("model version", result["model_version"])
    table.add_row(
        f"held-out PnL, Nautilus ({tag})",
        f"{h['backtest_net_pnl']:.6g} {ccy} after fees, {h['backtest_fills']:g} fills",
    )
    lo, hi = h["simulated_ci"]
    table.add_row(
        f"held-out PnL, simulator ({tag})",
        f"{h['simulated_net_pnl']:.6g} {ccy}/day, 95% CI [{lo:.3g}, {hi:.3g}]",
    )
    table.add_row("held-out period", f"{h['period']} ({h['samples']} samples)")
    a = result["acceptance"]
    table.add_row("acceptance", f"{a['n_passed']}/{a['n_checks']} checks passed")
    Console(width=max(140, shutil.get_terminal_size().columns)).print(table)


@click.command("quickstart", cls=NhmmCommand)
@click.option(
    "--csv",
    "csv_files",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Binance 1m kline CSV or downloaded zip; more files may follow (--csv data/*.zip).",
)
@click.argument(
    "more_files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--symbol", required=True, help="The klines' symbol (BTCUSDT).")
@click.option(
    "--quote",
    type=float,
    required=True,
    help="One order's size in the quote currency (100 on BTCUSDT: 100 USDT).",
)
@click.option(
    "--out",
    "out_dir",
    default="quickstart",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--market", type=click.Choice(["auto", "spot", "usdm"]), default="auto", show_default=True
)
@click.option(
    "--holdout",
    "holdout_frac",
    type=click.FloatRange(0.05, 0.5),
    default=0.2,
    show_default=True,
    help="Fraction of the bars held out (the tail).",
)
@click.option(
    "--horizon-bars",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Label horizon = holding time, in bars.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def quickstart(
    csv_files: tuple[Path, ...],
    more_files: tuple[Path, ...],
    symbol: str,
    quote: float,
    out_dir: Path,
    market: str,
    holdout_frac: float,
    horizon_bars: int,
    seed: int,
    progress: bool,
) -> None:
    """Klines -> model -> backtest of the held-out tail -> acceptance -> report, one command."""
    result = run_quickstart(
        [*csv_files, *more_files],
        symbol,
        quote,
        out_dir,
        market=market,
        holdout_frac=holdout_frac,
        horizon_bars=horizon_bars,
        seed=seed,
        progress=progress,
        echo=click.echo,
    )
    _print_table(result)
