"""``nhmm features``: FEATURES_V1 tables from a catalog.

``nhmm features extract --catalog C --symbol S [--days 2024-08-08,2024-08-09] --out DIR`` writes
``DIR/features/<instrument_id>/<day>.parquet`` per symbol-day and prints each path.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click

from training.cli.options import days_option
from training.features.engine import FeatureSchema, schema_for


@click.group()
def features() -> None:
    """Extract FEATURES_V1 tables (the same engine the Nautilus strategy runs)."""


@features.command("extract")
@click.option("--catalog", "catalog_dir", required=True, type=click.Path(file_okay=False))
@click.option("--symbol", required=True, help="BTCUSDT, BTCUSDT-PERP or a full instrument id.")
@days_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--schema",
    "schema_file",
    default=None,
    type=click.Path(dir_okay=False),
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
    catalog_dir: str,
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
    from training.features.offline import extract_many, market_of

    root = Path(catalog_dir)
    if not root.is_dir():
        raise click.BadParameter(f"{root} is not a directory", param_hint="--catalog")
    catalog = MarketCatalog(root)
    sds = catalog.symbol_days(symbol)
    if not sds:
        raise click.ClickException(f"no partitions for {symbol!r} in {root}")
    if schema_file:
        schema = FeatureSchema.from_dict(json.loads(Path(schema_file).read_text()))
    else:
        schema = schema_for(market_of(sds[0].instrument_id))
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
        schema = schema_for(schema.market, **{**_windows(schema), **overrides})
    try:
        paths = extract_many(
            catalog,
            symbol,
            list(days) or None,
            schema,
            out_dir,
            continuous=not per_day,
            progress=progress,
        )
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from exc
    for path in paths.values():
        click.echo(str(path))


def _windows(schema: FeatureSchema) -> dict[str, object]:
    d = schema.to_dict()
    for k in ("market", "version", "names"):
        d.pop(k)
    return d
