"""``nhmm train``: fit HMM + policy head on a symbol's days, evaluate on the last, register it.

A missing symbol or day is a :class:`~training.errors.NotFoundError` from
:meth:`MarketCatalog.select`: ``nhmm`` prints one line naming it and exits 2.
"""

from __future__ import annotations

import datetime

import click

from training.cli.options import catalog_option
from training.cli.options import cost_options
from training.cli.options import days_option
from training.cli.options import registry_option
from training.cli.options import symbol_option
from training.cli.options import test_days_option

__all__ = ["print_test_block", "train"]

#: The ``test`` figures printed, in this order.
_TEST_ROWS = ("net_pnl_per_day", "net_bp_per_day", "round_trips_per_day", "gross_edge_bp_per_rt",
              "cost_bp_per_rt", "net_bp_per_rt", "hit_rate", "fees", "open_position_end",
              "close_cost", "days", "policy_accuracy", "regime_accuracy",
              "valid_loglik_per_sample", "k")  # fmt: skip


def print_test_block(block: dict, title: str) -> None:
    """The ``test`` block as a table: what the model earned, simulated, where nothing was fitted
    or chosen, with its CI; the period is named (one day: a tail of the training day)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("test metric (simulated, out-of-sample)")
    table.add_column("value", justify="right")
    lo, hi = block["net_pnl_per_day_ci"]
    table.add_row("period", str(block["period"]))
    for name in _TEST_ROWS:
        if name in block:
            table.add_row(name, f"{block[name]:.6g}")
        if name == "net_pnl_per_day":
            table.add_row(
                f"  {block['ci_level']:.0%} CI ({block['ci_blocks']} blocks)",
                f"[{lo:.4g}, {hi:.4g}]",
            )
    Console().print(table)


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
@click.option(
    "--horizon-s",
    type=float,
    default=None,
    help="Label horizon = holding time [default: the shortest horizon whose median move on the "
    "training days is worth HORIZON_COST_MULTIPLE round trips: "
    "training.pipelines.train.choose_horizon_s].",
)
@cost_options
@test_days_option
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
    horizon_s: float | None,
    maker_bps: float | None,
    taker_bps: float | None,
    fee_tier: str | None,
    test_days: int,
    registry_root: str | None,
    alias: str,
) -> None:
    """Fit HMM + policy head on a symbol's days but the last --test-days, trade those in the
    simulator (the ``test`` block), register the model."""
    import time

    from training.artifacts.registry import Registry
    from training.costs import CostModel
    from training.data.catalog import MarketCatalog
    from training.models.hmm import HMMConfig
    from training.models.labels import LabelConfig
    from training.models.policy import PolicyConfig
    from training.pipelines import train as pipeline

    catalog = MarketCatalog(catalog_root)
    costs = CostModel.for_instrument(
        catalog.instrument(symbol), maker_bps=maker_bps, taker_bps=taker_bps, fee_tier=fee_tier
    )
    config = pipeline.TrainConfig(
        hmm=HMMConfig(
            k_range=(min(k_range), max(k_range)),
            covariance_type=covariance,  # type: ignore[arg-type]
            n_init=n_init,
            seed=seed,
        ),
        policy=PolicyConfig(seed=seed),
        labels=LabelConfig(horizon_s=horizon_s or 300.0, costs=costs),
        test_days=test_days,
        auto_horizon=horizon_s is None,
    )
    t0 = time.perf_counter()
    bundle, test = pipeline.train(catalog, symbol, list(days) or None, config, progress=True)
    version = Registry(registry_root).register(bundle, alias=alias)
    click.echo(
        f"costs: maker {costs.maker_bps:g} bp, taker {costs.taker_bps:g} bp, passive round trip "
        f"{costs.round_trip_bps():g} bp; horizon "
        f"{bundle.metadata['config']['labels']['horizon_s']:g} s; trained on "
        f"{', '.join(bundle.metadata['symbol_days'])}"
    )
    print_test_block(test, f"{symbol}: {version} → {alias} ({time.perf_counter() - t0:.1f} s)")
    click.echo(version)
