"""The ``TradingNode``: Binance data and exec clients for one instrument, reconciliation on,
the hard limits in Nautilus's ``RiskEngine``, our strategy and the node's observer.

Against Binance (``testnet`` / ``demo`` / ``live``) the adapter resolves its hosts from the
environment; against the loopback venue (``--replay``) every URL points at it
(:func:`node.venue.adapter.binance_configs`). Keys are always passed explicitly: left
unset, the exec client factory would read ``BINANCE_API_KEY`` from the environment.

>>> from node.config import PolicyHMMStrategyConfig
>>> from node.live.config import LiveConfig
>>> cfg = LiveConfig(symbol="BTCUSDT", account="usdm", environment="demo",
...                  strategy=PolicyHMMStrategyConfig(instrument_id="X"))
>>> risk_config(cfg).max_notional_per_order
{'BTCUSDT-PERP.BINANCE': 1000.0}
>>> from node.live.safety import Credentials
>>> data, exec_ = client_configs(cfg, Credentials("demo", "BINANCE_DEMO_API_KEY", "k", "s"))
>>> exec_.environment.name, exec_.account_type.name, exec_.api_key, exec_.base_url_http
('DEMO', 'USDT_FUTURES', 'k', None)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from nautilus_trader.adapters.binance import BinanceAccountType
from nautilus_trader.adapters.binance import BinanceDataClientConfig
from nautilus_trader.adapters.binance import BinanceExecClientConfig
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.config import LiveDataEngineConfig
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LiveRiskEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.live.config import LiveConfig
from node.live.safety import Credentials
from node.venue.adapter import binance_configs
from node.venue.adapter import trading_node
from node.venue.venue import VenueUrls

__all__ = [
    "build_node",
    "client_configs",
    "data_client",
    "on_market_reconnect",
    "one_market_socket",
    "risk_config",
]

_ENVIRONMENTS = {
    "testnet": BinanceEnvironment.TESTNET,
    "demo": BinanceEnvironment.DEMO,
    "live": BinanceEnvironment.LIVE,
}


def risk_config(cfg: LiveConfig) -> LiveRiskEngineConfig:
    """The hard limits Nautilus checks before any order leaves: notional per order, submit rate."""
    return LiveRiskEngineConfig(
        max_order_submit_rate=cfg.max_order_submit_rate,
        max_order_modify_rate=cfg.max_order_submit_rate,
        max_notional_per_order={cfg.instrument_id: cfg.max_notional_per_order},
    )


def client_configs(
    cfg: LiveConfig, creds: Credentials, urls: VenueUrls | None = None
) -> tuple[BinanceDataClientConfig, BinanceExecClientConfig]:
    """(data, exec) configs: on the loopback venue at ``urls``, else on ``cfg.environment``."""
    if urls is not None:
        return binance_configs(urls, cfg.account, cfg.symbol, api_key=creds.key,
                               api_secret=creds.secret)  # fmt: skip
    account = BinanceAccountType.SPOT if cfg.account == "spot" else BinanceAccountType.USDT_FUTURES
    provider = InstrumentProviderConfig(
        load_ids=frozenset([InstrumentId.from_str(cfg.instrument_id)])
    )
    common: dict[str, Any] = {
        "account_type": account,
        "environment": _ENVIRONMENTS[cfg.environment],
        "instrument_provider": provider,
    }
    data = BinanceDataClientConfig(**common)
    exec_ = BinanceExecClientConfig(api_key=creds.key, api_secret=creds.secret, **common)
    return data, exec_


def build_node(
    cfg: LiveConfig,
    data: BinanceDataClientConfig,
    exec_: BinanceExecClientConfig,
    strategies: Sequence[Strategy],
    actors: Sequence[Actor] = (),
) -> TradingNode:
    """A built node: reconciliation on, whole-message delta batches (what the features expect),
    the risk limits; logs to stdout (Nautilus's file writer left our log files empty)."""
    logging = LoggingConfig(log_level=cfg.log_level, log_colors=False, use_pyo3=False)
    node = trading_node(
        data,
        exec_,
        strategies,
        trader_id=cfg.trader_id,
        logging=logging,
        exec_engine=LiveExecEngineConfig(reconciliation=True, reconciliation_lookback_mins=1440),
        data_engine=LiveDataEngineConfig(buffer_deltas=True),
        risk_engine=risk_config(cfg),
    )
    for actor in actors:
        node.trader.add_actor(actor)
    return node


def data_client(node: TradingNode) -> Any:
    """The node's (only) market data client, for a book resync."""
    engine = node.kernel.data_engine
    return next(iter(engine._clients.values()))


def one_market_socket(node: TradingNode) -> None:
    """Read every market stream from one socket (replay only: the loopback venue serves them all
    on one URL). The adapter splits book streams and trades over two sockets, and across two
    sockets a diff and a trade on either side of a sample boundary may be handled in either
    order; on one socket the node handles them in the venue's (the recording's) order, as a
    backtest of the recording does, so the replay is deterministic (backtest parity)."""
    client = data_client(node)
    client._ws_public_client = client._ws_client


def on_market_reconnect(node: TradingNode, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever a market socket of the node reconnects (before the adapter's
    own handler, which rebuilds the books from snapshots)."""
    client = data_client(node)
    for ws in {id(c): c for c in (client._ws_client, client._ws_public_client)}.values():
        handler = ws._handler_reconnect

        async def reconnected(handler: Any = handler) -> None:
            callback()
            if handler is not None:
                await handler()

        ws._handler_reconnect = reconnected
