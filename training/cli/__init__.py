"""The ``nhmm`` command line, assembled from the ``nhmm.commands`` entry points.

Each package registers its own commands in ``pyproject.toml`` (``[project.entry-points.
"nhmm.commands"]``), so training never names the node or ops packages that build on it.
Command modules keep their heavy imports (Nautilus, Ray) inside the command bodies, so
``nhmm --help`` stays fast.

Errors: an :class:`~training.errors.NhmmError` (what the user or their data got wrong) prints one
line, ``Error: <message>``, and exits 2; any other exception is a bug and shows its traceback.
A command module that fails to import is such a bug too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import click

from training.cli.options import days_option
from training.errors import NhmmError

__all__ = ["ENTRY_POINT_GROUP", "LazyGroup", "NhmmCommand", "UserError", "days_option", "main"]

#: The entry-point group every package adds its ``nhmm`` commands to.
ENTRY_POINT_GROUP = "nhmm.commands"


class UserError(click.ClickException):
    """An :class:`~training.errors.NhmmError` shown as one line; exit code 2."""

    exit_code = 2


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`~training.errors.NhmmError` into a :class:`UserError`; nothing else."""
    try:
        yield
    except NhmmError as exc:
        raise UserError(str(exc)) from exc


class NhmmCommand(click.Command):
    """A command that shows an ``NhmmError`` as one line and exit 2 also when run on its own
    (not through ``nhmm``), e.g. by a test's ``CliRunner``."""

    def invoke(self, ctx: click.Context) -> Any:
        with user_errors():
            return super().invoke(ctx)


class LazyGroup(click.Group):
    """A click group whose subcommands are the ``nhmm.commands`` entry points, loaded on use."""

    def _entry_points(self) -> dict[str, object]:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._entry_points()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        ep = self._entry_points().get(name)
        if ep is None:
            return super().get_command(ctx, name)
        command = ep.load()  # type: ignore[attr-defined]
        if not isinstance(command, click.Command):
            raise TypeError(f"entry point nhmm.commands:{name} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        with user_errors():
            return super().invoke(ctx)


@click.group(cls=LazyGroup)
@click.version_option(package_name="nautilus-hmm")
def main() -> None:
    """nautilus-hmm: adaptive HMM regime trading for Binance."""


if __name__ == "__main__":
    main()
