"""Configuration of :class:`node.strategy.PolicyHMMStrategy`: model, guardrails, execution.

Every field has a working default so ``PolicyHMMStrategyConfig(instrument_id=...)`` runs; the
guardrail numbers are the ones :mod:`node.guardrails` checks before any order.
"""

from __future__ import annotations

from nautilus_trader.config import StrategyConfig

__all__ = ["PolicyHMMStrategyConfig"]


class PolicyHMMStrategyConfig(StrategyConfig, frozen=True):
    """Strategy settings (immutable, msgspec-backed).

    ``max_spread_bp_base + max_spread_vol_k * realised_vol_bp`` is the SPREAD limit;
    ``max_position`` is in base units, ``max_drawdown`` in quote currency. ``kill_switch_path``
    ``None`` keeps the kill switch and drawdown peak in ``state_dir`` (the backtest run dir).
    ``trading_enabled=False`` computes and logs every decision but submits nothing.

    >>> c = PolicyHMMStrategyConfig(instrument_id="BTCUSDT.BINANCE")
    >>> c.min_conf, c.trading_enabled, c.post_only
    (0.6, False, True)
    """

    instrument_id: str
    model_ref: str = "live"
    registry_root: str | None = None
    market: str = "spot"
    min_conf: float = 0.6
    max_spread_bp_base: float = 2.0
    max_spread_vol_k: float = 0.5
    max_position: float = 0.01
    cooldown_s: float = 5.0
    latency_budget_ms: float = 50.0
    max_drawdown: float = 100.0
    vwap_anchor_bps: float = 10.0
    trading_enabled: bool = False
    kill_switch_path: str | None = None
    state_dir: str = "."
    notional_multiple: float = 1.1
    post_only: bool = True
    log_decisions: bool = False
