"""What the acceptance checks are judged against (:class:`AcceptanceConfig`) and what each one
reports (:class:`Check`): plain data, light to import."""

from __future__ import annotations

from dataclasses import dataclass

from training.errors import BadInputError

__all__ = ["ALL_DAYS", "AcceptanceConfig", "Check"]

#: The ``day`` of a run-wide check.
ALL_DAYS = "ALL"


@dataclass(frozen=True)
class AcceptanceConfig:
    """Thresholds of the checks (working defaults).

    ``min_state_entropy_bits``: floor on the entropy of the filtered-state histogram (a model stuck
    in one state has 0). ``pnl_rule``: ``"mean"`` passes when the mean PnL change per
    ``pnl_interval_s`` is >= 0, ``"lower"`` only when the CI's lower bound is (see
    :func:`ops.acceptance.checks.check_pnl`). ``max_position`` / ``max_drawdown`` ``None`` take
    the strategy's limits from ``config.json``. A bad value raises
    :class:`~training.errors.BadInputError` naming the field.

    >>> AcceptanceConfig().pnl_rule
    'mean'
    """

    min_state_entropy_bits: float = 0.1
    position_tolerance: float = 1e-9
    pnl_interval_s: float = 60.0
    ci_level: float = 0.95
    n_boot: int = 2000
    pnl_rule: str = "mean"
    seed: int = 0
    max_position: float | None = None
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> BadInputError:
            return BadInputError(f"{name}: {why}", field=name)

        if self.pnl_rule not in ("mean", "lower"):
            raise bad("pnl_rule", f"{self.pnl_rule!r} is not 'mean' or 'lower'")
        if not 0.0 < self.ci_level < 1.0:
            raise bad("ci_level", f"must be in (0, 1), got {self.ci_level!r}")
        if self.n_boot < 100:
            raise bad("n_boot", f"must be >= 100, got {self.n_boot!r}")
        if not self.pnl_interval_s > 0.0:
            raise bad("pnl_interval_s", f"must be > 0, got {self.pnl_interval_s!r}")


@dataclass(frozen=True)
class Check:
    """One check result; ``day`` is ``YYYY-MM-DD`` or :data:`ALL_DAYS` for run-wide checks."""

    name: str
    day: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str
    verdict: str = ""

    def __post_init__(self) -> None:
        if not self.verdict:  # PASS / FAIL unless a check names a more precise verdict
            object.__setattr__(self, "verdict", "PASS" if self.passed else "FAIL")
