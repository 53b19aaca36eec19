"""Configuration of :class:`node.strategy.PolicyHMMStrategy`: model, guardrails, execution.

Every field has a working default so ``PolicyHMMStrategyConfig(instrument_id=...)`` runs; the
guardrail numbers are the ones :mod:`node.guardrails` checks before any order.
"""

from __future__ import annotations

import math
from typing import Any

from nautilus_trader.config import StrategyConfig

from node.execution import VWAP_MODES

__all__ = ["PolicyHMMStrategyConfig", "label_horizon_s"]


def label_horizon_s(metadata: dict[str, Any]) -> float | None:
    """The label horizon a bundle was trained on (``metadata.config.labels.horizon_s``), if any.

    >>> label_horizon_s({"config": {"labels": {"horizon_s": 300.0}}}), label_horizon_s({})
    (300.0, None)
    """
    value = metadata.get("config", {}).get("labels", {}).get("horizon_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


class PolicyHMMStrategyConfig(StrategyConfig, frozen=True):
    """Strategy settings (immutable, msgspec-backed).

    ``max_spread_bp_base + max_spread_vol_k * realised_vol_bp`` is the SPREAD limit;
    ``max_position`` is in base units, ``max_drawdown`` in quote currency. ``kill_switch_path``
    ``None`` keeps the kill switch and drawdown peak in ``state_dir`` (the backtest run dir).
    ``trading_enabled=False`` computes and logs every decision but submits nothing.

    Exits: an open position is held ``hold_s`` (``None``: the bundle's label horizon, else
    ``default_hold_s``), extended by every confident (>= ``min_conf``) same-side signal, closed
    early by an opposite signal only with ``signal_exit`` (off by default, chosen on training
    days: single opposite samples cut holds to ~30 s, far below the horizon the edge was
    measured on, and lost net PnL), by a ``stop_loss_bps`` adverse move (0 = off) or the kill
    switch (KILL flattens), always with a passive post-only order at the touch re-quoted every
    ``exit_requote_s``. VWAP anchoring
    (``vwap_mode``, see :func:`node.execution.vwap_blocks`) only applies to entries.
    ``modelled_latency_ms`` (not ``None``) is what the LATENCY guard sees instead of the measured
    inference time: the backtest sets it for the in-process client so that machine load cannot
    change decisions (the measured time stays in the timeline).

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
    hold_s: float | None = None
    default_hold_s: float = 60.0
    stop_loss_bps: float = 0.0
    exit_requote_s: float = 1.0
    signal_exit: bool = False
    vwap_mode: str = "trend"
    modelled_latency_ms: float | None = None

    def __post_init__(self) -> None:
        for name in ("default_hold_s", "exit_requote_s", "hold_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"PolicyHMMStrategyConfig.{name}: must be finite and > 0, got {v}")
        for name in ("stop_loss_bps", "modelled_latency_ms"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"PolicyHMMStrategyConfig.{name}: must be finite, >= 0, got {v}")
        if self.vwap_mode not in VWAP_MODES:
            raise ValueError(
                f"PolicyHMMStrategyConfig.vwap_mode: {self.vwap_mode!r} not in {VWAP_MODES}"
            )
