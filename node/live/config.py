"""The live node's configuration: where it trades, with what, and its hard limits.

One frozen :class:`LiveConfig` per run; the strategy's own settings are the
:class:`~node.config.PolicyHMMStrategyConfig` ``nhmm backtest`` builds from the same options.

>>> from node.config import PolicyHMMStrategyConfig
>>> cfg = LiveConfig(symbol="btcusdt", strategy=PolicyHMMStrategyConfig(instrument_id="X"))
>>> cfg.environment, cfg.account, cfg.symbol, cfg.instrument_id, cfg.market
('testnet', 'spot', 'BTCUSDT', 'BTCUSDT.BINANCE', 'spot')
>>> LiveConfig(symbol="BTCUSDT", account="coinm", strategy=cfg.strategy)
Traceback (most recent call last):
...
training.errors.BadInputError: account must be spot|usdm, got 'coinm'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from node.config import PolicyHMMStrategyConfig
from training.errors import BadInputError

__all__ = ["ACCOUNTS", "ENVIRONMENTS", "LiveConfig"]

ENVIRONMENTS = ("testnet", "demo", "live")
ACCOUNTS = ("spot", "usdm")


@dataclass(frozen=True)
class LiveConfig:
    """How one node runs.

    ``environment``: Binance ``testnet`` | ``demo`` | ``live`` (which keys, which hosts);
    ``replay``: recordings the in-process loopback venue replays at ``speed`` (then no Binance
    host is dialled). ``model_ref`` / ``registry_root`` / ``serve_url``: the model (``None``
    URL: in process). ``state_dir`` holds the kill switch, its crash marker and the runs;
    ``out`` the RUN_DIR (default ``state_dir/runs/<UTC start>``). ``max_notional_per_order``
    (quote) and ``max_order_submit_rate`` (``"N/HH:MM:SS"``) go to Nautilus's ``RiskEngine``;
    the position cap is the strategy's ``max_position``. ``flatten``: close the position at
    shutdown (open orders are always cancelled). ``stop_at_end``: stop when the replay ends.
    ``book_check_s``: how long the node's book may disagree with the venue's best quotes before
    it is rebuilt from a snapshot (the adapter never checks sequence numbers).
    """

    symbol: str
    strategy: PolicyHMMStrategyConfig
    environment: Literal["testnet", "demo", "live"] = "testnet"
    account: Literal["spot", "usdm"] = "spot"
    model_ref: str = "live"
    registry_root: str | None = None
    serve_url: str | None = None
    replay: tuple[str, ...] = ()
    speed: float = 1.0
    state_dir: Path = Path("node_state")
    out: Path | None = None
    max_notional_per_order: float = 1_000.0
    max_order_submit_rate: str = "10/00:00:01"
    flatten: bool = False
    stop_at_end: bool = True
    metrics_port: int | None = None
    book_check_s: float = 2.0
    trader_id: str = "NHMM-001"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbol", self.symbol.upper().removesuffix("-PERP"))
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        if self.environment not in ENVIRONMENTS:
            raise BadInputError(
                f"environment must be {'|'.join(ENVIRONMENTS)}, got {self.environment!r}",
                field="environment",
            )
        if self.account not in ACCOUNTS:
            raise BadInputError(
                f"account must be {'|'.join(ACCOUNTS)}, got {self.account!r}", field="account"
            )
        if not (self.speed > 0 and not math.isnan(self.speed)):
            raise BadInputError(f"speed must be > 0, got {self.speed}", field="speed")
        if not (math.isfinite(self.max_notional_per_order) and self.max_notional_per_order > 0):
            raise BadInputError(
                f"max_notional_per_order must be finite and > 0, got {self.max_notional_per_order}",
                field="max_notional_per_order",
            )
        if self.replay and self.environment == "live":
            raise BadInputError("--replay rehearses on a loopback venue: not with --live",
                                field="replay")  # fmt: skip

    @property
    def market(self) -> str:
        """The strategy's market name: ``spot`` or ``perp``."""
        return "spot" if self.account == "spot" else "perp"

    @property
    def instrument_id(self) -> str:
        """The adapter's instrument id: ``BTCUSDT.BINANCE`` / ``BTCUSDT-PERP.BINANCE``."""
        return f"{self.symbol}{'-PERP' if self.account == 'usdm' else ''}.BINANCE"

    @property
    def mode(self) -> str:
        """What the metrics call this run: ``replay``, ``testnet``, ``demo`` or ``live``."""
        return "replay" if self.replay else self.environment
