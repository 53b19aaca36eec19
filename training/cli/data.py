"""``nhmm data``: every way market data enters the catalog.

``import-ws`` (raw Binance WebSocket recordings), ``import-binance`` (data.binance.vision files),
``download`` (those files, verified, optionally imported), ``import-tardis`` (Tardis.dev CSV) and
``synth`` (a synthetic regime market). Each prints a one-line summary and the report's path.

Light at import time: options only; the importers (Nautilus, pyarrow) load inside the commands.
A user error (a bad file or row, an unknown symbol, a failed download) is one line, exit 2.

>>> data.list_commands(click.Context(data))
['download', 'import-binance', 'import-tardis', 'import-ws', 'synth']
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

import click

from training.cli import NhmmCommand
from training.cli.options import out_option

__all__ = ["data", "download", "import_binance", "import_tardis", "import_ws", "synth"]

# The sources' choices, spelled out so this module imports no importer (tests check they match).
BINANCE_KINDS = ("trades", "aggTrades", "bookTicker", "depth", "klines", "fundingRate")
TARDIS_KINDS = ("book", "trades", "derivative_ticker")
DOWNLOAD_KINDS = ("trades", "aggTrades", "bookTicker", "klines", "fundingRate")
SYNTH_PRESETS = ("micro", "null", "realistic")
BASE_URL = "https://data.binance.vision"


@click.group()
def data() -> None:
    """Import market data into a Nautilus Parquet catalog (one partition per symbol-day)."""


data.command_class = NhmmCommand

_files = click.argument(
    "files",
    nargs=-1,
    required=True,
    metavar="FILE...",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
_out = out_option("Catalog root.", param="out")
_auto_market = click.option(
    "--market",
    type=click.Choice(["auto", "spot", "usdm"]),
    default="auto",
    show_default=True,
    help="Binance market; auto: from the data (or the file's path).",
)
_exchange_info = click.option(
    "--exchange-info",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Binance exchangeInfo JSON (default: the bundled snapshot).",
)
_name = click.option("--name", default=None, help="Report name (CATALOG/reports/<name>.json).")
_progress = click.option("--progress/--no-progress", default=True, show_default=True)


@data.command("import-ws")
@_files
@_out
@_auto_market
@_exchange_info
@_name
@_progress
def import_ws(
    files: tuple[Path, ...],
    out: str,
    market: Literal["auto", "spot", "usdm"],
    exchange_info: Path | None,
    name: str | None,
    progress: bool,
) -> None:
    """Import raw Binance WebSocket recordings (FILE... in stream order) into CATALOG."""
    from training.data.sources.binance_ws import import_ws as run

    report, path = run(files, out, market, exchange_info, name, progress)
    click.echo(
        f"{report.events} events ({report.deltas} deltas, {report.trades} trades, "
        f"{report.quotes} quotes), gaps={report.gaps} resyncs={report.resyncs} "
        f"bbo {report.bbo_mismatches}/{report.bbo_checks} mismatches, "
        f"{report.events_per_s:,.0f} events/s"
    )
    click.echo(str(path))


@data.command("import-binance")
@_files
@_out
@click.option(
    "--kind", type=click.Choice(BINANCE_KINDS), default=None, help="Override the name-based kind."
)
@_auto_market
@click.option("--symbol", default=None, help="Symbol when the file name does not tell it.")
@_exchange_info
@_name
@_progress
def import_binance(
    files: tuple[Path, ...],
    out: str,
    kind: str | None,
    market: str,
    symbol: str | None,
    exchange_info: Path | None,
    name: str | None,
    progress: bool,
) -> None:
    """Import Binance public-data files (trades, aggTrades, bookTicker, T_DEPTH, 1m klines,
    USD-M fundingRate)."""
    from training.data.sources.binance_public import import_binance as run

    report, path = run(
        files,
        Path(out),
        kind=kind,
        market=market,
        symbol=symbol,
        exchange_info=exchange_info,
        name=name,
        progress=progress,
    )
    click.echo(
        f"{report.events} events ({report.deltas} deltas, {report.trades} trades, "
        f"{report.quotes} quotes, {report.extra['bars']} bars, "
        f"{report.extra['funding_updates']} funding updates), gaps {report.gaps}"
    )
    click.echo(str(path))


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime.date | None:
    if value is None:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


@data.command("download")
@click.option("--market", type=click.Choice(["spot", "usdm"]), required=True)
@click.option("--kind", type=click.Choice(DOWNLOAD_KINDS), required=True)
@click.option("--symbol", required=True)
@click.option("--start", required=True, callback=_date, help="First UTC day, YYYY-MM-DD.")
@click.option("--end", default=None, callback=_date, help="Last UTC day (default: --start).")
@click.option("--dest", required=True, type=click.Path(path_type=Path), help="Download root.")
@click.option("--base-url", default=BASE_URL, show_default=True)
@click.option(
    "--import-into", "import_into", type=click.Path(path_type=Path), default=None,
    help="Then import the files into this catalog.",
)  # fmt: skip
def download(
    market: str,
    kind: str,
    symbol: str,
    start: datetime.date,
    end: datetime.date | None,
    dest: Path,
    base_url: str,
    import_into: Path | None,
) -> None:
    """Download Binance public-data zips (daily; USD-M fundingRate monthly), SHA-256 verified
    and resumable."""
    from training.data.sources.download import download as run
    from training.data.sources.download import import_downloaded

    end = end or start
    got = run(market, kind, symbol, start, end, dest, base_url=base_url)
    for d in got:
        click.echo(f"{d.status:<10} {d.path}")
    if import_into is not None:
        report, path = import_downloaded(got, import_into, market, kind, symbol, start, end)
        click.echo(f"{report.events} events imported, gaps {report.gaps}")
        click.echo(str(path))


@data.command("import-tardis")
@_files
@_out
@click.option(
    "--kind",
    type=click.Choice(TARDIS_KINDS),
    default=None,
    help="incremental_book_L2 (book), trades or derivative_ticker; default: from the file name.",
)
@_exchange_info
@_name
@_progress
def import_tardis(
    files: tuple[Path, ...],
    out: str,
    kind: str | None,
    exchange_info: Path | None,
    name: str | None,
    progress: bool,
) -> None:
    """Import Tardis.dev incremental_book_L2 / trades / derivative_ticker (funding) CSV(.gz) for
    binance / binance-futures."""
    from training.data.sources.tardis import import_tardis as run

    report, path = run(
        files, Path(out), kind=kind, exchange_info=exchange_info, name=name, progress=progress
    )
    click.echo(
        f"{report.events} events ({report.deltas} deltas, {report.trades} trades, "
        f"{report.extra['funding_updates']} funding updates), resyncs {report.resyncs}"
    )
    click.echo(str(path))


@data.command("synth")
@click.option("--symbol", default="BTCUSDT", show_default=True, help="Binance symbol.")
@click.option(
    "--market",
    type=click.Choice(["spot", "usdm"]),
    default="spot",
    show_default=True,
    help="spot: the spot pair (fees 10/10 bp); usdm: the USD-M perpetual (fees 2/5 bp).",
)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", default="2024-01-01", show_default=True, help="First UTC day.")
@click.option(
    "--day-seconds",
    type=click.IntRange(1, 86_400),
    default=86_400,
    show_default=True,
    help="Simulate only the first N seconds of each day (quick runs).",
)
@click.option("--start-price", type=float, default=42_000.0, show_default=True)
@click.option(
    "--preset",
    "preset_name",
    type=click.Choice(SYNTH_PRESETS),
    default="realistic",
    show_default=True,
    help="realistic: bp-scale moves calibrated on real BTCUSDT; micro: tick-scale moves; null: "
    "the realistic regimes with nothing that predicts the sign of a move (no edge exists).",
)
@_name
@_out
def synth(
    symbol: str,
    market: Literal["spot", "usdm"],
    days: int,
    seed: int,
    start: str,
    day_seconds: int,
    start_price: float,
    preset_name: str,
    name: str | None,
    out: str,
) -> None:
    """Generate a synthetic regime market (L2 deltas + trades + ground-truth labels) into OUT."""
    from training.data.sources.synth import preset
    from training.data.sources.synth import synth as run

    config = preset(
        preset_name,
        symbol=symbol,
        market=market,
        days=days,
        seed=seed,
        start=start,
        day_seconds=day_seconds,
        start_price=start_price,
    )
    report = run(config, out, name=name, progress=True)
    click.echo(str(Path(out).resolve() / "reports" / f"{report.name}.json"))
