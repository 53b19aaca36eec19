"""Scale-up: the size of a new strategy grows only while it trades cleanly.

Entries are ``level`` x the base size (min notional, or the risk budget's size). A *cycle* is
a position opened and closed again; it is *clean* when no guardrail hit came between the end of
the previous cycle and its own end. A hit is any counted block but CONF and COOLDOWN (the
strategy being selective is not trouble) and any STOP, KILL or DD. After ``cycles`` clean cycles
in a row the level steps up, to ``max_level``; the first hit after a cycle steps it back down
one level (never below 1) and the count starts again. ``cycles=0`` keeps the level at 1 (off).

The state is a value, stepped on every sample by the Nautilus strategy and the trade simulator
alike: :meth:`ScaleUp.at` with the position before the decision (a cycle opens or closes),
:meth:`ScaleUp.after` with the decision (a hit); :func:`~training.simulation.rules.decide` sizes
entries by ``RuleState.size_scale``. It is not persisted: a restarted node starts again at
level 1, the safe side.

>>> s = ScaleUp()
>>> for position in (0.0, 1.0, 0.0, 1.0, 0.0):  # two clean round trips
...     s = s.at(position, cycles=2, max_level=3).after("FLAT", False, None, cycles=2)
>>> s.level, s.clean
(2, 0)
>>> s = s.after("SPREAD", True, None, cycles=2)  # a hit steps back
>>> s.level, s.dirty
(1, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

__all__ = ["BENIGN_BLOCKS", "HIT_EXITS", "ScaleUp"]

#: Blocks that are the strategy being selective, not trouble: they never step the size back.
BENIGN_BLOCKS: tuple[str, ...] = ("CONF", "COOLDOWN")
#: Exits that are trouble whatever the verdict.
HIT_EXITS: tuple[str, ...] = ("STOP", "KILL")


@dataclass(frozen=True)
class ScaleUp:
    """``level``: the size multiple now; ``clean``: clean cycles in a row at this level;
    ``dirty``: a hit since the last cycle ended; ``open``: a cycle is under way."""

    level: int = 1
    clean: int = 0
    dirty: bool = False
    open: bool = False

    def at(self, position: float, cycles: int, max_level: int) -> ScaleUp:
        """The state once ``position`` is seen: a cycle opens, or closes (clean or not; the
        level steps up after ``cycles`` clean ones, to ``max_level``)."""
        if cycles <= 0:
            return self
        if position != 0.0 and not self.open:
            return replace(self, open=True)
        if position == 0.0 and self.open:
            clean = 0 if self.dirty else self.clean + 1
            level = self.level
            if clean >= cycles:
                level, clean = min(level + 1, max_level), 0
            return ScaleUp(level=level, clean=clean, dirty=False, open=False)
        return self

    def after(self, verdict: str, counted: bool, exit_reason: str | None, cycles: int) -> ScaleUp:
        """The state after a decision: the first hit since the last cycle steps the level back
        (``verdict`` counted and not benign, or a STOP/KILL exit)."""
        if cycles <= 0 or self.dirty:
            return self
        hit = (counted and verdict not in ("OK", "FLAT", *BENIGN_BLOCKS)) or (
            exit_reason in HIT_EXITS
        )
        if not hit:
            return self
        return replace(self, level=max(1, self.level - 1), clean=0, dirty=True)
