"""Issue 12's risk acceptance tests on the replayed synthetic book, in a real Nautilus engine
with queue fills: a kill switch tripped with a resting entry, a KILL during the warm-up after a
2-minute data gap, and a restart while long from the same state dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from node.backtest import IN_PROCESS_LATENCY_MS
from node.backtest import VenueOptions
from node.backtest import run_backtest
from node.backtest import venue_engine
from node.engine import symbol_day_data
from node.killswitch import KillSwitch
from node.killswitch import PeakStore
from node.killswitch import paths
from node.strategy import PolicyHMMStrategy
from serving.client import InProcessModelClient
from tests.strategy_setup import LOOSE
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog
from training.simulation.execution import order_size

S = 10**9


class TripOnce(PolicyHMMStrategy):
    """The strategy, plus a person who engages the kill switch on disk (as ``nhmm killswitch
    engage`` does) at the first sample where ``when(strategy, sample)`` holds."""

    def __init__(self, *args: Any, when: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.when = when
        self.tripped_at: int | None = None
        self.at_trip: dict[str, Any] = {}

    def _on_sample(self, s: Any) -> None:
        if self.tripped_at is None and self.when(self, s):
            self.tripped_at = s.ts_ns
            entry = self._live(self._entry_order)
            self.at_trip = {
                "position": self.position(),
                "entry": None if entry is None or not entry.is_open else entry.client_order_id,
                "entry_filled": None if entry is None else float(entry.filled_qty),
                "ready": bool(s.ready),
            }
            KillSwitch(self.guards.kill.path).trip("MANUAL")
        super()._on_sample(s)


def resting_entry(strategy: PolicyHMMStrategy) -> bool:
    order = strategy._live(strategy._entry_order)
    return order is not None and order.is_open


def run_engine(
    catalog: MarketCatalog, registry: Registry, state: Path, cfg: Any, when: Any, keep: Any = None
) -> tuple[TripOnce, pd.DataFrame, pd.DataFrame]:
    """The last synthetic day through the engine :func:`node.backtest.run_backtest` builds
    (queue fills), with :class:`TripOnce`; ``keep(ts_init)`` filters the replayed data."""
    sd = catalog.symbol_days("BTCUSDT")[-1]
    instrument = catalog.instrument(sd.instrument_id)
    engine = venue_engine(instrument, "spot", VenueOptions(), trader_id="RISK-001")
    for items in symbol_day_data(catalog, sd):
        if keep is not None:
            items = [x for x in items if keep(x.ts_init)]
        engine.add_data(items)
    cfg = msgspec.structs.replace(cfg, instrument_id=sd.instrument_id, state_dir=str(state),
                                  modelled_latency_ms=IN_PROCESS_LATENCY_MS)  # fmt: skip
    model = InProcessModelClient("candidate", registry)
    strategy = TripOnce(cfg, model=model, when=when)
    engine.add_strategy(strategy)
    try:
        engine.run()
        fills = engine.trader.generate_fills_report()
        orders = engine.trader.generate_orders_report()
    finally:
        engine.dispose()
        model.close()
    return strategy, fills, orders


def fill_times(fills: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(ts_event ns, signed quantity)`` of each fill, in time order."""
    ts = pd.to_datetime(fills["ts_event"]).astype("int64").to_numpy()
    qty = pd.to_numeric(fills["last_qty"]).to_numpy(dtype=float)
    sign = np.where(fills["order_side"].astype(str).str.upper().str.contains("BUY"), 1.0, -1.0)
    order = np.argsort(ts, kind="stable")
    return ts[order], (sign * qty)[order]


def test_kill_switch_cancels_a_resting_entry_and_flattens_within_two_seconds(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Issue 12: engaged while a position is open and an entry rests, the kill switch cancels
    the entry (no fill of it after the trip) and an aggressive KILL exit leaves the position
    flat within 2 s of simulated time; nothing but that exit fills after the trip."""
    catalog, registry = synth_setup
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True, hold_s=600.0)
    strategy, fills, orders = run_engine(
        catalog, registry, tmp_path, cfg,
        when=lambda st, s: s.ready and st.position() != 0.0 and resting_entry(st),
    )  # fmt: skip
    trip = strategy.tripped_at
    assert trip is not None and strategy.at_trip["position"] != 0.0
    entry = strategy.at_trip["entry"]
    assert entry is not None
    row = orders.loc[str(entry)]
    assert row["status"] == "CANCELED"
    assert float(row["filled_qty"]) == pytest.approx(strategy.at_trip["entry_filled"])
    ts, signed = fill_times(fills)
    position = np.cumsum(signed)
    after = ts >= trip
    assert after.any()
    # every fill after the trip is the KILL exit's: IOC orders taking liquidity
    fill_ts = pd.to_datetime(fills["ts_event"]).astype("int64").to_numpy()
    late_ids = {str(i) for i in fills.index[fill_ts >= trip]}  # client order ids
    late = orders.loc[list(late_ids)]
    assert set(late["time_in_force"].astype(str)) == {"IOC"}
    assert set(late["side"].astype(str)) == {"SELL" if strategy.at_trip["position"] > 0 else "BUY"}
    assert position[-1] == pytest.approx(0.0, abs=1e-12)
    assert ts[-1] - trip <= 2 * S
    assert all(e["ts"] < trip for e in strategy.entries)
    kills = [e for e in strategy.exits if e["ts"] >= trip]
    assert kills and all(e["reason"] == "KILL" and e["aggressive"] for e in kills)
    assert json.loads((tmp_path / "kill_switch.json").read_text())["reason"] == "MANUAL"


def test_kill_during_warm_up_after_a_two_minute_gap_flattens_before_warm_up_ends(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Issue 12: a position open, then no data for 2 minutes (a new feature session: 120 s of
    warm-up follow); KILL engaged at the first sample after the gap, while features are not
    ready, closes the position within 2 s, long before the warm-up ends."""
    catalog, registry = synth_setup
    day0 = pd.Timestamp(catalog.symbol_days("BTCUSDT")[-1].day.isoformat(), tz="UTC").value
    gap0, gap1 = day0 + 900 * S, day0 + 1020 * S
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True, hold_s=1800.0)
    strategy, fills, _ = run_engine(
        catalog, registry, tmp_path, cfg,
        when=lambda st, s: s.ts_ns >= gap1,
        keep=lambda ts: not gap0 <= ts < gap1,
    )  # fmt: skip
    trip = strategy.tripped_at
    assert trip is not None and trip - gap1 <= 2 * S
    assert strategy.at_trip["position"] != 0.0 and not strategy.at_trip["ready"]
    ready_again = min(t["ts"] for t in strategy.timeline if t["ts"] >= gap1)
    assert ready_again - trip >= 100 * S  # the warm-up that follows the gap
    ts, signed = fill_times(fills)
    position = np.cumsum(signed)
    assert position[-1] == pytest.approx(0.0, abs=1e-12)
    assert trip <= ts[-1] <= trip + 2 * S < ready_again


def test_restart_while_long_from_the_same_state_dir_keeps_the_drawdown(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Issue 12: stop the node while long, restart it from the same state dir with the account
    it left (the base it bought included): equity, so DD, carries on from where it stopped; only
    the open position's mark moves it. (Before, the base baseline was re-taken at the restart:
    the bought base vanished from equity and DD jumped by its value.)"""
    catalog, registry = synth_setup
    first, _, last = (sd.day for sd in catalog.symbol_days("BTCUSDT"))
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True, hold_s=7200.0)
    out = tmp_path / "node"
    run_backtest(catalog, "BTCUSDT", [first], "candidate", registry, out, cfg)
    t1 = pq.read_table(out / "timeline.parquet").to_pandas()
    account = pq.read_table(out / "account.parquet").to_pandas()
    balances = account.groupby("currency")["total"].last().astype(float)
    pos1 = float(t1["position"].iloc[-1])
    assert pos1 != 0.0 and balances["BTC"] == pytest.approx(1.0 + pos1)
    peak1 = PeakStore(paths(out)[1]).peak
    baseline = PeakStore(paths(out)[1]).baseline
    assert baseline is not None and baseline["base"] == 1.0 and baseline["quote"] == 100_000.0
    assert not KillSwitch(paths(out)[0]).tripped

    restart = VenueOptions(starting_quote=float(balances["USDT"]),
                           starting_base=float(balances["BTC"]))  # fmt: skip
    run_backtest(catalog, "BTCUSDT", [last], "candidate", registry, out, cfg, restart)
    t2 = pq.read_table(out / "timeline.parquet").to_pandas()
    assert float(t2["position"].iloc[0]) == pytest.approx(pos1)
    marked = t1["equity"].iloc[-1] + pos1 * (t2["mid"].iloc[0] - t1["mid"].iloc[-1])
    assert t2["equity"].iloc[0] == pytest.approx(marked, abs=1e-6)
    dd1 = peak1 - t1["equity"].iloc[-1]
    dd2 = max(peak1, t2["equity"].iloc[0]) - t2["equity"].iloc[0]
    assert dd2 == pytest.approx(max(dd1 - pos1 * (t2["mid"].iloc[0] - t1["mid"].iloc[-1]), 0.0))
    assert PeakStore(paths(out)[1]).baseline == baseline
    assert abs(pos1) * t2["mid"].iloc[0] > 1e-3  # what a re-taken baseline would have moved DD


def test_restart_while_long_keeps_the_entry_price_so_stop_still_fires(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Stop while long, restart from the same state dir: the entry price persisted at the fills
    is the open position's fill-weighted cost, and STOP measures the inherited position from it
    while the features still warm up. (Before, Nautilus's position book, empty after a restart,
    left STOP blind on spot: ``avg_px`` was ``None``.) The restart replays day 1, where the
    price falls below that entry (the later synthetic days only rise above it)."""
    catalog, registry = synth_setup
    first = catalog.symbol_days("BTCUSDT")[0].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True, hold_s=7200.0)
    out = tmp_path / "node"
    run_backtest(catalog, "BTCUSDT", [first], "candidate", registry, out, cfg)
    t1 = pq.read_table(out / "timeline.parquet").to_pandas()
    pos1 = float(t1["position"].iloc[-1])
    fills = pq.read_table(out / "fills.parquet").to_pandas()
    fills = fills.iloc[np.argsort(pd.to_datetime(fills["ts_event"]).astype("int64"), kind="stable")]
    _, signed = fill_times(fills)
    held = np.round(np.cumsum(signed), 8)
    opened = int(np.flatnonzero(held == 0.0)[-1]) + 1 if (held == 0.0).any() else 0
    px, qty = pd.to_numeric(fills["last_px"]).to_numpy(dtype=float)[opened:], signed[opened:]
    entry = PeakStore(paths(out)[1]).entry
    assert pos1 > 0.0 and (qty > 0).all()  # one long position, built by buys only
    cost = float((px * qty).sum() / qty.sum())
    assert entry == pytest.approx({"position": pos1, "avg_px": cost})

    account = pq.read_table(out / "account.parquet").to_pandas()
    balances = account.groupby("currency")["total"].last().astype(float)
    restart = VenueOptions(starting_quote=float(balances["USDT"]),
                           starting_base=float(balances["BTC"]))  # fmt: skip
    stop_bps = 1.0
    cfg2 = msgspec.structs.replace(cfg, stop_loss_bps=stop_bps)
    run_backtest(catalog, "BTCUSDT", [first], "candidate", registry, out, cfg2, restart)
    t2 = pq.read_table(out / "timeline.parquet").to_pandas()
    exit1 = pq.read_table(out / "exits.parquet").to_pandas().iloc[0]
    assert (exit1["reason"], exit1["side"]) == ("STOP", "sell")
    assert exit1["quantity"] == pytest.approx(pos1)  # the inherited position, whole
    assert exit1["ts"] < t2["ts"].iloc[0]  # while warming up: risk runs ready or not
    assert (cost - exit1["price"]) / cost * 1e4 >= stop_bps  # it was adverse by the stop


def test_scale_up_ramps_entries_after_clean_round_trips_in_nautilus(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    """Issue 13 (scale-up): with a step after every clean round trip, up to 3 x, the strategy's
    entries start at the base (min-notional) size at their price and become 2 x, then 3 x of
    it, never more; off (the default) every entry is the base size. (Selective settings, so the
    position goes flat between signals and round trips complete.)"""
    catalog, registry = synth_setup
    sd = catalog.symbol_days("BTCUSDT")[0]
    inst = catalog.instrument(sd.instrument_id)
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True, hold_s=20.0, min_conf=0.95,
                                  max_position=0.05, max_spread_bp_base=1000.0,
                                  vwap_mode="off")  # fmt: skip
    multiples = {}
    for scale_up in (0, 1):
        out = tmp_path / f"scale-{scale_up}"
        c = msgspec.structs.replace(cfg, scale_up_cycles=scale_up, max_scale=3)
        run_backtest(catalog, "BTCUSDT", [sd.day], "candidate", registry, out, c)
        entries = pq.read_table(out / "entries.parquet").to_pandas()
        base = [order_size(px, float(inst.min_notional), cfg.notional_multiple,
                           float(inst.size_increment), float(inst.min_quantity or 0.0))
                for px in entries["price"]]  # fmt: skip
        multiple = (entries["quantity"] / np.asarray(base)).to_numpy()
        timeline = pq.read_table(out / "timeline.parquet").to_pandas().set_index("ts")
        held = timeline.loc[entries["ts"], "position"].abs().to_numpy()
        room = np.isclose(entries["quantity"] + held, cfg.max_position,
                          atol=float(inst.size_increment) / 2)  # fmt: skip
        multiples[scale_up] = multiple[~room]  # a step capped at the room left is not whole
    assert len(multiples[0]) >= 5 and multiples[0] == pytest.approx(1.0)
    ramp = multiples[1]
    assert ramp == pytest.approx(np.round(ramp), abs=1e-9)  # whole multiples of the base
    assert ramp[0] == 1.0 and set(np.round(ramp).astype(int).tolist()) == {1, 2, 3}
    assert (np.diff(ramp[: int(np.argmax(ramp))]) >= 0).all()  # up one step at a time to 3
