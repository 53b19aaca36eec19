"""``nhmm features``: FEATURES_V1 tables from a catalog.

``nhmm features extract --catalog C --symbol S [--days 2024-08-08,2024-08-09] --out DIR`` writes
``DIR/features/<instrument_id>/<day>.parquet`` per symbol-day and prints each path.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click

from training.cli.options import catalog_option
from training.cli.options import days_option
from training.cli.options import out_option
from training.cli.options import symbol_option

__all__ = ["features"]


@click.group()
def features() -> None:
    """Extract FEATURES_V1 tables (the same engine the Nautilus strategy runs)."""


@features.command("extract")
@catalog_option()
@symbol_option
@days_option
@out_option("Directory for features/<instrument_id>/<day>.parquet.")
@click.option(
    "--schema",
    "schema_file",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="A schema JSON (FeatureSchema.to_dict); default the market's FEATURES_V1.",
)
@click.option("--interval", type=float, default=None, help="Sample interval in seconds.")
@click.option("--window", type=float, default=None, help="Standardisation window in seconds.")
@click.option("--min-periods", type=float, default=None, help="Warm-up in seconds.")
@click.option(
    "--per-day/--continuous",
    default=False,
    help="Fresh engine per day instead of one session across consecutive days.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def extract(
    catalog_root: str,
    symbol: str,
    days: tuple[datetime.date, ...],
    out_dir: str,
    schema_file: str | None,
    interval: float | None,
    window: float | None,
    min_periods: float | None,
    per_day: bool,
    progress: bool,
) -> None:
    """Write one feature Parquet per symbol-day of SYMBOL."""
    from training.data.catalog import MarketCatalog
    from training.errors import BadInputError
    from training.features.offline import extract_many
    from training.features.offline import market_of
    from training.features.schema import FeatureSchema
    from training.features.schema import schema_for

    catalog = MarketCatalog(catalog_root)
    selected = catalog.select(symbol, list(days) or None)
    if schema_file:
        try:
            stored = json.loads(Path(schema_file).read_text())
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{schema_file}: not JSON ({exc})", field="schema") from exc
        schema = FeatureSchema.from_dict(stored)
    else:
        schema = schema_for(market_of(selected[0].instrument_id))
    overrides = {
        k: v
        for k, v in (
            ("sample_interval_s", interval),
            ("standardise_window_s", window),
            ("min_periods_s", min_periods),
        )
        if v is not None
    }
    if overrides:
        schema = schema_for(schema.market, **{**schema.windows(), **overrides})
    paths = extract_many(
        catalog,
        symbol,
        list(days) or None,
        schema,
        out_dir,
        continuous=not per_day,
        progress=progress,
    )
    for path in paths.values():
        click.echo(str(path))
