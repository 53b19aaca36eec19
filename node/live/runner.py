"""Run the node: keys and safety checks, the model, the loopback venue for ``--replay``, the
``TradingNode``, metrics, the RUN_DIR, the day hook; until SIGINT/SIGTERM or the replay's end.

Shutdown (a signal, the end of the replay, ``duration_s``): Nautilus stops the strategy, which
cancels its open orders (and with ``flatten`` closes the position first: ``manage_stop``), the
kill switch's running marker is cleared (a SIGKILL leaves it: the next start trips ``CRASH``),
then the RUN_DIR is written and every UTC day the samples covered is handed to ``on_day``.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from node.config import label_horizon_s
from node.killswitch import KillSwitch
from node.killswitch import kill_switch_path
from node.live.config import LiveConfig
from node.live.safety import Credentials
from node.live.safety import check_live
from node.live.safety import credentials
from node.live.safety import trading_enabled
from training.errors import BadInputError

__all__ = ["DayHook", "kill_switch_notice", "resolve_credentials", "run_live"]

#: Called with ``(UTC day, RUN_DIR)`` once the RUN_DIR holds that whole day (at the day change
#: and at the end): the ``--rollup-to`` hook.
DayHook = Callable[[datetime.date, Path], None]

_log = logging.getLogger("nhmm.node")


def resolve_credentials(
    cfg: LiveConfig, env: Mapping[str, str], *, confirmed: bool
) -> tuple[Credentials, bool]:
    """``(keys, trading enabled)`` or a one-line refusal. ``--live`` needs
    :func:`~node.live.safety.check_live`; ``--replay`` without keys gets a fresh loopback
    Ed25519 pair (the venue is fake) and trades unless ``TRADING_ENABLED=false``."""
    if cfg.environment == "live":
        return check_live(env, confirmed=confirmed), True
    creds = credentials(cfg.environment, cfg.account, env)
    if creds is None and cfg.replay:
        from node.venue import generate_ed25519

        venue_key, pem = generate_ed25519()
        creds = Credentials("replay", "generated", venue_key.key, pem)
    if creds is None:
        from node.live.safety import KEY_VARS

        key_var, secret_var = KEY_VARS[(cfg.environment, cfg.account)]
        raise BadInputError(f"--{cfg.environment}: {key_var} / {secret_var} are not set "
                            "(keys come from the environment or .env)", field=key_var)  # fmt: skip
    return creds, trading_enabled(env, default=bool(cfg.replay))


def kill_switch_notice(state_dir: Path) -> str | None:
    """What a person must know at start: the kill switch is engaged, or will be (the previous
    run left its running marker: it ended uncleanly); ``None`` when trading may go on."""
    state = KillSwitch(kill_switch_path(state_dir)).state()
    reset = f"`nhmm killswitch reset --state-dir {state_dir}`"
    if state.get("tripped"):
        return f"kill switch ENGAGED ({state.get('reason') or '?'}): no trading until {reset}"
    if state.get("running"):
        return ("the previous run ended uncleanly (crash marker in the state dir): kill switch "
                f"engaged (CRASH), no trading until {reset}")  # fmt: skip
    return None


def _venue_key(creds: Credentials) -> Any:
    from cryptography.hazmat.primitives import serialization

    from node.venue import ApiKey

    if creds.secret.startswith("-----BEGIN"):
        private = serialization.load_pem_private_key(creds.secret.encode(), password=None)
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return ApiKey.ed25519(creds.key, public)
    return ApiKey.hmac(creds.key, creds.secret)


def run_live(
    cfg: LiveConfig,
    env: Mapping[str, str] | None = None,
    *,
    confirmed: bool = False,
    on_day: DayHook | None = None,
    duration_s: float | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the node until it is stopped; returns the summary written to the RUN_DIR."""
    env = dict(os.environ if env is None else env)
    creds, enabled = resolve_credentials(cfg, env, confirmed=confirmed)
    state_dir = cfg.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = cfg.out or state_dir / "runs" / stamp
    out.mkdir(parents=True, exist_ok=True)
    notice = kill_switch_notice(state_dir)
    if notice:
        echo(f"WARNING: {notice}")
    echo(f"node: {cfg.mode} {cfg.account} {cfg.instrument_id}, trading "
         f"{'ENABLED' if enabled else 'disabled (decisions logged only)'}, RUN_DIR {out}")  # fmt: skip
    with _Session(cfg, creds, enabled, out, echo) as session:
        return session.run(on_day, duration_s)


class _Session:
    """One node run's resources, released in order whatever happens."""

    def __init__(
        self, cfg: LiveConfig, creds: Credentials, enabled: bool, out: Path,
        echo: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.cfg, self.creds, self.enabled, self.out, self.echo = cfg, creds, enabled, out, echo
        self.venue_cm: Any = None
        self.venue: Any = None
        self.node: Any = None
        self.model: Any = None
        self.server: Any = None
        self.stopped = threading.Event()

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        if self.node is not None:
            from node.venue.adapter import dispose_node

            dispose_node(self.node)
        if self.model is not None:
            self.model.close()
        if self.venue_cm is not None:
            self.venue_cm.__exit__(None, None, None)
        if self.server is not None:
            self.server.shutdown()

    def _model(self) -> tuple[Any, Any, str]:
        from node.backtest import pinned_model
        from serving.client import HttpModelClient
        from serving.client import InProcessModelClient
        from training.artifacts.registry import Registry

        cfg = self.cfg
        registry = Registry(cfg.registry_root)
        budget = cfg.strategy.latency_budget_ms

        def client_for(version: str) -> Any:
            if cfg.serve_url is not None:
                return HttpModelClient(cfg.serve_url, budget_ms=budget, model=version)
            return InProcessModelClient(version, registry)

        return pinned_model(None, cfg.model_ref, registry, client_for, cfg.serve_url)

    def _strategy_config(self, bundle: Any) -> Any:
        cfg = self.cfg
        s = cfg.strategy
        return msgspec.structs.replace(
            s,
            instrument_id=cfg.instrument_id,
            market=cfg.market,
            model_ref=cfg.model_ref,
            registry_root=cfg.registry_root,
            state_dir=str(cfg.state_dir),
            kill_switch_path=None,
            trading_enabled=bool(s.trading_enabled and self.enabled),
            hold_s=s.hold_s or label_horizon_s(bundle.metadata) or s.default_hold_s,
            manage_stop=cfg.flatten,
        )

    def run(self, on_day: DayHook | None, duration_s: float | None) -> dict[str, Any]:
        from node.live.builder import build_node
        from node.live.builder import client_configs
        from node.live.builder import data_client
        from node.live.builder import on_market_reconnect
        from node.live.builder import one_market_socket
        from node.live.observer import NodeObserver
        from node.live.observer import ObserverConfig
        from node.live.run_out import write_live_run
        from node.metrics import NodeInfo
        from node.metrics import NodeMetrics
        from node.metrics import start_metrics_server
        from node.strategy import PolicyHMMStrategy

        cfg = self.cfg
        self.model, local, version = self._model()
        bundle, schema = local.model.bundle, local.schema
        scfg = self._strategy_config(bundle)
        strategy = PolicyHMMStrategy(scfg, model=self.model, schema=schema)
        metrics = NodeMetrics(NodeInfo.from_strategy(scfg, cfg.mode))
        metrics.set_model(version, cfg.model_ref)
        if cfg.metrics_port is not None:
            self.server = start_metrics_server(metrics, cfg.metrics_port)
        urls = None
        if cfg.replay:
            from node.venue import VenueConfig
            from node.venue import running

            # the replayed clock keeps the recording's sample boundaries: backtest parity
            align = math.lcm(1000, max(1, schema.interval_ns // 1_000_000))
            vcfg = VenueConfig(recording=cfg.replay, api_key=_venue_key(self.creds),
                               market=cfg.account, speed=cfg.speed, start="snapshot",
                               clock_align_ms=align)  # fmt: skip
            self.venue_cm = running(vcfg)
            self.venue = self.venue_cm.__enter__()
            urls = self.venue.urls
            self.echo(f"loopback venue {urls.http} replaying {len(cfg.replay)} file(s) at "
                      f"{cfg.speed}x (control: POST {urls.http}/_venue/...)")  # fmt: skip
        data, exec_ = client_configs(cfg, self.creds, urls)
        model_info = {"ref": cfg.model_ref, "version": version, "serve_url": cfg.serve_url,
                      "client": type(self.model).__name__}  # fmt: skip
        days_done: list[str] = []

        def write(extra: dict[str, Any]) -> dict[str, Any]:
            book = {"book_resyncs": observer.guard.resyncs, "book_resync_ts": observer.resync_ts,
                    "market_reconnects": len(observer.reconnect_ts),
                    "market_reconnect_ts": observer.reconnect_ts}  # fmt: skip
            return write_live_run(self.out, cfg, strategy, self.node.trader, model_info, bundle,
                                  {**book, **extra})  # fmt: skip

        def day_ended(day: str) -> None:
            write({"finished": False})
            days_done.append(day)
            if on_day is not None:
                on_day(datetime.date.fromisoformat(day), self.out)

        def resync() -> None:
            client = data_client(self.node)
            loop = self.node.get_event_loop()
            loop.create_task(client._order_book_snapshot_then_deltas(strategy.instrument_id))

        observer = NodeObserver(
            ObserverConfig(instrument_id=cfg.instrument_id, usdm=cfg.account == "usdm",
                           book_check_s=cfg.book_check_s),
            metrics,
            rows=lambda: strategy.timeline,
            state=lambda: (strategy.guards.peak.peak, strategy.guards.kill.tripped,
                           strategy.guards.kill.reason),
            resync=resync,
            on_day_end=day_ended,
        )  # fmt: skip
        self.node = build_node(cfg, data, exec_, [strategy], [observer])
        if cfg.replay:
            one_market_socket(self.node)
        on_market_reconnect(self.node, observer.market_reconnected)
        watcher = threading.Thread(target=self._watch, args=(duration_s,), daemon=True,
                                   name="node-watch")  # fmt: skip
        watcher.start()
        t0 = time.monotonic()
        self.node.run()
        self.stopped.set()
        position = float(self.node.portfolio.net_position(strategy.instrument_id) or 0)
        summary = write({
            "finished": True,
            "wall_s": time.monotonic() - t0,
            "orders_seen": observer.orders,
            "acks_seen": observer.acks,
            "final_position": position,
            "fills_seen": observer.fills,
            "funding_updates": strategy.funding_updates,
            "inference_not_asked": strategy.inference.not_asked,
            "venue": self.venue.status() if self.venue is not None else None,
        })  # fmt: skip
        for day in summary["days"]:
            if day not in days_done and on_day is not None:
                on_day(datetime.date.fromisoformat(day), self.out)
        self.echo(f"node stopped: {summary['samples']} samples, {summary['orders_submitted']} "
                  f"entries, {summary['fills_seen']} fills; RUN_DIR {self.out}")  # fmt: skip
        return summary

    def _watch(self, duration_s: float | None) -> None:
        """Stop the node when the replay has finished (after a grace second for the last
        events) or after ``duration_s``."""
        t0 = time.monotonic()
        while not self.stopped.wait(0.25):
            done = duration_s is not None and time.monotonic() - t0 >= duration_s
            if self.venue is not None and self.cfg.stop_at_end:
                try:
                    done = done or bool(self.venue.status()["finished"])
                except Exception:  # the venue is stopping
                    return
            if done:
                if self.venue is not None:
                    time.sleep(1.0)
                loop = self.node.get_event_loop()
                if loop is not None and loop.is_running():
                    loop.call_soon_threadsafe(self.node.stop)
                return
