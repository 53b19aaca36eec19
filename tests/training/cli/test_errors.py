"""The ``nhmm`` root: user errors are one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import training.cli
from training.cli import main
from training.errors import NotFoundError


@click.command()
def _user_mistake() -> None:
    raise NotFoundError("no data for BTCUSDT on 2020-01-01 in /cat", field="days")


@click.command()
def _bug() -> None:
    raise ZeroDivisionError("a bug, not a user error")


def _with_commands(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    eps = [
        EntryPoint(name, value, training.cli.ENTRY_POINT_GROUP) for name, value in targets.items()
    ]
    monkeypatch.setattr(training.cli, "entry_points", lambda group: eps)


def test_user_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_commands(monkeypatch, oops=f"{__name__}:_user_mistake")
    result = CliRunner().invoke(main, ["oops"])
    assert result.exit_code == 2
    assert result.output == "Error: no data for BTCUSDT on 2020-01-01 in /cat\n"


def test_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_commands(monkeypatch, bug=f"{__name__}:_bug")
    result = CliRunner().invoke(main, ["bug"])
    assert isinstance(result.exception, ZeroDivisionError)
    assert result.exit_code == 1 and "Error:" not in result.output


def test_a_command_that_fails_to_import_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_commands(monkeypatch, ghost="training.no_such_module:command")
    result = CliRunner().invoke(main, ["ghost"])
    assert isinstance(result.exception, ModuleNotFoundError)
    assert "not yet built" not in result.output


def test_every_registered_command_loads() -> None:
    names = main.list_commands(click.Context(main))
    assert {"data", "features", "train", "models", "sweep", "backtest", "acceptance", "report",
            "killswitch"} <= set(names)  # fmt: skip
    for name in names:
        assert isinstance(main.get_command(click.Context(main), name), click.Command), name


@pytest.fixture(scope="module")
def perp_catalog(ws_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real USD-M recording alone: the catalog holds only BTCUSDT-PERP.BINANCE."""
    root = tmp_path_factory.mktemp("perp")
    src = ws_dir / "usdm_btcusdt_20240808.gz"
    result = CliRunner().invoke(main, ["data", "import-ws", str(src), "--out", str(root / "cat")])
    assert result.exit_code == 0, result.output
    return root / "cat"


def test_a_bare_symbol_names_the_lone_perp(perp_catalog: Path) -> None:
    from training.data.catalog import MarketCatalog

    cat = MarketCatalog(perp_catalog)
    assert {sd.instrument_id for sd in cat.select("BTCUSDT")} == {"BTCUSDT-PERP.BINANCE"}
    assert cat.select("BTCUSDT") == cat.select("BTCUSDT-PERP") == cat.symbol_days()
    assert cat.instrument("BTCUSDT").id.value == "BTCUSDT-PERP.BINANCE"


def test_train_on_a_missing_day_names_it(perp_catalog: Path, tmp_path: Path) -> None:
    args = ["train", "--catalog", str(perp_catalog), "--symbol", "BTCUSDT", "--days",
            "2020-01-01", "--registry", str(tmp_path / "reg")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith("Error: no data for BTCUSDT-PERP on 2020-01-01")
    assert not (tmp_path / "reg").exists() or not list((tmp_path / "reg").rglob("manifest.json"))


def test_train_on_an_unknown_symbol_names_it(perp_catalog: Path, tmp_path: Path) -> None:
    args = ["train", "--catalog", str(perp_catalog), "--symbol", "NOPE",
            "--registry", str(tmp_path / "reg")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert "'NOPE'" in line and "BTCUSDT-PERP.BINANCE" in line
