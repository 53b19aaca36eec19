"""How the backtest venue fills orders: the one switch :mod:`node.backtest` passes to
``add_venue``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Literal

from training.errors import BadInputError

__all__ = ["FILL_MODELS", "FillOptions", "venue_fill_config"]

#: ``queue``: resting orders wait behind the displayed size at their price (FIFO, cancels ahead
#: shrink it), takers walk the book consuming displayed liquidity. ``touch``: Nautilus's default,
#: the first trade at a resting order's price fills all of it (optimistic; kept to compare).
FILL_MODELS = ("queue", "touch")


@dataclass(frozen=True)
class FillOptions:
    """The venue's fill model (:data:`FILL_MODELS`) and the seed Nautilus's ``FillModel`` takes
    (it seeds Python's ``random``; no fill here is random)."""

    model: Literal["queue", "touch"] = "queue"
    seed: int = 42

    def __post_init__(self) -> None:
        if self.model not in FILL_MODELS:
            raise BadInputError(
                f"fill_model: {self.model!r} is not one of {', '.join(FILL_MODELS)}",
                field="fill_model",
            )


def venue_fill_config(options: FillOptions | None = None) -> dict[str, Any]:
    """``BacktestEngine.add_venue`` keyword arguments for ``options`` (fresh objects per call:
    a venue's tracker must not be shared).

    >>> sorted(venue_fill_config(FillOptions("queue")))
    ['fill_model', 'liquidity_consumption', 'modules', 'trade_execution']
    >>> type(venue_fill_config(FillOptions("touch"))["fill_model"]).__name__
    'FillModel'
    """
    from nautilus_trader.backtest.models import FillModel

    from node.fills._queue import QueueFillModel
    from node.fills._queue import QueueTracker

    options = options or FillOptions()
    if options.model == "touch":
        return {"fill_model": FillModel(prob_fill_on_limit=1.0, random_seed=options.seed)}
    tracker = QueueTracker()
    return {
        "fill_model": QueueFillModel(tracker, random_seed=options.seed),
        "modules": [tracker],
        "liquidity_consumption": True,
        "trade_execution": True,
    }
