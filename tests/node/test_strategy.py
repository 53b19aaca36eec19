"""``PolicyHMMStrategy`` in a real BacktestEngine with a model trained on earlier synthetic days."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from node.backtest import run_backtest
from node.config import PolicyHMMStrategyConfig
from node.strategy import PolicyHMMStrategy
from serving.client import HttpModelClient
from serving.client import InProcessModelClient
from serving.testing import free_port
from tests.strategy_setup import LOOSE
from tests.strategy_setup import SCHEMA
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog
from training.features.offline import extract_features
from training.features.offline import z_columns
from training.models.hmm import ForwardFilter


def test_decisions_follow_the_offline_filtered_posterior_and_submit_nothing_when_disabled(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, LOOSE)
    timeline = pq.read_table(tmp_path / "timeline.parquet")
    # the online posterior is the causal forward filter over the offline features of the day
    offline = extract_features(catalog, "BTCUSDT", day, SCHEMA)
    ready = offline["ready"].to_numpy(zero_copy_only=False) & offline["book_ok"].to_numpy(
        zero_copy_only=False
    )
    X = np.column_stack([offline[c].to_numpy() for c in z_columns(SCHEMA)])[ready]
    run = ForwardFilter(registry.load("candidate").hmm_params()).run(X)
    assert timeline.num_rows == len(X) > 1000
    np.testing.assert_array_equal(timeline["ts"].to_numpy(), offline["ts"].to_numpy()[ready])
    posterior = np.array(timeline["posterior"].to_pylist())
    np.testing.assert_allclose(posterior, run.posteriors, atol=1e-9)
    np.testing.assert_array_equal(timeline["state"].to_numpy(), run.states)
    # decisions happen, pass through the guardrails and are logged, but nothing is submitted
    assert summary["decisions"] > 100 and summary["entries"] > 10
    assert summary["orders_submitted"] == 0 and summary["trades"] == 0.0
    entries = pq.read_table(tmp_path / "entries.parquet")
    assert not any(entries["submitted"].to_pylist())
    assert len(entries["features"][0].as_py()) == len(SCHEMA.names)
    counts = json.loads((tmp_path / "guardrails.json").read_text())
    assert counts["OK"] == summary["entries"]
    assert counts["COOLDOWN"] > 0
    blocks = pq.read_table(tmp_path / "blocks.parquet")
    assert blocks.num_rows == sum(v for k, v in counts.items() if k != "OK")
    assert set(blocks["reason"].to_pylist()) <= {k for k, v in counts.items() if v}


def test_tripped_kill_switch_blocks_every_decision(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    (tmp_path / "kill_switch.json").write_text(json.dumps({"tripped": True, "reason": "manual"}))
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, cfg)
    counts = summary["guardrails"]
    assert counts["KILL"] == summary["decisions"] > 100
    assert counts["OK"] == 0 and summary["orders_submitted"] == 0 and summary["trades"] == 0.0


def test_latency_budget_blocks_slow_inference(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, latency_budget_ms=0.0)
    model = InProcessModelClient(registry.load("candidate"))
    summary = run_backtest(catalog, "BTCUSDT", [day], "x", None, tmp_path, cfg, model=model)
    # each answer arrives the modelled 0.1 ms after its sample: late, so every sample is blocked
    assert summary["inference_status"] == {"ok": 0, "timeout": summary["samples"], "error": 0}
    assert summary["guardrails"]["LATENCY"] == summary["samples"] >= summary["decisions"] > 100
    assert summary["model_version"] == model.version


def test_late_answers_block_on_latency_but_still_carry_the_posterior(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """A ``timeout`` result (answered after the client's budget) blocks every decision through
    LATENCY, yet its posterior is carried: the filtered states equal an unhurried run's."""
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    late = InProcessModelClient("candidate", registry, budget_ms=1e-9)
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path / "late",
                           cfg, model=late)  # fmt: skip
    assert summary["inference_status"] == {"ok": 0, "timeout": summary["samples"], "error": 0}
    # every sample is blocked, a wanted trade or not (this model is almost never flat)
    assert summary["guardrails"]["LATENCY"] == summary["samples"] >= summary["decisions"] > 100
    assert summary["orders_submitted"] == 0 and summary["trades"] == 0.0
    timeline = pq.read_table(tmp_path / "late" / "timeline.parquet")
    assert set(timeline["verdict"].to_pylist()) <= {"LATENCY", "FLAT"}
    run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path / "ok", cfg)
    ok = pq.read_table(tmp_path / "ok" / "timeline.parquet")
    np.testing.assert_array_equal(timeline["state"].to_numpy(), ok["state"].to_numpy())
    np.testing.assert_array_equal(
        np.array(timeline["posterior"].to_pylist()), np.array(ok["posterior"].to_pylist())
    )


def test_unreachable_model_blocks_every_sample_without_crashing(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Serve down (nothing listens on the port): every call is an ``error``, every sample is
    blocked by LATENCY, nothing is traded, and the timeline says so (state -1, no posterior)."""
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    url = f"http://127.0.0.1:{free_port()}"
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, cfg,
                           serve_url=url, budget_ms=200.0)  # fmt: skip
    assert summary["inference_status"] == {"ok": 0, "timeout": 0, "error": summary["samples"]}
    assert summary["guardrails"]["LATENCY"] == summary["samples"] > 1000
    assert summary["decisions"] == 0 and summary["orders_submitted"] == 0
    assert summary["model_versions_answered"] == []
    timeline = pq.read_table(tmp_path / "timeline.parquet")
    assert set(timeline["state"].to_pylist()) == {-1}
    assert set(timeline["status"].to_pylist()) == {"error"}
    assert timeline["loglik"].null_count == timeline.num_rows
    blocks = pq.read_table(tmp_path / "blocks.parquet")
    assert blocks.num_rows == summary["samples"]
    assert set(blocks["reason"].to_pylist()) == {"LATENCY"}


def test_a_client_without_schema_needs_one_given() -> None:
    client = HttpModelClient("http://127.0.0.1:1", budget_ms=10.0)
    try:
        with pytest.raises(ValueError, match="schema"):
            PolicyHMMStrategy(LOOSE, model=client)
        assert PolicyHMMStrategy(LOOSE, model=client, schema=SCHEMA).schema is SCHEMA
    finally:
        client.close()
    with pytest.raises(ValueError, match="registry_root"):
        PolicyHMMStrategy(LOOSE)


def test_drawdown_stop_watches_strategy_pnl_not_the_starting_inventory(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """The spot account starts with 1 BTC; its price drift is not a strategy loss. Without
    trading the equity DD watches stays flat, so a tiny DD limit never fires; with trading it
    fires at the first sample whose PnL drawdown exceeds it, and nothing is entered after."""
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    idle = msgspec.structs.replace(LOOSE, max_drawdown=0.2)
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path / "idle",
                           idle)  # fmt: skip
    timeline = pq.read_table(tmp_path / "idle" / "timeline.parquet")
    mid = timeline["mid"].to_numpy()
    assert mid.max() - mid.min() > 1.0  # 1 BTC of inventory moved far more than the limit
    assert summary["guardrails"]["DD"] == summary["guardrails"]["KILL"] == 0
    assert np.ptp(timeline["equity"].to_numpy()) == 0.0 and summary["max_drawdown"] == 0.0

    active = msgspec.structs.replace(idle, trading_enabled=True)
    out = tmp_path / "active"
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, out, active)
    timeline = pq.read_table(out / "timeline.parquet")
    pnl = timeline["pnl"].to_numpy()
    breach = np.flatnonzero(np.maximum.accumulate(pnl) - pnl > 0.2)
    assert len(breach) and summary["max_drawdown"] > 0.2
    stop_ts = timeline["ts"].to_numpy()[breach[0]]
    assert json.loads((out / "kill_switch.json").read_text())["reason"] == "DD"
    entries = pq.read_table(out / "entries.parquet")["ts"].to_numpy()
    assert len(entries) > 0 and (entries < stop_ts).all()
    verdicts = timeline["verdict"].to_numpy()[breach[0] :]
    assert set(verdicts) <= {"KILL", "FLAT"} and summary["guardrails"]["KILL"] > 0
    # KILL flattens: what was open at the stop is closed by KILL exits, nothing else after it
    exits = pq.read_table(out / "exits.parquet").to_pylist()
    assert all(e["reason"] == "KILL" for e in exits if e["ts"] >= stop_ts)
    if timeline["position"].to_numpy()[breach[0]] != 0.0:
        assert summary["exit_reasons"]["KILL"] == 1


def test_identical_backtests_give_identical_timelines_and_hold_for_the_label_horizon(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """In process the LATENCY guard sees the modelled 0.1 ms, so a 0.2 ms budget (which the
    measured wall time, recorded in the timeline, does exceed) blocks nothing and two runs decide
    and fill the same. Positions are held ``hold_s``, then exited by orders for the whole
    position, even while entries are on COOLDOWN."""
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(
        LOOSE,
        trading_enabled=True,
        latency_budget_ms=0.2,
        hold_s=5.0,
        min_conf=0.99,
        signal_exit=True,
    )  # only confident signals extend a hold: this model is rarely flat
    runs = []
    for name in ("a", "b"):
        summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path / name,
                               cfg)  # fmt: skip
        timeline = pq.read_table(tmp_path / name / "timeline.parquet")
        runs.append((summary, timeline, pq.read_table(tmp_path / name / "fills.parquet")))
    (sa, ta, fa), (sb, tb, fb) = runs
    assert ta.drop(["latency_ms"]).equals(tb.drop(["latency_ms"]))
    cols = ["order_side", "last_px", "last_qty", "ts_event"]
    assert fa.num_rows > 0 and fa.select(cols).equals(fb.select(cols))
    assert sa["guardrails"] == sb["guardrails"] and sa["guardrails"]["LATENCY"] == 0
    latency = ta["latency_ms"].to_numpy()
    assert (latency > 0).all() and latency.max() > 0.2  # measured, not the modelled value
    config = json.loads((tmp_path / "a" / "config.json").read_text())["strategy"]
    assert config["modelled_latency_ms"] == 0.1 and config["hold_s"] == 5.0 == sa["hold_s"]

    assert sa["trades"] > 0 and sa["exit_reasons"]["HOLD"] > 0
    exits = pq.read_table(tmp_path / "a" / "exits.parquet").to_pylist()
    ts = ta["ts"].to_numpy()
    position = ta["position"].to_numpy()
    for e in exits:
        i = int(np.searchsorted(ts, e["ts"]))
        assert ts[i] == e["ts"] and position[i] != 0.0
        assert e["quantity"] == pytest.approx(abs(position[i]))
        assert e["side"] == ("sell" if position[i] > 0 else "buy")
        if e["reason"] == "HOLD" and not e["requote"]:
            opened = i
            while opened > 0 and position[opened - 1] != 0.0:
                opened -= 1
            assert e["ts"] - ts[opened] >= 5 * 10**9
    # exits are not held back by COOLDOWN: some start within cooldown_s of the last entry
    entry_ts = pq.read_table(tmp_path / "a" / "entries.parquet")["ts"].to_numpy()
    since_entry = [e["ts"] - entry_ts[entry_ts <= e["ts"]].max() for e in exits]
    assert min(since_entry) < cfg.cooldown_s * 1e9
    assert np.abs(position).max() <= cfg.max_position + 1e-12


def test_hold_time_comes_from_config_else_the_bundle_label_horizon_else_the_default(
    synth_setup: tuple[MarketCatalog, Registry],
) -> None:
    _, registry = synth_setup
    local = InProcessModelClient("candidate", registry)
    assert PolicyHMMStrategy(LOOSE, model=local).hold_s == 30.0  # TRAIN's label horizon
    cfg = msgspec.structs.replace(LOOSE, hold_s=12.0)
    assert PolicyHMMStrategy(cfg, model=local).hold_s == 12.0
    client = HttpModelClient("http://127.0.0.1:1", budget_ms=10.0)
    try:
        remote = PolicyHMMStrategy(LOOSE, model=client, schema=SCHEMA)
        assert remote.hold_s == LOOSE.default_hold_s == 60.0
    finally:
        client.close()
    with pytest.raises(ValueError, match="hold_s"):
        PolicyHMMStrategyConfig(instrument_id="BTCUSDT.BINANCE", hold_s=0.0)
    with pytest.raises(ValueError, match="vwap_mode"):
        PolicyHMMStrategyConfig(instrument_id="BTCUSDT.BINANCE", vwap_mode="sideways")
    with pytest.raises(ValueError, match="stop_loss_bps"):
        PolicyHMMStrategyConfig(instrument_id="BTCUSDT.BINANCE", stop_loss_bps=-1.0)


def test_stop_loss_closes_a_position_that_moved_against_it_and_signal_exit_can_be_off(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(
        LOOSE, trading_enabled=True, stop_loss_bps=0.5, hold_s=600.0, signal_exit=False
    )
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, cfg)
    reasons = summary["exit_reasons"]
    assert reasons["STOP"] > 0 and reasons["HOLD"] == reasons["SIGNAL"] == 0
    timeline = pq.read_table(tmp_path / "timeline.parquet")
    exits = pq.read_table(tmp_path / "exits.parquet").to_pylist()
    ts, mid = timeline["ts"].to_numpy(), timeline["mid"].to_numpy()
    fills = pq.read_table(tmp_path / "fills.parquet").to_pandas()
    fill_ts = pd.to_datetime(fills["ts_event"]).astype("int64").to_numpy()
    px = fills["last_px"].astype(float).to_numpy()
    bought = fills["order_side"].str.upper().str.contains("BUY").to_numpy()
    stops = [e for e in exits if e["reason"] == "STOP" and not e["requote"]]
    for e in stops:
        mid_now = mid[int(np.searchsorted(ts, e["ts"]))]
        before = fill_ts < e["ts"]
        if e["side"] == "sell":  # a long: the mid fell under some buy price it paid
            assert mid_now < px[before & bought].max()
        else:
            assert mid_now > px[before & ~bought].min()
