"""The loopback venue's configuration: what to replay, how fast, which key, which account.

>>> from node.venue.auth import ApiKey
>>> cfg = VenueConfig(recording=("a.gz",), api_key=ApiKey.hmac("k", "s"), speed=10)
>>> cfg.host, cfg.port, cfg.start, cfg.market
('127.0.0.1', 0, 'subscribe', 'auto')
>>> VenueConfig(recording=("a.gz",), api_key=ApiKey.hmac("k", "s"), host="0.0.0.0")
Traceback (most recent call last):
...
training.errors.BadInputError: host must be a loopback address (the venue is a fake Binance), got '0.0.0.0'
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from node.venue.auth import ApiKey
from training.errors import BadInputError

__all__ = ["DEFAULT_BALANCES", "VenueConfig"]

DEFAULT_BALANCES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"spot": {"USDT": "100000", "BTC": "1"}, "usdm": {"USDT": "100000"}}
)


@dataclass(frozen=True)
class VenueConfig:
    """How the venue runs.

    ``speed``: replay pace (1 = real time, ``math.inf`` = as fast as the sockets take it).
    ``start``: when the replay clock starts: at the first market subscription (``subscribe``,
    so a node that is still starting misses nothing), right after the first ``GET depth`` is
    served (``snapshot``: the node's book then starts at the recording's own snapshot, with the
    lead trades just before it, as in a backtest of the recording; ``start_delay_s`` later, so
    the node has built its book first; what ``node/run.py --replay`` uses), at once (``now``),
    or when told (``manual``: :meth:`LoopbackVenue.start_replay` / ``POST
    /_venue/replay/start``).
    ``loop``: start over at the end (market sockets are dropped so clients resync), else
    keep the sockets open and silent. ``balances``: starting free balances by asset (spot) or
    the margin wallet (USD-M ``USDT``); default :data:`DEFAULT_BALANCES`. ``leverage``: USD-M
    leverage reported in ``symbolConfig``. ``funding_rate``: a USD-M recording without
    ``@markPrice`` frames gets a ``@markPrice@1s`` stream synthesised at this rate (``None``,
    the default: none, so a node sees the funding a backtest of the recording sees).
    ``snapshot_delay_s``: wait before serving ``GET depth``, so a ``SUBSCRIBE`` sent just before
    it is registered (the adapter does not wait for the reply).
    ``exchange_info``: an ``exchangeInfo`` JSON to serve instead of the bundled snapshot.
    ``clock_align_ms``: the replayed exchange time is the recorded time plus an offset that is a
    multiple of this (the first message just after the wall clock, rounded up), so a node
    sampling on a grid of that step cuts the recording where a backtest of it does (``node/run.py
    --replay`` aligns on the model's sample interval).
    """

    recording: tuple[str | Path, ...]
    api_key: ApiKey
    market: Literal["auto", "spot", "usdm"] = "auto"
    speed: float = 1.0
    start: Literal["subscribe", "snapshot", "now", "manual"] = "subscribe"
    loop: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    balances: Mapping[str, str] | None = None
    leverage: int = 20
    funding_rate: str | None = None
    exchange_info: Path | None = None
    snapshot_delay_s: float = 0.03
    hold_after_snapshot_s: float = 0.25
    recv_window_max_ms: int = 60_000
    clock_align_ms: int = 1
    start_delay_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.recording:
            raise BadInputError("no recording files", field="recording")
        if not (self.speed > 0 and not math.isnan(self.speed)):
            raise BadInputError(f"speed must be > 0, got {self.speed}", field="speed")
        if self.start not in ("subscribe", "snapshot", "now", "manual"):
            raise BadInputError(
                f"start must be subscribe|snapshot|now|manual, got {self.start!r}", field="start"
            )
        if self.market not in ("auto", "spot", "usdm"):
            raise BadInputError(
                f"market must be auto|spot|usdm, got {self.market!r}", field="market"
            )
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback:
            raise BadInputError(
                f"host must be a loopback address (the venue is a fake Binance), got {self.host!r}",
                field="host",
            )
        if not 0 <= self.port < 65536:
            raise BadInputError(f"port must be 0..65535, got {self.port}", field="port")
        if not 1 <= self.leverage <= 125:
            raise BadInputError(f"leverage must be 1..125, got {self.leverage}", field="leverage")
        if self.clock_align_ms < 1:
            raise BadInputError(
                f"clock_align_ms must be >= 1, got {self.clock_align_ms}", field="clock_align_ms"
            )
