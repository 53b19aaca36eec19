"""``nhmm train``: fit HMM + policy head on a symbol's days, evaluate on the last, register it.

A missing symbol or day is a :class:`~training.errors.NotFoundError` from
:meth:`MarketCatalog.select`: ``nhmm`` prints one line naming it and exits 2.
"""

from __future__ import annotations

import datetime

import click

from training.cli.options import catalog_option
from training.cli.options import days_option
from training.cli.options import registry_option
from training.cli.options import symbol_option

__all__ = ["train"]


@click.command("train")
@catalog_option()
@symbol_option
@days_option
@click.option("--k", "k_range", nargs=2, type=int, default=(3, 5), show_default=True)
@click.option(
    "--covariance", type=click.Choice(["full", "diag"]), default="full", show_default=True
)
@click.option("--n-init", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--horizon-s", type=float, default=10.0, show_default=True)
@click.option("--fee-bps", type=float, default=None, help="Default: the instrument's maker fee.")
@registry_option
@click.option("--alias", default="candidate", show_default=True)
def train(
    catalog_root: str,
    symbol: str,
    days: tuple[datetime.date, ...],
    k_range: tuple[int, int],
    covariance: str,
    n_init: int,
    seed: int,
    horizon_s: float,
    fee_bps: float | None,
    registry_root: str | None,
    alias: str,
) -> None:
    """Fit HMM + policy head on a symbol's days, evaluate on the last day, register it."""
    import time

    from rich.console import Console
    from rich.table import Table

    from training.artifacts.registry import Registry
    from training.data.catalog import MarketCatalog
    from training.models.hmm import HMMConfig
    from training.models.labels import LabelConfig
    from training.models.policy import PolicyConfig
    from training.pipelines import train as pipeline

    catalog = MarketCatalog(catalog_root)
    if fee_bps is None:
        fee_bps = float(catalog.instrument(symbol).maker_fee) * 1e4
    config = pipeline.TrainConfig(
        hmm=HMMConfig(
            k_range=(min(k_range), max(k_range)),
            covariance_type=covariance,  # type: ignore[arg-type]
            n_init=n_init,
            seed=seed,
        ),
        policy=PolicyConfig(seed=seed),
        labels=LabelConfig(horizon_s=horizon_s, fee_bps=fee_bps),
    )
    t0 = time.perf_counter()
    bundle, metrics = pipeline.train(catalog, symbol, list(days) or None, config, progress=True)
    version = Registry(registry_root).register(bundle, alias=alias)
    table = Table(title=f"{symbol}: {version} → {alias}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.6g}")
    table.add_row("wall_time_s", f"{time.perf_counter() - t0:.1f}")
    Console().print(table)
    click.echo(version)
