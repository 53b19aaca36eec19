"""``python node/run.py --replay`` end to end: the REAL Nautilus Binance adapter against the
loopback venue replaying a real recording, the strategy asking a real local Serve (spot) or the
in-process model (USD-M), metrics scraped from the node's port while it runs.

The two acceptance nodes and a ``TRADING_ENABLED=false`` node run at the same time (each a
child process; the replays are paced, so they overlap instead of adding up).
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from node.run_dir import load_run
from node.venue import generate_ed25519
from ops.cli import killswitch
from serving.testing import local_serve
from tests.node.live.node_process import NodeProcess
from tests.node.live.node_process import metric
from tests.node.live.node_process import start_node
from tests.node.venue.wire import HMAC_SECRET
from tests.ray_setup import free_port
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog

SPOT = ("spot_btcusdt_20240808.gz",)  # 346 s: 35 s at 10x
USDM = ("usdm_btcusdt_20240808.gz",)  # 345 s
#: 10x: the strategy asks the model on the node's event loop (the HTTP round trip included),
#: so at higher speeds on a loaded 2-core box the node lags the venue and its passive orders
#: arrive after the market moved through them (rejected post-only: correct, but no fill).
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
    line = next(ln for ln in node.lines if ln.startswith("loopback venue "))
    url = line.split()[2]
    httpx.post(f"{url}/_venue/market/gap", params={"diffs": 300}, timeout=10).raise_for_status()


def _crash_at_first_order(node: NodeProcess) -> None:
    """SIGKILL the node as soon as it has sent an order: no shutdown, the marker stays."""
    node.wait_for(lambda body: metric(body, "nhmm_node_orders_total") >= 1, 150)
    node.kill9()


@pytest.fixture(scope="module")
def runs(
    synth_setup: tuple[MarketCatalog, Registry], ws_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Done]:  # fmt: skip
    """Four nodes at once: USD-M in process (rolled up at the end), a ``TRADING_ENABLED=false``
    spot node and a spot node killed at its first order start while Serve comes up; then the
    spot node that asks Serve (and sees a sequence gap), beside one whose Serve is down."""
    _, registry = synth_setup
    root = tmp_path_factory.mktemp("live_runs")
    venue_key, pem = generate_ed25519("spot-testnet-key")
    spot_env = {"TRADING_ENABLED": "true", "BINANCE_TESTNET_API_KEY": venue_key.key,
                "BINANCE_TESTNET_API_SECRET": pem}  # fmt: skip
    usdm_env = {"TRADING_ENABLED": "true", "BINANCE_FUTURES_TESTNET_API_KEY": "usdm-testnet-key",
                "BINANCE_FUTURES_TESTNET_API_SECRET": HMAC_SECRET}  # fmt: skip
    dry_env = {**spot_env, "TRADING_ENABLED": "false"}
    secrets = {"spot": pem, "usdm": HMAC_SECRET, "dry": pem, "crash": pem, "noserve": pem}
    spot = [ws_dir / f for f in SPOT]
    nodes = {
        "usdm": start_node(_args("usdm", [ws_dir / f for f in USDM], registry, root / "usdm",
                                 "--rollup-to", str(root / "rollup"), "--flatten"), usdm_env, root, root / "usdm.log"),
        "dry": start_node(_args("spot", spot, registry, root / "dry", "--duration", "25"),
                          dry_env, root, root / "dry.log"),
        "crash": start_node(_args("spot", spot, registry, root / "crash"), spot_env, root),
    }  # fmt: skip
    crasher = threading.Thread(target=_crash_at_first_order, args=(nodes["crash"],), daemon=True)
    crasher.start()
    args = {"kl_threshold": 1e9, "adwin_delta": 1e-300}  # Serve never reports adapting
    with local_serve(registry.root, args) as url:
        nodes["spot"] = start_node(
            _args("spot", spot, registry, root / "spot", "--serve", url), spot_env, root,
            root / "spot.log",
        )  # fmt: skip
        crasher.join(120)
        down = f"http://127.0.0.1:{free_port()}"  # a Serve that is not there
        nodes["noserve"] = start_node(
            _args("spot", spot, registry, root / "noserve", "--serve", down, "--duration", "30"),
            spot_env, root, root / "noserve.log",
        )  # fmt: skip
        _inject_gap(nodes["spot"])
        for name, node in nodes.items():
            if name != "crash":
                node.finish(150)
    out: dict[str, Done] = {}
    for name, node in nodes.items():
        if name == "crash":
            assert node.proc.returncode == -9, node.output[-3000:]
            out[name] = (node, {}, root / name, secrets[name])
            continue
        assert node.proc.returncode == 0, node.output[-3000:]
        summary = json.loads((root / name / "run" / "summary.json").read_text())
        out[name] = (node, summary, root / name, secrets[name])
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


def test_serve_down_is_latency_no_orders_no_crash(runs: dict[str, Done]) -> None:
    """Every inference fails (nothing listens at the Serve URL): each sample is a LATENCY block,
    nothing is sent, the node runs on and stops cleanly."""
    node, summary, _, _ = runs["noserve"]
    status = summary["inference_status"]
    assert status["ok"] == 0 and status["error"] > 20
    assert summary["guardrails"]["LATENCY"] == status["error"]  # every failed answer blocked
    assert summary["orders_submitted"] == 0 and summary["orders_seen"] == 0
    assert metric(node.scrapes[-1], 'nhmm_node_blocks_total{reason="LATENCY"}') > 20


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
    assert spot["model_version"] == usdm["model_version"]
    assert usdm["funding_updates"] >= 1  # the synthesised @markPrice@1s stream


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
