"""``python node/run.py --replay`` end to end: the REAL Nautilus Binance adapter against the
loopback venue replaying a real recording, the strategy asking a real local Serve (spot) or the
in-process model (USD-M), metrics scraped from the node's port while it runs.

The two acceptance nodes, a ``TRADING_ENABLED=false`` node, one killed at its first order and
one whose Serve stops and comes back (and whose market socket the venue drops) run at the same
time (each a child process; the replays are paced, so they overlap instead of adding up). While
they run, the USD-M recording is imported and backtested with ``nhmm backtest`` (child
processes) for the parity report.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from node.live.cli import node as node_cli
from node.live.parity import CAUSES
from node.run_dir import load_run
from node.venue import generate_ed25519
from ops.cli import killswitch
from tests.node.live.node_process import NodeProcess
from tests.node.live.node_process import metric
from tests.node.live.node_process import start_node
from tests.node.live.serve_switch import ServeSwitch
from tests.node.venue.wire import HMAC_SECRET
from tests.serve_setup import ServeChild
from tests.training.data import funding_setup
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog

SPOT = ("spot_btcusdt_20240808.gz",)  # 346 s: 35 s at 10x
#: The USD-M node and its backtest replay the real 345 s recording with Binance
#: ``@markPrice@1s`` frames added (tests/training/data/funding_setup.py; the recording has none),
#: the funding rate stepping up at :data:`RATE_STEP_S`: funding is fed end to end.
RATE_STEP_S = 200
#: 10x: over Serve the strategy asks off the event loop, but the in-process USD-M node still
#: computes features and asks its model on the loop: at 20x on a loaded 2-core box it fell
#: ~100 s of data behind and was stopped at the replay's end with the tail unread.
SPEED = "10"
#: The test model's loose settings (tests/strategy_setup.py's CLI_CONFIG: LATENCY never fires).
STRATEGY = ["--min-conf", "0.5", "--budget-ms", "10000"]

Done = tuple[NodeProcess, dict[str, Any], Path, str]


def _args(
    account: str, files: list[Path], registry: Registry, state: Path, *extra: str
) -> list[str]:
    replay = [a for f in files for a in ("--replay", str(f))]
    return ["--account", account, "--symbol", "BTCUSDT", *replay, "--speed",
            SPEED, "--model", "candidate", "--registry", str(registry.root), "--state-dir",
            str(state), "--out", str(state / "run"), *STRATEGY, *extra]  # fmt: skip


def _inject_gap(node: NodeProcess) -> None:
    """Once the node has samples, make the venue leave 300 diffs (30 s of spot depth) out of
    its stream (the adapter does not notice; the node's book guard must)."""
    assert node.wait_for(lambda body: metric(body, "nhmm_node_samples_total") >= 30, 120)
    url = _venue_url(node)
    httpx.post(f"{url}/_venue/market/gap", params={"diffs": 300}, timeout=10).raise_for_status()


def _venue_url(node: NodeProcess) -> str:
    line = next(ln for ln in node.lines if ln.startswith("loopback venue "))
    return line.split()[2]


def _entries(body: str) -> float:
    """Entry orders submitted so far (the ``kind="entry"`` series of the orders counter)."""
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines()
               if ln.startswith('nhmm_node_orders_total{kind="entry"'))  # fmt: skip


def _flap_serve_then_drop(node: NodeProcess, switch: ServeSwitch) -> dict[str, bool]:
    """Serve is off when the node starts; on once the node has blocked 5 samples; off again
    (mid-run) after its first entry; on after 5 more LATENCY blocks; once the node has entered
    again, the venue drops the market socket. Returns which steps happened."""
    blocks = 'nhmm_node_blocks_total{reason="LATENCY"}'
    done: dict[str, bool] = {}
    done["down_at_start"] = node.wait_for(lambda body: metric(body, blocks) >= 5, 120)
    switch.on()
    done["entered"] = node.wait_for(lambda body: _entries(body) >= 1, 60)
    before = metric(node.scrapes[-1], blocks)
    switch.off()
    done["down_mid_run"] = node.wait_for(lambda body: metric(body, blocks) >= before + 5, 30)
    entries = _entries(node.scrapes[-1])
    switch.on()
    done["entered_again"] = node.wait_for(lambda body: _entries(body) > entries, 60)
    httpx.post(f"{_venue_url(node)}/_venue/market/drop", timeout=10).raise_for_status()
    done["dropped"] = True
    return done


def _backtest(files: list[Path], registry: Registry, root: Path) -> subprocess.Popen[str]:
    """``nhmm data import-ws FILES`` then ``nhmm backtest`` of it (the test model, the node's
    strategy options) into ``root/backtest``: one child shell, run beside the nodes."""
    nhmm = f"{sys.executable} -m training.cli"
    files_ = " ".join(str(f) for f in files)
    catalog = root / "catalog"
    cmd = (f"{nhmm} data import-ws {files_} --out {catalog} --no-progress && {nhmm} backtest "
           f"--catalog {catalog} --symbol BTCUSDT-PERP --model candidate --registry "
           f"{registry.root} --out {root / 'backtest'} {' '.join(STRATEGY)}")  # fmt: skip
    return subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _crash_at_first_order(node: NodeProcess) -> None:
    """SIGKILL the node as soon as it has sent an order: no shutdown, the marker stays."""
    node.wait_for(lambda body: metric(body, "nhmm_node_orders_total") >= 1, 150)
    node.kill9()


@pytest.fixture(scope="module")
def runs(
    synth_setup: tuple[MarketCatalog, Registry], ws_dir: Path, node_serve: ServeChild,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Done]:  # fmt: skip
    """Five nodes at once: USD-M in process (rolled up at the end), a ``TRADING_ENABLED=false``
    spot node and a spot node killed at its first order start while Serve comes up (and the
    USD-M backtest runs); then the spot node that asks Serve (and sees a sequence gap), beside
    one whose Serve is down at first, comes up, stops mid-run and comes back, and whose market
    socket the venue drops."""
    _, registry = synth_setup
    root = tmp_path_factory.mktemp("live_runs")
    venue_key, pem = generate_ed25519("spot-testnet-key")
    spot_env = {"TRADING_ENABLED": "true", "BINANCE_TESTNET_API_KEY": venue_key.key,
                "BINANCE_TESTNET_API_SECRET": pem}  # fmt: skip
    usdm_env = {"TRADING_ENABLED": "true", "BINANCE_FUTURES_TESTNET_API_KEY": "usdm-testnet-key",
                "BINANCE_FUTURES_TESTNET_API_SECRET": HMAC_SECRET}  # fmt: skip
    dry_env = {**spot_env, "TRADING_ENABLED": "false"}
    secrets = {"spot": pem, "usdm": HMAC_SECRET, "dry": pem, "crash": pem, "flap": pem}
    spot = [ws_dir / f for f in SPOT]
    usdm = [funding_setup.build(ws_dir, root, seconds=None, change_after_s=RATE_STEP_S)[0]]
    nodes = {
        "usdm": start_node(_args("usdm", usdm, registry, root / "usdm",
                                 "--rollup-to", str(root / "rollup"), "--flatten"), usdm_env, root, root / "usdm.log"),
        "dry": start_node(_args("spot", spot, registry, root / "dry", "--duration", "25"),
                          dry_env, root, root / "dry.log"),
        "crash": start_node(_args("spot", spot, registry, root / "crash"), spot_env, root),
    }  # fmt: skip
    crasher = threading.Thread(target=_crash_at_first_order, args=(nodes["crash"],), daemon=True)
    crasher.start()
    backtest = _backtest(usdm, registry, root / "usdm_backtest")
    url = node_serve.url  # the package's Serve (never reports adapting), started before the nodes
    nodes["spot"] = start_node(
        _args("spot", spot, registry, root / "spot", "--serve", url), spot_env, root,
        root / "spot.log",
    )  # fmt: skip
    crasher.join(120)
    switch = ServeSwitch(int(url.rsplit(":", 1)[1]))  # off: nothing listens there yet
    nodes["flap"] = start_node(
        _args("spot", spot, registry, root / "flap", "--serve", switch.url), spot_env, root,
        root / "flap.log",
    )  # fmt: skip
    _inject_gap(nodes["spot"])
    flapped = _flap_serve_then_drop(nodes["flap"], switch)
    for name, node in nodes.items():
        if name != "crash":
            node.finish(150)
    switch.off()
    backtested = backtest.communicate(timeout=300)[0]
    assert backtest.returncode == 0, backtested[-3000:]
    out: dict[str, Done] = {}
    for name, node in nodes.items():
        if name == "crash":
            assert node.proc.returncode == -9, node.output[-3000:]
            out[name] = (node, {}, root / name, secrets[name])
            continue
        assert node.proc.returncode == 0, node.output[-3000:]
        summary = json.loads((root / name / "run" / "summary.json").read_text())
        out[name] = (node, summary, root / name, secrets[name])
    out["flap"][1]["flapped"] = flapped
    return out


@pytest.fixture(params=["spot", "usdm"])
def run(request: pytest.FixtureRequest, runs: dict[str, Done]) -> Done:
    return runs[request.param]


def test_node_connects_builds_the_book_infers_and_trades_through_the_user_stream(run: Done) -> None:
    node, summary, state, _ = run
    venue = summary["venue"]
    assert venue["finished"] and venue["snapshots_served"] >= 1  # the book came from a snapshot
    assert venue["logons" if summary["live"]["account"] == "spot" else "user_events_sent"] >= 1
    assert "reconcil" in node.output.lower()  # startup reconciliation ran
    assert summary["samples"] > 100
    assert summary["inference_status"]["ok"] == summary["samples"]
    assert summary["orders_submitted"] >= 1 and summary["orders_seen"] >= 1
    assert summary["acks_seen"] >= 1  # OrderAccepted: from the user stream only
    assert summary["fills_seen"] >= 1 and venue["fills"] >= 1
    fills = pq.read_table(state / "run" / "fills.parquet")
    assert fills.num_rows >= 1  # acked and filled, through the user stream only
    data = load_run(state / "run")  # the RUN_DIR contract: acceptance / report read it
    assert data.timeline.num_rows == summary["samples"]
    assert (state / "kill_switch.json").is_file()
    assert not json.loads((state / "kill_switch.json").read_text())["running"]  # clean stop


def test_a_sequence_gap_is_caught_and_the_book_resynced(runs: dict[str, Done]) -> None:
    """The adapter never checks ``U``/``u``/``pu``: 300 diffs left out make its book diverge
    silently. The node's guard (book vs bookTicker) rebuilds it from a snapshot and counts it;
    the same recording without the gap (the dry run) needs none."""
    node, spot, _, _ = runs["spot"]
    assert spot["venue"]["gaps_injected"] == 1
    assert spot["book_resyncs"] >= 1 and spot["venue"]["snapshots_served"] >= 2
    assert "order book out of sync" in node.output
    assert runs["dry"][1]["book_resyncs"] == 0


def test_serve_down_then_stopped_mid_run_is_latency_no_entries_and_trading_resumes(
    runs: dict[str, Done],
) -> None:
    """Serve is not there at the start, comes up, stops mid-run (connection refused) and comes
    back: every sample without an answer is a LATENCY block, no entry is sent while Serve is
    down, the node runs on, infers and enters again once Serve is back, and stops cleanly."""
    node, summary, state, _ = runs["flap"]
    assert summary["flapped"] == dict.fromkeys(
        ("down_at_start", "entered", "down_mid_run", "entered_again", "dropped"), True
    )
    tl = pq.read_table(state / "run" / "timeline.parquet").to_pydict()
    ts, ok = np.array(tl["ts"]), np.array(tl["status"]) == "ok"
    phases = [(k, [i for i, _ in g]) for k, g in itertools.groupby(enumerate(ok), lambda x: x[1])]
    assert [k for k, _ in phases[:4]] == [False, True, False, True]  # down, up, down, up
    down = ~ok
    assert set(np.array(tl["verdict"])[down]) == {"LATENCY"} and set(
        np.array(tl["state"])[down]
    ) == {-1}
    status = summary["inference_status"]
    assert status["ok"] == ok.sum() and status["error"] == down.sum() >= 10
    assert summary["guardrails"]["LATENCY"] == status["error"]  # every failed answer blocked
    entries = pq.read_table(state / "run" / "entries.parquet").column("ts").to_numpy()
    assert not set(entries.tolist()) & set(ts[down].tolist())  # no entry while Serve was down
    back = ts[phases[2][1][-1]]  # the last sample of the mid-run outage
    assert (entries < back).any() and (entries > back).any()  # trading before and after
    assert summary["orders_submitted"] == len(entries) and summary["acks_seen"] >= 2
    assert metric(node.scrapes[-1], 'nhmm_node_blocks_total{reason="LATENCY"}') == status["error"]


def test_a_dropped_market_socket_reconnects_and_resyncs_the_book(runs: dict[str, Done]) -> None:
    """The venue closes the node's market socket: the adapter reconnects, the book is rebuilt
    from a new snapshot, the reconnect is counted, the book never disagrees with the venue's
    quotes afterwards (no resync by the guard: never crossed), and samples go on."""
    node, summary, state, _ = runs["flap"]
    venue = summary["venue"]
    assert venue["market_dropped"] >= 1 and venue["market_connections"] >= 2
    assert summary["market_reconnects"] >= 1 and "market socket reconnected" in node.output
    assert venue["snapshots_served"] >= 2  # the first book and the rebuilt one
    assert node.output.count("OrderBook snapshot rebuild for BTCUSDT.BINANCE completed") >= 2
    assert summary["book_resyncs"] == 0  # the rebuilt book never crossed or lagged the quotes
    ts = pq.read_table(state / "run" / "timeline.parquet").column("ts").to_numpy()
    assert (ts > summary["market_reconnect_ts"][0]).sum() >= 10  # sampling went on


def test_replay_and_backtest_of_one_recording_agree_sample_by_sample(
    runs: dict[str, Done], tmp_path: Path
) -> None:
    """Parity: the USD-M replay against ``nhmm backtest`` of the same recording gives the same
    (state, action) on >= 99% of samples; parity.json / parity.md list every difference with
    its cause."""
    _, summary, state, _ = runs["usdm"]
    backtest = state.parent / "usdm_backtest" / "backtest"
    result = CliRunner().invoke(node_cli, ["parity", str(state / "run"), str(backtest),
                                           "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "parity.json").read_text())
    assert report["fraction"] >= 0.99, report["by_cause"]
    assert report["pairs"] == summary["samples"] == report["samples"]  # the grids line up
    assert len(report["differences"]) == report["samples"] - report["agree"]
    assert set(report["by_cause"]) <= set(CAUSES) - {"unexplained"}
    assert report["runs"]["model_version"]["live"] == report["runs"]["model_version"]["backtest"]
    md = (tmp_path / "parity.md").read_text()
    assert f"{report['agree']} of {report['samples']} samples" in md
    assert md.count("\n| 20") == len(report["differences"])  # one table row per difference
    refused = CliRunner().invoke(node_cli, ["parity", str(backtest), str(backtest)])
    assert refused.exit_code == 2 and "not a `node/run.py --replay` run" in refused.output


def test_flatten_ends_the_run_flat(runs: dict[str, Done]) -> None:
    _, summary, state, _ = runs["usdm"]  # started with --flatten
    positions = pq.read_table(state / "run" / "timeline.parquet").column("position").to_numpy()
    assert abs(positions).max() > 0  # it held positions during the run
    assert summary["final_position"] == 0.0


def test_rollup_to_rolls_the_run_up_at_the_end(runs: dict[str, Done]) -> None:
    node, summary, state, _ = runs["usdm"]
    day = summary["days"][-1]
    assert f"rollup {day} -> " in node.output and ": ok" in node.output
    dest = state.parent / "rollup"
    (part,) = dest.glob(f"timeline/symbol=*/date={day}/part-0.parquet")
    assert pq.read_table(part).num_rows == summary["samples"]
    assert list(dest.glob(f"_manifests/symbol=*/date={day}.json"))


def test_spot_asked_serve_and_usdm_the_in_process_model(runs: dict[str, Done]) -> None:
    spot, usdm = runs["spot"][1], runs["usdm"][1]
    assert spot["serve_url"] and spot["serve_url"].startswith("http://127.0.0.1:")
    config = json.loads((runs["spot"][2] / "run" / "config.json").read_text())
    assert config["model"]["client"] == "HttpModelClient"
    assert usdm["serve_url"] is None
    assert spot["inference_not_asked"] == 0  # every sample was asked within the budget
    assert spot["model_version"] == usdm["model_version"]
    # the strategy fed the rate of the recording's @markPrice@1s frames (one a second) to its
    # features: the same updates a backtest of the recording gets from the catalog
    assert usdm["funding_updates"] >= 250


def test_metrics_were_scraped_from_the_running_node(run: Done) -> None:
    node, _, _, _ = run
    assert node.scrapes, "the metrics port never answered"
    last = node.scrapes[-1]
    assert metric(last, "nhmm_node_samples_total") > 0
    assert metric(last, "nhmm_node_orders_total") >= 1
    assert metric(last, "nhmm_node_fills_total") >= 1
    assert metric(last, "nhmm_node_trading_enabled") == 1
    assert metric(last, "nhmm_node_inference_latency_seconds_count") > 0


def test_trading_disabled_decides_and_logs_but_submits_nothing(runs: dict[str, Done]) -> None:
    node, summary, _, _ = runs["dry"]
    assert "trading disabled" in node.output
    assert summary["trading_enabled"] is False
    assert summary["samples"] > 50 and summary["entries"] >= 1  # decisions were taken...
    assert summary["orders_submitted"] == 0 and summary["orders_seen"] == 0  # ...none sent
    assert summary["venue"]["fills"] == 0
    assert metric(node.scrapes[-1], "nhmm_node_trading_enabled") == 0


def test_sigkill_leaves_trading_disabled_until_a_person_resets(
    runs: dict[str, Done], synth_setup: tuple[MarketCatalog, Registry], ws_dir: Path
) -> None:
    """The "crash" node was SIGKILLed at its first order; started again on the same state dir
    it trades nothing (KILL), says why, and stays so after a clean SIGTERM stop until
    ``nhmm killswitch reset``."""
    _, registry = synth_setup
    _, _, state, _ = runs["crash"]
    marker = json.loads((state / "kill_switch.json").read_text())
    assert marker == {**marker, "running": True, "tripped": False}
    venue_key, pem = generate_ed25519("spot-testnet-key")
    env = {"TRADING_ENABLED": "true", "BINANCE_TESTNET_API_KEY": venue_key.key,
           "BINANCE_TESTNET_API_SECRET": pem}  # fmt: skip
    args = _args("spot", [ws_dir / f for f in SPOT], registry, state)
    args[args.index("--out") + 1] = str(state / "run2")
    args[args.index("--speed") + 1] = "20"  # it only has to warm up and be refused
    again = start_node(args, env, state.parent)
    blocked = again.wait_for(
        lambda body: metric(body, 'nhmm_node_blocks_total{reason="KILL"}') >= 3, 120
    )
    again.proc.send_signal(signal.SIGTERM)  # a clean stop this time
    assert again.finish(60) == 0 and blocked, again.output[-3000:]
    assert "ended uncleanly" in again.output and "nhmm killswitch reset" in again.output
    summary = json.loads((state / "run2" / "summary.json").read_text())
    assert summary["orders_submitted"] == 0 and summary["orders_seen"] == 0
    assert summary["guardrails"]["KILL"] >= 3  # the model asked; the switch said no
    assert metric(again.scrapes[-1], "nhmm_node_kill_switch_engaged") == 1
    now = json.loads((state / "kill_switch.json").read_text())
    assert now["tripped"] and now["reason"] == "CRASH" and not now["running"]

    reset = CliRunner().invoke(killswitch, ["reset", "--state-dir", str(state), "--yes"])
    assert reset.exit_code == 0, reset.output
    assert not json.loads((state / "kill_switch.json").read_text())["tripped"]


def test_no_secret_in_any_log_line_or_run_file(runs: dict[str, Done]) -> None:
    for name, (node, _, state, secret) in runs.items():
        needles = [secret, *(ln for ln in secret.splitlines() if len(ln) > 8 and "-----" not in ln)]
        assert node.output.count("\n") > 20, name  # there were log lines to scan
        for needle in needles:
            assert needle not in node.output, name
        for path in state.rglob("*"):
            if path.is_file():
                raw = path.read_bytes()
                assert not any(n.encode() in raw for n in needles), path
