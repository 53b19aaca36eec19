"""Scale-up: the entry size ramps after clean round trips, steps back on the first hit."""

from __future__ import annotations

import pytest

from training.simulation.rules import Answer
from training.simulation.rules import GuardLimits
from training.simulation.rules import Market
from training.simulation.rules import RuleConfig
from training.simulation.rules import RuleState
from training.simulation.rules import decide
from training.simulation.scale import ScaleUp


def cycle(s: ScaleUp, *, hit: str | None = None, cycles: int = 2, top: int = 3) -> ScaleUp:
    """One round trip (flat -> open -> flat), with a guardrail verdict ``hit`` while open."""
    for position, verdict in ((0.0, "FLAT"), (1.0, hit or "FLAT"), (0.0, "FLAT")):
        s = s.at(position, cycles, top).after(verdict, verdict != "FLAT", None, cycles)
    return s


def test_steps_up_after_n_clean_cycles_to_the_cap() -> None:
    s = ScaleUp()
    levels = []
    for _ in range(8):
        s = cycle(s)
        levels.append(s.level)
    assert levels == [1, 2, 2, 3, 3, 3, 3, 3]


def test_benign_blocks_do_not_count_a_hit_does_once() -> None:
    s = cycle(cycle(ScaleUp()))  # level 2
    assert cycle(s, hit="CONF").level == cycle(s, hit="COOLDOWN").level == 2
    back = cycle(s, hit="SPREAD")
    assert back.level == 1 and back.clean == 0  # one step back, and the cycle is not clean
    s2 = s.after("SPREAD", True, None, 2).after("LATENCY", True, None, 2)
    assert s2.level == 1  # the second hit before the next cycle ends does not step again
    assert s.after("FLAT", False, "STOP", 2).level == 1  # a STOP exit is a hit


def test_off_stays_at_one() -> None:
    s = ScaleUp()
    for _ in range(5):
        s = cycle(s, cycles=0)
    assert s == ScaleUp()


M = Market(ts_ns=10**9, mid=100.0, spread_bp=2.0, realised_vol_bp=1.0, microprice=100.002,
           vwap=100.0, best_bid=99.99, best_ask=100.01)  # fmt: skip


@pytest.mark.parametrize(("scale", "position", "qty"), [(1, 0.0, 0.055), (2, 0.0, 0.11),
                                                          (3, 0.0, 0.165), (3, 0.9, 0.1)])  # fmt: skip
def test_decide_sizes_entries_by_the_scale_within_the_room(
    scale: int, position: float, qty: float
) -> None:
    """The min-notional size (0.055 here) times the scale, capped by the room under
    ``max_position`` (1.0 - 0.9 = 0.1), never below the base size."""
    cfg = RuleConfig(limits=GuardLimits(min_conf=0.5, max_position=1.0, cooldown_s=0.0),
                     hold_s=60.0, tick=0.01, min_notional=5.0, size_increment=0.001)  # fmt: skip
    d = decide(M, Answer("buy", 0.9), RuleState(position=position, size_scale=scale), cfg)
    assert d.verdict == "OK" and d.entry.quantity == pytest.approx(qty)


def test_config_refuses_a_scale_below_one() -> None:
    with pytest.raises(ValueError, match="max_scale"):
        RuleConfig(max_scale=0)
