"""Replay a RUN_DIR into the node's metrics exporter: the dashboards on a backtest.

Until the live node serves its own metrics, a backtest's RUN_DIR drives
:class:`node.metrics.NodeMetrics` exactly as the strategy will: every timeline row through
``observe_sample``, every order and fill in exchange-time order, the kill switch when the run
tripped it. ``speed`` paces it against the exchange clock (60 = one hour of market in a minute;
0 = as fast as possible).

    python -m ops.prometheus.feed RUN_DIR --port 9464 --speed 60

serves ``http://127.0.0.1:9464/metrics`` and keeps serving the last values after the replay
(Ctrl-C stops it); ``ops/prometheus/prometheus.yml`` scrapes that port.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from node.metrics import DEFAULT_METRICS_PORT
from node.metrics import NodeInfo
from node.metrics import NodeMetrics
from node.metrics import start_metrics_server
from node.run_dir import GUARD_REASONS
from ops._run_events import RunEvents
from ops._run_events import load_events

__all__ = ["main", "metrics_for", "replay"]

_SAMPLE, _ORDER, _FILL = 0, 1, 2
#: Verdicts that mean the kill switch is engaged (a DD breach trips it).
_KILLED = tuple(r for r in GUARD_REASONS if r in ("KILL", "DD"))


def metrics_for(events: RunEvents, mode: str = "replay") -> NodeMetrics:
    """A :class:`NodeMetrics` for the run's instrument, limits and model."""
    info = NodeInfo.from_strategy(
        {**events.strategy, "instrument_id": events.instrument_id, "market": events.market}, mode
    )
    metrics = NodeMetrics(info)
    if events.model_version:
        metrics.set_model(events.model_version, str(events.strategy.get("model_ref", "")))
    return metrics


def _timed(events: RunEvents) -> list[tuple[int, int, dict]]:
    """Every sample, order and fill as ``(ts, kind, row)``, in exchange-time order (a sample
    before the order it caused: same ts, lower kind)."""
    out = [(r["ts"], _SAMPLE, r) for r in events.timeline.to_pylist()]
    out += [(r["ts"], _ORDER, r) for r in events.orders.to_pylist()]
    out += [(r["ts"], _FILL, r) for r in events.fills.to_pylist()]
    out.sort(key=lambda e: (e[0], e[1]))
    return out


def replay(
    events: RunEvents,
    metrics: NodeMetrics,
    *,
    speed: float = 0.0,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Feed ``events`` into ``metrics`` at ``speed`` x the exchange clock (0: no pause);
    returns the number of samples fed (fewer if ``stop`` was set)."""
    if speed < 0:
        raise ValueError(f"speed: must be >= 0, got {speed}")
    stop = stop if stop is not None else threading.Event()
    items = _timed(events)
    wall0, ts0 = time.monotonic(), items[0][0] if items else 0
    fed = 0
    for ts, kind, row in items:
        if stop.is_set():
            break
        if speed > 0:
            delay = wall0 + (ts - ts0) / 1e9 / speed - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
        if kind == _SAMPLE:
            metrics.observe_sample(row)
            if row.get("verdict") in _KILLED:
                reason = "DD" if row["verdict"] == "DD" else events.kill_switch.get("reason")
                metrics.set_killswitch(True, reason or "KILL")
            fed += 1
            if progress is not None:
                progress(1)
        elif kind == _ORDER:
            metrics.observe_order(row["side"], row["kind"])
        else:
            metrics.observe_fill(row["side"], row["quantity"], row["price"], row["commission"],
                                 row["liquidity"])  # fmt: skip
    return fed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.prometheus.feed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("run_dir", type=Path, help="A RUN_DIR written by `nhmm backtest`.")
    parser.add_argument("--port", type=int, default=DEFAULT_METRICS_PORT)
    parser.add_argument("--addr", default="127.0.0.1", help="Bind address (default loopback).")
    parser.add_argument("--speed", type=float, default=60.0,
                        help="x the exchange clock (0: as fast as possible).")  # fmt: skip
    parser.add_argument("--once", action="store_true", help="Exit after the replay.")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from training.errors import NhmmError

    try:
        events = load_events(args.run_dir)
    except NhmmError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    metrics = metrics_for(events)
    server = start_metrics_server(metrics, args.port, args.addr)
    stop = threading.Event()
    if not args.once:  # serve until told to stop
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    print(f"serving http://{args.addr}:{args.port}/metrics", flush=True)
    with tqdm(total=events.timeline.num_rows, unit="sample", file=sys.stderr) as bar:
        fed = replay(events, metrics, speed=args.speed, stop=stop, progress=bar.update)
    print(f"replayed {fed} samples of {args.run_dir}", flush=True)
    if not args.once:
        stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
