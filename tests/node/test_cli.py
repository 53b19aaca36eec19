"""``nhmm backtest`` through the root command: a symbol or day the catalog lacks is one line
naming it and exit 2 (no traceback, no RUN_DIR); the command module is light at import."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.import_probe import heavy_imports
from training.artifacts.registry import Registry
from training.cli import main
from training.data.catalog import MarketCatalog


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--symbol", "NOPE"], "'NOPE'"),
        (["--symbol", "BTCUSDT", "--days", "2023-01-01"], "2023-01-01"),
    ],
    ids=["symbol", "day"],
)
def test_missing_symbol_or_day_is_one_line_and_exit_2(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path, extra: list[str], named: str
) -> None:
    catalog, registry = synth_setup
    out = tmp_path / "run"
    args = ["backtest", "--catalog", str(catalog.root), *extra, "--model", "candidate",
            "--registry", str(registry.root), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_command_module_is_light_at_import() -> None:
    """``nhmm --help`` imports every command module: nothing heavy in this one."""
    assert heavy_imports("node.cli") == []


def test_long_only_backtest_never_goes_short(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """``--long-only`` reaches the strategy's rules: the same model's sell signals open no
    short, where without it they do (a spot account without base cannot sell)."""
    import pyarrow.parquet as pq

    from node.live.cli import run
    from tests.strategy_setup import CLI_CONFIG

    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day.isoformat()
    lows = {}
    for flag in ("--no-long-only", "--long-only"):
        out = tmp_path / flag
        args = ["backtest", "--catalog", str(catalog.root), "--symbol", "BTCUSDT", "--days", day,
                "--model", "candidate", "--registry", str(registry.root), "--out", str(out),
                *CLI_CONFIG, flag]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        lows[flag] = pq.read_table(out / "timeline.parquet").column("position").to_numpy().min()
    assert lows["--no-long-only"] < 0.0 <= lows["--long-only"] + 1e-12
    assert "long_only" in {p.name for p in run.params}  # nhmm node run takes it too
