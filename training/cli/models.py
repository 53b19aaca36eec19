"""``nhmm models``: list, show, promote and roll back registered model versions.

Light at import (click only): the registry (pyarrow) and rich load inside the commands.
Registry and bundle errors are :class:`~training.errors.NhmmError` kinds: under ``nhmm`` the
root prints them as one line (exit 2); run on its own (``python -m training.cli.models``) this
group prints the same line itself (exit 1). A store that cannot be reached is an
:class:`~training.errors.UnavailableError`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

import click

from training.cli.options import registry_option
from training.errors import NhmmError
from training.errors import UnavailableError

if TYPE_CHECKING:
    from rich.console import Console

    from training.artifacts.registry import Registry
    from training.artifacts.registry import VersionInfo

__all__ = ["models"]


class _ModelsGroup(click.Group):
    """Shows an :class:`NhmmError` as one line when run without the ``nhmm`` root."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NhmmError as exc:
            if ctx.parent is not None:
                raise  # the nhmm root reports it
            raise click.ClickException(str(exc)) from exc


@contextlib.contextmanager
def _store_reachable() -> Iterator[None]:
    """An ``OSError`` from the store (S3 down, unreadable directory) as an UnavailableError."""
    try:
        yield
    except OSError as exc:
        raise UnavailableError(str(exc)) from exc


def _console() -> Console:
    from rich.console import Console

    out = sys.stdout  # click's CliRunner swaps sys.stdout; rich must write where click does
    return Console(file=out, width=None if out.isatty() else 160, highlight=False)


def _open(root: str | None) -> Registry:
    from training.artifacts.registry import Registry

    with _store_reachable():
        return Registry(root)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return "" if value is None else str(value)


def _metrics_summary(metrics: dict[str, Any], limit: int = 4) -> str:
    return "  ".join(f"{k}={_fmt(v)}" for k, v in list(sorted(metrics.items()))[:limit])


def _info_dict(i: VersionInfo) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(i)
    d["aliases"] = list(i.aliases)
    d["symbol_days"] = list(i.symbol_days)
    return d


@click.group(cls=_ModelsGroup)
def models() -> None:
    """List, show, promote and roll back model versions in the registry."""


@models.command("list")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(registry_root: str | None, as_json: bool) -> None:
    """Every registered version, oldest first, with its aliases and headline metrics."""
    reg = _open(registry_root)
    with _store_reachable():
        infos = reg.versions()
    if as_json:
        click.echo(json.dumps([_info_dict(i) for i in infos], indent=2, sort_keys=True))
        return
    from rich.table import Table

    table = Table(title=f"models in {reg.root}")
    for col in ("version", "aliases", "created", "parent", "sweep", "metrics"):
        table.add_column(col, no_wrap=col in ("version", "aliases"))
    for i in infos:
        table.add_row(
            i.version,
            ",".join(i.aliases),
            _fmt(i.created_at)[:19],
            _fmt(i.parent),
            _fmt(i.sweep_id),
            _metrics_summary(i.metrics),
        )
    console = _console()
    console.print(table)
    if not infos:
        console.print("no versions registered yet")


@models.command("show")
@click.argument("ref")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show_command(ref: str, registry_root: str | None, as_json: bool) -> None:
    """One version (by id, number or alias): metadata, schema, HMM, policy, lineage."""
    reg = _open(registry_root)
    with _store_reachable():
        info = reg.info(ref)
        bundle = reg.load(info.version)
        lineage = reg.lineage(info.version)
    hmm_shapes = {k: list(v.shape) for k, v in sorted(bundle.hmm.items())}
    names = bundle.schema.get("names") or []
    detail: dict[str, Any] = {
        **_info_dict(info),
        "lineage": lineage,
        "schema_version": bundle.schema_version,
        "features": list(names),
        "hmm_arrays": hmm_shapes,
        "policy_config": bundle.policy_config,
        "policy_bytes": len(bundle.policy_ubj),
        "thresholds": bundle.thresholds,
        "metrics": bundle.metadata.get("metrics", {}),
        "config": bundle.metadata.get("config", {}),
    }
    if as_json:
        click.echo(json.dumps(detail, indent=2, sort_keys=True, default=str))
        return
    from rich.table import Table

    table = Table(title=f"{info.version}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("aliases", ",".join(info.aliases)),
        ("bundle id", info.bundle_id),
        ("created", info.created_at),
        ("lineage", " <- ".join(lineage)),
        ("sweep / trial", f"{_fmt(info.sweep_id)} / {_fmt(info.trial_id)}"),
        ("code version", info.code_version),
        ("data hash", info.data_hash),
        ("symbol-days", ", ".join(info.symbol_days)),
        ("schema", f"{_fmt(bundle.schema_version)} ({len(names)} features)"),
        ("features", ", ".join(map(str, names))),
        ("hmm arrays", _fmt(hmm_shapes)),
        ("policy", f"{len(bundle.policy_ubj)} bytes UBJ; config {_fmt(bundle.policy_config)}"),
        ("thresholds", _fmt(bundle.thresholds)),
    ]
    for k, v in sorted((bundle.metadata.get("metrics") or {}).items()):
        rows.append((f"metric {k}", _fmt(v)))
    for name, value in rows:
        table.add_row(name, _fmt(value))
    _console().print(table)


@models.command("promote")
@click.argument("ref", default="candidate")
@click.option("--alias", default="live", show_default=True, help="Alias to move.")
@registry_option
def promote_command(ref: str, alias: str, registry_root: str | None) -> None:
    """Point ALIAS at REF (default: the current candidate); the old target is kept for rollback."""
    reg = _open(registry_root)
    with _store_reachable():
        before = reg.aliases().get(alias)
        version = reg.promote(ref, alias=alias)
    click.echo(f"{alias}: {before or '(unset)'} -> {version}")


@models.command("rollback")
@click.option("--alias", default="live", show_default=True, help="Alias to move back.")
@registry_option
def rollback_command(alias: str, registry_root: str | None) -> None:
    """Point ALIAS back at the version it had before the last promote."""
    reg = _open(registry_root)
    with _store_reachable():
        before = reg.aliases().get(alias)
        version = reg.rollback(alias=alias)
    click.echo(f"{alias}: {before} -> {version} (rolled back)")


if __name__ == "__main__":
    models(sys.argv[1:])
