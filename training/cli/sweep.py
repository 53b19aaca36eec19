"""``nhmm sweep``: a walk-forward Ray Tune search; the refit best config becomes ``candidate``.

Thin: the work is :func:`training.pipelines.sweep.run_sweep` (Ray imported only there).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING

import click

from training.cli.options import bars_option
from training.cli.options import catalog_option
from training.cli.options import cost_options
from training.cli.options import days_option
from training.cli.options import registry_option
from training.cli.options import test_days_option

if TYPE_CHECKING:
    from training.pipelines.sweep import SweepResult

__all__ = ["print_top", "sweep"]


def print_top(result: SweepResult, n: int = 10) -> None:
    """A rich table of the ``n`` best trials."""
    from rich.console import Console
    from rich.table import Table

    rows = sorted(result.trials.to_pylist(), key=lambda r: -r["objective"])[:n]
    table = Table(
        title=f"{result.sweep_id}: SEARCH top {len(rows)} (best {result.best_trial}); objective = "
        "walk-forward net bp/day, fold mean - 1 SE (optimistic for the winner: it was chosen on it)"
    )
    cols = (
        "trial",
        "objective",
        "fold_mean",
        "fold_se",
        "k",
        "covariance_type",
        "threshold",
        "horizon_s",
        "round_trips_per_day",
        "gross_edge_bp_per_rt",
        "cost_bp_per_rt",
        "policy_accuracy",
        "folds_done",
        "rejected",
    )
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols)
        )
    Console().print(table)


@click.command("sweep")
@catalog_option()
@click.option("--symbols", multiple=True, help="Symbol (repeatable); default: every symbol.")
@days_option
@click.option("--num-samples", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scheduler", type=click.Choice(["asha", "fifo"]), default="asha", show_default=True)
@click.option("--max-concurrent", type=int, default=None)
@click.option("--k", "k_values", multiple=True, type=int, help="K choices; default 3 4 5.")
@click.option(
    "--covariance",
    "covariances",
    multiple=True,
    type=click.Choice(["full", "diag"]),
    help="Covariance choices; default both.",
)
@click.option("--n-init", "n_inits", multiple=True, type=int, help="n_init choices.")
@click.option("--hmm-n-iter", type=int, default=100, show_default=True)
@cost_options
@test_days_option
@click.option("--out", "out_dir", default="sweeps", show_default=True)
@click.option("--cache", "cache_dir", default=None, help="Default: CATALOG/.feature_cache.")
@bars_option(
    "Sweep FEATURES_BARS_V1 of the catalog's 1m klines instead of the order book "
    "(horizons: whole bars)."
)
@registry_option
@click.option("--address", default=None, help="Overrides RAY_ADDRESS.")
@click.option("--num-cpus", type=int, default=None, help="Local Ray only.")
def sweep(
    catalog_root: str,
    symbols: tuple[str, ...],
    days: tuple[datetime.date, ...],
    num_samples: int,
    seed: int,
    scheduler: str,
    max_concurrent: int | None,
    k_values: tuple[int, ...],
    covariances: tuple[str, ...],
    n_inits: tuple[int, ...],
    hmm_n_iter: int,
    maker_bps: float | None,
    taker_bps: float | None,
    fee_tier: str | None,
    test_days: int,
    out_dir: str,
    cache_dir: str | None,
    bars: str | None,
    registry_root: str | None,
    address: str | None,
    num_cpus: int | None,
) -> None:
    """Walk-forward Ray Tune sweep; registers the refit best config as ``candidate``."""
    from training.pipelines.sweep import SearchSpace
    from training.pipelines.sweep import SweepConfig
    from training.pipelines.sweep import run_sweep

    space = SearchSpace()
    if k_values:
        space = dataclasses.replace(space, k=tuple(k_values))
    if covariances:
        space = dataclasses.replace(space, covariance_type=tuple(covariances))
    if n_inits:
        space = dataclasses.replace(space, n_init=tuple(n_inits))
    cfg = SweepConfig(
        symbols=symbols,
        days=days,
        num_samples=num_samples,
        seed=seed,
        space=space,
        scheduler=scheduler,  # type: ignore[arg-type]
        max_concurrent=max_concurrent,
        hmm_n_iter=hmm_n_iter,
        maker_bps=maker_bps,
        taker_bps=taker_bps,
        fee_tier=fee_tier,
        test_days=test_days,
        bars=bars,
    )
    result = run_sweep(
        catalog_root,
        cfg,
        out_dir=out_dir,
        registry_root=registry_root,
        cache_dir=cache_dir,
        address=address,
        num_cpus=num_cpus,
    )
    from training.cli.train import print_test_block

    print_top(result)
    if result.test is not None:
        print_test_block(result.test, f"{result.best_trial} refit on the search days -> TEST")
    click.echo(f"sweep {result.sweep_id}: best {result.best_trial} -> {result.version}")
