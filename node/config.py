"""Configuration of :class:`node.strategy.PolicyHMMStrategy`: model, guardrails, execution.

Every field has a working default so ``PolicyHMMStrategyConfig(instrument_id=...)`` runs; the
guardrail numbers are the ones :mod:`node.guardrails` checks before any order.
"""

from __future__ import annotations

import math
from typing import Any

from nautilus_trader.config import StrategyConfig

from training.simulation.rules import GuardLimits
from training.simulation.rules import RuleConfig

__all__ = ["PolicyHMMStrategyConfig", "guard_limits", "label_horizon_s", "rule_config"]

#: The rules' own defaults: every guardrail and rule default below is read from these (one owner,
#: :mod:`training.simulation.rules`), so the node and the trade simulator cannot drift apart.
_LIMITS = GuardLimits()
_RULES = RuleConfig()


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
    ``max_position`` is in base units, ``max_drawdown`` in quote currency (USDT for BTCUSDT).
    ``kill_switch_path`` ``None`` keeps the kill switch, the drawdown peak and the equity
    baseline in ``state_dir`` (the backtest run dir).
    ``trading_enabled=False`` computes and logs every decision but submits nothing.

    Exits: an open position is held ``hold_s`` (``None``: the bundle's label horizon, else
    ``default_hold_s``), extended by every confident (>= ``min_conf``) same-side signal, closed
    early by an opposite signal only with ``signal_exit`` (off by default, chosen on training
    days: single opposite samples cut holds to ~30 s, far below the horizon the edge was
    measured on, and lost net PnL), by a ``stop_loss_bps`` adverse move (0 = off) or the kill
    switch (KILL flattens). HOLD and SIGNAL exits rest as a passive post-only order at the touch
    re-quoted every ``exit_requote_s`` and cross after ``exit_cross_s``; KILL and STOP exits
    cross at once with an IOC limit ``max_slippage_bps`` through the opposite touch (it walks the
    book no further). VWAP anchoring
    (``vwap_mode``, see :func:`training.simulation.execution.vwap_blocks`) only applies to entries.
    An entry order still resting ``entry_ttl_s`` after it was sent is cancelled (a passive
    entry the market moved away from is a missed trade, not a trade to take later), and so is
    one whose signal turned flat or opposite, or when KILL or DD trips; one entry works at a time.

    Sizing: ``risk_budget`` (quote, the same unit as ``max_drawdown``; 0 = off, the default)
    sizes each entry so that a one-sigma move over the hold (``realised_vol_bp * sqrt(hold_s)``
    bp, or ``stop_loss_bps`` when a stop is set) costs about that much, rounded down to the size
    step, never below the min-notional size, capped at the room left under ``max_position``.
    Off, an entry is the smallest size at ``notional_multiple`` x the min notional. With the
    defaults (``max_drawdown`` 100) a budget of 5 lets DD stop the strategy after about 20
    one-sigma losses; keep ``max_drawdown / risk_budget`` in that range. Scale-up
    (``scale_up_cycles`` > 0; 0 = off, the default): entries start at that size and grow one
    multiple after every ``scale_up_cycles`` clean round trips, to ``max_scale`` x; the first
    guardrail hit (not CONF/COOLDOWN) or STOP/KILL steps back one
    (:class:`training.simulation.scale.ScaleUp`; a restart starts at 1 x).
    ``long_only``: sell signals never open a short. Spot accounts that hold no base asset need
    it (off by default: on spot a sell sells the account's base, a short against its start).
    ``modelled_latency_ms``: in a backtest, how long after a sample the model's answer arrives
    (``None``: the measured call time), so the LATENCY guard sees it and the decision meets the
    book of that moment (:class:`node.inference.InferenceQueue`); the backtest sets it for the
    in-process client so that machine load cannot change decisions (the measured call time stays
    in the timeline as ``latency_ms``). Live, the strategy's clock measures it.

    >>> c = PolicyHMMStrategyConfig(instrument_id="BTCUSDT.BINANCE")
    >>> c.min_conf, c.trading_enabled, c.post_only
    (0.7, False, True)
    """

    instrument_id: str
    model_ref: str = "live"
    registry_root: str | None = None
    market: str = "spot"
    min_conf: float = _LIMITS.min_conf
    max_spread_bp_base: float = _LIMITS.max_spread_bp_base
    max_spread_vol_k: float = _LIMITS.max_spread_vol_k
    max_position: float = _LIMITS.max_position
    cooldown_s: float = _LIMITS.cooldown_s
    latency_budget_ms: float = _LIMITS.latency_budget_ms
    max_drawdown: float = _LIMITS.max_drawdown
    vwap_anchor_bps: float = _RULES.vwap_anchor_bps
    trading_enabled: bool = False
    kill_switch_path: str | None = None
    state_dir: str = "."
    notional_multiple: float = _RULES.notional_multiple
    post_only: bool = True
    log_decisions: bool = False
    hold_s: float | None = None
    default_hold_s: float = _RULES.hold_s
    stop_loss_bps: float = _RULES.stop_loss_bps
    exit_requote_s: float = 1.0
    signal_exit: bool = _RULES.signal_exit
    vwap_mode: str = _RULES.vwap_mode
    modelled_latency_ms: float | None = None
    entry_ttl_s: float = _RULES.entry_ttl_s
    exit_cross_s: float = _RULES.exit_cross_s
    max_slippage_bps: float = _RULES.max_slippage_bps
    risk_budget: float = _RULES.risk_budget
    scale_up_cycles: int = _RULES.scale_up_cycles
    max_scale: int = _RULES.max_scale
    long_only: bool = _RULES.long_only

    def __post_init__(self) -> None:
        rules = {f: getattr(self, f) for f in _RULE_FIELDS if getattr(self, f) is not None}
        try:  # the rule settings are checked by their owner
            RuleConfig(limits=GuardLimits(**{f: getattr(self, f) for f in _LIMIT_FIELDS}), **rules)
        except ValueError as exc:
            raise ValueError(f"PolicyHMMStrategyConfig: {exc}") from exc
        for name in ("default_hold_s", "exit_requote_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"PolicyHMMStrategyConfig.{name}: must be finite and > 0, got {v}")
        v = self.modelled_latency_ms
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ValueError(f"PolicyHMMStrategyConfig.modelled_latency_ms: finite, >= 0, got {v}")


#: The config fields named and checked as in :class:`RuleConfig` and :class:`GuardLimits`.
_RULE_FIELDS = ("hold_s", "stop_loss_bps", "signal_exit", "vwap_mode", "vwap_anchor_bps",
                "entry_ttl_s", "notional_multiple", "exit_cross_s", "max_slippage_bps",
                "risk_budget", "scale_up_cycles", "max_scale", "long_only")  # fmt: skip
_LIMIT_FIELDS = tuple(GuardLimits.__dataclass_fields__)


def guard_limits(config: PolicyHMMStrategyConfig) -> GuardLimits:
    """The config's guardrail numbers (the config names every limit as :class:`GuardLimits`)."""
    return GuardLimits(**{f: getattr(config, f) for f in GuardLimits.__dataclass_fields__})


def rule_config(config: PolicyHMMStrategyConfig, instrument: Any, hold_s: float) -> RuleConfig:
    """The decision rules' settings (:class:`training.simulation.rules.RuleConfig`) of this
    strategy config on ``instrument`` (its price and size grid and min notional come from
    :func:`training.pipelines.evaluation.rules_for`, the one place that reads them)."""
    from training.pipelines.evaluation import rules_for

    return rules_for(
        instrument,
        hold_s,
        guard_limits(config),
        stop_loss_bps=config.stop_loss_bps,
        signal_exit=config.signal_exit,
        vwap_mode=config.vwap_mode,
        vwap_anchor_bps=config.vwap_anchor_bps,
        entry_ttl_s=config.entry_ttl_s,
        notional_multiple=config.notional_multiple,
        exit_cross_s=config.exit_cross_s,
        max_slippage_bps=config.max_slippage_bps,
        risk_budget=config.risk_budget,
        scale_up_cycles=config.scale_up_cycles,
        max_scale=config.max_scale,
        long_only=config.long_only,
    )
