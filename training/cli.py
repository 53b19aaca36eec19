"""The ``nhmm`` command line: one lazy group whose commands live beside the code they drive.

Commands are imported only when invoked, so ``nhmm --help`` stays fast and a command's heavy
dependencies (Nautilus, Ray) load only for the commands that need them.
"""

from __future__ import annotations

import datetime
import importlib

import click


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


#: ``--days``, the symbol-days a command works on (repeatable or comma-separated), parsed to
#: dates; empty means every day.
days_option = click.option(
    "--days",
    multiple=True,
    callback=_dates,
    help="YYYY-MM-DD (repeatable or comma-separated); default: every day.",
)


class LazyGroup(click.Group):
    """A click group whose subcommands are ``name -> ("module:attribute", short help)``.

    A subcommand is imported only when it runs; listing shows the static short help.
    """

    def __init__(
        self, *args: object, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self._lazy:
            return super().get_command(ctx, name)
        target, short_help = self._lazy[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            return _not_yet(name, short_help)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self._lazy[name][1]) for name in sorted(self._lazy)]
        rows += [
            (name, cmd.get_short_help_str())
            for name, cmd in sorted(self.commands.items())
            if name not in self._lazy
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _not_yet(name: str, short_help: str) -> click.Command:
    @click.command(name=name, help=short_help, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args: tuple[str, ...]) -> None:
        click.echo(f"nhmm {name}: not yet built")

    return stub


@click.group(
    cls=LazyGroup,
    lazy={
        "data": ("training.data.cli:data", "Import market data into the Parquet catalog."),
        "features": ("training.features_cli:features", "Extract FEATURES_V1 tables."),
        "train": ("training.train:train_command", "Fit HMM + policy head, register a candidate."),
        "models": ("training.registry_cli:models", "List, show, promote, roll back models."),
        "sweep": ("training.sweep:sweep", "Ray Tune walk-forward sweep over symbol-days."),
        "backtest": ("node.backtest:backtest_command", "Backtest the strategy in Nautilus."),
        "acceptance": ("ops.acceptance:acceptance_command", "Per symbol-day acceptance checks."),
        "report": ("ops.report:report_command", "Render RUN_DIR/report.html."),
        "killswitch": ("ops.killswitch:killswitch", "Show, engage or reset the kill switch."),
    },
)
@click.version_option(package_name="nautilus-hmm")
def main() -> None:
    """nautilus-hmm: adaptive HMM regime trading for Binance."""


if __name__ == "__main__":
    main()
