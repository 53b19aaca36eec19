"""Options shared by ``nhmm`` commands: one declaration of each, one parser of each value.

>>> import click
>>> from click.testing import CliRunner
>>> @click.command()
... @days_option
... def show(days):
...     click.echo(",".join(d.isoformat() for d in days))
>>> CliRunner().invoke(show, ["--days", "2024-08-08,2024-08-09", "--days", "2024-08-10"]).output
'2024-08-08,2024-08-09,2024-08-10\\n'
>>> print(CliRunner().invoke(show, ["--days", "08/08/2024"]).output.splitlines()[-1])
Error: Invalid value for '--days': '08/08/2024' is not YYYY-MM-DD (Invalid isoformat string: '08/08/2024')
"""

from __future__ import annotations

import datetime
from typing import Any

import click

__all__ = [
    "bars_option",
    "catalog_option",
    "cost_options",
    "days_option",
    "out_option",
    "registry_option",
    "symbol_option",
    "test_days_option",
]


def _dates(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[datetime.date, ...]:
    days = []
    for part in ",".join(value).replace(" ", ",").split(","):
        if not part:
            continue
        try:
            days.append(datetime.date.fromisoformat(part))
        except ValueError as exc:
            raise click.BadParameter(f"{part!r} is not YYYY-MM-DD ({exc})") from exc
    return tuple(days)


#: ``--days``: the symbol-days a command works on (repeatable or comma-separated), parsed to
#: dates; empty means every day.
days_option = click.option(
    "--days",
    multiple=True,
    callback=_dates,
    help="YYYY-MM-DD (repeatable or comma-separated); default: every day.",
)


def catalog_option(*, exists: bool = True, param: str = "catalog_root") -> click.Option:
    """``--catalog DIR``: the market catalog (must exist unless ``exists=False``)."""
    return click.option(
        "--catalog",
        param,
        required=True,
        type=click.Path(file_okay=False, exists=exists),
        help="Market catalog directory.",
    )


#: ``--symbol``: any spelling the catalog resolves (BTCUSDT, BTCUSDT-PERP, BTCUSDT.BINANCE).
symbol_option = click.option(
    "--symbol",
    required=True,
    help="BTCUSDT, BTCUSDT-PERP or a full instrument id (BTCUSDT alone names a lone perp).",
)

#: ``--registry ROOT``: the model store; default ``$NHMM_REGISTRY`` else ``./model_store``.
registry_option = click.option(
    "--registry",
    "registry_root",
    default=None,
    metavar="ROOT",
    help="Store root (path or s3://bucket/prefix); overrides $NHMM_REGISTRY.",
)


def bars_option(help: str) -> click.Option:
    """``--bars 1m``: work on the catalog's 1m klines (FEATURES_BARS_V1) instead of the book."""
    return click.option("--bars", type=click.Choice(["1m"]), default=None, help=help)


def out_option(help: str, *, param: str = "out_dir", file_okay: bool = False) -> click.Option:
    """``--out PATH``: where a command writes its results."""
    return click.option(
        "--out", param, required=True, type=click.Path(file_okay=file_okay), help=help
    )


#: ``training.costs.FEE_TIERS``' names, spelled here so ``nhmm --help`` stays light (numpy-free);
#: a test holds them equal.
FEE_TIER_NAMES = ("spot", "spot-bnb", "usdm", "usdm-bnb")


def cost_options(f: Any) -> Any:
    """``--maker-bps``, ``--taker-bps``, ``--fee-tier``: the cost model's fees (default: the
    instrument's own; :class:`training.costs.CostModel`)."""
    f = click.option(
        "--fee-tier",
        type=click.Choice(FEE_TIER_NAMES),
        default=None,
        help="A Binance default fee tier instead of the instrument's fees.",
    )(f)
    f = click.option("--taker-bps", type=float, default=None, help="Taker fee override (bp).")(f)
    return click.option("--maker-bps", type=float, default=None, help="Maker fee override (bp).")(f)


#: ``--test-days N``: the last N selected days are the test period, never seen by fitting or
#: any choice (one day: its tail).
test_days_option = click.option(
    "--test-days",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Last N days held out as the untouched test period (one day: its last 20%).",
)
