"""``nhmm quickstart`` on the real ADABTC 1m klines (``../shared/data/binance-public``): import,
train on FEATURES_BARS_V1 with a held-out tail, a Nautilus bar backtest of that tail, acceptance
and the report; 21 bars make a smoke-test model, and the output says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from node import run_dir
from ops.quickstart import quickstart
from tests.bars_setup import KLINE_FILES
from training.artifacts.registry import Registry
from training.features.bars import FEATURES_BARS_VERSION
from training.features.bars import BarFeatureSchema


def invoke(files: list[Path], out: Path, quote: str = "0.001", *extra: str) -> Any:
    """``nhmm quickstart --csv FILES... --symbol ADABTC --quote Q --out OUT EXTRA --no-progress``."""
    args = ["--csv", *map(str, files), "--symbol", "ADABTC", "--quote", quote, "--out", str(out)]
    return CliRunner().invoke(quickstart, [*args, *extra, "--no-progress"])


@pytest.fixture(scope="module")
def started(public_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("quickstart")
    # the shared files as `--csv data/*.csv` expands
    result = invoke([public_dir / f for f in KLINE_FILES], out, "0.001", "--horizon-bars", "1")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_writes_a_bar_model_trained_before_the_held_out_tail(started: tuple[Path, str]) -> None:
    out, _ = started
    reg = Registry(str(out / "registry"))
    bundle = reg.load(reg.resolve("candidate"))
    schema = bundle.feature_schema()
    assert isinstance(schema, BarFeatureSchema) and schema.version == FEATURES_BARS_VERSION
    assert schema.warmup_bars == 1  # the smoke windows
    meta = bundle.metadata
    assert meta["smoke_test"] is True
    assert meta["config"]["test_days"] == 0 and meta["config"]["labels"]["horizon_s"] == 60.0
    test = meta["test"]
    assert test["in_sample"] is False and test["valid_samples"] == 4.0  # 19 ready bars, 20% tail
    summary = json.loads((out / "run" / run_dir.SUMMARY).read_text())
    assert summary["trade_from_ns"] > meta["train_end_ns"]  # purge gap of one horizon between
    result = json.loads((out / "quickstart.json").read_text())
    assert result["model_version"] == reg.resolve("candidate") and result["smoke_test"] is True
    assert result["held_out"]["backtest_net_pnl"] == summary["net_pnl"]
    assert result["held_out"]["simulated_net_pnl"] == test["net_pnl"]


def test_backtests_only_the_held_out_tail_in_nautilus(started: tuple[Path, str]) -> None:
    out, _ = started
    summary = json.loads((out / "run" / run_dir.SUMMARY).read_text())
    assert summary["events"] == 21  # every bar replayed: the features warm up on the past
    assert summary["samples"] == 4  # the model acts on the held-out tail only
    assert summary["in_sample"] is False and summary["in_sample_days"] == []
    assert summary["inference_status"] == {"ok": 4, "timeout": 0, "error": 0}
    assert summary["feed"] == f"1m bars ({FEATURES_BARS_VERSION})"
    timeline = pq.read_table(out / "run" / run_dir.TIMELINE)
    assert timeline["ts"].to_pylist()[0] == summary["trade_from_ns"]
    assert set(timeline["day"].to_pylist()) == {"2021-11-28"}
    config = json.loads((out / "run" / run_dir.CONFIG).read_text())
    assert config["strategy"]["notional_multiple"] == pytest.approx(0.001 / 0.0001)


def test_acceptance_and_report_read_the_bar_run(started: tuple[Path, str]) -> None:
    out, output = started
    acceptance = json.loads((out / "run" / run_dir.ACCEPTANCE).read_text())
    names = {c["name"] for c in acceptance["checks"]}
    assert {"finite_features", "position_limit", "pnl_expectation"} <= names
    assert acceptance["in_sample"] is False
    html = (out / "run" / run_dir.REPORT).read_text()
    assert "ADABTC" in html and len(html) > 10_000
    assert "SMOKE TEST" in output and "NOT evidence" in output
    assert "held-out PnL, Nautilus" in output and str(out / "run" / "report.html") in output
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in output


def test_a_quote_below_min_notional_is_refused_by_name(public_dir: Path, tmp_path: Path) -> None:
    result = invoke([public_dir / KLINE_FILES[0]], tmp_path, "0.00001")
    assert result.exit_code == 2
    assert "quote: 1e-05 is below ADABTC.BINANCE's min notional 0.0001 BTC" in result.output
    assert not (tmp_path / "registry").exists()  # nothing trained or registered


def test_a_second_run_into_the_same_out_is_refused(public_dir: Path, started: tuple) -> None:
    out, _ = started
    before = sorted(p.name for p in (out / "run").iterdir())
    result = invoke([public_dir / KLINE_FILES[0]], out)
    assert result.exit_code == 2 and "already holds a run" in result.output
    assert sorted(p.name for p in (out / "run").iterdir()) == before  # nothing touched
