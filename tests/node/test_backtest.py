"""``run_backtest`` / ``nhmm backtest``: reports, summary and guardrail counts on a synthetic day
(model trained on earlier days) and end to end on the real spot BTCUSDT recording."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from node.backtest import VenueOptions
from node.backtest import run_backtest
from node.backtest import simulate_backtest
from node.summary import MIN_SHARPE_RETURNS
from node.summary import adaptation_report
from node.summary import round_trip_figures
from node.summary import summarise
from serving.testing import make_bundle
from tests.serve_setup import ServeChild
from tests.strategy_setup import LOOSE
from tests.strategy_setup import SCHEMA
from tests.strategy_setup import backtest_cli
from tests.strategy_setup import train_and_register
from training.artifacts.registry import Registry
from training.cli import main
from training.cli.data import import_ws as ws_cli
from training.data.catalog import MarketCatalog
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import synth
from training.features import schema_for

REPORTS = ("fills", "positions", "account", "timeline", "entries", "blocks")
SUMMARY_KEYS = ("net_pnl", "sharpe", "sharpe_basis", "n_returns", "max_drawdown", "trades",
                "turnover", "fees", "events", "wall_s", "events_per_s", "samples", "decisions",
                "guardrails", "days", "symbol", "model_version")  # fmt: skip


def assert_run_dir(out: Path, summary: dict) -> None:
    """The RUN_DIR contract (node/run_dir.py) that ops/acceptance and ops/report read."""
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for key in SUMMARY_KEYS:
        assert key in summary, key
    for key in ("net_pnl", "max_drawdown", "turnover", "fees", "wall_s", "events_per_s"):
        assert np.isfinite(summary[key]), key
    assert summary["sharpe"] is None or np.isfinite(summary["sharpe"])
    if summary["n_returns"] < MIN_SHARPE_RETURNS:
        assert summary["sharpe"] is None
    assert "1-minute" in summary["sharpe_basis"]
    for name in REPORTS:
        assert (out / f"{name}.parquet").is_file(), name
    timeline = pq.read_table(out / "timeline.parquet")
    assert timeline.num_rows == summary["samples"] > 0
    for col in ("confidence", "score", "equity", "pnl", "mid", "latency_ms", "loglik"):
        assert np.isfinite(timeline[col].to_numpy()).all(), col
    assert np.isfinite(np.concatenate(timeline["posterior"].to_pylist())).all()
    features = np.array(timeline["features"].to_pylist())
    assert features.shape == (timeline.num_rows, len(SCHEMA.names))
    assert np.isfinite(features).all()
    assert timeline["adapting"].type == pa.bool_() and timeline["drift"].type == pa.float64()
    assert set(timeline["day"].to_pylist()) <= set(summary["days"])
    assert timeline["day"].to_pylist()[-1] == summary["days"][-1]
    counts = json.loads((out / "guardrails.json").read_text())
    assert counts == summary["guardrails"]
    for reason in ("KILL", "LATENCY", "DRIFT", "CONF", "SPREAD", "DD", "POS", "COOLDOWN", "OK"):
        assert reason in counts, reason
    assert summary["events"] > 1000
    assert summary["symbol"] == "BTCUSDT.BINANCE" and summary["model_version"]
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"]["max_position"] > 0 and config["strategy"]["max_drawdown"] > 0
    assert config["instrument"]["id"] == "BTCUSDT.BINANCE"
    assert config["instrument"]["min_notional"] == 10.0
    assert config["instrument"]["maker_fee"] == pytest.approx(0.001)
    assert config["model"]["version"] == summary["model_version"]
    assert config["venue"]["fill_model"] in ("queue", "touch")
    assert summary["passive_orders"] >= summary["passive_orders_filled"] >= 0
    rate = summary["passive_fill_rate"]
    assert (rate is None) == (summary["passive_orders"] == 0)
    assert rate is None or 0.0 <= rate <= 1.0
    adaptation = json.loads((out / "adaptation.json").read_text())
    assert [d["day"] for d in adaptation["days"]] == summary["days"]
    per_day = Counter(timeline["day"].to_pylist())
    for d in adaptation["days"]:
        assert d["drift"]["n_samples"] == per_day[d["day"]] > 0
        assert d["drift"]["max_kl"] is not None and set(d["drift"]["kl"]) == set(SCHEMA.names)
        fit = d["partial_fit"]
        assert fit["error"] is None, fit
        assert fit["n_samples"] == per_day[d["day"]]
        assert isinstance(fit["accepted"], bool) and fit["reason"]
        assert np.isfinite(fit["heldout_ll_before"])
        # a refused child may have no held-out score (NaN is written as null, never as NaN)
        assert fit["heldout_ll_after"] is None or np.isfinite(fit["heldout_ll_after"])


def test_synthetic_day_trades_and_pnl_reconciles_with_fills(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    venue = VenueOptions(latency_ms=10.0)  # queue fills (the default)
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
    # every order meets the min notional (a fill may be part of one: queue fills are partial);
    # no position is above the position limit
    for name in ("entries", "exits"):
        orders = pq.read_table(tmp_path / f"{name}.parquet").to_pandas()
        assert (orders["quantity"] * orders["price"] >= 10.0).all(), name
    assert summary["passive_orders"] > 0 and 0.0 < summary["passive_fill_rate"] < 1.0
    timeline = pq.read_table(tmp_path / "timeline.parquet")
    assert np.abs(timeline["position"].to_numpy()).max() <= cfg.max_position + 1e-12
    # net PnL = cash flow of the fills + the net position at the last mid - fees - what closing
    # that position at the touch would cost (half the spread and the taker fee on it)
    last_mid = timeline["mid"].to_numpy()[-1]
    held = (sign * qty).sum()
    assert summary["open_position_end"] == pytest.approx(held, abs=1e-9)
    taker = abs(held) * last_mid * float(instrument.taker_fee)
    assert taker - 1e-9 <= summary["close_cost"] <= taker + abs(held) * last_mid * 0.01
    assert (summary["close_cost"] > 0.0) == (abs(held) > 1e-12)
    expected = -(sign * qty * px).sum() + held * last_mid - summary["fees"] - summary["close_cost"]
    assert summary["net_pnl"] == pytest.approx(expected, abs=1e-6)
    assert summary["max_drawdown"] >= 0.0 and summary["turnover"] > 0
    # issue 11: the held-out day is out of sample; round trips show gross edge and costs
    assert summary["in_sample"] is False and summary["in_sample_days"] == []
    assert summary["round_trips"] == round_trip_figures(fills)["round_trips"]
    fee_bp = float(instrument.maker_fee) * 1e4
    assert summary["costs"]["round_trip_bps_passive"] == pytest.approx(2 * fee_bp)
    assert (tmp_path / "truth.parquet").exists()  # synthetic: the true regime per sample


def test_round_trip_figures_from_fills() -> None:
    """Gross edge and costs per round trip from Nautilus-like fills: a long 0.01 @ 100 -> 101
    and a short 0.02 @ 101 -> 100.5 (two entries), 10 bp maker fee on every fill."""
    rows = [("BUY", 0.01, 100.0), ("SELL", 0.01, 101.0), ("SELL", 0.01, 101.0),
            ("SELL", 0.01, 101.0), ("BUY", 0.02, 100.5)]  # fmt: skip
    fills = pd.DataFrame({
        "order_side": [r[0] for r in rows],
        "last_qty": [str(r[1]) for r in rows],
        "last_px": [str(r[2]) for r in rows],
        "commission": [f"{r[1] * r[2] * 1e-3:.8f} USDT" for r in rows],
        "ts_event": [f"2024-01-01 00:00:0{i}+00:00" for i in range(len(rows))],
    })  # fmt: skip
    rt = round_trip_figures(fills)
    assert rt["round_trips"] == 2
    assert rt["gross_edge_per_rt"] == pytest.approx((0.01 + 0.01) / 2)
    assert rt["cost_bp_per_rt"] == pytest.approx(20.0, rel=0.01)  # 2 x 10 bp of the entry
    assert rt["gross_edge_bp_per_rt"] == pytest.approx((100.0 + 0.02 * 0.5 / 2.02 * 1e4) / 2)


def test_simulator_replays_the_backtest(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """The trade simulator replays the same rules over the same day: fills and net PnL close.
    (Its entry count is lower: Nautilus leaves more entries unfilled, so more are tried; the
    position cap makes the fills and the PnL agree regardless. bench/bench_simulator.py
    measures the agreement on 6 held-out days.)"""
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, cfg)
    bundle = registry.load("candidate")
    sim = simulate_backtest(catalog, "BTCUSDT", [day], bundle, msgspec.structs.replace(
        cfg, hold_s=summary["hold_s"]))  # fmt: skip
    m = sim.metrics()
    assert m["fills"] == pytest.approx(summary["trades"], rel=0.15)
    assert m["fees"] == pytest.approx(summary["fees"], rel=0.15)
    assert abs(m["net_pnl"] - summary["net_pnl"]) <= 0.5 * max(abs(summary["net_pnl"]), 1.0)
    assert sim.counts["CONF"] == summary["guardrails"]["CONF"]  # the same model answers


def test_cli_backtest_two_days_writes_run_dir(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Two days through the CLI: per-day drift and partial_fit entries, days in the timeline."""
    catalog, registry = synth_setup
    days = [sd.day.isoformat() for sd in catalog.symbol_days("BTCUSDT")[:2]]
    out = tmp_path / "run"
    args = ["backtest", "--catalog", str(catalog.root), "--symbol", "BTCUSDT",
            "--days", days[0], "--days", days[1], "--model", "candidate",
            "--registry", str(registry.root), "--out", str(out), "--min-conf", "0.99",
            "--no-trading", "--hold-s", "45", "--stop-loss-bps", "12", "--vwap-mode", "band"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    strategy = json.loads((out / "config.json").read_text())["strategy"]
    assert (strategy["hold_s"], strategy["stop_loss_bps"], strategy["vwap_mode"]) == (
        45,
        12,
        "band",
    )
    bad = CliRunner().invoke(
        main, [*args[:-6], "--stop-loss-bps", "-1", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code != 0 and "stop_loss_bps" in bad.output
    assert "net_pnl" in result.output and "sharpe" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert_run_dir(out, summary)
    assert summary["days"] == days
    # the candidate was trained on the first of these two days: marked in plain sight
    assert summary["in_sample"] is True
    assert summary["in_sample_days"] == [f"BTCUSDT.BINANCE/{days[0]}"]
    assert "WARNING: in-sample backtest" in result.output and "in_sample: true" in result.output
    assert sorted(set(pq.read_table(out / "timeline.parquet")["day"].to_pylist())) == days
    assert summary["trades"] == 0.0 and summary["orders_submitted"] == 0
    assert summary["guardrails"]["CONF"] > 0
    # enough minutes for a Sharpe, but a flat book has no returns: null, not rounding noise
    assert summary["n_returns"] >= MIN_SHARPE_RETURNS and summary["sharpe"] is None


def test_bad_day_is_named(synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path) -> None:
    catalog, registry = synth_setup
    import datetime

    with pytest.raises(KeyError, match="2023-01-01"):
        run_backtest(catalog, "BTCUSDT", [datetime.date(2023, 1, 1)], "candidate", registry,
                     tmp_path, LOOSE)  # fmt: skip
    assert not (tmp_path / "summary.json").exists()


def test_summarise_never_gives_nan() -> None:
    s = summarise(np.array([]), pd.DataFrame(), np.array([], dtype=np.int64))
    assert s["sharpe"] is None and s["n_returns"] == 0 and s["net_pnl"] == 0.0
    assert s["round_trips"] == 0 and s["gross_edge_bp_per_rt"] == 0.0
    assert all(np.isfinite(v) for k, v in s.items() if k not in ("sharpe", "sharpe_basis"))
    with pytest.raises(ValueError, match="pnl"):
        summarise(np.array([0.0, np.nan]), pd.DataFrame(), np.array([0, 10**9]))


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


def test_serve_backed_backtest_decides_as_in_process(
    synth_setup: tuple[MarketCatalog, Registry], node_serve: ServeChild, tmp_path: Path
) -> None:
    """``nhmm backtest --serve URL``: a real local Serve answers every sample; the decisions,
    posteriors, orders and fills equal the in-process run of the same version when its answers
    arrive the same modelled 0.1 ms after their samples (by default a Serve run's arrive after
    the measured call time, which machine load changes). The budget is large so machine load
    never fires LATENCY; drift thresholds are out of reach so the Serve never reports
    ``adapting`` (its drift monitor would block through DRIFT, in-process has none).
    """
    _, registry = synth_setup
    synth(SynthConfig(days=1, seed=5, day_seconds=600), tmp_path / "catalog")  # few HTTP calls
    catalog = MarketCatalog(tmp_path / "catalog")
    local = backtest_cli(catalog, registry, tmp_path / "local")
    url = node_serve.url  # the package's Serve: drift thresholds out of reach
    served = backtest_cli(catalog, registry, tmp_path / "serve", "--serve", url,
                          "--model-latency-ms", "0.1")  # fmt: skip  # budget: 10 s
    assert served["model_version"] == local["model_version"] == registry.resolve("candidate")
    assert served["model_versions_answered"] == [local["model_version"]]
    assert served["serve_url"] == url and served["inference_status"]["ok"] == served["samples"]
    config = json.loads((tmp_path / "serve" / "config.json").read_text())
    assert config["model"]["client"] == "HttpModelClient"
    assert config["strategy"]["latency_budget_ms"] == 10000.0
    assert config["strategy"]["modelled_latency_ms"] == 0.1
    a = pq.read_table(tmp_path / "local" / "timeline.parquet").to_pandas()
    b = pq.read_table(tmp_path / "serve" / "timeline.parquet").to_pandas()
    assert len(a) == len(b) == local["samples"] > 400
    for col in ("ts", "day", "state", "action", "verdict", "confidence", "score", "loglik"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(np.stack(a["posterior"]), np.stack(b["posterior"]))
    assert not b["adapting"].any() and not a["adapting"].any()
    assert (b["latency_ms"] > a["latency_ms"]).mean() > 0.9  # it really went over HTTP
    for key in ("orders_submitted", "trades", "entries", "guardrails", "net_pnl", "fees"):
        assert served[key] == local[key], key
    assert local["orders_submitted"] > 3 and local["decisions"] > 100


def test_sharpe_needs_enough_minutes() -> None:
    # issue 11: the PnL is marked at each clock minute's last sample (by timestamp), not every
    # 60th row: the marks below are rows 59, 119, ...
    rng = np.random.default_rng(0)
    n = 60 * (MIN_SHARPE_RETURNS + 1)
    pnl = np.cumsum(rng.normal(0.01, 1.0, n))
    ts = np.arange(n) * 10**9
    s = summarise(pnl, pd.DataFrame(), ts)
    assert s["n_returns"] == MIN_SHARPE_RETURNS and np.isfinite(s["sharpe"])
    rets = np.diff(pnl[59::60])
    assert s["sharpe"] == pytest.approx(rets.mean() / rets.std() * np.sqrt(525_600))
    short = summarise(pnl[: 60 * MIN_SHARPE_RETURNS], pd.DataFrame(), ts[: 60 * MIN_SHARPE_RETURNS])
    assert short["n_returns"] == MIN_SHARPE_RETURNS - 1 and short["sharpe"] is None


def test_sharpe_uses_real_minutes_not_rows() -> None:
    # 40 samples an hour apart (a sparse timeline): 40 rows are 40 hourly marks, 39 changes,
    # never 40 "minutes"; one sample per minute with gaps keeps only the minutes that exist
    pnl = np.cumsum(np.random.default_rng(1).normal(0.0, 1.0, 40))
    hourly = summarise(pnl, pd.DataFrame(), np.arange(40) * 3600 * 10**9)
    assert hourly["n_returns"] == 39
    per_row = summarise(pnl, pd.DataFrame(), np.arange(40) * 10**9)  # 40 s: one minute
    assert per_row["n_returns"] == 0 and per_row["sharpe"] is None


def test_adaptation_report_records_failures_per_day() -> None:
    """A day with one answered sample cannot be partial-fitted: the error is recorded for that
    day (no raise, no NaN) while a full day fits; an unanswered sample (state -1) is left out."""
    bundle, X = make_bundle(2, n=400)
    rows = [("2024-01-01", x) for x in X[:399]] + [("2024-01-02", X[399])]
    timeline = pa.table(
        {
            "day": [d for d, _ in rows] + ["2024-01-02"],
            "state": [0] * len(rows) + [-1],
            "features": [x.tolist() for _, x in rows] + [[]],
            "loglik": [-10.0] * len(rows) + [None],
        }
    )
    report = adaptation_report(bundle, timeline, ["2024-01-01", "2024-01-02", "2024-01-03"])
    full, short, empty = report["days"]
    assert full["partial_fit"]["error"] is None and full["partial_fit"]["n_samples"] == 399
    assert full["drift"]["n_samples"] == 399 and full["drift"]["max_kl"] is not None
    assert short["drift"]["n_samples"] == 1 and short["drift"]["max_kl"] is None
    assert (
        short["partial_fit"]["error"].startswith("BadInputError")
        and short["partial_fit"]["n_samples"] == 1
    )
    assert empty["partial_fit"]["error"] and empty["drift"]["n_samples"] == 0
    json.dumps(report, allow_nan=False)  # strict JSON
