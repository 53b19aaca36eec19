"""Nautilus Binance client configs that point every URL at a loopback venue.

Environment ``LIVE`` with all four base URLs overridden exercises the production code paths
(and, with keys, the spot trade-fee query). Any URL left unset would make the adapter dial a
real Binance host, so this is the one place that sets them.

>>> from node.venue.venue import VenueUrls
>>> urls = VenueUrls("http://127.0.0.1:9", "ws://127.0.0.1:9", "ws://127.0.0.1:9/ws-fapi/v1", "ws://127.0.0.1:9")
>>> data, exec_ = binance_configs(urls, "usdm", "BTCUSDT", api_key="k", api_secret="s")
>>> exec_.base_url_ws, exec_.base_url_ws_stream, str(data.instrument_provider.load_ids)
('ws://127.0.0.1:9/ws-fapi/v1', 'ws://127.0.0.1:9', "frozenset({InstrumentId('BTCUSDT-PERP.BINANCE')})")
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from nautilus_trader.adapters.binance import BinanceAccountType
from nautilus_trader.adapters.binance import BinanceDataClientConfig
from nautilus_trader.adapters.binance import BinanceExecClientConfig
from nautilus_trader.adapters.binance import BinanceLiveDataClientFactory
from nautilus_trader.adapters.binance import BinanceLiveExecClientFactory
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.trading.strategy import Strategy

from node.venue.venue import VenueUrls

__all__ = [
    "binance_configs",
    "dispose_node",
    "instrument_id",
    "reload_account_on_resubscribe",
    "trading_node",
]


def instrument_id(symbol: str, market: str, venue: str = "BINANCE") -> InstrumentId:
    """``BTCUSDT.BINANCE`` (spot) / ``BTCUSDT-PERP.BINANCE`` (USD-M), the adapter's naming."""
    suffix = "-PERP" if market == "usdm" else ""
    return InstrumentId.from_str(f"{symbol.upper()}{suffix}.{venue}")


def binance_configs(
    urls: VenueUrls,
    market: str,
    symbol: str,
    *,
    api_key: str,
    api_secret: str,
    venue: str = "BINANCE",
    **exec_options: Any,
) -> tuple[BinanceDataClientConfig, BinanceExecClientConfig]:
    """(data, exec) client configs for ``symbol`` on the venue at ``urls``.

    ``api_secret`` is an HMAC secret or an Ed25519 PKCS#8 PEM (the adapter tells them apart).
    ``exec_options`` go to :class:`BinanceExecClientConfig` (``max_retries``, ``use_gtd``...).
    """
    account = BinanceAccountType.SPOT if market == "spot" else BinanceAccountType.USDT_FUTURES
    iid = instrument_id(symbol, market, venue)
    provider = InstrumentProviderConfig(load_ids=frozenset([iid]))
    common: dict[str, Any] = {
        "venue": Venue(venue),
        "account_type": account,
        "environment": BinanceEnvironment.LIVE,
        "base_url_http": urls.http,
        "instrument_provider": provider,
    }
    data = BinanceDataClientConfig(
        base_url_ws=urls.ws, update_instruments_interval_mins=None, **common
    )
    exec_ = BinanceExecClientConfig(
        api_key=api_key,
        api_secret=api_secret,
        base_url_ws=urls.ws_api,
        base_url_ws_stream=urls.ws_stream if market == "usdm" else None,
        **common,
        **exec_options,
    )
    return data, exec_


def trading_node(
    data: BinanceDataClientConfig,
    exec_: BinanceExecClientConfig,
    strategies: Sequence[Strategy] = (),
    *,
    trader_id: str = "VENUE-001",
    log_level: str = "ERROR",
    **options: Any,
) -> TradingNode:
    """A built ``TradingNode`` with the Binance factories, on a new event loop of its own.

    Reconciliation is on; ``options`` override :class:`TradingNodeConfig` fields.
    """
    name = data.venue.value
    config: dict[str, Any] = {
        "trader_id": TraderId(trader_id),
        "logging": LoggingConfig(log_level=log_level, use_pyo3=False),
        "exec_engine": LiveExecEngineConfig(reconciliation=True),
        "data_clients": {name: data},
        "exec_clients": {name: exec_},
        "timeout_connection": 20.0,
        "timeout_reconciliation": 10.0,
        "timeout_portfolio": 10.0,
        "timeout_disconnection": 5.0,
        "timeout_post_stop": 1.0,
    }
    config.update(options)
    node = TradingNode(TradingNodeConfig(**config), loop=asyncio.new_event_loop())
    for strategy in strategies:
        node.trader.add_strategy(strategy)
    node.add_data_client_factory(name, BinanceLiveDataClientFactory)
    node.add_exec_client_factory(name, BinanceLiveExecClientFactory)
    node.build()
    reload_account_on_resubscribe(node)
    return node


def reload_account_on_resubscribe(node: TradingNode) -> None:
    """Reload the account whenever an exec client re-subscribes its user stream.

    Binance loses what it sent into a dropped user stream. Nautilus 1.231 re-subscribes and
    reconciles the orders (a fill in the gap comes back as an ``OrderFilled`` with
    ``reconciliation=True``) but never the balances, which stayed stale until the venue's next
    account update. The reload runs in the adapter's own re-subscribe hook, after the orders
    and before the stream's buffered events, so no newer update is overwritten by it.
    """
    for client in node.kernel.exec_engine._clients.values():
        ws = client._ws_client
        reconcile = ws._on_resubscribe

        async def resubscribed(client: Any = client, reconcile: Any = reconcile) -> None:
            if reconcile is not None:
                await reconcile()
            try:
                await client._update_account_state()
            except Exception as e:  # the stream must come back; the next update heals it
                client._log.exception("Reloading the account after a user-stream gap failed", e)

        ws._on_resubscribe = resubscribed


def dispose_node(node: TradingNode) -> None:
    """Dispose a stopped node, first ending the tasks it leaves pending on its loop (a
    strategy's executor worker), so nothing is destroyed pending when the loop closes."""
    loop = node.get_event_loop()
    if loop is not None and not loop.is_closed() and not loop.is_running():
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    node.dispose()
