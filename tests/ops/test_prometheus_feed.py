"""The RUN_DIR replay into the node's exporter (``ops/prometheus/feed.py``): the scraped numbers
are the run's own (samples, blocks by code, entries, orders, fills, fees, PnL, regimes), the kill
switch and the model are replayed, pacing follows the exchange clock, the command works."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from node.run_dir import REASON_CODES
from ops._run_events import load_events
from ops.prometheus.feed import main
from ops.prometheus.feed import metrics_for
from ops.prometheus.feed import replay
from serving.testing import free_port
from tests.run_dir_setup import ROWS_PER_DAY
from tests.run_dir_setup import make_spec
from tests.run_dir_setup import write_run


def test_replay_gives_the_run_own_numbers(backtest_run: Path) -> None:
    events = load_events(backtest_run)
    m = metrics_for(events)
    tl = pq.read_table(backtest_run / "timeline.parquet")
    assert replay(events, m) == tl.num_rows
    guard = json.loads((backtest_run / "guardrails.json").read_text())
    v = m.value
    assert v("nhmm_node_samples_total") == tl.num_rows
    for code in REASON_CODES:
        assert v("nhmm_node_blocks_total", reason=code) == guard[code], code
    assert v("nhmm_node_entries_total") == guard["OK"] > 0
    entries = pq.read_table(backtest_run / "entries.parquet").to_pylist()
    exits = pq.read_table(backtest_run / "exits.parquet").to_pylist()
    for side in ("buy", "sell"):
        sent = sum(e["submitted"] and e["side"] == side for e in entries)
        assert (v("nhmm_node_orders_total", kind="entry", side=side) or 0) == sent
        assert (v("nhmm_node_orders_total", kind="exit", side=side) or 0) == sum(
            x["side"] == side for x in exits
        )
    fills = pq.read_table(backtest_run / "fills.parquet").to_pylist()
    assert sum(v("nhmm_node_fills_total", side=s, liquidity=lq) or 0 for s in ("buy", "sell")
               for lq in ("MAKER", "TAKER")) == len(fills) > 0  # fmt: skip
    fees = sum(float(f["commission"].split()[0]) for f in fills)
    assert v("nhmm_node_fees_total") == pytest.approx(fees)
    notional = sum(float(f["last_qty"]) * float(f["last_px"]) for f in fills)
    got = sum(v("nhmm_node_fill_notional_total", side=s) or 0 for s in ("buy", "sell"))
    assert got == pytest.approx(notional)
    assert v("nhmm_node_pnl") == pytest.approx(tl.column("pnl")[-1].as_py())
    assert v("nhmm_node_position") == pytest.approx(tl.column("position")[-1].as_py())
    states = np.asarray(tl.column("state").to_pylist())
    valid = states[states >= 0]
    for s in np.unique(valid):
        assert v("nhmm_node_state_samples_total", state=str(s)) == (valid == s).sum()
    changes = Counter((a, b) for a, b in itertools.pairwise(valid) if a != b)
    assert changes  # the regimes move on this day
    for (a, b), n in changes.items():
        assert v("nhmm_node_state_transitions_total", from_state=str(a), to_state=str(b)) == n
    peak = np.maximum.accumulate(tl.column("equity").to_numpy())
    assert v("nhmm_node_drawdown") == pytest.approx(peak[-1] - tl.column("equity")[-1].as_py())
    version = json.loads((backtest_run / "config.json").read_text())["model"]["version"]
    assert v("nhmm_node_model_info", model_version=version, model_ref="candidate") == 1
    assert v("nhmm_node_kill_switch_engaged") == 0
    assert v("nhmm_node_info", instrument_id="BTCUSDT.BINANCE", market="spot", mode="replay") == 1


def test_kill_switch_trips_are_replayed(tmp_path: Path) -> None:
    spec = make_spec()
    verdicts = spec["timeline"]["verdict"]
    for i in range(100, 110):
        verdicts[i] = "KILL"
    run = write_run(spec, tmp_path / "run")
    (run / "kill_switch.json").write_text('{"tripped": true, "reason": "MANUAL", "running": false}')
    m = metrics_for(load_events(run))
    replay(load_events(run), m)
    assert m.value("nhmm_node_kill_switch_engaged") == 1
    assert m.value("nhmm_node_kill_switch_trips_total", reason="MANUAL") == 1
    assert m.value("nhmm_node_blocks_total", reason="KILL") == 10


def test_pacing_follows_the_exchange_clock_and_stops(tmp_path: Path) -> None:
    """Never ahead of the exchange clock (at 1000x, 1 sample per ms); the day gap of the
    two-day run (24 h = 86 s at 1000x) holds it until stopped."""
    events = load_events(write_run(make_spec(), tmp_path / "run"))  # 1 sample per second
    m = metrics_for(events)
    stop = threading.Event()
    fed: list[int] = []
    t = threading.Thread(target=lambda: fed.append(replay(events, m, speed=1000.0, stop=stop)))
    t0 = time.monotonic()
    t.start()
    time.sleep(0.3)
    seen = m.value("nhmm_node_samples_total")
    elapsed = time.monotonic() - t0
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive()
    assert 0 < seen <= elapsed * 1000 + 1
    assert fed[0] <= ROWS_PER_DAY < events.timeline.num_rows
    assert m.value("nhmm_node_samples_total") == fed[0]
    with pytest.raises(ValueError, match="speed"):
        replay(events, m, speed=-1.0)


def test_command_replays_once_and_names_a_bad_run(
    backtest_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    assert main([str(backtest_run), "--port", str(port), "--speed", "0", "--once"]) == 0
    out = capsys.readouterr().out
    assert f"serving http://127.0.0.1:{port}/metrics" in out
    n = pq.read_table(backtest_run / "timeline.parquet").num_rows
    assert f"replayed {n} samples" in out
    assert main([str(tmp_path / "nope"), "--port", str(free_port()), "--once"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: {tmp_path / 'nope'}: not a directory"]
