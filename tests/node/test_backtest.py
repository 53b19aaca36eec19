"""``run_backtest`` / ``nhmm backtest``: reports, summary and guardrail counts on a synthetic day
(model trained on earlier days) and end to end on the real spot BTCUSDT recording."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from node.backtest import VenueOptions, run_backtest, summarise
from tests.node.test_strategy import LOOSE, make_synth_setup, train_and_register
from training.cli import main
from training.data.binance_ws import cli as ws_cli
from training.data.catalog import MarketCatalog
from training.features import schema_for
from training.registry import Registry

REPORTS = ("fills", "positions", "account", "timeline", "entries", "blocks")
SUMMARY_KEYS = ("net_pnl", "sharpe", "max_drawdown", "trades", "turnover", "fees", "events",
                "wall_s", "samples", "decisions", "guardrails")  # fmt: skip


@pytest.fixture(scope="module")
def synth_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, Registry]:
    return make_synth_setup(tmp_path_factory.mktemp("bt_synth"))


def assert_run_dir(out: Path, summary: dict) -> None:
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for key in SUMMARY_KEYS:
        assert key in summary, key
    for key in ("net_pnl", "sharpe", "max_drawdown", "turnover", "fees", "wall_s"):
        assert np.isfinite(summary[key]), key
    for name in REPORTS:
        assert (out / f"{name}.parquet").is_file(), name
    timeline = pq.read_table(out / "timeline.parquet")
    assert timeline.num_rows == summary["samples"] > 0
    for col in ("confidence", "score", "equity", "pnl", "mid", "latency_ms"):
        assert np.isfinite(timeline[col].to_numpy()).all(), col
    assert np.isfinite(np.concatenate(timeline["posterior"].to_pylist())).all()
    counts = json.loads((out / "guardrails.json").read_text())
    assert counts == summary["guardrails"]
    for reason in ("KILL", "LATENCY", "DRIFT", "CONF", "SPREAD", "DD", "POS", "COOLDOWN", "OK"):
        assert reason in counts, reason
    assert summary["events"] > 1000


def test_synthetic_day_trades_and_pnl_reconciles_with_fills(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    venue = VenueOptions(prob_slippage=0.5, latency_ms=10.0)
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, cfg, venue)
    assert_run_dir(tmp_path, summary)
    assert summary["orders_submitted"] == summary["entries"] > 10
    assert summary["trades"] > 5
    fills = pq.read_table(tmp_path / "fills.parquet").to_pandas()
    assert len(fills) == summary["trades"]
    qty = pd.to_numeric(fills["last_qty"]).to_numpy()
    px = pd.to_numeric(fills["last_px"]).to_numpy()
    sign = np.where(fills["order_side"] == "BUY", 1.0, -1.0)
    instrument = TestInstrumentProvider.btcusdt_binance()
    assert summary["fees"] == pytest.approx(float(instrument.maker_fee) * (qty * px).sum())
    # every fill meets the min notional; none is above the position limit
    assert ((qty * px) >= 10.0).all()
    timeline = pq.read_table(tmp_path / "timeline.parquet")
    assert np.abs(timeline["position"].to_numpy()).max() <= cfg.max_position + 1e-12
    # net PnL = cash flow of the fills + the net position at the last mid - fees
    last_mid = timeline["mid"].to_numpy()[-1]
    expected = -(sign * qty * px).sum() + (sign * qty).sum() * last_mid - summary["fees"]
    assert summary["net_pnl"] == pytest.approx(expected, abs=1e-6)
    assert summary["max_drawdown"] >= 0.0 and summary["turnover"] > 0


def test_cli_backtest_writes_run_dir(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "backtest",
            "--catalog",
            str(catalog.root),
            "--symbol",
            "BTCUSDT",
            "--days",
            day.isoformat(),
            "--model",
            "candidate",
            "--registry",
            str(registry.root),
            "--out",
            str(out),
            "--min-conf",
            "0.99",
            "--no-trading",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "net_pnl" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trades"] == 0.0 and summary["orders_submitted"] == 0
    assert summary["guardrails"]["CONF"] > 0


def test_bad_day_is_named(synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path) -> None:
    catalog, registry = synth_setup
    import datetime

    with pytest.raises(KeyError, match="2023-01-01"):
        run_backtest(catalog, "BTCUSDT", [datetime.date(2023, 1, 1)], "candidate", registry,
                     tmp_path, LOOSE)  # fmt: skip
    assert not (tmp_path / "summary.json").exists()


def test_summarise_never_gives_nan() -> None:
    s = summarise(np.array([]), pd.DataFrame(), 1.0)
    assert all(np.isfinite(v) for v in s.values()) and s["net_pnl"] == 0.0
    with pytest.raises(ValueError, match="pnl"):
        summarise(np.array([0.0, np.nan]), pd.DataFrame(), 1.0)


def test_real_spot_recording_end_to_end(ws_dir: Path, tmp_path: Path) -> None:
    """The real Binance spot BTCUSDT recording, imported with ``nhmm data import-ws``: a model
    trained on 2024-08-08 backtests 2024-08-09 with zero NaN."""
    root = tmp_path / "catalog"
    files = [str(ws_dir / f) for f in ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")]
    result = CliRunner().invoke(ws_cli, [*files, "--out", str(root), "--no-progress"])
    assert result.exit_code == 0, result.output
    catalog = MarketCatalog(root)
    first, second = (sd.day for sd in catalog.symbol_days("BTCUSDT"))
    schema = schema_for("spot", min_periods_s=60.0, standardise_window_s=300.0)
    registry = train_and_register(catalog, "BTCUSDT", [first], tmp_path / "registry", schema)
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True, max_spread_bp_base=1.0)
    out = tmp_path / "run"
    summary = run_backtest(catalog, "BTCUSDT", [second], "candidate", registry, out, cfg)
    assert_run_dir(out, summary)
    assert summary["samples"] > 200
    assert summary["decisions"] > 0
    assert summary["orders_submitted"] == summary["entries"] > 0
    assert summary["trades"] > 0 and summary["fees"] > 0
