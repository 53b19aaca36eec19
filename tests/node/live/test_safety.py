"""The node's safety at the door: ``--live`` refusals (one line, exit 2, before anything
connects or is created), and a command light at import. The SIGKILL -> restart test runs with
the other nodes (``test_run.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from node.live.cli import run as run_command

LIVE_KEY = "live-key-abcdef"
LIVE_SECRET = "live-secret-0123456789abcdef"
TESTNET_KEY = "testnet-key-abcdef"


def _live(tmp_path: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    base = {k: "" for k in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_TESTNET_API_KEY",
                            "BINANCE_DEMO_API_KEY", "BINANCE_FUTURES_TESTNET_API_KEY",
                            "TRADING_ENABLED")}  # fmt: skip
    args = ["--live", "--symbol", "BTCUSDT", "--state-dir", str(tmp_path / "state"),
            "--env-file", str(tmp_path / "none.env"), *extra]  # fmt: skip
    result = CliRunner().invoke(run_command, args, env={**base, **env})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("env", "extra", "says"),
    [
        ({}, ["--i-understand-live-trading"], "BINANCE_API_KEY / BINANCE_API_SECRET are not set"),
        ({"BINANCE_API_KEY": TESTNET_KEY, "BINANCE_API_SECRET": LIVE_SECRET,
          "BINANCE_TESTNET_API_KEY": TESTNET_KEY, "TRADING_ENABLED": "true"},
         ["--i-understand-live-trading"], "BINANCE_API_KEY is the testnet key"),
        ({"BINANCE_API_KEY": LIVE_KEY, "BINANCE_API_SECRET": LIVE_SECRET, "TRADING_ENABLED": "true"},
         [], "add --i-understand-live-trading"),
        ({"BINANCE_API_KEY": LIVE_KEY, "BINANCE_API_SECRET": LIVE_SECRET, "TRADING_ENABLED": "false"},
         ["--i-understand-live-trading"], "TRADING_ENABLED is not true"),
    ],
)  # fmt: skip
def test_live_refuses_with_one_clear_line(
    tmp_path: Path, env: dict[str, str], extra: list[str], says: str
) -> None:
    code, output = _live(tmp_path, env, *extra)
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1, output
    assert lines[0].startswith("Error: --live refused: ") and says in lines[0]
    assert LIVE_SECRET not in output
    assert not (tmp_path / "state").exists()  # refused before anything was created


def test_replay_refuses_live(tmp_path: Path) -> None:
    code, output = _live(tmp_path, {}, "--replay", __file__)
    assert code == 2 and "--replay rehearses on a loopback venue: not with --live" in output


def test_command_is_light_at_import_and_registered_as_nhmm_node_run() -> None:
    from tests.import_probe import heavy_imports
    from training.cli import main

    assert heavy_imports("node.live.cli") == []
    result = CliRunner().invoke(main, ["node", "run", "--help"])
    assert result.exit_code == 0 and "--i-understand-live-trading" in result.output
    assert "--min-conf" in result.output and "--vwap-mode" in result.output  # backtest's options
